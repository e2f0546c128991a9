"""Malformed input on the events websocket gets an ``error`` message and the socket stays open
(issue 13: a 40-digit ``last_event_id`` and ``{"subscribe_logs": [[1]]}`` dropped it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import body

EVENTS = ("swm", "api", "v1", "events")

#: Messages a careless or hostile client may send; each must be answered with an error.
MALFORMED: list[str | bytes] = [
    json.dumps({"subscribe_logs": [[1]]}),
    json.dumps({"subscribe_logs": [{"a": 1}]}),
    json.dumps({"subscribe_logs": [1, 2]}),
    json.dumps({"subscribe_logs": [""]}),
    json.dumps({"subscribe_logs": {"x": "zero"}}),
    json.dumps({"subscribe_logs": {"x": -1}}),
    json.dumps({"subscribe_logs": {"x": 10**40}}),
    json.dumps({"subscribe_logs": {"x": {"stdout": "1"}}}),
    json.dumps({"subscribe_logs": {"x": {"stdin": 1}}}),
    json.dumps({"subscribe_logs": {"x": True}}),
    json.dumps({"subscribe_logs": "abc"}),
    json.dumps({"subscribe_logs": [f"job-{i}" for i in range(1000)]}),
    json.dumps({"unsubscribe_logs": [[1]]}),
    json.dumps({"unsubscribe_logs": "abc"}),
    json.dumps({"subscribe_logs": [], "other": 1}),
    json.dumps([1, 2, 3]),
    json.dumps("subscribe_logs"),
    "[" * 100_000 + "]" * 100_000,
    '{"subscribe_logs": {"x": 1e999}}',
    "not json",
    b"\xff\xfe\x00",
    "",
]


async def receive(ws: Any, timeout: float = 10) -> dict[str, Any]:
    """The next message, parsed (fails if the socket closed)."""
    message = await asyncio.wait_for(ws.read_message(), timeout)
    assert message is not None, "the socket closed"
    return json.loads(message)


async def assert_still_serves_logs(api: Any, ws: Any) -> None:
    """The socket still works: a log subscription streams a job's output."""
    job = body(await api("jobs", json_body={"command": ["echo", "still-open"]}))
    ws.write_message(json.dumps({"subscribe_logs": [job["id"]]}))
    while True:
        message = await receive(ws, 30)
        if message.get("type") == "log" and message["job_id"] == job["id"]:
            assert message["data"] == "still-open\n"
            return


async def test_a_huge_last_event_id_is_an_error_message_and_the_socket_stays(
    api: Any, jp_ws_fetch: Any, swm_started: Any
) -> None:
    ws = await jp_ws_fetch(*EVENTS, params={"last_event_id": "1" * 40})
    hello = await receive(ws)
    assert hello["type"] == "hello"
    error = await receive(ws)
    assert error["type"] == "error" and "newer than the newest event" in error["message"]
    await assert_still_serves_logs(api, ws)
    ws.close()


@pytest.mark.parametrize("message", MALFORMED, ids=lambda m: repr(m)[:40])
async def test_malformed_messages_get_an_error_and_the_socket_stays(
    api: Any, jp_ws_fetch: Any, swm_started: Any, message: str | bytes
) -> None:
    ws = await jp_ws_fetch(*EVENTS)
    assert (await receive(ws))["type"] == "hello"
    ws.write_message(message, binary=isinstance(message, bytes))
    reply = await receive(ws)
    assert reply["type"] == "error" and reply["message"], reply
    assert "Traceback" not in reply["message"]
    await assert_still_serves_logs(api, ws)
    ws.close()
