"""The events websocket: every job state change, missed events on reconnect, and live log tails.

Authentication and authorization follow jupyter_server's own websockets (kernels, events):
``@ws_authenticated`` on ``get``, then an ``is_authorized(..., "read", "swm")`` check before the
upgrade; :class:`WebSocketMixin` checks the ``Origin`` and keeps the connection alive with pings.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from typing import Any, ClassVar

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..core.errors import SiteUnavailable, SwmError, ValidationError
from ..core.manager import WorkloadManager
from .access import may_see, visible_job
from .base import AUTH_RESOURCE, error_reply

#: Seconds between reads of a subscribed job's output.
LOG_INTERVAL = 0.25
LOG_CHUNK = 1 << 20
REPLAY_BATCH = 10_000


class EventsWebSocket(WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """``GET /swm/api/v1/events`` (websocket): see docs/api.md for the messages."""

    auth_resource = AUTH_RESOURCE
    #: Open sockets, closed by the extension's stop hook.
    open_sockets: ClassVar[set[EventsWebSocket]] = set()

    def initialize(self, **kwargs: Any) -> None:
        """Per-connection state."""
        self.queue: asyncio.Queue[dict[str, Any]] | None = None
        self.sent_id = 0
        self.pump: asyncio.Task[None] | None = None
        self.tails: dict[str, asyncio.Task[None]] = {}
        self.after: int | None = None

    def set_default_headers(self) -> None:
        """No default headers for websockets (as jupyter_server's kernel websocket)."""

    def get_compression_options(self) -> dict[str, Any] | None:
        """The server's websocket compression setting."""
        return self.settings.get("websocket_compression_options", None)  # type: ignore[no-any-return]

    @property
    def manager(self) -> WorkloadManager:
        """The running manager; :class:`SiteUnavailable` if it is not running."""
        app = self.settings.get("swm_app")
        manager: WorkloadManager | None = self.settings.get("swm_manager")
        error = getattr(app, "start_error", None)
        if manager is None or error:
            raise SiteUnavailable(error or "the workload manager is not running")
        return manager

    async def pre_get(self) -> None:
        """Authorize (``read`` on ``swm``), check the manager runs and read ``last_event_id``."""
        authorized = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE))
        if not authorized:
            raise web.HTTPError(403, "User is not authorized to read on resource: swm.")
        self.manager  # noqa: B018 - raises 503 before the upgrade if the manager is down
        text = self.get_argument("last_event_id", None)
        if text not in (None, ""):
            try:
                self.after = int(text)  # type: ignore[arg-type]
                if self.after < 0:
                    raise ValueError
            except ValueError:
                raise ValidationError(
                    f"last_event_id must be a whole number >= 0 (got {text!r})",
                    [{"field": "last_event_id", "message": "the id of the last event you received"}],
                ) from None

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Authenticate, authorize, then upgrade to a websocket."""
        await self.pre_get()
        res = super().get(*args, **kwargs)
        if res is not None:
            await res

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Expected errors in one line; others with the traceback."""
        if isinstance(value, SwmError):
            self.log.info("swm: events websocket refused (%d): %s", value.status, value.message)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Refusals before the upgrade are JSON ``{"message", "errors"}`` like the REST API's."""
        status, reply = error_reply(status_code, kwargs.get("exc_info", (None, None, None))[1])
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(reply))

    # -- the connection ----------------------------------------------------------------------------

    async def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Say hello, replay what the client missed, then stream new events."""
        super().open(*args, **kwargs)
        manager = self.manager
        self.open_sockets.add(self)
        self.queue = manager.subscribe()
        newest = manager.last_event_id()
        self.send({"type": "hello", "last_event_id": newest})
        if self.after is None:
            self.sent_id = newest
        else:
            self.sent_id = self.after
            while True:
                events = manager.events_after(self.sent_id)
                for event in events:
                    if self.may_see_event(event):
                        self.send(event)
                    self.sent_id = event["id"]
                if len(events) < REPLAY_BATCH:
                    break
        self.pump = asyncio.create_task(self._pump())

    def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message; a closed socket is ignored (``on_close`` cleans up)."""
        try:
            self.write_message(json.dumps(message))
        except WebSocketClosedError:
            pass

    def may_see_event(self, event: dict[str, Any]) -> bool:
        """True if this socket's user may see the event (events of others' jobs are not sent)."""
        job = event.get("job")
        return not isinstance(job, dict) or may_see(self.current_user, job)

    async def _pump(self) -> None:
        assert self.queue is not None
        while True:
            event = await self.queue.get()
            event_id = event.get("id")
            if event_id is not None:
                if event_id <= self.sent_id:
                    continue
                self.sent_id = event_id
            if not self.may_see_event(event):
                continue
            try:
                self.write_message(json.dumps(event))
            except WebSocketClosedError:
                return

    def on_message(self, message: str | bytes) -> None:
        """Handle ``{"subscribe_logs": [ids] or {id: offset}}`` and ``{"unsubscribe_logs": [ids]}``."""
        try:
            data = json.loads(message)
            if not isinstance(data, dict) or not set(data) & {"subscribe_logs", "unsubscribe_logs"}:
                raise ValueError('send {"subscribe_logs": [job ids]} or {"unsubscribe_logs": [job ids]}')
            subscribe = data.get("subscribe_logs") or {}
            if isinstance(subscribe, list):
                subscribe = {job_id: 0 for job_id in subscribe}
            unsubscribe = data.get("unsubscribe_logs") or []
            if not isinstance(subscribe, dict) or not isinstance(unsubscribe, list):
                raise ValueError("subscribe_logs takes a list of job ids or {id: offset}; unsubscribe_logs a list")
            for offset in subscribe.values():
                if not isinstance(offset, (int, dict)) or isinstance(offset, bool):
                    raise ValueError('an offset is a whole number or {"stdout": n, "stderr": n}')
        except ValueError as exc:
            self.send({"type": "error", "message": str(exc)})
            return
        for job_id in unsubscribe:
            task = self.tails.pop(str(job_id), None)
            if task is not None:
                task.cancel()
        for job_id, offset in subscribe.items():
            offsets = offset if isinstance(offset, dict) else {"stdout": offset, "stderr": 0}
            try:
                job = visible_job(self.current_user, self.manager.get(str(job_id)), str(job_id))
            except SwmError as exc:
                self.send({"type": "error", "job_id": job_id, "message": exc.message})
                continue
            old = self.tails.pop(job.id, None)
            if old is not None:
                old.cancel()
            self.tails[job.id] = asyncio.create_task(self._tail(job.id, offsets))

    async def _tail(self, job_id: str, offsets: dict[str, Any]) -> None:
        """Send new output of one job until it has ended and everything was sent."""
        position = {s: min(max(0, int(offsets.get(s, 0) or 0)), 1 << 40) for s in ("stdout", "stderr")}
        decoders = {s: codecs.getincrementaldecoder("utf-8")(errors="replace") for s in position}
        try:
            while True:
                manager = self.manager
                final = manager.get(job_id).state.final
                for stream in position:
                    while True:
                        data = await manager.read_output(job_id, stream, position[stream], LOG_CHUNK)
                        if not data:
                            break
                        position[stream] += len(data)
                        text = decoders[stream].decode(data)
                        if text:
                            self.send(
                                {
                                    "type": "log",
                                    "job_id": job_id,
                                    "stream": stream,
                                    "offset": position[stream],
                                    "data": text,
                                }
                            )
                        if len(data) < LOG_CHUNK:
                            break
                if final:
                    self.send({"type": "log_end", "job_id": job_id, "offsets": position})
                    return
                await asyncio.sleep(LOG_INTERVAL)
        except asyncio.CancelledError:
            raise
        except SwmError as exc:
            self.send({"type": "error", "job_id": job_id, "message": exc.message})
        except Exception:
            self.log.exception("swm: log tail of job %s failed", job_id)
            self.send({"type": "error", "job_id": job_id, "message": "reading the job's output failed"})
        finally:
            if self.tails.get(job_id) is asyncio.current_task():
                self.tails.pop(job_id, None)

    def on_close(self) -> None:
        """Stop the pump and the tails, and give the queue back."""
        self.open_sockets.discard(self)
        if self.pump is not None:
            self.pump.cancel()
        for task in self.tails.values():
            task.cancel()
        self.tails.clear()
        manager = self.settings.get("swm_manager")
        if manager is not None and self.queue is not None:
            manager.unsubscribe(self.queue)
            self.queue = None

    @classmethod
    def close_all(cls) -> None:
        """Close every open events socket (at server stop)."""
        for socket in list(cls.open_sockets):
            socket.close(1001, "server stopping")
            socket.on_close()
