"""One websocket subscription to the server's events, read by a background thread.

A :class:`EventStream` is shared by everything one client shows (job handles, widgets): a single
connection, whatever the number of jobs watched. It never runs on the kernel's event loop, so a
kernel stays responsive; listeners are called from the stream's thread and must be quick (setting a
widget trait is). The stream reconnects with backoff and asks for the events it missed
(``last_event_id``); log subscriptions are sent again after a reconnect, from the offsets already
received. A ``resync`` message (the server dropped a client that fell behind) makes it reconnect
at once from its last event, so nothing is lost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

log = logging.getLogger("swm_jupyter.client")

Listener = Callable[[dict[str, Any]], None]
#: Seconds between ``{"type": "tick"}`` messages given to listeners (to refresh elapsed times).
TICK_SECONDS = 2.0


def events_url(base_url: str, last_event_id: int | None = None) -> str:
    """The websocket URL of the events endpoint of the server at ``base_url``."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/swm/api/v1/events"
    query = urlencode({"last_event_id": last_event_id}) if last_event_id is not None else ""
    return urlunsplit((scheme, parts.netloc, path, query, ""))


class EventStream:
    """A background thread holding one events websocket; call :meth:`start` once, :meth:`close` at the end."""

    def __init__(self, base_url: str, token: str | None) -> None:
        """Prepare a stream to the server at ``base_url`` (nothing connects before :meth:`start`)."""
        self.base_url = base_url
        self.token = token
        self.last_event_id: int | None = None
        self.connected = threading.Event()
        self.error: str | None = None
        self._listeners: list[Listener] = []
        #: Followed logs: job id -> {"stdout": offset, "stderr": offset} received so far.
        self._logs: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ws: Any = None
        self._thread: threading.Thread | None = None

    # listeners -------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(message)`` for every message (and a ``tick`` every few seconds)."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def subscribe_logs(self, job_ids: Iterable[str] | dict[str, int]) -> None:
        """Ask for the live stdout/stderr of ``job_ids`` (or ``{id: stdout byte offset}``), kept across reconnects.

        Each ``log`` message's ``offset`` is the byte offset just after its ``data``.
        """
        wanted = dict(job_ids) if isinstance(job_ids, dict) else dict.fromkeys(job_ids, 0)
        new = {i: {"stdout": int(o), "stderr": 0} for i, o in wanted.items() if i not in self._logs}
        self._logs.update(new)
        if new:
            self._send({"subscribe_logs": {i: dict(o) for i, o in new.items()}})

    def unsubscribe_logs(self, job_ids: Iterable[str]) -> None:
        """Stop receiving the logs of ``job_ids``."""
        ids = [i for i in job_ids if i in self._logs]
        for job_id in ids:
            del self._logs[job_id]
        if ids:
            self._send({"unsubscribe_logs": ids})

    # life cycle -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the thread runs (connected or reconnecting)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, wait: float = 5.0) -> EventStream:
        """Start the thread (once) and wait up to ``wait`` seconds for the first connection."""
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="swm-events", daemon=True)
            self._thread.start()
        self.connected.wait(wait)
        return self

    def close(self) -> None:
        """Close the connection and stop the thread (returns within about a second)."""
        self._stop.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(3)

    # internals --------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            return  # sent on (re)connect
        try:
            ws.send(json.dumps(message))
        except Exception as exc:
            log.debug("events: send failed (%s); resent on reconnect", exc)

    def _track(self, message: dict[str, Any]) -> bool:
        """Note what ``message`` tells about where this client is; True if it must reconnect now."""
        kind = message.get("type")
        if kind == "hello":
            if self.last_event_id is None:
                self.last_event_id = message.get("last_event_id")
            self.connected.set()
        elif isinstance(message.get("id"), int):
            self.last_event_id = message["id"]
        elif kind == "log" and message.get("job_id") in self._logs and isinstance(message.get("offset"), int):
            self._logs[message["job_id"]][str(message.get("stream"))] = message["offset"]
        elif kind == "log_end":
            self._logs.pop(str(message.get("job_id")), None)
        elif kind == "resync":
            last = message.get("last_event_id")
            if isinstance(last, int) and last > (self.last_event_id or 0):
                self.last_event_id = last
            return True
        return False

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(message)
            except Exception:
                log.exception("swm events listener failed")

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        backoff = 0.5
        while not self._stop.is_set():
            headers = {"Authorization": f"token {self.token}"} if self.token else {}
            try:
                with connect(
                    events_url(self.base_url, self.last_event_id),
                    additional_headers=headers,
                    open_timeout=10,
                    max_size=2**24,
                ) as ws:
                    self._ws = ws
                    self.error = None
                    if self._logs:
                        ws.send(json.dumps({"subscribe_logs": {i: dict(o) for i, o in self._logs.items()}}))
                    backoff = 0.5
                    last_tick = time.monotonic()
                    while not self._stop.is_set():
                        try:
                            raw = ws.recv(timeout=0.5)
                        except TimeoutError:
                            raw = None
                        if raw is not None:
                            try:
                                message = json.loads(raw)
                            except ValueError:
                                continue
                            resync = self._track(message)
                            self._dispatch(message)
                            if resync:
                                backoff = 0.0
                                break
                        if time.monotonic() - last_tick >= TICK_SECONDS:
                            last_tick = time.monotonic()
                            self._dispatch({"type": "tick", "time": time.time()})
            except ConnectionClosed:
                pass
            except Exception as exc:  # refused, DNS, handshake: keep trying with backoff
                self.error = f"{type(exc).__name__}: {exc}"
                log.debug("events: %s", self.error)
            finally:
                self._ws = None
                self.connected.clear()
            if self._stop.wait(backoff):
                break
            backoff = min(max(backoff * 2, 0.5), 10.0)
