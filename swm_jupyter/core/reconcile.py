"""Reconciling with the sites, for the :class:`~swm_jupyter.core.manager.WorkloadManager`.

Each site has a loop that sets its gate up, adopts jobs that were being launched when a previous
server stopped, then asks the gate about all of the site's live jobs in one call per poll and folds
the answers into the jobs: running, ended (outputs collected, site resources released), canceled.
"""

from __future__ import annotations

import asyncio
import time

from .cost import cost_of
from .errors import InvalidTransition, SiteUnavailable, SwmError
from .gate_contract import GateStatus
from .job_files import job_output_exists
from .manager_part import ManagerPart
from .model import Job
from .states import ACTIONS, ACTIVE_STATES, Action, JobState


class SiteReconciliation(ManagerPart):
    """Mixin of the manager: the per-site poll loop and what the gates' answers do to jobs."""

    def _apply_status(self, job: Job, status: GateStatus) -> None:
        """Fold what the gate said into the job; final states go through :meth:`_finalize`."""
        if status.native_id:
            job.native_id = status.native_id
        if status.gate_data is not None:
            job.gate_data = status.gate_data
        if status.start_time and not job.start_time:
            job.start_time = status.start_time
        cost = status.extra.get("cost") if status.extra else None
        if isinstance(cost, dict):
            # A gate may tell the job's price (cost["price_per_hour"]) once it knows it.
            job.cost = {**job.cost, **cost}
        if job.state.final:
            return
        new = status.state
        if new.final:
            if job.state is JobState.WAITING and status.start_time:
                # It started and ended between two looks at the site: its history says it ran.
                self._set_state(job, JobState.RUNNING, "", at=status.start_time)
            gate = self.gates.get(job.site)
            if gate is not None and not gate.stages_files:
                self._complete(job, status, status.details)
            else:
                self._spawn(self._finalize(job, status))
            return
        if new is job.state and status.details == job.state_details:
            self._mark(job)
            return
        if new is JobState.RUNNING and not job.start_time:
            job.start_time = time.time()
        if job.state is JobState.HELD and new is JobState.WAITING:
            return
        try:
            self._set_state(job, new, status.details)
        except InvalidTransition:
            self.log.debug("swm: ignoring %s -> %s for job %s", job.state.value, new.value, job.id)
        if job.array_parent:
            self._refresh_parent(job)

    async def _finalize(self, job: Job, status: GateStatus) -> None:
        """Bring outputs back, release the site's resources, store the final state."""
        if job.finalizing:
            return
        job.finalizing = True
        gate = self.gates[job.site]
        details = status.details
        try:
            if job.state is not JobState.TRANSFERRING:
                self._set_state(job, JobState.TRANSFERRING, "collecting outputs")
                self._flush()
            await gate.stage_out(job)
            missing = [p for p in job.spec.output_files if not job_output_exists(job.folder, p)]
            if missing:
                details = (details + "; " if details else "") + "missing outputs: " + ", ".join(missing)
        except asyncio.CancelledError:
            job.finalizing = False
            raise
        except Exception as exc:
            details = (details + "; " if details else "") + f"collecting outputs failed: {exc}"
        try:
            await gate.release_resources(job)
        except asyncio.CancelledError:
            job.finalizing = False
            raise
        except Exception as exc:
            details = (details + "; " if details else "") + f"releasing site resources failed: {exc}"
        job.finalizing = False
        self._complete(job, status, details)

    def _complete(self, job: Job, status: GateStatus, details: str) -> None:
        """Store the final state the site reported (outputs already collected)."""
        if job.state.final:
            return
        gate = self.gates.get(job.site)
        if job.spec.output_files and gate is not None and not gate.stages_files:
            missing = [p for p in job.spec.output_files if not job_output_exists(job.folder, p)]
            if missing:
                details = (details + "; " if details else "") + "missing outputs: " + ", ".join(missing)
        job.exit_code = status.exit_code
        job.signal = status.signal
        job.start_time = job.start_time or status.start_time
        job.end_time = status.end_time or time.time()
        price = job.cost.get("price_per_hour")
        if price is not None and job.start_time:
            job.cost["actual"] = cost_of(price, job.spec.resources.nodes, job.end_time - job.start_time)
        state = status.state
        if job.wanted == "cancel":
            state, details = JobState.CANCELED, "canceled by the user"
            job.wanted = None
        self._set_state(job, state, details)
        if job.array_parent:
            self._refresh_parent(job)
        self._wake.set()

    async def _carry_out_wish(self, job: Job) -> None:
        """Carry out the user's wish in ``job.wanted`` with the site's gate (the reconciler alone acts).

        The wish is checked against :data:`~swm_jupyter.core.states.ACTIONS` again (the job may have
        moved since it was made); a site that fails is retried with backoff (the first failure is
        noted in the job's details); the outcome goes into the job's history.
        """
        backoff = 1.0
        noted = False
        while self._running and job.wanted:
            while job.id in self._launching:  # noqa: ASYNC110 - a launch ends within one gate call
                await asyncio.sleep(0.05)
            wish = Action(job.wanted)
            try:
                await self._do_wish(job, wish)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = exc.message if isinstance(exc, SwmError) else f"{type(exc).__name__}: {exc}"
                self.log.warning("swm: %s of job %s on %s failed: %s", wish.value, job.id, job.site, message)
                if not noted and not job.state.final:
                    self._set_state(job, job.state, f"{wish.value} failed, retrying: {message}")
                    noted = True
                self._flush()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)
                continue
            if job.wanted == wish.value:
                job.wanted = None
                self._mark(job)
            if job.array_parent:
                self._refresh_parent(job)
            self._flush()
            self._wake.set()

    async def _do_wish(self, job: Job, wish: Action) -> None:
        """One attempt at ``wish`` (see :meth:`_carry_out_wish`); raises what the gate raised."""
        if job.state not in ACTIONS[wish]:
            if not job.state.final or wish is not Action.CANCEL:
                self._set_state(job, job.state, f"{wish.value} not done: the job is {job.state.value} now")
            return
        if self._at_once(job, wish):
            self._do_at_once(job, wish)
            return
        gate = self.gates.get(job.site)
        if gate is None:
            raise SiteUnavailable(self.gate_errors.get(job.site) or f"no site {job.site!r} is configured")
        if wish is Action.CANCEL:
            await gate.cancel(job)
            details = "canceled by the user"
            if gate.collect_on_cancel and job.state is JobState.RUNNING and job.folder:
                self._set_state(job, JobState.TRANSFERRING, "canceled by the user; collecting outputs")
                self._flush()
                try:
                    await gate.stage_out(job)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    details += f"; collecting outputs failed: {exc}"
            await gate.release_resources(job)
            if not job.state.final:
                self._set_state(job, JobState.CANCELED, details)
                job.end_time = time.time()
        elif wish is Action.HOLD:
            if await gate.hold(job):
                job.held_on_site = True
                self._set_state(job, JobState.HELD, "held by the user (in the site's queue)")
                self._index(job)
            else:
                self._set_state(job, job.state, f"not held: {job.site} cannot hold a job waiting in its queue")
        elif wish is Action.RELEASE:
            if await gate.release(job):
                job.held_on_site = False
                self._set_state(job, JobState.WAITING, "released by the user")
            else:
                # The site still holds the job: it must not be queued here again (it would run twice).
                self._set_state(
                    job, JobState.HELD, "not released: the site refused; the job stays held there (cancel or retry)"
                )
        else:
            if job.state in ACTIVE_STATES:
                await gate.cancel(job)
            await gate.reset_run(job)
            self._reset_for_run(job)
            self._set_state(job, JobState.QUEUED, "requeued by the user")
            self.jobs[job.id] = job
            self._index(job)
            self._restart_parent(job)

    def _restart_parent(self, task: Job) -> None:
        """A task of an ended array runs again: its parent is live again, its last run forgotten."""
        if not task.array_parent:
            return
        parent = self.jobs.get(task.array_parent)
        if parent is None:
            parent = self._require_store().get(task.array_parent)
        if parent.state.final:
            self._reset_for_run(parent)
            self._set_state(parent, JobState.QUEUED, "requeued by the user")
        self.jobs[parent.id] = parent
        self._index(parent)

    async def _site_loop(self, name: str) -> None:
        """Set the gate up (retrying), adopt jobs from before a restart, then poll in batches."""
        gate = self.gates[name]
        wake = self._site_wake[name]
        backoff = 1.0
        while self._running:
            try:
                await gate.setup()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.site_health[name] = f"setup failed: {exc}"
                self.log.warning("swm: site %s is not ready: %s (retrying in %.0fs)", name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)
        self._ready_sites.add(name)
        self.site_health.pop(name, None)
        await self._adopt(name)
        for job in [j for j in self.jobs.values() if j.site == name and j.wanted]:
            self._carry_out(job)  # wishes stored before a restart
        self._wake.set()
        while self._running:
            delay = gate.next_poll_delay()
            if delay is None:
                delay = self.poll_interval
            await wake.sleep(delay)
            wake.clear()
            jobs = [j for j in self._active.values() if j.site == name and self._pollable(j)]
            jobs += [j for j in self._held_on_site.values() if j.site == name and self._pollable(j)]
            if not jobs:
                continue
            try:
                statuses = await gate.poll(jobs)
                self.site_health.pop(name, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.site_health[name] = f"status poll failed: {exc}"
                self.log.warning("swm: polling site %s failed: %s", name, exc)
                continue
            for job in jobs:
                status = statuses.get(job.id)
                if status is not None:
                    self._apply_status(job, status)
                if job.wanted and not job.state.final and job.id not in self._carrying:
                    self._carry_out(job)
            # Schedule at once: a slot that just came free is filled without another loop turn.
            self._schedule_once()
            self._wake.set()  # the engine writes what changed, batched with other sites' changes

    def _pollable(self, job: Job) -> bool:
        if job.is_array_parent or job.id in self._launching or job.finalizing:
            return False
        if job.wanted == Action.REQUEUE.value:  # its run is being stopped; its end is not the job's
            return False
        return job.state in ACTIVE_STATES or (job.state is JobState.HELD and job.held_on_site)

    async def _adopt(self, name: str) -> None:
        """After a restart: find out what became of jobs that were being launched when we stopped."""
        gate = self.gates[name]
        pending = [j for j in self.jobs.values() if j.site == name and j.launching]
        if not pending:
            return
        # An array sent whole (native arrays) is asked about with its tasks, which it names.
        tasks_of = {
            job.id: [t for t in self._with_tasks(job)[1:] if not t.native_id and not t.state.final]
            for job in pending
            if job.is_array_parent
        }
        asked = pending + [task for tasks in tasks_of.values() for task in tasks]
        backoff = 1.0
        while True:  # until the site answers: guessing "never started" could run a job twice
            try:
                statuses = await gate.poll(asked)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("swm: cannot ask %s about jobs launched before the restart: %s", name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)
        for job in pending:
            status = statuses.get(job.id)
            job.launching = False
            if status is not None and job.is_array_parent:
                self.log.info("swm: array %s had reached %s before the restart; tracking it", job.id, name)
                for task in tasks_of[job.id]:
                    if task.id in statuses:
                        self.jobs[task.id] = task
                        self._apply_status(task, statuses[task.id])
                self._refresh_parent(job)
            elif status is not None:
                self.log.info("swm: job %s had reached %s before the restart; tracking it", job.id, name)
                self._apply_status(job, status)
            elif job.is_array_parent:
                self._set_state(job, JobState.QUEUED, "the server restarted before the array reached the site")
                for task in self._with_tasks(job)[1:]:
                    if task.state is JobState.WAITING and not task.native_id:
                        self._set_state(task, JobState.QUEUED, "the server restarted before the array reached the site")
            else:
                self._set_state(
                    job, JobState.QUEUED, "the server restarted before the job reached the site; queued again"
                )
        self._flush()
