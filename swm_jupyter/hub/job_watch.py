"""One job of the swm service followed live on its events websocket (SwmSpawner's wait for a server to listen).

The spawner no longer has to look at the job every ``start_poll_interval``: :class:`JobWatch` subscribes
to the job's stdout on the service's ``/events`` websocket (``subscribe_logs``) and wakes the spawner at
each event of the job and each new piece of its output, so the ``swm-spawner-ready`` line reaches the
hub as soon as the service's log reader sees it. When the websocket cannot be opened or closes, the
spawner goes on polling the REST API as before (:attr:`JobWatch.live` is then False).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from tornado import httpclient
from tornado.websocket import WebSocketClientConnection, websocket_connect

#: Longest unfinished line kept (its end) while a server's output is scanned for its ready line.
MAX_LINE = 1 << 16


class OutputLines:
    """The complete lines of a growing output, each handed out once; only the unfinished last line is kept
    (its last :data:`MAX_LINE` bytes), so following a server that prints a lot costs no more than its output."""

    def __init__(self) -> None:
        self._tail = bytearray()

    def feed(self, data: bytes) -> bytes:
        """Take ``data``; return the lines it completed (with their newlines), ``b""`` if none."""
        self._tail += data
        end = self._tail.rfind(b"\n")
        if end < 0:
            if len(self._tail) > MAX_LINE:
                del self._tail[:-MAX_LINE]
            return b""
        lines = bytes(self._tail[: end + 1])
        del self._tail[: end + 1]
        return lines


def websocket_url(api_base: str) -> str:
    """The events websocket of the swm API at ``api_base`` (``http(s)://.../swm/api/v1/``)."""
    scheme, _, rest = api_base.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + "events"


class JobWatch:
    """Follows ``job_id`` on the service's events websocket; see the module docstring."""

    def __init__(self, api_base: str, token: str, job_id: str, log: logging.Logger | Any) -> None:
        self.url = websocket_url(api_base)
        self.token = token
        self.job_id = job_id
        self.log = log
        #: Set at every event of the job, every new output and when the socket closes; cleared by the waiter.
        self.changed = asyncio.Event()
        #: Complete lines of the job's stdout the socket sent that the waiter has not taken yet (see :meth:`take`).
        self.stdout = bytearray()
        self._lines = OutputLines()
        self.live = False
        self._socket: WebSocketClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> bool:
        """Open the socket and subscribe to the job's stdout; True if it is live."""
        request = httpclient.HTTPRequest(
            self.url, headers={"Authorization": f"token {self.token}"}, connect_timeout=timeout, request_timeout=timeout
        )
        try:
            self._socket = await websocket_connect(request, ping_interval=30)
            await self._socket.write_message(json.dumps({"subscribe_logs": {self.job_id: {"stdout": 0}}}))
        except Exception as exc:  # any failure: the spawner polls instead
            self.log.info("swm: job %s followed by polling (events websocket: %s)", self.job_id, exc)
            await self.close()
            return False
        self.live = True
        self._reader = asyncio.create_task(self._read())
        return True

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            while True:
                message = await self._socket.read_message()
                if message is None:
                    break
                self._take(message)
        finally:
            self.live = False
            self.changed.set()

    def _take(self, message: str | bytes) -> None:
        """Handle one message of the socket."""
        try:
            data = json.loads(message)
        except ValueError:
            return
        kind = data.get("type")
        if kind == "log" and data.get("job_id") == self.job_id and data.get("stream") == "stdout":
            self.stdout += self._lines.feed(str(data.get("data") or "").encode())
            self.changed.set()
        elif kind == "job" and (data.get("job") or {}).get("id") == self.job_id:
            self.changed.set()
        elif kind in ("error", "resync") and data.get("job_id", self.job_id) == self.job_id:
            self.log.info("swm: job %s events websocket says %s; polling instead", self.job_id, data.get("message"))
            self.live = False
            self.changed.set()

    def take(self) -> bytes:
        """The complete stdout lines received since the last call (each line is handed out once)."""
        lines = bytes(self.stdout)
        self.stdout.clear()
        return lines

    async def wait(self, timeout: float) -> None:
        """Return at the next change of the job (or its output), or after ``timeout`` seconds."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)
        self.changed.clear()

    async def close(self) -> None:
        """Close the socket and stop reading."""
        self.live = False
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None


__all__ = ["JobWatch", "OutputLines", "websocket_url"]
