"""Python client of the swm REST API and events websocket: ``Client``, ``AsyncClient`` and ``Job`` handles.

From a kernel started by the Jupyter server, ``Client()`` finds that server with no configuration;
``SWM_URL`` and ``SWM_TOKEN`` override. Server errors raise :class:`SwmError` with the server's message.
"""

from __future__ import annotations

from .api import (
    AsyncClient,
    AsyncJob,
    Client,
    ConflictError,
    Job,
    JobList,
    JobNotFoundError,
    SiteList,
    SwmError,
    build_spec,
    find_server,
)
from .events import EventStream

__all__ = [
    "AsyncClient",
    "AsyncJob",
    "Client",
    "ConflictError",
    "EventStream",
    "Job",
    "JobList",
    "JobNotFoundError",
    "SiteList",
    "SwmError",
    "build_spec",
    "find_server",
]
