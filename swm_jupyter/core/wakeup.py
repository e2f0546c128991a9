"""A flag that a loop sleeps on: what the manager's engine and site loops wait for between passes."""

from __future__ import annotations

import asyncio


class Wakeup:
    """Like an :class:`asyncio.Event` waited on with :func:`asyncio.wait_for`, for one sleeper.

    :meth:`sleep` returns as soon as :meth:`set` is called, or after its timeout. It makes one
    future and one timer, where ``wait_for`` makes a task as well: the loops sleep hundreds of
    times a second while jobs stream through, so that task showed in the manager's CPU per job.
    """

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Wake the sleeper (or make its next :meth:`sleep` return at once)."""
        self._is_set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def is_set(self) -> bool:
        """True between :meth:`set` and :meth:`clear`."""
        return self._is_set

    def clear(self) -> None:
        """Forget a :meth:`set` that was already acted on."""
        self._is_set = False

    async def sleep(self, timeout: float) -> None:
        """Return when set (at once if it is), or after ``timeout`` seconds."""
        if self._is_set:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
