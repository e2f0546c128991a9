"""Python client of the swm REST API and events websocket: ``Client``, ``AsyncClient`` and ``Job`` handles.

From a kernel started by the Jupyter server, ``Client()`` finds that server with no configuration;
``SWM_URL`` and ``SWM_TOKEN`` override. Every failure raises :class:`SwmError` (server errors with the
server's message); :class:`ServerNotFound`, :class:`JobNotFoundError` and :class:`ConflictError` are its kinds.

The names are imported on first use, so the ``swm`` command line (which needs only the HTTP layer,
:mod:`swm_jupyter.client.connection`) starts without loading the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import AsyncClient, AsyncJob, Client, Job, JobList, SiteList, build_spec
    from .discovery import find_server
    from .errors import ConflictError, JobNotFoundError, ServerNotFound, SwmError
    from .events import EventStream

#: Where each public name lives.
_HOMES = {
    "AsyncClient": "api",
    "AsyncJob": "api",
    "Client": "api",
    "Job": "api",
    "JobList": "api",
    "SiteList": "api",
    "build_spec": "api",
    "find_server": "discovery",
    "ConflictError": "errors",
    "JobNotFoundError": "errors",
    "ServerNotFound": "errors",
    "SwmError": "errors",
    "EventStream": "events",
}

__all__ = [
    "AsyncClient",
    "AsyncJob",
    "Client",
    "ConflictError",
    "EventStream",
    "Job",
    "JobList",
    "JobNotFoundError",
    "ServerNotFound",
    "SiteList",
    "SwmError",
    "build_spec",
    "find_server",
]


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
