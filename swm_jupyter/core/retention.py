"""Retention: old events and old final jobs are deleted in the background, in batches.

A mixin of :class:`~swm_jupyter.core.manager.WorkloadManager`. Every ``retention_interval``
seconds the manager keeps the newest ``event_retention`` events, and (with ``job_retention_days``)
deletes final jobs that ended longer ago than that: their rows, their events and their job
folders. Every deletion is published as a ``job_deleted`` event (:meth:`JobRetention.delete_jobs`),
so that clients drop the job. A job that a live job depends on is kept, and so is a job the manager still holds in
memory; an array goes with all its tasks, once all of them have ended. Work is done in batches with
a pause for the event loop between them, so a large backlog never blocks the server.

:meth:`JobRetention.purge` deletes one final job (``DELETE /jobs/{id}?purge=1``, ``swm rm``) the
same way, at once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import InvalidTransition, StoreFull

if TYPE_CHECKING:
    from .model import Job
    from .store import JobStore

#: Most events, or jobs, deleted in one transaction.
EVENT_BATCH = 10_000
JOB_BATCH = 200


class JobRetention:
    """The retention part of the manager (see the module docstring)."""

    # Provided by the manager.
    event_retention: int
    job_retention_days: float
    retention_interval: float
    jobs: dict[str, Job]
    log: Any
    _running: bool

    _building: set[str]

    def _require_store(self) -> JobStore:  # pragma: no cover - the manager's
        raise NotImplementedError

    def get(self, job_id: str) -> Job:  # pragma: no cover - the manager's
        raise NotImplementedError

    def _flush(self, *, retry_now: bool = False) -> bool:  # pragma: no cover - the manager's
        raise NotImplementedError

    def _publish(self, events: list[dict[str, Any]]) -> None:  # pragma: no cover - the manager's
        raise NotImplementedError

    async def _retention_loop(self) -> None:
        """Apply retention every ``retention_interval`` seconds while the manager runs."""
        while self._running:
            try:
                await self.apply_retention()
            except asyncio.CancelledError:
                raise
            except StoreFull as exc:
                self.log.warning("swm: retention skipped: %s", exc.message)
            except Exception:
                self.log.exception("swm: retention pass failed")
            await asyncio.sleep(self.retention_interval)

    async def apply_retention(self) -> tuple[int, int]:
        """Delete events beyond ``event_retention`` and jobs past ``job_retention_days``, in batches.

        Returns ``(events deleted, jobs deleted)`` (array tasks count as jobs).
        """
        jobs = await self._prune_jobs() if self.job_retention_days > 0 else 0
        events = 0
        if self.event_retention > 0:
            while self._running:
                deleted = self._require_store().prune_events(self.event_retention, EVENT_BATCH)
                events += deleted
                if deleted < EVENT_BATCH:
                    break
                await asyncio.sleep(0)
        if events or jobs:
            self.log.info("swm: retention deleted %d old events and %d old jobs", events, jobs)
        return events, jobs

    async def _prune_jobs(self) -> int:
        ended_before = time.time() - self.job_retention_days * 86400
        deleted = 0
        skipped: set[str] = set()
        while self._running:
            store = self._require_store()
            needed = self._jobs_depended_on()
            batch = [
                (job_id, folder)
                for job_id, folder in store.expired_jobs(ended_before, JOB_BATCH + len(skipped))
                if job_id not in skipped
            ]
            keep = {job_id for job_id, _ in batch if job_id in needed or job_id in self.jobs}
            skipped |= keep
            batch = [(job_id, folder) for job_id, folder in batch if job_id not in keep][:JOB_BATCH]
            if not batch:
                return deleted
            # Folders first: if the server stops in between, the next pass deletes the rows.
            await asyncio.to_thread(_remove_folders, batch)
            deleted += self.delete_jobs(job_id for job_id, _ in batch)
            await asyncio.sleep(0)
        return deleted

    async def purge(self, job_id: str) -> int:
        """Delete a final job's record, events and folder (an array: with all its tasks); return how many
        jobs were deleted.

        Raises :class:`JobNotFound` (404), or :class:`InvalidTransition` (409, nothing deleted) for a job
        that has not ended, has a wish pending, is an array's task (delete the array), or that a live
        job depends on.
        """
        self._flush(retry_now=True)  # a job that has just ended leaves memory once it is stored
        job = self.get(job_id)
        store = self._require_store()
        reason = ""
        if not job.state.final or job.id in self._building:
            reason = f"job {job.id} is {job.state.value}; only a job that has ended can be deleted (cancel it first)"
        elif job.wanted or job.id in self.jobs:
            reason = f"job {job.id} is still being wound up on its site; try again in a moment"
        elif job.array_parent:
            reason = f"job {job.id} is a task of array {job.array_parent}; delete the whole array"
        elif job.is_array_parent and store.busy_tasks(job.id):
            reason = f"array {job.id} still has tasks that have not ended; cancel it first"
        elif job.id in self._jobs_depended_on():
            reason = f"job {job.id} is a dependency of a job that has not ended"
        if reason:
            raise InvalidTransition(reason, [{"field": "state", "message": reason}])
        await asyncio.to_thread(_remove_folders, [(job.id, job.folder)])
        return self.delete_jobs([job.id])

    def delete_jobs(self, job_ids: Iterable[str]) -> int:
        """Delete the records of these jobs (an array: with its tasks) and their events, and publish a
        ``job_deleted`` event for each, in the same ordered and replayable sequence as job events.
        Returns how many jobs were deleted. Folders are the caller's (delete them first).
        """
        count, events = self._require_store().delete_jobs(job_ids)
        self._publish(events)
        return count

    def _jobs_depended_on(self) -> set[str]:
        """Ids of the jobs that a live job (one the manager holds) depends on."""
        return {dep.job_id for job in self.jobs.values() for dep in job.spec.depends_on}


def _remove_folders(jobs: list[tuple[str, str]]) -> None:
    """Delete the job folders of ``(id, folder)`` pairs; only a folder named after its job is touched."""
    for job_id, folder in jobs:
        if folder and os.path.isabs(folder) and os.path.basename(os.path.normpath(folder)) == job_id:
            shutil.rmtree(folder, ignore_errors=True)
