"""Stopping background tasks without swallowing a cancellation meant for the caller.

``task.cancel(); with suppress(CancelledError): await task`` is the usual idiom and a trap: if the
*caller* is cancelled while it waits, that cancellation is swallowed too and the caller goes on as
if nothing happened. :func:`stop_task` waits with :func:`asyncio.wait`, which never raises the
child's cancellation but does raise the caller's own.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def stop_task(task: asyncio.Future[Any] | None) -> BaseException | None:
    """Cancel ``task`` and wait until it has ended; return the exception it ended with, if any.

    The task's own :class:`asyncio.CancelledError` (the expected end) is not raised nor returned;
    a cancellation of the *calling* task while it waits is raised (never swallowed). Safe with
    None and with a task that already ended.
    """
    if task is None:
        return None
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    if task.cancelled():
        return None
    return task.exception()
