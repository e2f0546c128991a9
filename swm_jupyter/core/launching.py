"""Launching jobs, for the :class:`~swm_jupyter.core.manager.WorkloadManager`: the job folder
(script, inputs, paths checked) and the hand-over to the site's gate, with what happens when the
site cannot be reached or refuses the job.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

from .accounts import OwnerAccount
from .disk_full import is_disk_full, no_space_text
from .errors import GateError, SiteUnavailable, SwmError, ValidationError
from .launch import SCRIPT_FILE
from .manager_part import ManagerPart
from .model import Job
from .owned_folders import copy_into_owned, owned_folder, write_owned_file
from .states import JobState
from .tasks import being_cancelled
from .user_inputs import copy_input, relative_to_root
from .user_paths import safe_path

#: Seconds a site that could not be reached rests before the scheduler tries it again.
SITE_RETRY_SECONDS = 5.0


class JobLaunching(ManagerPart):
    """Mixin of the manager: prepare a job's folder and hand the job to its gate."""

    async def _launch(self, job: Job, native: list[tuple[str, str]]) -> None:
        """Prepare the job folder and hand the job (or a whole native array) to its gate."""
        gate = self.gates[job.site]
        try:
            tasks: list[Job] = []
            if job.is_array_parent:
                tasks = [self.jobs[t.id] for t in self._require_store().array_tasks(job.id) if t.id in self.jobs]
                tasks = [t for t in tasks if t.state is JobState.QUEUED]
                for task in tasks:
                    await self._prepare(task)
                    self._set_state(task, JobState.WAITING, f"starting on {job.site}")
            await self._prepare(job)
            if job.wanted == "cancel":
                self._canceled_before_start(job)
                return
            if job.is_array_parent:
                statuses = await gate.submit_array(job, tasks, native)
                for task in tasks:
                    if task.id in statuses:
                        self._apply_status(task, statuses[task.id])
                job.launching = False
                self._refresh_parent(job)
            else:
                status = await gate.submit(job, native)
                job.launching = False
                self._apply_status(job, status)
        except asyncio.CancelledError:
            if being_cancelled() or not self._running:
                raise  # the manager stops: the job stays marked launching; the next start asks the site
            self._launch_failed(job, _interrupted())  # the gate's own operation was cancelled, not this task
        except Exception as exc:
            self._launch_failed(job, exc)
        finally:
            self._launching.discard(job.id)
            self._wake.set()

    async def _launch_many(self, site: str, batch: list[tuple[Job, list[tuple[str, str]]]]) -> None:
        """Prepare the folders of several jobs (not arrays sent whole) and hand them to the site's
        gate in one :meth:`~swm_jupyter.gates.base.Gate.submit_many` call; each job that cannot be
        prepared or is refused fails alone.
        """
        gate = self.gates[site]
        ready: list[tuple[Job, list[tuple[str, str]]]] = []
        answered = 0
        try:
            for (job, native), failure in zip(batch, await self._prepare_all(batch), strict=True):
                if failure is not None:
                    self._launch_failed(job, failure)
                elif job.wanted == "cancel":
                    self._canceled_before_start(job)
                else:
                    ready.append((job, native))
            if ready:
                answers = await gate.submit_many(ready)
                for (job, _), answer in zip(ready, answers, strict=True):
                    answered += 1
                    if isinstance(answer, asyncio.CancelledError):
                        self._launch_failed(job, _interrupted())  # the gate's own operation was cancelled
                    elif isinstance(answer, BaseException):
                        self._launch_failed(job, answer)
                    else:
                        job.launching = False
                        self._apply_status(job, answer)
        except asyncio.CancelledError:
            if being_cancelled() or not self._running:
                raise  # the manager stops: the jobs stay marked launching; the next start asks the site
            for job, _ in ready[answered:]:
                self._launch_failed(job, _interrupted())
        except Exception as exc:
            for job, _ in ready[answered:]:
                self._launch_failed(job, exc)
        finally:
            for job, _ in batch:
                self._launching.discard(job.id)
            self._wake.set()

    async def _prepare_all(self, batch: list[tuple[Job, list[tuple[str, str]]]]) -> list[BaseException | None]:
        """Prepare each job's folder; return what went wrong for each (None: ready).

        Folders with nothing to copy are made at once; jobs with files to copy are prepared side by
        side (each copy in a thread), so that one big input does not hold up the others.
        """
        if any(job.spec.input_files or job.spec.notebook for job, _ in batch):
            return await asyncio.gather(*(self._prepare(job) for job, _ in batch), return_exceptions=True)
        failures: list[BaseException | None] = []
        for job, _ in batch:
            try:
                self._prepare_folder(job)
                failures.append(None)
            except Exception as exc:
                failures.append(exc)
        return failures

    def _canceled_before_start(self, job: Job) -> None:
        job.launching = False
        self._set_state(job, JobState.CANCELED, "canceled by the user before it started")
        job.end_time = time.time()

    def _launch_failed(self, job: Job, exc: BaseException) -> None:
        """What a launch that raised ``exc`` does to ``job``: queued again while its site cannot be
        reached or its folder's file system is full, failed (state E with the reason) when the site
        or the job folder refused it.
        """
        if isinstance(exc, SiteUnavailable):
            self._site_unreachable(job, exc.message)
        elif is_disk_full(exc):  # the job folder cannot be written: wait for space, as for a site away
            self._site_unreachable(job, f"the job folder cannot be written: {no_space_text(job.folder)}")
        elif isinstance(exc, SwmError):
            self._fail_launch(job, exc.message)
        else:
            self.log.error(
                "swm: launching job %s on %s failed", job.id, job.site, exc_info=(type(exc), exc, exc.__traceback__)
            )
            self._fail_launch(job, f"{type(exc).__name__}: {exc}")

    def _site_unreachable(self, job: Job, message: str) -> None:
        """The site could not be reached to take the job: queue it again and rest the site a while."""
        job.launching = False
        tasks = [t for t in self._with_tasks(job) if t.state is JobState.WAITING] if job.is_array_parent else [job]
        for target in tasks:
            self._set_state(target, JobState.QUEUED, f"site unreachable, will retry: {message}")
        site = job.site
        if site in self._ready_sites:
            self._ready_sites.discard(site)
            self.site_health[site] = message
            self.log.warning("swm: site %s is unreachable (%s); retrying in %.0fs", site, message, SITE_RETRY_SECONDS)

            def again() -> None:
                if self._running and site in self.gates:
                    self._ready_sites.add(site)
                    self.site_health.pop(site, None)
                    self._wake.set()

            asyncio.get_running_loop().call_later(SITE_RETRY_SECONDS, again)

    def _fail_launch(self, job: Job, message: str) -> None:
        job.launching = False
        if job.state.final:
            return
        self._set_state(job, JobState.ERROR, message)
        job.end_time = time.time()
        self._refresh_parent(job)

    async def _prepare(self, job: Job) -> None:
        """:meth:`_prepare_folder`, in a thread only when there are files to copy."""
        if job.spec.input_files or job.spec.notebook:
            await asyncio.to_thread(self._prepare_folder, job)
        else:
            self._prepare_folder(job)

    def _prepare_folder(self, job: Job) -> None:
        """Create the job folder, write the script, copy the inputs in (paths checked).

        On a site that runs jobs as their owner, the folder and everything in it belong to the owner
        (see :func:`_prepare_owned_folder`).
        """
        account = self.gates[job.site].owner_account(job)
        if account is not None:
            self._prepare_owned_folder(job, account)
            return
        if self.user_root:
            self._prepare_folder_of_owner_inputs(job)
            return
        folder = Path(job.folder)
        folder.mkdir(parents=True, exist_ok=True)
        if job.spec.script is not None:
            script = folder / SCRIPT_FILE
            script.write_text(job.spec.script)
            script.chmod(0o700)
        if job.spec.notebook is not None:
            (folder / "job.json").write_text(
                json.dumps({"notebook": Path(job.spec.notebook).name, "parameters": job.spec.parameters})
            )
        for source, relative in self._inputs(job):
            target = safe_path(folder, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(source, target)

    def _inputs(self, job: Job) -> list[tuple[Path, str]]:
        """The files to copy into the job folder: ``(source, path relative to the job folder)``.

        Raises :class:`ValidationError` when an input left ``input_root`` or no longer exists.
        """
        inputs = list(job.spec.input_files)
        if job.spec.notebook is not None:
            inputs.append(job.spec.notebook)
        found: list[tuple[Path, str]] = []
        for path in inputs:
            source = safe_path(self.input_root, path)
            if not source.exists():
                raise ValidationError(f"input file {path!r} no longer exists in {self.input_root}")
            found.append((source, os.path.normpath(Path(path).name if job.spec.notebook == path else path)))
        return found

    def _prepare_owned_folder(self, job: Job, account: OwnerAccount) -> None:
        """:meth:`_prepare_folder` for a job that runs as ``account``: the folder is made the account's
        (mode 0700) before anything is written in it, and no link the owner could make is followed.
        """
        with owned_folder(job.folder, account) as folder:
            if job.spec.script is not None:
                write_owned_file(folder, SCRIPT_FILE, job.spec.script.encode(), 0o700, account)
            if job.spec.notebook is not None:
                data = json.dumps({"notebook": Path(job.spec.notebook).name, "parameters": job.spec.parameters})
                write_owned_file(folder, "job.json", data.encode(), 0o600, account)
            if self.user_root:
                root, reader = self.owner_root(job.owner, self.gates[job.site])
                for relative, target in self._owner_inputs(job, root):
                    copy_input(root, relative, reader, folder, target, account)
                return
            for path, target in self._inputs(job):
                copy_into_owned(str(path), folder, target, account)

    def _owner_inputs(self, job: Job, root: str) -> list[tuple[str, str]]:
        """The inputs of ``job`` in its owner's folder ``root``: ``(path relative to root, path in the job
        folder)``; a notebook lands under its own name. Raises :class:`PathNotAllowed`."""
        found = [(relative_to_root(root, path),) * 2 for path in job.spec.input_files]
        if job.spec.notebook is not None:
            relative = relative_to_root(root, job.spec.notebook)
            found.append((relative, Path(relative).name))
        return found

    def _prepare_folder_of_owner_inputs(self, job: Job) -> None:
        """:meth:`_prepare_folder` with :attr:`user_root` on a site that runs jobs as the core's account: the
        folder is the core's, the inputs are read from the owner's folder with the owner's rights."""
        folder = Path(job.folder)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if job.spec.script is not None:
            script = folder / SCRIPT_FILE
            script.write_text(job.spec.script)
            script.chmod(0o700)
        if job.spec.notebook is not None:
            notebook = Path(job.spec.notebook).name
            (folder / "job.json").write_text(json.dumps({"notebook": notebook, "parameters": job.spec.parameters}))
        root, reader = self.owner_root(job.owner, self.gates[job.site])
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            for relative, target in self._owner_inputs(job, root):
                copy_input(root, relative, reader, fd, target, None)
        finally:
            os.close(fd)

def _interrupted() -> GateError:
    """The error of a launch the site's gate cancelled itself (this task was not being stopped)."""
    return GateError("the launch was interrupted: the site's gate cancelled it before the site answered")
