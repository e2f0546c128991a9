"""Stopping background tasks without swallowing a cancellation meant for the caller.

``task.cancel(); with suppress(CancelledError): await task`` is the usual idiom and a trap: if the
*caller* is cancelled while it waits, that cancellation is swallowed too and the caller goes on as
if nothing happened. :func:`stop_task` waits with :func:`asyncio.wait`, which never raises the
child's cancellation but does raise the caller's own.
"""

from __future__ import annotations

import asyncio
import sys
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


def being_cancelled() -> bool:
    """True when the running task has a cancellation pending (it is being stopped).

    Tells a :class:`asyncio.CancelledError` meant for this task (re-raise it) from one that only
    came out of something it awaited (a library's own cancelled operation). On Python 3.10, which
    cannot tell, every cancellation counts as this task's.
    """
    task = asyncio.current_task()
    if task is None:
        return False
    if sys.version_info < (3, 11):  # pragma: no cover - Task.cancelling() is new in 3.11
        return True
    return task.cancelling() > 0
