"""Events stay bounded and honest: a slow client is told to resync (and loses nothing), log tails are shared."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import pytest

from swm_jupyter.client.events import EventStream
from swm_jupyter.handlers.events import EventsWebSocket
from tests.conftest import body

EVENTS = ("swm", "api", "v1", "events")
#: A small queue per events client, so that a client that stops reading overflows it quickly.
QUEUE_SIZE = 50


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    """The test server, with a small events queue per client."""
    return {**jp_server_config, "WorkloadManager": {"event_queue_size": QUEUE_SIZE}}


async def receive(ws: Any, timeout: float = 10) -> dict[str, Any] | None:
    """The next message, parsed; None once the socket closed."""
    message = await asyncio.wait_for(ws.read_message(), timeout)
    return None if message is None else json.loads(message)


async def store_states(api: Any) -> dict[str, str]:
    """Every top-level job's state, as the store has it."""
    states: dict[str, str] = {}
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = body(await api("jobs", params=params))
        states.update({job["id"]: job["state"] for job in page["jobs"]})
        cursor = page.get("next_cursor")
        if not cursor:
            return states


async def follow(ws: Any, seen: dict[str, str], stop: asyncio.Event) -> list[dict[str, Any]]:
    """Read job events into ``seen`` until ``stop`` is set and the socket is quiet; return other messages."""
    others: list[dict[str, Any]] = []
    while True:
        try:
            message = await receive(ws, timeout=1)
        except TimeoutError:
            if stop.is_set():
                return others
            continue
        if message is None:
            return others
        if message["type"] == "job":
            seen[message["job"]["id"]] = message["job"]["state"]
        else:
            others.append(message)


async def test_a_client_that_stops_reading_is_told_to_resync_and_loses_nothing(
    api: Any, jp_ws_fetch: Any, swm_started: Any
) -> None:
    manager = swm_started
    ws = await jp_ws_fetch(*EVENTS)
    hello = await receive(ws)
    assert hello is not None and hello["type"] == "hello"
    # Small socket buffers on both ends, so that the test need not send megabytes before they are full.
    ws.protocol.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    (server_side,) = EventsWebSocket.open_sockets
    server_side.ws_connection.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    reader = await jp_ws_fetch(*EVENTS)
    assert (await receive(reader) or {}).get("type") == "hello"
    reader_seen: dict[str, str] = {}
    done = asyncio.Event()
    reading = asyncio.create_task(follow(reader, reader_seen, done))
    # This client reads nothing more: its socket's buffers fill, then its queue on the server. Each
    # submission makes fewer events than the queue holds, so a client that reads keeps up (the other one).
    submitted: list[str] = []
    name = "x" * 120  # big events fill the socket buffers sooner
    deadline = time.monotonic() + 90
    while manager.subscriber_count > 1 and time.monotonic() < deadline:
        batch = body(await api("jobs", json_body=[{"command": ["true"], "hold": True, "name": name}] * 20))
        submitted.extend(job["id"] for job in batch["jobs"])
        await api("jobs", batch["jobs"][0]["id"], method="DELETE")  # a state change too
    assert manager.subscriber_count == 1, f"the slow client was never dropped ({len(submitted)} jobs submitted)"
    after = body(await api("jobs", json_body={"command": ["true"], "hold": True, "name": "after the drop"}))
    submitted.append(after["id"])

    seen: dict[str, str] = {}
    last = 0
    resync: dict[str, Any] | None = None
    while True:  # read again: everything sent before the drop, then the resync message, then the close
        message = await receive(ws)
        if message is None:
            break
        if message["type"] == "job":
            seen[message["job"]["id"]] = message["job"]["state"]
            last = message["id"]
        elif message["type"] == "resync":
            resync = message
    assert resync is not None, "the client was told why it was dropped"
    assert resync["last_event_id"] >= last and "reconnect" in resync["message"]
    assert after["id"] not in seen, "nothing is sent after the drop"

    ws = await jp_ws_fetch(*EVENTS, params={"last_event_id": str(resync["last_event_id"])})
    hello = await receive(ws)
    assert hello is not None and hello["type"] == "hello"
    newest = hello["last_event_id"]
    last = resync["last_event_id"]
    while last < newest:
        message = await receive(ws)
        assert message is not None and message["type"] == "job"
        assert message["id"] == last + 1, "no gap, no duplicate"
        last = message["id"]
        seen[message["job"]["id"]] = message["job"]["state"]
    ws.close()
    stored = await store_states(api)
    assert seen == stored, "the client ends with the same jobs as the store"
    assert len(seen) == len(submitted)
    done.set()
    assert await reading == [], "a client that reads is never dropped"
    assert reader_seen == stored
    reader.close()


async def test_the_python_client_catches_up_after_falling_behind(
    api: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str, swm_started: Any
) -> None:
    manager = swm_started
    stream = EventStream(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token)
    blocked = threading.Event()
    seen: dict[str, str] = {}
    resyncs: list[dict[str, Any]] = []

    def listener(message: dict[str, Any]) -> None:  # a listener that stalls: the stream's thread stops reading
        if message["type"] == "job":
            blocked.wait(60)
            seen[message["job"]["id"]] = message["job"]["state"]
        elif message["type"] == "resync":
            resyncs.append(message)

    stream.add_listener(listener)
    await asyncio.to_thread(stream.start)
    try:
        (server_side,) = EventsWebSocket.open_sockets
        server_side.ws_connection.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        deadline = time.monotonic() + 90
        while manager.subscriber_count and time.monotonic() < deadline:
            batch = body(await api("jobs", json_body=[{"command": ["true"], "hold": True, "name": "y" * 120}] * 20))
            await api("jobs", batch["jobs"][-1]["id"], method="DELETE")
        assert manager.subscriber_count == 0, "the stalled client was never dropped"
        await api("jobs", json_body={"command": ["true"], "hold": True, "name": "after the drop"})
        blocked.set()
        stored = await store_states(api)
        deadline = time.monotonic() + 30
        while seen != stored and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert seen == stored, "the client ends with the same jobs as the store"
        assert resyncs and resyncs[0]["last_event_id"] > 0
        assert manager.subscriber_count == 1, "it reconnected"
    finally:
        blocked.set()
        await asyncio.to_thread(stream.close)


async def test_two_subscribers_of_one_log_share_one_reader(api: Any, jp_ws_fetch: Any, swm_started: Any) -> None:
    manager = swm_started
    script = "for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.25; done; echo done >&2"
    job = body(await api("jobs", json_body={"command": ["sh", "-c", script]}))
    first = await jp_ws_fetch(*EVENTS)
    second = await jp_ws_fetch(*EVENTS)
    for ws in (first, second):
        assert (await receive(ws) or {}).get("type") == "hello"
    first.write_message(json.dumps({"subscribe_logs": [job["id"]]}))
    texts: list[dict[str, str]] = [{"stdout": "", "stderr": ""}, {"stdout": "", "stderr": ""}]

    async def read_log(ws: Any, text: dict[str, str], until: str | None = None) -> dict[str, Any]:
        while True:
            message = await receive(ws, timeout=20)
            assert message is not None
            if message["type"] == "log" and message["job_id"] == job["id"]:
                text[message["stream"]] += message["data"]
                if until and until in text["stdout"]:
                    return message
            elif message["type"] in ("log_end", "error"):
                return message

    await read_log(first, texts[0], until="line 2\n")  # the second one joins late, from the start
    second.write_message(json.dumps({"subscribe_logs": [job["id"]]}))
    await read_log(second, texts[1], until="line 1\n")
    assert manager.log_tails.readers() == {job["id"]: 2}, "one reader for both subscribers"
    ends = await asyncio.gather(read_log(first, texts[0]), read_log(second, texts[1]))
    expected = "".join(f"line {i}\n" for i in range(1, 9))
    assert texts[0] == texts[1] == {"stdout": expected, "stderr": "done\n"}
    assert [end["type"] for end in ends] == ["log_end", "log_end"]
    assert ends[0]["offsets"] == ends[1]["offsets"] == {"stdout": len(expected), "stderr": 5}
    assert manager.log_tails.readers() == {}, "the reader ends with the job"
    first.close()
    second.close()
