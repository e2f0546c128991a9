"""The local supervisor with clients that read their news slowly, or not at all: a slow reader
gets every line in order; a stuck one is dropped after ``SEND_TIMEOUT``, so it holds up the jobs
and news of the others no longer than that; the gate stops reading at a line the supervisor cut
off."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.jsoncodec import parse, to_bytes
from swm_jupyter.daemons import local_supervisor
from swm_jupyter.daemons.local_supervisor import Supervisor
from swm_jupyter.gates.local import LocalGate

#: Replies to this many requests are several times a socket buffer (about 200 kB here).
MANY = 6000
LONG_ID = "x" * 120


@pytest.fixture
def supervisor_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real supervisor, in a thread of this process, with short timeouts; its socket's path."""
    monkeypatch.setattr(local_supervisor, "SEND_TIMEOUT", 1.0)
    monkeypatch.setattr(local_supervisor, "IDLE_SECONDS", 0.5)
    with tempfile.TemporaryDirectory(prefix="swm-sup-") as folder:  # short: a UNIX socket path has a limit
        path = f"{folder}/s"
        supervisor = Supervisor(path)
        supervisor.listen()
        thread = threading.Thread(target=supervisor.run, daemon=True)
        thread.start()
        yield path
        thread.join(timeout=30)
        assert not thread.is_alive(), "the supervisor did not leave once idle"


def _connect(path: str) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    return client


def _send(client: socket.socket, requests: list[dict[str, object]]) -> None:
    client.sendall(b"".join(to_bytes(r) + b"\n" for r in requests))


def _send_aside(client: socket.socket, requests: list[dict[str, object]]) -> threading.Thread:
    """Send from a thread, as the gate does (it writes and reads at once): requests this long
    fill the socket while the supervisor waits to send its replies."""

    def send() -> None:
        with contextlib.suppress(OSError):  # a stuck client is dropped while it still sends
            _send(client, requests)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _read_until(
    client: socket.socket, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
) -> tuple[list[dict[str, Any]], bool]:
    """Read whole lines until ``done(messages)`` or EOF; return the messages and whether EOF came."""
    client.settimeout(timeout)
    buffer = b""
    messages: list[dict[str, Any]] = []
    while not done(messages):
        data = client.recv(1 << 16)
        if not data:
            return messages, True
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        messages.extend(parse(line) for line in lines)
    return messages, False


def _holds(count: int) -> list[dict[str, object]]:
    """Requests that start nothing and are each answered at once (no such job: done false)."""
    return [{"op": "hold", "id": f"{LONG_ID}{i}"} for i in range(count)]


def test_a_slow_reader_gets_all_its_news_in_order(supervisor_socket: str) -> None:
    client = _connect(supervisor_socket)
    try:
        sender = _send_aside(client, _holds(MANY))
        time.sleep(0.4)  # reads nothing for a while, less than SEND_TIMEOUT
        messages, eof = _read_until(client, lambda m: len(m) >= MANY)
        assert not eof
        assert [m["reply"] for m in messages] == [f"{LONG_ID}{i}" for i in range(MANY)]
        assert all(m == {"op": "hold", "reply": m["reply"], "done": False} for m in messages)
        sender.join(timeout=10)
    finally:
        client.close()


def test_a_stuck_client_is_dropped_and_the_others_go_on(supervisor_socket: str, tmp_path: Path) -> None:
    stuck = _connect(supervisor_socket)
    other = _connect(supervisor_socket)
    try:
        _send_aside(stuck, _holds(MANY))  # and never reads
        time.sleep(0.2)  # the supervisor is now waiting for the stuck client
        began = time.monotonic()
        _send(
            other,
            [
                {
                    "op": "spawn",
                    "id": "job-1",
                    "pool": "local",
                    "capacity": 1,
                    "cpus": 1,
                    "order": [0, 1, 0],
                    "argv": ["sh", "-c", "exit 3"],
                    "cwd": str(tmp_path),
                    "env": {},
                    "stdout": str(tmp_path / "out"),
                    "stderr": str(tmp_path / "err"),
                    "status_file": str(tmp_path / ".swm-status"),
                }
            ],
        )
        news, eof = _read_until(other, lambda m: any("exit" in x for x in m))
        assert not eof
        assert news[0]["reply"] == "job-1" and news[0]["pid"] > 0
        assert next(x for x in news if "exit" in x)["rc"] == 3
        assert time.monotonic() - began < 10, "the other client waited far beyond SEND_TIMEOUT"
        # The stuck client finds its connection closed after the news it was sent.
        received, eof = _read_until(stuck, lambda m: False)
        assert eof
        assert 0 < len(received) < MANY
        assert [m["reply"] for m in received] == [f"{LONG_ID}{i}" for i in range(len(received))]
    finally:
        stuck.close()
        other.close()


def test_the_gate_stops_at_a_line_the_supervisor_cut_off() -> None:
    async def scenario() -> LocalGate:
        gate = LocalGate(site_name="local")
        reader = asyncio.StreamReader()
        reader.feed_data(b'{"started":"a","pid":41,"at":1.5}\n{"exit":"a","rc":0,"en')
        reader.feed_eof()
        await gate._read_messages(reader)  # must not raise on the cut line
        return gate

    gate = asyncio.run(scenario())
    assert gate._started == {"a": (41, 1.5)}
    assert gate._exits == {}, "a cut line was taken for news"
