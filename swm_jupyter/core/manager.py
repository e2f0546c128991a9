"""The ``WorkloadManager``: accepts jobs, schedules them onto sites, reconciles with the gates.

It is headless (no Jupyter imports): the server extension, scripts, tests and benchmarks all use
it the same way::

    wm = WorkloadManager(data_dir="/tmp/swm", sites={"local": {"gate": "local"}})
    await wm.start()
    job = await wm.submit({"command": ["echo", "hi"]})
    job = await wm.wait(job.id)
    await wm.stop()

One asyncio task (the engine) owns the scheduling decisions and the store writes; each site has a
poll task that asks its gate about all of that site's live jobs in one call. Every change is
stored before it is published as an event; a submission is committed before ``submit`` returns.

This module holds submission, reads, user actions, state changes and the engine; the manager's
other parts are mixins in their own modules: :mod:`.arrays` (array parents follow their tasks),
:mod:`.launching` (job folders and the hand-over to a gate) and :mod:`.reconcile` (the per-site
poll loop and what the gates' answers do to jobs).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from traitlets import Dict, Enum, Float, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..gates.base import Gate, safe_path
from ..gates.registry import load_gate_class
from .arrays import ArrayTracking
from .directives import merge_request, parse_directives
from .errors import (
    InvalidTransition,
    JobNotFound,
    PathNotAllowed,
    SiteNotFound,
    SiteUnavailable,
    ValidationError,
)
from .launch import BOOKKEEPING_PREFIX
from .launching import JobLaunching
from .model import Job, JobSpec, new_job_id, parse_private_env
from .reconcile import SiteReconciliation
from .scheduler import DependencyInfo, SiteCapacity, failed_dependencies, plan, priority_key
from .states import ACTIVE_STATES, HistoryEntry, JobState, check_transition
from .store import JobPage, JobQuery, JobStore
from .wakeup import Wakeup

#: The longest a state change that need not be durable at once waits to be written with others.
FLUSH_WINDOW = 0.02


class WorkloadManager(ArrayTracking, JobLaunching, SiteReconciliation, LoggingConfigurable):
    """Keeps jobs in a :class:`JobStore`, schedules them and drives one gate per site."""

    data_dir = Unicode(help="Folder for the job store and job folders. Default: <jupyter data dir>/swm.").tag(
        config=True
    )
    store_path = Unicode(help="Path of the SQLite job store. Default: <data_dir>/jobs.sqlite.").tag(config=True)
    sites = Dict(
        help='Sites by name, each {"gate": name or dotted path, ...gate options}. Default: one local site.'
    ).tag(config=True)
    default_site = Unicode(help="Site of jobs that name none. Default: the first configured site.").tag(config=True)
    input_root = Unicode(help="Folder that input_files paths are relative to. Default: the current folder.").tag(
        config=True
    )
    poll_interval = Float(2.0, help="Seconds between status polls of a site whose gate sets no pace.").tag(config=True)
    synchronous = Enum(
        ["FULL", "NORMAL"],
        "NORMAL",
        help="SQLite synchronous mode of the store (WAL). NORMAL: an acknowledged job survives a crash or kill "
        "of the server; FULL: it also survives power loss or an OS crash, at about a third of the "
        "submission rate.",
    ).tag(config=True)
    event_retention = Int(100_000, help="How many past events are kept for clients that reconnect.").tag(config=True)
    secret_env = List(
        Unicode(),
        help="Names of the server's environment variables that jobs never inherit, besides the built-in "
        "JUPYTER_TOKEN, JUPYTER_PASSWORD, JPY_*, JUPYTERHUB_*TOKEN*, JUPYTERHUB_*SECRET*; shell patterns "
        "(* ?), matched without regard to case.",
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.path.join(jupyter_data_dir(), "swm")

    @default("store_path")
    def _default_store_path(self) -> str:
        return os.path.join(self.data_dir, "jobs.sqlite")

    @default("sites")
    def _default_sites(self) -> dict[str, Any]:
        return {"local": {"gate": "local"}}

    @default("default_site")
    def _default_default_site(self) -> str:
        return next(iter(self.sites), "local")

    @default("input_root")
    def _default_input_root(self) -> str:
        return os.getcwd()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store: JobStore | None = None
        self.jobs: dict[str, Job] = {}
        self.gates: dict[str, Gate] = {}
        self.gate_errors: dict[str, str] = {}
        self.site_health: dict[str, str] = {}
        self._ready_sites: set[str] = set()
        self._capacity_of: tuple[frozenset[str], dict[str, SiteCapacity]] = (frozenset(), {})
        self._dirty: dict[str, Job] = {}
        self._wake = Wakeup()
        self._site_wake: dict[str, Wakeup] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._ops: set[asyncio.Task[Any]] = set()
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._waiters: dict[str, list[asyncio.Future[Job]]] = {}
        self._launching: set[str] = set()
        self._dirty_parents: set[str] = set()
        self._array_counts: dict[str, dict[JobState, int]] = {}
        self._array_worst: dict[str, int] = {}
        # Indexes over self.jobs kept in step with every state change (see _index), so that a
        # scheduling pass costs what can start, not the length of the queue.
        self._queue: list[tuple[int, int, int, str]] = []
        self._queue_keys: dict[str, tuple[int, int, int, str]] = {}
        self._active: dict[str, Job] = {}
        self._held_on_site: dict[str, Job] = {}
        self._inserts: list[tuple[list[Job], asyncio.Future[None]]] = []
        self._dependents: dict[str, Job] = {}
        self._dependencies_changed = True
        #: How many history entries of each live job have been published as events.
        self._published: dict[str, int] = {}
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (taking its lock), load the gates, reconcile live jobs, start the loops.

        Raises :class:`~swm_jupyter.core.errors.StoreLocked` if another manager holds the store.
        """
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self.store = JobStore(self.store_path, synchronous=self.synchronous)
        for job in self.store.live_jobs():
            self.jobs[job.id] = job
            self._published[job.id] = len(job.history)
            self._index(job)
        for job in list(self.jobs.values()):
            if job.is_array_parent:
                self._load_array_counts(job.id)
        for name, options in self.sites.items():
            self._load_gate(name, dict(options))
        self._running = True
        for name in self.gates:
            self._site_wake[name] = Wakeup()
            self._tasks.append(asyncio.create_task(self._site_loop(name), name=f"swm-site-{name}"))
        self._tasks.append(asyncio.create_task(self._engine(), name="swm-engine"))
        self.log.info(
            "swm: job store %s, %d live jobs, sites: %s", self.store_path, len(self.jobs), ", ".join(self.sites)
        )

    async def stop(self) -> None:
        """Stop the loops, flush pending writes, close the gates and the store. Jobs keep running."""
        self._running = False
        for task in [*self._tasks, *self._ops]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._ops, return_exceptions=True)
        self._tasks.clear()
        self._ops.clear()
        if self.store is not None:
            self._flush()
        for name, gate in self.gates.items():
            try:
                await gate.cleanup()
            except Exception:
                self.log.exception("swm: cleanup of site %s failed", name)
        if self.store is not None:
            self.store.close()
            self.store = None
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.cancel()
        self._waiters.clear()

    def _load_gate(self, name: str, options: dict[str, Any]) -> None:
        gate_name = options.pop("gate", name)
        try:
            cls = load_gate_class(str(gate_name))
            known = set(cls.class_trait_names(config=True))
            unknown = sorted(set(options) - known)
            if unknown:
                raise ValueError(
                    f"unknown option {', '.join(unknown)} for gate {gate_name!r}; "
                    f"its options: {', '.join(sorted(known))}"
                )
            gate = cls(parent=self, site_name=name, **options)
        except SiteUnavailable as exc:
            self.gate_errors[name] = exc.message
            self.log.warning("swm: site %s is unavailable: %s", name, exc.message)
            return
        except Exception as exc:
            self.gate_errors[name] = f"the site {name!r} is misconfigured: {exc}"
            self.log.warning("swm: site %s is misconfigured: %s", name, exc)
            return
        gate.notify = self._notifier(name)
        self.gates[name] = gate

    def _notifier(self, name: str) -> Any:
        def notify() -> None:
            event = self._site_wake.get(name)
            if event is not None:
                event.set()

        return notify

    def _require_store(self) -> JobStore:
        if self.store is None:
            raise SiteUnavailable("the workload manager is not running")
        return self.store

    # -- submission --------------------------------------------------------------------------------

    def prepare(self, request: dict[str, Any] | JobSpec, *, owner: str = "") -> list[Job]:
        """Validate a request and build its jobs (an array's parent first, then its tasks).

        Raises :class:`ValidationError` (400) or :class:`SiteUnavailable` (503). Stores nothing.
        """
        private_env: dict[str, str] = {}
        if isinstance(request, JobSpec):
            spec = request
        else:
            if not isinstance(request, dict):
                raise ValidationError("a job must be a JSON object", [{"field": "", "message": "expected an object"}])
            data = dict(request)
            private_env = parse_private_env(data.pop("private_env", None))
            if isinstance(data.get("script"), str):
                data = merge_request(parse_directives(data["script"]), data)
            spec = JobSpec.from_dict(data)
        site = spec.site or self.default_site
        if site not in self.sites:
            raise ValidationError(
                f"unknown site {site!r}; configured sites: {', '.join(self.sites)}",
                [{"field": "site", "message": f"use one of {', '.join(self.sites)}"}],
            )
        if site in self.gate_errors:
            raise SiteUnavailable(self.gate_errors[site])
        gate = self.gates[site]
        errors: list[dict[str, str]] = []
        for dep in spec.depends_on:
            if dep.job_id not in self.jobs and not self._require_store().exists(dep.job_id):
                errors.append({"field": "depends_on", "message": f"no job {dep.job_id!r} to depend on"})
        if spec.notebook is not None or spec.input_files:
            for path in [*spec.input_files, *([spec.notebook] if spec.notebook else [])]:
                try:
                    source = safe_path(self.input_root, path)
                except PathNotAllowed as exc:
                    errors.append(
                        {"field": "input_files", "message": exc.message.replace("job folder", "input folder")}
                    )
                    continue
                if not source.exists():
                    errors.append({"field": "input_files", "message": f"{path!r} does not exist in {self.input_root}"})
        job = Job(id=new_job_id(), spec=spec, site=site, owner=owner, private_env=private_env)
        if private_env and not gate.private_env:
            errors.append({"field": "private_env", "message": f"site {site!r} cannot pass private variables to a job"})
        errors.extend(gate.validate(job))
        if errors:
            raise ValidationError(
                "the job cannot run: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors
            )
        job.folder = os.path.join(self.data_dir, "jobs", job.id)
        estimate = gate.estimate_cost(job)
        job.cost = {"estimate": estimate, "actual": None}
        initial = JobState.HELD if spec.hold else JobState.QUEUED
        self._set_state(job, initial, "held at submission" if spec.hold else "", record=True)
        jobs = [job]
        if spec.array is not None:
            for index in spec.array.indices:
                task = Job(
                    id=new_job_id(),
                    spec=spec,
                    site=site,
                    owner=owner,
                    array_parent=job.id,
                    array_index=index,
                    submit_time=job.submit_time,
                    folder=os.path.join(job.folder, f"task-{index}"),
                    private_env=private_env,
                )
                task.cost = {"estimate": estimate, "actual": None}
                task.state = initial
                task.history = [HistoryEntry(job.submit_time, initial, job.state_details)]
                task.state_details = job.state_details
                jobs.append(task)
        return jobs

    async def submit(self, request: dict[str, Any] | JobSpec, *, owner: str = "") -> Job:
        """Validate, store durably, and queue one job (or array). Returns the job once committed."""
        return (await self.submit_many([request], owner=owner))[0]

    async def submit_many(self, requests: Iterable[dict[str, Any] | JobSpec], *, owner: str = "") -> list[Job]:
        """Submit several jobs in one transaction: all are stored, or none (the first error is raised)."""
        store = self._require_store()
        requests = list(requests)
        if len(requests) == 1:
            prepared = [self.prepare(requests[0], owner=owner)]
        else:
            prepared = []
            errors: list[dict[str, str]] = []
            for i, request in enumerate(requests):
                try:
                    prepared.append(self.prepare(request, owner=owner))
                except ValidationError as exc:
                    errors.extend(
                        {"field": f"{i}.{e['field']}".rstrip("."), "message": e["message"]} for e in exc.errors
                    )
            if errors:
                raise ValidationError(
                    "some job requests have errors; nothing was submitted: "
                    + "; ".join(f"{e['field']}: {e['message']}" for e in errors[:20]),
                    errors,
                )
        everything = [job for group in prepared for job in group]
        for group in prepared:
            if len(group) > 1:
                self._array_counts[group[0].id] = {group[1].state: len(group) - 1}
        # Group commit: submissions that arrive in the same loop turn (concurrent API clients)
        # share one transaction. Each caller still returns only after its jobs are committed.
        # When nothing else is ready to run in this turn, no one could join: commit at once.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inserts.append((everything, done))
        if len(self._inserts) == 1:
            if _nothing_else_ready():
                self._commit_inserts(store)
            else:
                asyncio.get_running_loop().call_soon(self._commit_inserts, store)
        await done
        return [group[0] for group in prepared]

    def _commit_inserts(self, store: JobStore) -> None:
        """Store every submission queued in this loop turn in one transaction, then answer them."""
        batch, self._inserts = self._inserts, []
        jobs = [job for group, _ in batch for job in group]
        try:
            events = store.insert_jobs(jobs)
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for job in jobs:
            self.jobs[job.id] = job
            self._published[job.id] = len(job.history)
            self._index(job)
        self._publish(events)
        if any(job.state is JobState.QUEUED for job in jobs):
            self._wake.set()
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def submit_script(self, script: str, overrides: dict[str, Any] | None = None, *, owner: str = "") -> Job:
        """Submit a script whose ``#SWM`` lines give the spec; ``overrides`` win over those lines."""
        request = dict(overrides or {})
        request["script"] = script
        return await self.submit(request, owner=owner)

    def dry_run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Validate a request and return what would be submitted and its cost estimate; store nothing."""
        jobs = self.prepare(request)
        data = jobs[0].to_dict()
        data.pop("id", None)
        return {"job": data, "cost_estimate": jobs[0].cost.get("estimate"), "tasks": len(jobs) - 1}

    # -- reads -------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job with that id (or a unique prefix). Raises :class:`JobNotFound`."""
        job = self.jobs.get(job_id)
        if job is not None:
            return job
        return self._require_store().get(job_id)

    def list_jobs(self, query: JobQuery) -> JobPage:
        """A page of jobs from the store (pending writes are flushed first)."""
        self._flush()
        return self._require_store().query(query)

    def events_after(self, last_id: int) -> list[dict[str, Any]]:
        """Stored events after ``last_id`` (for clients that reconnect)."""
        self._flush()
        return self._require_store().events_after(last_id)

    def last_event_id(self) -> int:
        """The id of the newest stored event."""
        self._flush()
        return self._require_store().last_event_id()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving every event from now on; give it back with :meth:`unsubscribe`."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100_000)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending events to ``queue``."""
        self._subscribers.discard(queue)

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until the job is final and return it. Raises ``TimeoutError`` after ``timeout`` s."""
        job = self.get(job_id)
        if job.state.final:
            return job
        future: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job.id, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            waiters = self._waiters.get(job.id, [])
            if future in waiters:
                waiters.remove(future)

    async def read_output(self, job_id: str, stream: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Bytes of the job's stdout or stderr from ``offset`` (live while the job runs)."""
        if stream not in ("stdout", "stderr"):
            raise ValidationError(
                "stream must be stdout or stderr", [{"field": "stream", "message": "stdout or stderr"}]
            )
        if offset < 0 or limit < 1:
            raise ValidationError("offset must be >= 0 and limit >= 1", [{"field": "offset", "message": ">= 0"}])
        job = self.get(job_id)
        gate = self.gates.get(job.site)
        if gate is not None and job.state in ACTIVE_STATES:
            return await gate.read_output(job, stream, offset, limit)
        path = Path(job.folder) / stream
        from ..gates.base import read_file_range

        return await asyncio.to_thread(read_file_range, path, offset, limit)

    def list_files(self, job_id: str) -> list[dict[str, Any]]:
        """Files in the job folder (paths relative to it), without the manager's own bookkeeping."""
        job = self.get(job_id)
        root = Path(job.folder)
        out: list[dict[str, Any]] = []
        if not root.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((BOOKKEEPING_PREFIX, "task-")))
            for name in sorted(filenames):
                if name.startswith(BOOKKEEPING_PREFIX):
                    continue
                full = Path(dirpath) / name
                if full.is_symlink():
                    continue
                info = full.stat()
                out.append({"path": str(full.relative_to(root)), "size": info.st_size, "mtime": info.st_mtime})
        return out

    def file_path(self, job_id: str, path: str) -> Path:
        """The real path of a file in the job folder; refuses anything outside it."""
        job = self.get(job_id)
        target = safe_path(job.folder, path)
        if any(part.startswith(BOOKKEEPING_PREFIX) for part in Path(path).parts) or not target.is_file():
            raise JobNotFound(f"the job has no file {path!r}; list them with GET /jobs/{job.id}/files")
        return target

    async def describe_sites(self) -> list[dict[str, Any]]:
        """What each site is and offers, with its health and job counts."""
        counts: dict[str, dict[str, int]] = {}
        for job in self.jobs.values():
            if job.is_array_parent:
                continue
            site_counts = counts.setdefault(job.site, {})
            site_counts[job.state.value] = site_counts.get(job.state.value, 0) + 1
        out = []
        for name, options in self.sites.items():
            out.append(await self._describe_site(name, options, counts.get(name, {})))
        return out

    async def describe_site(self, name: str) -> dict[str, Any]:
        """One site's description. Raises :class:`SiteNotFound`."""
        if name not in self.sites:
            raise SiteNotFound(f"no site {name!r}; configured sites: {', '.join(self.sites)}")
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            if job.site == name and not job.is_array_parent:
                counts[job.state.value] = counts.get(job.state.value, 0) + 1
        return await self._describe_site(name, self.sites[name], counts)

    async def _describe_site(self, name: str, options: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": name,
            "kind": str(options.get("gate", name)),
            "description": "",
            "healthy": False,
            "health_message": "",
            "max_running": 0,
            "limits": {},
            "flavors": [],
            "images": [],
            "counts": counts,
            "default": name == self.default_site,
        }
        if name in self.gate_errors:
            info["health_message"] = self.gate_errors[name]
            return info
        gate = self.gates[name]
        info["kind"] = gate.kind
        info["description"] = gate.description
        info["max_running"] = gate.max_running
        try:
            described = await gate.describe()
        except Exception as exc:
            info["health_message"] = f"{type(exc).__name__}: {exc}"
            return info
        info.update({k: v for k, v in described.items() if k not in ("name", "counts")})
        if name not in self._ready_sites:
            info["healthy"] = False
            info["health_message"] = self.site_health.get(name) or "starting"
        return info

    # -- user actions ------------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job (an array: all its live tasks). Final jobs raise :class:`InvalidTransition`."""
        job = self.get(job_id)
        if job.state.final:
            raise InvalidTransition(f"job {job.id} already ended ({job.state.value}); nothing to cancel")
        targets = self._with_tasks(job)
        for target in targets:
            if target.state.final or target.is_array_parent:
                continue
            if target.state in (JobState.QUEUED, JobState.HELD) and target.id not in self._launching:
                self._set_state(target, JobState.CANCELED, "canceled by the user")
                target.end_time = time.time()
            else:
                target.wanted = "cancel"
                self._mark(target)
                self._spawn(self._carry_out_cancel(target))
        self._refresh_parent(job)
        self._flush()
        self._wake.set()
        return job

    async def hold(self, job_id: str) -> Job:
        """Keep a queued job from starting (or hold it in the site's queue if the site can)."""
        job = self.get(job_id)
        changed = False
        for target in self._with_tasks(job):
            if target.is_array_parent:
                continue
            if target.state is JobState.QUEUED and target.id not in self._launching:
                self._set_state(target, JobState.HELD, "held by the user")
                changed = True
            elif target.state is JobState.WAITING and await self.gates[target.site].hold(target):
                target.gate_data["held_on_site"] = True
                self._set_state(target, JobState.HELD, "held by the user (in the site's queue)")
                changed = True
        if not changed:
            raise InvalidTransition(f"job {job.id} is {job.state.value}; only queued or waiting jobs can be held")
        self._refresh_parent(job)
        self._flush()
        return job

    async def release(self, job_id: str) -> Job:
        """Let a held job be scheduled again."""
        job = self.get(job_id)
        changed = False
        for target in self._with_tasks(job):
            if target.is_array_parent or target.state is not JobState.HELD:
                continue
            if target.gate_data.pop("held_on_site", False) and await self.gates[target.site].release(target):
                self._set_state(target, JobState.WAITING, "released by the user")
            else:
                self._set_state(target, JobState.QUEUED, "released by the user")
            changed = True
        if not changed:
            raise InvalidTransition(f"job {job.id} is {job.state.value}; only held jobs can be released")
        self._refresh_parent(job)
        self._flush()
        self._wake.set()
        return job

    async def requeue(self, job_id: str) -> Job:
        """Run a job again: a finished, failed or canceled job goes back to the queue; a running one is
        stopped on its site first. Its folder keeps the files of the previous run.
        """
        job = self.get(job_id)
        if job.state in (JobState.QUEUED, JobState.HELD):
            raise InvalidTransition(f"job {job.id} is {job.state.value} already; nothing to requeue")
        for target in self._with_tasks(job):
            if target.is_array_parent:
                continue
            gate = self.gates.get(target.site)
            if target.state in ACTIVE_STATES and gate is not None:
                await gate.cancel(target)
            if target.state is not JobState.QUEUED:
                if gate is not None:
                    await gate.reset_run(target)
                self._reset_for_run(target)
                self._set_state(target, JobState.QUEUED, "requeued by the user")
            self.jobs[target.id] = target
            self._index(target)
        self._refresh_parent(job)
        if job.is_array_parent and job.state is not JobState.QUEUED:
            self._reset_for_run(job)
            self._set_state(job, JobState.QUEUED, "requeued by the user")
        self.jobs[job.id] = job
        self._index(job)
        self._flush()
        self._wake.set()
        return job

    @staticmethod
    def _reset_for_run(job: Job) -> None:
        job.exit_code = None
        job.signal = None
        job.native_id = None
        job.start_time = None
        job.end_time = None
        job.wanted = None
        job.gate_data = {}
        job.cost = {"estimate": job.cost.get("estimate"), "actual": None}

    # -- state changes -----------------------------------------------------------------------------

    def _set_state(
        self, job: Job, state: JobState, details: str = "", *, record: bool = False, at: float | None = None
    ) -> None:
        """Move ``job`` to ``state`` (checked against the table), add history, mark it for writing.

        ``at`` is when the change happened, if not now (a site may tell it late).
        """
        if record or not job.history:
            job.state = state
        else:
            check_transition(job.state, state)
        changed = state is not job.state or not job.history
        old = job.state if job.history else None
        job.state = state
        job.state_details = details
        if changed or (job.history and job.history[-1].details != details):
            job.history.append(HistoryEntry(at or time.time(), state, details))
        if not record:
            self._mark(job)
            if changed:
                self._index(job)
                if job.array_parent:
                    self._count_task(job, old)
        if state.final:
            self._dependencies_changed = True
            self._finished(job)

    def _index(self, job: Job) -> None:
        """Keep the queue, active and dependents indexes in step with ``job.state``."""
        job_id = job.id
        key = self._queue_keys.pop(job_id, None)
        if key is not None:
            at = bisect.bisect_left(self._queue, key)
            if at < len(self._queue) and self._queue[at] == key:
                del self._queue[at]
        self._active.pop(job_id, None)
        self._held_on_site.pop(job_id, None)
        self._dependents.pop(job_id, None)
        if job.state is JobState.QUEUED and self.jobs.get(job_id) is job:
            key = priority_key(job)
            bisect.insort(self._queue, key)
            self._queue_keys[job_id] = key
            if job.spec.depends_on:
                self._dependents[job_id] = job
        elif job.state in ACTIVE_STATES:
            self._active[job_id] = job
        elif job.state is JobState.HELD and job.gate_data.get("held_on_site"):
            self._held_on_site[job_id] = job

    def _mark(self, job: Job) -> None:
        self._dirty[job.id] = job

    def _finished(self, job: Job) -> None:
        for future in self._waiters.pop(job.id, []):
            if not future.done():
                future.set_result(job)

    def _flush(self) -> None:
        """Write every changed job in one transaction, then publish their events."""
        if self.store is None:
            return
        if self._dirty_parents:
            self._update_parents()
        if not self._dirty:
            return
        jobs = list(self._dirty.values())
        self._dirty.clear()
        steps: dict[str, list[HistoryEntry]] = {}
        for job in jobs:
            published = self._published.get(job.id, max(len(job.history) - 1, 0))
            steps[job.id] = job.history[published:]
            self._published[job.id] = len(job.history)
        events = self.store.update_jobs(jobs, events=True, steps=steps)
        for job in jobs:
            if job.state.final and job.id in self.jobs and not self._busy(job):
                del self.jobs[job.id]
                self._published.pop(job.id, None)
        self._publish(events)

    def _busy(self, job: Job) -> bool:
        return job.wanted is not None

    def _publish(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            for queue in list(self._subscribers):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self._subscribers.discard(queue)

    # -- the engine --------------------------------------------------------------------------------

    async def _engine(self) -> None:
        """Schedule whenever something changed (or every second), and write changes in batches.

        Changes that need not be durable at once (a job seen running, a job that ended: the site
        says so again after a crash) wait up to :data:`FLUSH_WINDOW` seconds, so that one
        transaction carries those of many jobs. What must be durable first is written at once
        elsewhere: submissions, user actions, and the intent to launch.
        """
        last_flush = time.monotonic()
        while self._running:
            timeout = FLUSH_WINDOW if self._dirty or self._dirty_parents else 1.0
            await self._wake.sleep(timeout)
            self._wake.clear()
            try:
                self._schedule_once()
                if time.monotonic() - last_flush >= FLUSH_WINDOW or not self._dirty:
                    self._flush()
                    last_flush = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("swm: scheduling pass failed")
                await asyncio.sleep(0.5)

    def _schedule_once(self) -> None:
        if self._dependencies_changed and self._dependents:
            self._dependencies_changed = False
            for job, reason in failed_dependencies(list(self._dependents.values()), self._dependency_info):
                self._set_state(job, JobState.ERROR, reason)
                job.end_time = time.time()
                self._refresh_parent(job)
        if not self._queue:
            return
        capacity = self._capacity()

        def queued() -> Iterable[Job]:
            for key in self._queue:  # read only: the plan is carried out after this pass
                job = self.jobs.get(key[3])
                if job is None or job.id in self._launching or job.site not in capacity:
                    continue
                if job.array_parent and capacity[job.site].native_arrays:
                    continue
                yield job

        parents: dict[str, int | None] = {}

        def throttle(parent_id: str) -> int | None:
            if parent_id not in parents:
                parent = self.jobs.get(parent_id)
                spec = parent.spec if parent else None
                parents[parent_id] = spec.array.throttle if spec and spec.array else None
            return parents[parent_id]

        active = self._active.values()
        decision = plan(queued(), active, capacity, self._dependency_info, throttle)
        for job, reason in decision.fail:
            self._set_state(job, JobState.ERROR, reason)
            job.end_time = time.time()
            self._refresh_parent(job)
        for job_id, details in decision.waiting.items():
            job = self.jobs[job_id]
            if job.state_details != details:
                job.state_details = details
                self._mark(job)
        by_site: dict[str, list[tuple[Job, list[tuple[str, str]]]]] = {}
        for job, native in decision.start:
            self._launching.add(job.id)
            self._set_state(job, JobState.WAITING, f"starting on {job.site}")
            job.gate_data["launching"] = True
            by_site.setdefault(job.site, []).append((job, native))
        if not by_site:
            return
        # The intent to launch is durable before any job reaches its site: a crash in between
        # makes the restarted manager check the site instead of starting the job a second time.
        # A site that recognises a job it already has needs no such record (one write fewer).
        if any(not self.gates[site].idempotent_submit for site in by_site):
            self._flush()
        for site, batch in by_site.items():
            # A gate that hands many jobs over in one exchange gets them together (arrays sent
            # whole excepted); to others each job goes on its own, and is seen started on its own.
            together = type(self.gates[site]).submit_many is not Gate.submit_many
            single = [(job, native) for job, native in batch if together and not job.is_array_parent]
            if single:
                self._spawn(self._launch_many(site, single))
            for job, native in batch:
                if not together or job.is_array_parent:
                    self._spawn(self._launch(job, native))

    def _capacity(self) -> dict[str, SiteCapacity]:
        """What each ready site allows; made again only when the set of ready sites changes."""
        ready = frozenset(self._ready_sites)
        if self._capacity_of[0] != ready:
            capacity = {
                name: SiteCapacity(
                    max_running=gate.max_running,
                    cpus=getattr(gate, "slot_cpus", None),
                    native_dependencies=gate.native_dependencies,
                    native_arrays=gate.native_arrays,
                )
                for name, gate in self.gates.items()
                if name in ready
            }
            self._capacity_of = (ready, capacity)
        return self._capacity_of[1]

    def _dependency_info(self, job_id: str) -> DependencyInfo | None:
        job = self.jobs.get(job_id)
        if job is None:
            try:
                job = self._require_store().get(job_id)
            except JobNotFound:
                return None
        return DependencyInfo(state=job.state, exit_code=job.exit_code, site=job.site, native_id=job.native_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._ops.add(task)
        task.add_done_callback(self._ops.discard)


def _nothing_else_ready() -> bool:
    """True if no other callback waits to run in this event-loop turn (so none can join a commit).

    asyncio keeps those callbacks in the loop's ``_ready`` queue; a loop without it (uvloop)
    answers False, which only costs one loop turn per submission.
    """
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    return ready is not None and not ready


async def run_headless(sites: dict[str, Any] | None = None, **traits: Any) -> WorkloadManager:
    """Make and start a manager from keyword traits (for scripts); stop it with ``await wm.stop()``."""
    manager = WorkloadManager(sites=sites, **traits) if sites is not None else WorkloadManager(**traits)
    await manager.start()
    return manager


__all__ = ["WorkloadManager", "contextlib", "run_headless"]
