"""Array bookkeeping of the :class:`~swm_jupyter.core.manager.WorkloadManager`.

An array's parent shows the state aggregated from its tasks. The manager keeps per-array counts of
tasks by state (loaded from the store once, then kept in step with every task's state change) so
that a parent's state is recomputed from counts, never by reading all of its tasks.
"""

from __future__ import annotations

import time

from .errors import InvalidTransition, JobNotFound
from .manager_part import ManagerPart
from .model import Job
from .scheduler import aggregate_array_state
from .slices import Pacer
from .states import HistoryEntry, JobState, check_transition


class ArrayTracking(ManagerPart):
    """Mixin of the manager: task counts per array, and parents that follow their tasks."""

    def _with_tasks(self, job: Job) -> list[Job]:
        """``[job]``, or for an array's parent: the parent, then all of its tasks (by index)."""
        if not job.is_array_parent:
            return [job]
        self._load_array_counts(job.id)
        store = self._require_store()
        ids = store.array_task_ids(job.id)
        return [job, *self._tasks_by_id(ids, store.get_many([i for i in ids if i not in self.jobs]))]

    async def _array_tasks_paced(self, parent: Job, pacer: Pacer, *, live_only: bool) -> list[Job]:
        """The tasks of array ``parent`` (``live_only``: those not in a final state), letting other
        requests run while they are gathered.

        Live tasks are in memory: they are found there (checked against the array's counts); ended
        ones are read from the store in batches.
        """
        counts = self._load_array_counts(parent.id)
        if live_only:
            found: list[Job] = []
            jobs = list(self.jobs.values())
            for at in range(0, len(jobs), 20_000):
                found.extend(j for j in jobs[at : at + 20_000] if j.array_parent == parent.id and not j.state.final)
                await pacer.pause()
            if len(found) == sum(n for state, n in counts.items() if not state.final):
                return found
        store = self._require_store()
        ids = store.array_task_ids(parent.id, live_only=live_only)
        missing = [i for i in ids if i not in self.jobs]
        loaded: list[Job] = []
        async for batch in pacer.each_batch(missing):
            loaded.extend(store.get_many(list(batch)))
        return self._tasks_by_id(ids, loaded)

    def _tasks_by_id(self, ids: list[str], loaded: list[Job]) -> list[Job]:
        """The tasks with these ids, in this order: the one in memory if there is one, else the one loaded."""
        from_store = {task.id: task for task in loaded}
        tasks = []
        for task_id in ids:
            task = self.jobs.get(task_id) or from_store.get(task_id)
            if task is not None:
                tasks.append(task)
        return tasks

    def _refresh_parent(self, job: Job) -> None:
        """Note that an array's parent must show its tasks' new states (done in :meth:`_flush`)."""
        parent_id = job.id if job.is_array_parent else job.array_parent
        if parent_id:
            self._dirty_parents.add(parent_id)

    def _count_task(self, job: Job, old: JobState | None) -> None:
        counts = self._array_counts.get(job.array_parent or "")
        if counts is None:
            return
        if old is not None:
            counts[old] = counts.get(old, 0) - 1
        counts[job.state] = counts.get(job.state, 0) + 1
        if job.exit_code is not None:
            worst = self._array_worst.get(job.array_parent or "")
            if worst is None or abs(job.exit_code) > abs(worst):
                self._array_worst[job.array_parent or ""] = job.exit_code
        self._dirty_parents.add(job.array_parent or "")

    def _load_array_counts(self, parent_id: str) -> dict[JobState, int]:
        counts = self._array_counts.get(parent_id)
        if counts is None:
            store = self._require_store()
            rows = store.db.execute(
                "SELECT state, COUNT(*) FROM jobs WHERE array_parent=? GROUP BY state", (parent_id,)
            ).fetchall()
            counts = {JobState(state): n for state, n in rows}
            row = store.db.execute(
                "SELECT exit_code FROM jobs WHERE array_parent=? AND exit_code IS NOT NULL "
                "ORDER BY ABS(exit_code) DESC LIMIT 1",
                (parent_id,),
            ).fetchone()
            if row is not None:
                self._array_worst[parent_id] = row[0]
            self._array_counts[parent_id] = counts
        return counts

    def _update_parents(self) -> None:
        """Give each array parent whose tasks changed the state aggregated from its tasks."""
        while self._dirty_parents:
            parent_id = self._dirty_parents.pop()
            parent = self.jobs.get(parent_id)
            if parent is None:
                try:
                    parent = self._require_store().get(parent_id)
                except JobNotFound:
                    continue
            counts = self._load_array_counts(parent_id)
            state, details = aggregate_array_state(counts)
            if state is parent.state and details == parent.state_details:
                continue
            if state is not parent.state:
                try:
                    check_transition(parent.state, state)
                except InvalidTransition:
                    parent.history.append(HistoryEntry(time.time(), JobState.QUEUED, "array restarted"))
                    parent.state = JobState.QUEUED
            if state.final:
                parent.exit_code = self._array_worst.get(parent_id)
                parent.end_time = time.time()
            elif state is JobState.RUNNING and parent.start_time is None:
                parent.start_time = time.time()
            self._set_state(parent, state, details)
            if not state.final:
                self.jobs[parent.id] = parent
                self._index(parent)
