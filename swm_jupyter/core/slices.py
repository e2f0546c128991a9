"""Work in slices: a request whose work grows with its size gives way to other requests as it goes.

The manager runs on the server's event loop, so a loop over 100,000 array tasks done in one go
stalls every other request for seconds. Such loops work for at most :data:`SLICE_SECONDS` at a
time, then pause for :data:`PAUSE_SECONDS`, in which the loop serves whatever else is waiting (a
short real sleep, not ``sleep(0)``: answering one HTTP request takes several loop turns).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

#: The most a slice works before it lets other requests run, in seconds.
SLICE_SECONDS = 0.015
#: How long a slice lets other requests run before the work goes on, in seconds.
PAUSE_SECONDS = 0.003
#: Bounds of the number of items in one batch (one store transaction, say).
MIN_BATCH = 50
MAX_BATCH = 2000

T = TypeVar("T")


class Pacer:
    """Paces one long piece of work on the event loop.

    ``await pacer.pause()`` between items yields once the slice's time is up; :meth:`batches`
    cuts a sequence into batches whose size follows the time the previous batches took, so that
    one batch (which cannot be interrupted: a transaction) takes about :data:`SLICE_SECONDS`.
    """

    def __init__(self, first_batch: int = 500) -> None:
        self._started = time.monotonic()
        self._size = first_batch

    def due(self, share: float = 1.0) -> bool:
        """True once the current slice has worked ``share`` of :data:`SLICE_SECONDS`."""
        return time.monotonic() - self._started >= SLICE_SECONDS * share

    async def pause(self) -> None:
        """Let other requests run if the current slice has worked its share."""
        if self.due():
            await self.rest()

    async def rest(self) -> None:
        """Let other requests run now, then start a new slice."""
        await asyncio.sleep(PAUSE_SECONDS)
        self._started = time.monotonic()

    def next_size(self, done: int, seconds: float) -> int:
        """The size of the next batch, given that the last one did ``done`` items in ``seconds``."""
        if done and seconds > 0:  # grows at most twofold at a time: one quick batch may be luck
            self._size = min(int(SLICE_SECONDS * done / seconds), 2 * self._size)
        self._size = max(MIN_BATCH, min(MAX_BATCH, self._size))
        return self._size

    async def each_batch(self, items: Sequence[T]) -> AsyncIterator[Sequence[T]]:
        """Yield ``items`` in batches sized by :meth:`next_size` (from the time the caller took
        over each batch), letting other requests run between batches."""
        at = 0
        while at < len(items):
            size = self.next_size(0, 0)
            started = time.monotonic()
            yield items[at : at + size]
            self.next_size(min(size, len(items) - at), time.monotonic() - started)
            at += size
            if at < len(items):
                await self.rest()
