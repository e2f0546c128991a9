"""Live log tails shared by their subscribers: one reader per job follows its stdout and stderr.

However many clients follow a job's output (sidebars, widgets, ``swm logs -f``), one task polls it
every :data:`LOG_INTERVAL` seconds and hands each new chunk to every subscriber. A subscriber may
start from any offset: one behind the reader is first brought up to it (by the same task, so the
order of its bytes holds), one ahead of it is given only the bytes past its offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from .errors import SwmError

#: Seconds between reads of a followed job's output.
LOG_INTERVAL = 0.25
#: Most bytes read at once.
LOG_CHUNK = 1 << 20
STREAMS = ("stdout", "stderr")

log = logging.getLogger("swm_jupyter.log_tail")


class LogSubscriber(Protocol):
    """What a log tail tells one subscriber (called on the event loop; must not block)."""

    def on_data(self, job_id: str, stream: str, end: int, data: bytes) -> None:
        """New bytes of ``stream``; ``end`` is the offset just after them."""

    def on_end(self, job_id: str, offsets: dict[str, int]) -> None:
        """The job ended and everything up to ``offsets`` was given."""

    def on_error(self, job_id: str, message: str) -> None:
        """The output cannot be read; the subscription ends."""


class _Follower:
    """The subscribers of one job's output and the position each has reached."""

    def __init__(self) -> None:
        self.read_to = dict.fromkeys(STREAMS, 0)
        self.subscribers: dict[LogSubscriber, dict[str, int]] = {}
        self.task: asyncio.Task[None] | None = None


class LogTails:
    """The shared log readers of one manager (see the module docstring)."""

    def __init__(
        self,
        read_output: Callable[[str, str, int, int], Awaitable[bytes]],
        is_final: Callable[[str], bool],
        interval: float = LOG_INTERVAL,
    ) -> None:
        """``read_output(job_id, stream, offset, limit)`` reads output; ``is_final(job_id)`` says if it ended."""
        self._read_output = read_output
        self._is_final = is_final
        self.interval = interval
        self._followers: dict[str, _Follower] = {}
        #: How many reads of job output were made (all jobs, all subscribers): what sharing saves.
        self.reads = 0

    def readers(self) -> dict[str, int]:
        """Job ids being followed, each with its number of subscribers (one reader each)."""
        return {job_id: len(f.subscribers) for job_id, f in self._followers.items()}

    def subscribe(self, job_id: str, subscriber: LogSubscriber, offsets: dict[str, int]) -> None:
        """Give ``subscriber`` the job's output from ``offsets`` on (again from there if already subscribed)."""
        follower = self._followers.get(job_id)
        if follower is None:
            follower = self._followers[job_id] = _Follower()
            follower.read_to = {s: offsets.get(s, 0) for s in STREAMS}
        follower.subscribers[subscriber] = {s: offsets.get(s, 0) for s in STREAMS}
        if follower.task is None:
            follower.task = asyncio.create_task(self._follow(job_id, follower), name=f"swm-log-{job_id}")

    def unsubscribe(self, job_id: str, subscriber: LogSubscriber) -> None:
        """Stop giving the job's output to ``subscriber``; the reader stops with its last subscriber."""
        follower = self._followers.get(job_id)
        if follower is None or follower.subscribers.pop(subscriber, None) is None:
            return
        if not follower.subscribers:
            self._stop(job_id, follower)

    def stop(self) -> None:
        """Stop every reader (the manager stops)."""
        for job_id, follower in list(self._followers.items()):
            self._stop(job_id, follower)

    def _stop(self, job_id: str, follower: _Follower) -> None:
        if self._followers.get(job_id) is follower:
            del self._followers[job_id]
        if follower.task is not None and follower.task is not asyncio.current_task():
            follower.task.cancel()

    async def _read(self, job_id: str, stream: str, offset: int) -> bytes:
        self.reads += 1
        return await self._read_output(job_id, stream, offset, LOG_CHUNK)

    async def _follow(self, job_id: str, follower: _Follower) -> None:
        """Read new output until the job has ended and all of it was given out."""
        try:
            while follower.subscribers:
                final = self._is_final(job_id)
                for stream in STREAMS:
                    await self._catch_up(job_id, follower, stream)
                    while True:
                        start = follower.read_to[stream]
                        data = await self._read(job_id, stream, start)
                        if not data:
                            break
                        follower.read_to[stream] = start + len(data)
                        self._give(job_id, follower, stream, start, data)
                        if len(data) < LOG_CHUNK:
                            break
                if final:
                    for subscriber in list(follower.subscribers):
                        subscriber.on_end(job_id, dict(follower.subscribers[subscriber]))
                    return
                await asyncio.sleep(self.interval)
        except asyncio.CancelledError:
            raise
        except SwmError as exc:
            self._fail(follower, job_id, exc.message)
        except Exception:
            log.exception("swm: log tail of job %s failed", job_id)
            self._fail(follower, job_id, "reading the job's output failed")
        finally:
            self._stop(job_id, follower)

    async def _catch_up(self, job_id: str, follower: _Follower, stream: str) -> None:
        """Bring subscribers that joined behind the reader up to it, each from its own offset."""
        for subscriber, at in list(follower.subscribers.items()):
            while at[stream] < follower.read_to[stream] and follower.subscribers.get(subscriber) is at:
                data = await self._read(job_id, stream, at[stream])
                if not data:
                    break
                data = data[: follower.read_to[stream] - at[stream]]
                at[stream] += len(data)
                subscriber.on_data(job_id, stream, at[stream], data)

    @staticmethod
    def _give(job_id: str, follower: _Follower, stream: str, start: int, data: bytes) -> None:
        """Hand the bytes at ``start`` to every subscriber, without what each already has."""
        end = start + len(data)
        for subscriber, at in list(follower.subscribers.items()):
            if at[stream] >= end or at[stream] < start:
                continue  # has it already, or joined during the read: caught up from its own offset next
            part = data[max(0, at[stream] - start) :]
            at[stream] = end
            subscriber.on_data(job_id, stream, end, part)

    @staticmethod
    def _fail(follower: _Follower, job_id: str, message: str) -> None:
        for subscriber in list(follower.subscribers):
            subscriber.on_error(job_id, message)
