"""Python functions as swm jobs: :class:`Executor` (a ``concurrent.futures.Executor``) and its :class:`Future`."""

from __future__ import annotations

from .executor import DEFAULT_MAX_RESULT_BYTES, KNOWN_OPTIONS, Executor
from .future import Future, JobFailed
from .serialization import RemoteTraceback, ResultTooLarge, VersionMismatch

__all__ = [
    "DEFAULT_MAX_RESULT_BYTES",
    "KNOWN_OPTIONS",
    "Executor",
    "Future",
    "JobFailed",
    "RemoteTraceback",
    "ResultTooLarge",
    "VersionMismatch",
]
