"""The swm REST and websocket API under ``/swm/api/v1/`` (handlers registered by ``SwmApp``)."""

from __future__ import annotations

from typing import Any

from .base import API_PREFIX
from .events import EventsWebSocket
from .jobs import (
    ACTIONS,
    BulkActionHandler,
    FileHandler,
    FilesHandler,
    JobActionHandler,
    JobHandler,
    JobsHandler,
    LogHandler,
)
from .schedules import schedule_handlers
from .sites import NotFoundHandler, OpenAPIHandler, SiteHandler, SitesHandler

_ID = r"(?P<job_id>(?!actions(?:/|$))[^/]+)"  # "actions" is the bulk route, never a job id
_ACTION = "(?P<action>" + "|".join(ACTIONS) + ")"

#: (pattern, handler) pairs, relative to the server's base URL; order matters (first match wins).
default_handlers: list[tuple[str, Any]] = [
    (rf"{API_PREFIX}/jobs/?", JobsHandler),
    (rf"{API_PREFIX}/jobs/actions/{_ACTION}", BulkActionHandler),
    (rf"{API_PREFIX}/jobs/{_ID}/?", JobHandler),
    (rf"{API_PREFIX}/jobs/{_ID}/{_ACTION}", JobActionHandler),
    (rf"{API_PREFIX}/jobs/{_ID}/log", LogHandler),
    (rf"{API_PREFIX}/jobs/{_ID}/files/?", FilesHandler),
    (rf"{API_PREFIX}/jobs/{_ID}/files/(?P<path>.+)", FileHandler),
    *schedule_handlers,
    (rf"{API_PREFIX}/sites/?", SitesHandler),
    (rf"{API_PREFIX}/sites/(?P<name>[^/]+)/?", SiteHandler),
    (rf"{API_PREFIX}/openapi\.(?P<ext>json|yaml)", OpenAPIHandler),
    (rf"{API_PREFIX}/events", EventsWebSocket),
    (rf"{API_PREFIX}/(?P<path>.*)", NotFoundHandler),
]

__all__ = ["API_PREFIX", "EventsWebSocket", "default_handlers"]
