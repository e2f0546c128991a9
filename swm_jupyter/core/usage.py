"""Each user's recent usage in cpu-seconds, decayed with a half-life, for fair share between users."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

from .model import Job

#: Ended jobs older than this many half-lives weigh less than 0.1 %: they are not read at start.
HALF_LIVES_KEPT = 10


class UsageSource(Protocol):
    """Where past usage is read from at start (the job store)."""

    def usage_since(self, since: float) -> list[tuple[str, int, float, float]]:
        """(owner, cpus, start_time, end_time) of every job that ran and ended at or after ``since``."""
        ...


class UsageLedger:
    """Decayed cpu-seconds per owner: a job's ``cpus x (end - start)`` counts in full when it ends and
    half as much every ``half_life`` seconds after. Kept as one number per owner, updated as jobs end.
    """

    def __init__(self, half_life: float) -> None:
        self.half_life = half_life
        self._used: dict[str, tuple[float, float]] = {}  # owner -> (decayed cpu-seconds, as of)

    def load(self, source: UsageSource, now: float) -> None:
        """Start from the jobs of ``source`` that ended in the last :data:`HALF_LIVES_KEPT` half-lives."""
        self._used.clear()
        for owner, cpus, start, end in source.usage_since(now - HALF_LIVES_KEPT * self.half_life):
            self.add(owner, cpus * max(0.0, end - start), min(end, now))

    def add(self, owner: str, cpu_seconds: float, at: float) -> None:
        """Count ``cpu_seconds`` used by ``owner``, ending at time ``at``."""
        value, as_of = self._used.get(owner, (0.0, at))
        if at >= as_of:
            self._used[owner] = (self._decay(value, at - as_of) + cpu_seconds, at)
        else:
            self._used[owner] = (value + self._decay(cpu_seconds, as_of - at), as_of)

    def now(self, now: float, active: Iterable[Job]) -> dict[str, float]:
        """Each owner's usage at ``now``: ended jobs decayed, plus what ``active`` jobs used so far."""
        out = {owner: self._decay(value, max(0.0, now - as_of)) for owner, (value, as_of) in self._used.items()}
        for job in active:
            if job.start_time and not job.is_array_parent:
                used = job.spec.resources.cpus * max(0.0, now - job.start_time)
                out[job.owner] = out.get(job.owner, 0.0) + used
        return out

    def _decay(self, value: float, seconds: float) -> float:
        return value * math.pow(0.5, seconds / self.half_life)
