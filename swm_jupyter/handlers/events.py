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
from ..core.log_tail import STREAMS
from ..core.manager import WorkloadManager
from .access import may_see, visible_job, visible_owner
from .base import AUTH_RESOURCE, error_reply, public_event, request_owner

REPLAY_BATCH = 10_000
#: The most job logs one socket follows at once.
MAX_TAILS = 100
#: Largest log offset accepted (as the REST log endpoint's).
MAX_LOG_OFFSET = 1 << 40
#: Most queued events sent before waiting for the client to take them.
PUMP_BATCH = 500
#: Close code after a ``resync`` message (1013: try again later).
RESYNC_CLOSE_CODE = 1013
USAGE = 'send {"subscribe_logs": [job ids] or {job id: offset}} or {"unsubscribe_logs": [job ids]}'


def parse_log_request(message: str | bytes) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Read a client message: ``({job id: {"stdout": n, "stderr": n}}, [job ids to unsubscribe])``.

    Raises ``ValueError`` with a message saying what to send, for anything else (not JSON, too
    deeply nested, ids that are not strings, offsets that are not whole numbers in range...).
    """
    try:
        data = json.loads(message)
    except RecursionError:
        raise ValueError("the message is nested too deeply") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ValueError(f"the message is not JSON: {exc}") from None
    if not isinstance(data, dict) or not set(data) & {"subscribe_logs", "unsubscribe_logs"} or set(data) - {
        "subscribe_logs",
        "unsubscribe_logs",
    }:
        raise ValueError(USAGE)
    raw_subscribe = data.get("subscribe_logs") or {}
    raw_unsubscribe = data.get("unsubscribe_logs") or []
    if isinstance(raw_subscribe, list):
        if not all(_is_job_id(i) for i in raw_subscribe):
            raise ValueError("subscribe_logs takes job ids (non-empty strings)")
        raw_subscribe = {job_id: 0 for job_id in raw_subscribe}
    if not isinstance(raw_subscribe, dict) or not isinstance(raw_unsubscribe, list):
        raise ValueError("subscribe_logs takes a list of job ids or {id: offset}; unsubscribe_logs a list of job ids")
    if not all(_is_job_id(i) for i in raw_unsubscribe):
        raise ValueError("unsubscribe_logs takes job ids (non-empty strings)")
    if len(raw_subscribe) > MAX_TAILS:
        raise ValueError(f"at most {MAX_TAILS} logs are followed at once per socket")
    subscribe: dict[str, dict[str, int]] = {}
    for job_id, offset in raw_subscribe.items():
        if not _is_job_id(job_id):
            raise ValueError("subscribe_logs takes job ids (non-empty strings)")
        offsets = offset if isinstance(offset, dict) else {"stdout": offset, "stderr": 0}
        if set(offsets) - {"stdout", "stderr"} or not all(_is_offset(v) for v in offsets.values()):
            raise ValueError(
                f'an offset is a whole number from 0 to {MAX_LOG_OFFSET} or {{"stdout": n, "stderr": n}} (job {job_id})'
            )
        subscribe[job_id] = {"stdout": offsets.get("stdout", 0), "stderr": offsets.get("stderr", 0)}
    return subscribe, [str(i) for i in raw_unsubscribe]


def _is_job_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_LOG_OFFSET


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
        #: Followed job logs (through the manager's shared readers), each with its UTF-8 decoders.
        self.tails: dict[str, dict[str, codecs.IncrementalDecoder]] = {}
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
        self.queue = manager.subscribe(self._overflowed)
        newest = manager.last_event_id()
        all_owners = visible_owner(self.current_user) is None
        self.send({"type": "hello", "last_event_id": newest, "owner": request_owner(self), "all_owners": all_owners})
        if self.after is not None and self.after > newest:
            self.send(
                {
                    "type": "error",
                    "message": f"last_event_id {self.after} is newer than the newest event ({newest}): "
                    "nothing to replay; events from now on follow",
                }
            )
            self.after = None
        first = manager.first_event_id()
        if self.after is not None and first and self.after + 1 < first:
            self.send(
                {
                    "type": "reload",
                    "last_event_id": newest,
                    "message": f"events {self.after + 1} to {first - 1} were deleted (event_retention): "
                    "load the job list again; the events still kept follow",
                }
            )
        if self.after is None:
            self.sent_id = newest
        else:
            self.sent_id = self.after
            while True:
                events = manager.events_after(self.sent_id)
                for event in events:
                    if self.may_see_event(event):
                        self.send(public_event(event))
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
        """True if this socket's user may see the event (events of others' jobs and schedules are not sent)."""
        job = event.get("job")
        if isinstance(job, dict) and not may_see(self.current_user, job):
            return False
        schedule = event.get("schedule")
        return not isinstance(schedule, dict) or may_see(self.current_user, schedule)

    async def _pump(self) -> None:
        """Send queued events, then wait until they are written before taking more: a client that
        stops reading makes the queue fill, and the manager then calls :meth:`_overflowed` (memory
        stays bounded). Whatever is queued is sent together, so bursts cost one wait.
        """
        assert self.queue is not None
        queue = self.queue
        while True:
            events = [await queue.get()]
            while not queue.empty() and len(events) < PUMP_BATCH:
                events.append(queue.get_nowait())
            writes = []
            for event in events:
                event_id = event.get("id")
                if event_id is not None:
                    if event_id <= self.sent_id:
                        continue
                    self.sent_id = event_id
                if self.may_see_event(event):
                    try:
                        writes.append(self.write_message(json.dumps(public_event(event))))
                    except WebSocketClosedError:
                        return
            if writes and any(await asyncio.gather(*writes, return_exceptions=True)):
                return  # closed (each write returns None, or the error)

    def _overflowed(self) -> None:
        """The manager dropped this client's queue (it fell too far behind): resync it."""
        if self.pump is not None:
            self.pump.cancel()
        self.queue = None
        self.pump = asyncio.create_task(self._resync())

    async def _resync(self) -> None:
        """Tell the client where it is, wait until it has read that far, then close.

        Every event up to ``last_event_id`` is already on its way to the client (or was not for its
        eyes); it reconnects with that id (or its own last one) and the store replays the rest. A
        client that never reads again is closed by the websocket pings' timeout.
        """
        message = {
            "type": "resync",
            "last_event_id": self.sent_id,
            "message": "this client fell too far behind the events; reconnect with last_event_id to get the rest",
        }
        try:
            await self.write_message(json.dumps(message))
        except WebSocketClosedError:
            return
        self.close(RESYNC_CLOSE_CODE, "fell behind: reconnect with last_event_id")

    def on_message(self, message: str | bytes) -> None:
        """Handle ``{"subscribe_logs": [ids] or {id: offset}}`` and ``{"unsubscribe_logs": [ids]}``.

        A malformed message is answered with an ``error`` message; the socket stays open.
        """
        try:
            subscribe, unsubscribe = parse_log_request(message)
        except ValueError as exc:
            self.send({"type": "error", "message": str(exc)})
            return
        try:
            self._change_tails(subscribe, unsubscribe)
        except Exception:  # never drop the socket for one message
            self.log.exception("swm: events websocket message failed")
            self.send({"type": "error", "message": "the message could not be handled; the server log has details"})

    def _change_tails(self, subscribe: dict[str, dict[str, int]], unsubscribe: list[str]) -> None:
        tails = self.manager.log_tails
        for job_id in unsubscribe:
            if self.tails.pop(job_id, None) is not None:
                tails.unsubscribe(job_id, self)
        for job_id, offsets in subscribe.items():
            try:
                job = visible_job(self.current_user, self.manager.get(str(job_id)), str(job_id))
            except SwmError as exc:
                self.send({"type": "error", "job_id": job_id, "message": exc.message})
                continue
            if job.id not in self.tails and len(self.tails) >= MAX_TAILS:
                self.send(
                    {
                        "type": "error",
                        "job_id": job_id,
                        "message": f"at most {MAX_TAILS} logs are followed at once per socket; unsubscribe some first",
                    }
                )
                continue
            self.tails[job.id] = {s: codecs.getincrementaldecoder("utf-8")(errors="replace") for s in STREAMS}
            tails.subscribe(job.id, self, offsets)

    # -- what the shared log readers give (core/log_tail.LogSubscriber) ----------------------------

    def on_data(self, job_id: str, stream: str, end: int, data: bytes) -> None:
        """New output of a followed job: sent as a ``log`` message."""
        decoders = self.tails.get(job_id)
        text = decoders[stream].decode(data) if decoders is not None else ""
        if text:
            self.send({"type": "log", "job_id": job_id, "stream": stream, "offset": end, "data": text})

    def on_end(self, job_id: str, offsets: dict[str, int]) -> None:
        """The job ended and all its output was sent: ``log_end``."""
        if self.tails.pop(job_id, None) is not None:
            self.send({"type": "log_end", "job_id": job_id, "offsets": offsets})

    def on_error(self, job_id: str, message: str) -> None:
        """The job's output cannot be read: an ``error`` message; the subscription ends."""
        if self.tails.pop(job_id, None) is not None:
            self.send({"type": "error", "job_id": job_id, "message": message})

    def on_close(self) -> None:
        """Stop the pump and the tails, and give the queue back."""
        self.open_sockets.discard(self)
        if self.pump is not None:
            self.pump.cancel()
        manager = self.settings.get("swm_manager")
        for job_id in self.tails:
            if manager is not None:
                manager.log_tails.unsubscribe(job_id, self)
        self.tails.clear()
        if manager is not None and self.queue is not None:
            manager.unsubscribe(self.queue)
            self.queue = None

    @classmethod
    def close_all(cls) -> None:
        """Close every open events socket (at server stop)."""
        for socket in list(cls.open_sockets):
            socket.close(1001, "server stopping")
            socket.on_close()
