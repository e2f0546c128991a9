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
import dataclasses
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .accounts import OwnerAccounts
from .arrays import ArrayTracking
from .directives import merge_request, read_directives
from .errors import (
    IdempotencyKeyReused,
    InvalidTransition,
    JobNotFound,
    LimitExceeded,
    PathNotAllowed,
    SiteNotFound,
    SiteUnavailable,
    StoreFull,
    ValidationError,
)
from .gate_contract import Gate
from .gate_registry import load_gate_class
from .gc_pauses import bulk_work
from .job_files import job_path_parts, open_job_file, read_job_file
from .launch import BOOKKEEPING_PREFIX
from .launching import JobLaunching
from .log_tail import LogTails
from .model import (
    ARRAY_TASKS_CAP,
    Job,
    JobSpec,
    array_task_count,
    new_job_id,
    parse_private_env,
    replace_spec_extras,
)
from .reconcile import SiteReconciliation
from .retention import JobRetention
from .scheduler import DependencyInfo, SiteCapacity, UserPolicy, failed_dependencies, plan, priority_key
from .secrets import redact_text
from .site_accounts import site_account, site_for_account
from .slices import Pacer
from .states import ACTIONS, ACTIVE_STATES, Action, HistoryEntry, JobState, check_action, check_transition
from .store import IdempotencyRecord, JobPage, JobQuery, JobStore
from .usage import UsageLedger
from .user_inputs import Reader, check_input, relative_to_root, render_root
from .user_paths import safe_path
from .wakeup import Wakeup

#: The longest a state change that need not be durable at once waits to be written with others.
FLUSH_WINDOW = 0.02
#: Submissions with more array tasks than this are stored in batches (other requests run between them).
STORE_AT_ONCE = 1000
#: Seconds between tries to write changes the store refused for want of space.
STORE_RETRY_SECONDS = 1.0
#: How long an ``Idempotency-Key`` keeps answering with the jobs of its first submission.
IDEMPOTENCY_WINDOW = 24 * 3600.0
#: What an ``Idempotency-Key`` may be: 1 to 200 visible ASCII characters.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")

#: Seconds a hold, release or requeue request waits for the reconciler to carry it out; after
#: that it answers with the wish still pending (``wanted``), which the reconciler keeps at.
ACTION_WAIT = 10.0

#: How the history tells each action, done.
_DONE = {Action.CANCEL: "canceled", Action.HOLD: "held", Action.RELEASE: "released", Action.REQUEUE: "requeued"}


class WorkloadManager(ArrayTracking, JobLaunching, SiteReconciliation, JobRetention, LoggingConfigurable):
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
    user_root = Unicode(
        "",
        help="Each job owner's own folder, as a template ({home}: the owner's home from the passwd database, "
        "{username}, {uid}): input_files, notebook and a relative workdir are paths in it, read with the "
        "owner's rights (OS accounts mapped as c.OwnerAccounts says). Empty (default): input_root for every "
        "job. The hub's swm service uses {home}.",
    ).tag(config=True)
    poll_interval = Float(2.0, help="Seconds between status polls of a site whose gate sets no pace.").tag(config=True)
    synchronous = Enum(
        ["FULL", "NORMAL"],
        "NORMAL",
        help="SQLite synchronous mode of the store (WAL). NORMAL: an acknowledged job survives a crash or kill "
        "of the server; FULL: it also survives power loss or an OS crash, at about a third of the "
        "submission rate.",
    ).tag(config=True)
    event_retention = Int(
        100_000,
        help="How many past events are kept for clients that reconnect; older ones are deleted in the background "
        "(every retention_interval seconds, in batches). 0 keeps every event. Default: 100000.",
    ).tag(config=True)
    job_retention_days = Float(
        0.0,
        help="Days a final job (finished, error, canceled) is kept after it ended; older ones are deleted with "
        "their events and job folders, in the background and in batches. Jobs a live job depends on are kept; "
        "an array goes with its tasks. 0 keeps every job forever. Default: 0.",
    ).tag(config=True)
    retention_interval = Float(
        600.0, help="Seconds between two retention passes (events, then jobs). Default: 600."
    ).tag(config=True)
    event_queue_size = Int(
        10_000,
        help="Most events waiting to be sent to one events client (websocket). A client that falls further behind "
        "is told to reconnect with its last event id (a 'resync' message), and loses nothing. Default: 10000.",
    ).tag(config=True)
    secret_env = List(
        Unicode(),
        help="Names of the server's environment variables that jobs never inherit, besides the built-in "
        "JUPYTER_TOKEN, JUPYTER_PASSWORD, JPY_*, JUPYTERHUB_*TOKEN*, JUPYTERHUB_*SECRET*; shell patterns "
        "(* ?), matched without regard to case.",
    ).tag(config=True)
    secret_patterns = List(
        Unicode(),
        help="Names whose values are secret besides the built-in patterns of swm_jupyter.core.secrets "
        "(shell-style, matched in upper case). Default: none.",
    ).tag(config=True)

    scheduling_policy = Enum(
        ["fifo", "fairshare"],
        "fifo",
        help="Order of queued jobs of different users. fifo: priority, then submission order, whoever the "
        "owner. fairshare: the user with the least recent usage (cpu-seconds, decayed over fairshare_window) "
        "goes first. Inside one user's jobs, priority then submission order always. Default: fifo.",
    ).tag(config=True)
    fairshare_window = Float(
        7 * 86400.0,
        help="Half-life of past usage for fair share, in seconds: cpu-seconds used one window ago count half, "
        "two windows ago a quarter. Default: 604800 (7 days).",
    ).tag(config=True)
    max_running_per_user = Int(
        0,
        help="The most jobs of one user handed to sites (waiting, transferring or running) at once, all sites "
        "together; more stay queued. 0 means no limit. A site may set its own in its options. Default: 0.",
    ).tag(config=True)
    max_queued_per_user = Int(
        0,
        help="The most jobs (array tasks count one each) of one user queued or held at once, all sites together; "
        "a submission beyond it is refused (429). 0 means no limit. A site may set its own in its options. "
        "Default: 0.",
    ).tag(config=True)

    @validate("job_retention_days", "retention_interval", "event_retention")
    def _check_retention(self, proposal: Any) -> Any:
        name = proposal["trait"].name
        if name == "retention_interval" and proposal["value"] <= 0:
            raise TraitError(f"retention_interval must be more than 0 seconds, not {proposal['value']}")
        if proposal["value"] < 0:
            raise TraitError(f"{name} must be 0 (keep everything) or more, not {proposal['value']}")
        return proposal["value"]

    @validate("fairshare_window")
    def _check_window(self, proposal: Any) -> float:
        if proposal["value"] <= 0:
            raise TraitError(f"fairshare_window must be more than 0 seconds, not {proposal['value']}")
        return float(proposal["value"])

    @validate("max_running_per_user", "max_queued_per_user")
    def _check_user_limit(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"{proposal['trait'].name} must be 0 (no limit) or more, not {proposal['value']}")
        return int(proposal["value"])

    strict_directives = Bool(
        False,
        help="Refuse (400) a job script with an #SWM directive this server does not know. Default: False, "
        "the line is ignored and the job gets a warning (as Sky Port's core ignores unknown names).",
    ).tag(config=True)

    max_array_size = Int(
        100_001,
        help="Most tasks one job array may have (like Slurm's MaxArraySize): larger arrays are refused with 400. "
        f"Default: 100001 (indices 0-100000); at most {ARRAY_TASKS_CAP}.",
    ).tag(config=True)

    @validate("max_array_size")
    def _validate_max_array_size(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 1 <= value <= ARRAY_TASKS_CAP:
            raise TraitError(f"max_array_size must be between 1 and {ARRAY_TASKS_CAP} (got {value})")
        return value

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

    @validate("user_root")
    def _check_user_root(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value and not (value.startswith("/") or value.startswith("{home}")):
            raise TraitError("user_root must be an absolute path template (or start with {home}), e.g. {home}")
        return value

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
        #: Event queues of subscribers, each with what to call if it overflows (see :meth:`subscribe`).
        self._subscribers: dict[asyncio.Queue[dict[str, Any]], Callable[[], None] | None] = {}
        self._waiters: dict[str, list[asyncio.Future[Job]]] = {}
        self._launching: set[str] = set()
        #: Maps owners to OS accounts for :attr:`user_root` on sites that do not run jobs as their owners.
        self._accounts: OwnerAccounts | None = None
        #: The reconciler's tasks carrying out users' wishes, by job id.
        self._carrying: dict[str, asyncio.Task[None]] = {}
        self._dirty_parents: set[str] = set()
        self._array_counts: dict[str, dict[JobState, int]] = {}
        self._array_worst: dict[str, int] = {}
        # Indexes over self.jobs kept in step with every state change (see _index), so that a
        # scheduling pass costs what can start, not the length of the queue.
        self._queue: list[tuple[int, int, int, str]] = []
        self._queue_keys: dict[str, tuple[int, int, int, str]] = {}
        #: The same queue by owner (for fair share), and how many jobs each (owner, site) has queued or held.
        self._owner_queues: dict[str, list[tuple[int, int, int, str]]] = {}
        self._pending: dict[tuple[str, str], int] = {}
        self._pending_of: dict[str, tuple[str, str]] = {}
        #: Per-site limits of one user's jobs: site -> (max_running_per_user, max_queued_per_user).
        self._site_user_limits: dict[str, tuple[int, int]] = {}
        self._usage = UsageLedger(self.fairshare_window)
        self._active: dict[str, Job] = {}
        self._held_on_site: dict[str, Job] = {}
        self._inserts: list[tuple[list[Job], asyncio.Future[None], IdempotencyRecord | None]] = []
        #: Jobs of submissions being stored that are not yet in the indexes, by (owner, site).
        self._pending_in_flight: dict[tuple[str, str], int] = {}
        #: Ids of the jobs of submissions stored in batches that have not been answered yet.
        self._building: set[str] = set()
        #: Submissions with an Idempotency-Key still being stored, by key.
        self._keys_in_flight: dict[str, asyncio.Future[None]] = {}
        self._dependents: dict[str, Job] = {}
        self._dependencies_changed = True
        #: How many history entries of each live job have been published as events.
        self._published: dict[str, int] = {}
        #: Why the store could not be written the last time (None: it could), and when to try again.
        self.store_error: str | None = None
        self._store_retry_at = 0.0
        self._running = False
        #: The shared live log readers (one per followed job), see :mod:`.log_tail`.
        self.log_tails = LogTails(self.read_output, lambda job_id: self.get(job_id).state.final)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (taking its lock), load the gates, reconcile live jobs, start the loops.

        Raises :class:`~swm_jupyter.core.errors.StoreLocked` if another manager holds the store.
        """
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self.store = JobStore(self.store_path, synchronous=self.synchronous)
        if self.store.discarded_builds:
            self.log.warning(
                "swm: discarded %d submissions that the last server did not finish storing (never acknowledged)",
                len(self.store.discarded_builds),
            )
        self._usage = UsageLedger(self.fairshare_window)
        self._usage.load(self.store, time.time())
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
        self._tasks.append(asyncio.create_task(self._retention_loop(), name="swm-retention"))
        self.log.info(
            "swm: job store %s, %d live jobs, sites: %s", self.store_path, len(self.jobs), ", ".join(self.sites)
        )

    async def stop(self) -> None:
        """Stop the loops, flush pending writes, close the gates and the store. Jobs keep running."""
        self._running = False
        self.log_tails.stop()
        for task in [*self._tasks, *self._ops]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._ops, return_exceptions=True)
        self._tasks.clear()
        self._ops.clear()
        if self.store is not None and not self._flush(retry_now=True):
            self.log.error(
                "swm: %d job changes could not be written before stopping (%s); the sites still have them, "
                "and the next start asks the sites again",
                len(self._dirty),
                self.store_error,
            )
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
        """Make the gate of site ``name``; a site that cannot be made is recorded in
        :attr:`gate_errors` with a message that names the options at fault, never their values
        (a password may have been put in the wrong option).
        """
        gate_name = options.pop("gate", name)
        try:
            self._site_user_limits[name] = _user_limits_of(name, options)
            cls = load_gate_class(str(gate_name))
            known = set(cls.class_trait_names(config=True))
            site_account(name, options)  # the site's Sky Port account: checked here, read from self.sites
            if "account" not in known:  # a gate with an account option of its own (Slurm's) gets it too
                options.pop("account", None)
            unknown = sorted(set(options) - known)
            if unknown:
                raise ValueError(
                    f"unknown option {', '.join(unknown)} for gate {gate_name!r}; "
                    f"its options: {', '.join(sorted(known))}"
                )
            try:
                gate = cls(parent=self, site_name=name, **options)
            except TraitError:
                raise ValueError(_refused_options(cls, name, options)) from None
        except SiteUnavailable as exc:
            message = redact_text(exc.message)
            self.gate_errors[name] = message
            self.log.warning("swm: site %s is unavailable: %s", name, message)
            return
        except Exception as exc:
            message = redact_text(str(exc))
            self.gate_errors[name] = f"the site {name!r} is misconfigured: {message}"
            self.log.warning("swm: site %s is misconfigured: %s", name, message)
            return
        gate.notify = self._notifier(name)
        gate.live_jobs = self._live_jobs_of(name)
        self.gates[name] = gate

    def _live_jobs_of(self, name: str) -> Any:
        def live_jobs() -> list[Job]:
            return [job for job in self.jobs.values() if job.site == name and not job.state.final]

        return live_jobs

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

    def prepare(self, request: dict[str, Any] | JobSpec, *, owner: str = "", with_tasks: bool = True) -> list[Job]:
        """Validate a request and build its jobs (an array's parent first, then its tasks, unless
        ``with_tasks`` is False).

        Raises :class:`ValidationError` (400) or :class:`SiteUnavailable` (503). Stores nothing.
        """
        private_env: dict[str, str] = {}
        if isinstance(request, JobSpec):
            spec = request
            if spec.array is not None:
                self._check_array_size(spec.array.text, len(spec.array.indices))
        else:
            if not isinstance(request, dict):
                raise ValidationError("a job must be a JSON object", [{"field": "", "message": "expected an object"}])
            data = dict(request)
            private_env = parse_private_env(data.pop("private_env", None))
            data.pop("warnings", None)  # the server's own notes, never the request's
            warnings: list[str] = []
            if isinstance(data.get("script"), str):
                directives, warnings = read_directives(data["script"], strict=self.strict_directives)
                data = merge_request(directives, data)
            self._check_array_size(data.get("array"))
            if warnings:
                data["warnings"] = warnings
            spec = JobSpec.from_dict(data)
        if spec.site:
            site = spec.site
        elif spec.account:
            site = site_for_account(spec.account, self.sites, self.default_site)
        else:
            site = self.default_site
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
        if self.user_root:
            spec = self._check_owner_inputs(spec, owner, gate, errors)
        elif spec.notebook is not None or spec.input_files:
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
        try:
            account = gate.owner_account(job)
        except ValidationError as exc:
            account = None
            errors.extend(exc.errors)
        if errors:
            raise ValidationError(
                "the job cannot run: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors
            )
        job.folder = os.path.join(account.data_root if account else os.path.join(self.data_dir, "jobs"), job.id)
        estimate = gate.estimate_cost(job)
        job.cost = {"estimate": estimate, "actual": None}
        initial = JobState.HELD if spec.hold else JobState.QUEUED
        self._set_state(job, initial, "held at submission" if spec.hold else "", record=True)
        jobs = [job]
        if spec.array is not None and with_tasks:
            jobs.extend(self._make_tasks(job, spec.array.indices))
        return jobs

    def owner_root(self, owner: str, gate: Gate) -> tuple[str, Reader]:
        """The folder ``owner``'s input paths are relative to (:attr:`user_root`) and whose rights they are
        read with. Raises :class:`ValidationError` when the owner has no usable OS account."""
        accounts = gate.accounts
        if accounts is None:
            if self._accounts is None:
                self._accounts = OwnerAccounts(parent=self)
            accounts = self._accounts
        account = accounts.resolve(owner)
        return render_root(self.user_root, account), Reader.of(account)

    def _check_owner_inputs(self, spec: JobSpec, owner: str, gate: Gate, errors: list[dict[str, str]]) -> JobSpec:
        """Check ``spec``'s inputs in the owner's own folder (:attr:`user_root`); a relative ``workdir`` of a
        site that runs jobs as their owners becomes that folder's. Adds what is wrong to ``errors``."""
        paths = [("input_files", p) for p in spec.input_files]
        if spec.notebook:
            paths.append(("notebook", spec.notebook))
        relative_workdir = bool(spec.workdir and not os.path.isabs(spec.workdir) and gate.runs_as_owner)
        if not paths and not relative_workdir:
            return spec
        try:
            root, reader = self.owner_root(owner, gate)
        except ValidationError as exc:
            errors.extend({"field": field, "message": exc.message} for field in {f for f, _ in paths} or {"workdir"})
            return spec
        for field, path in paths:
            try:
                check_input(root, path, reader)
            except PathNotAllowed as exc:
                errors.append({"field": field, "message": exc.message})
        if relative_workdir:
            try:
                spec = dataclasses.replace(spec, workdir=os.path.join(root, relative_to_root(root, str(spec.workdir))))
            except PathNotAllowed as exc:
                errors.append({"field": "workdir", "message": exc.message})
        return spec

    @staticmethod
    def _make_tasks(parent: Job, indices: Iterable[int]) -> list[Job]:
        """The tasks of array ``parent`` with these indices, as submitted (not stored)."""
        entry = HistoryEntry(parent.submit_time, parent.state, parent.state_details)  # frozen: shared
        estimate = parent.cost.get("estimate")
        return [
            Job(
                id=new_job_id(),
                spec=parent.spec,
                site=parent.site,
                state=parent.state,
                state_details=parent.state_details,
                owner=parent.owner,
                array_parent=parent.id,
                array_index=index,
                submit_time=parent.submit_time,
                history=[entry],
                folder=os.path.join(parent.folder, f"task-{index}"),
                cost={"estimate": estimate, "actual": None},
                private_env=parent.private_env,
            )
            for index in indices
        ]

    def _check_array_size(self, array: Any, count: int | None = None) -> None:
        """Refuse (400) an array of more than :attr:`max_array_size` tasks, before any task is made."""
        if array is None or isinstance(array, bool) or not isinstance(array, str | int):
            return  # absent, or malformed: JobSpec.from_dict says what is wrong with it
        if count is None:
            try:
                count = array_task_count(str(array))
            except ValueError:
                return
        limit = self.max_array_size
        if count > limit:
            message = (
                f"the array {str(array)!r} has {count:,} tasks, more than the limit of {limit:,} "
                f"(max_array_size); split it into smaller arrays, or raise SwmApp.max_array_size"
            )
            raise ValidationError(message, [{"field": "array", "message": f"at most {limit} tasks (max_array_size)"}])

    async def submit(self, request: dict[str, Any] | JobSpec, *, owner: str = "") -> Job:
        """Validate, store durably, and queue one job (or array). Returns the job once committed."""
        return (await self.submit_many([request], owner=owner))[0]

    async def submit_once(self, key: str, body: Any, *, owner: str = "") -> tuple[list[Job], bool]:
        """Submit ``body`` (one request, or a list of them) unless it was already submitted with ``key``.

        Returns the jobs and whether they come from an earlier submission with the same key and the
        same body (made within :data:`IDEMPOTENCY_WINDOW`): a retried request never makes a second
        job. Raises :class:`IdempotencyKeyReused` (422) if the key was used for another body, and
        :class:`ValidationError` (400) for a malformed key. The key is stored with the jobs, in the
        same transaction. Keys are one namespace per server (clients send random UUIDs): the
        answer to another body names no job.
        """
        if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ValidationError(
                "the Idempotency-Key header must be 1 to 200 visible ASCII characters (a UUID is a good choice)",
                [{"field": "Idempotency-Key", "message": "1 to 200 visible ASCII characters"}],
            )
        fingerprint = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8", "surrogatepass")
        ).hexdigest()
        while key in self._keys_in_flight:  # the same key is being submitted right now: wait for it
            await asyncio.shield(self._keys_in_flight[key])
        earlier = self._require_store().idempotency_record(key, time.time() - IDEMPOTENCY_WINDOW)
        if earlier is not None:
            # Another user's key (on a hub) is refused like another body: it never shows their jobs.
            if earlier.fingerprint != fingerprint or earlier.owner != owner:
                raise IdempotencyKeyReused(
                    f"the Idempotency-Key {key!r} was used for a different request in the last 24 hours; "
                    "use a new key (a new UUID) for each new submission, the same one only to retry it",
                    [{"field": "Idempotency-Key", "message": "already used for another request"}],
                )
            return [self.get(job_id) for job_id in earlier.job_ids], True
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._keys_in_flight[key] = done
        try:
            requests = body if isinstance(body, list) else [body]
            return await self.submit_many(requests, owner=owner, idempotency=(key, fingerprint)), False
        finally:
            del self._keys_in_flight[key]
            done.set_result(None)

    async def submit_many(
        self,
        requests: Iterable[dict[str, Any] | JobSpec],
        *,
        owner: str = "",
        idempotency: tuple[str, str] | None = None,
    ) -> list[Job]:
        """Submit several jobs in one transaction: all are stored, or none (the first error is raised).

        ``idempotency``: the ``(key, fingerprint)`` of the request, stored with the jobs (see
        :meth:`submit_once`).
        """
        store = self._require_store()
        requests = list(requests)
        if len(requests) == 1:
            prepared = [self.prepare(requests[0], owner=owner, with_tasks=False)[0]]
        else:
            prepared = []
            errors: list[dict[str, str]] = []
            for i, request in enumerate(requests):
                try:
                    prepared.append(self.prepare(request, owner=owner, with_tasks=False)[0])
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
        pending = _count_pending(prepared)
        self._check_queue_limits(pending)
        record = None
        if idempotency is not None:
            ids = tuple(job.id for job in prepared)
            record = IdempotencyRecord(owner, idempotency[0], idempotency[1], ids, time.time())
        for key, count in pending.items():  # counted as queued until they are in the indexes
            self._pending_in_flight[key] = self._pending_in_flight.get(key, 0) + count
        try:
            if sum(pending.values()) - len(prepared) > STORE_AT_ONCE:
                with bulk_work(keeps_objects=True):  # its tasks stay in memory until they end
                    await self._store_in_batches(store, prepared, record)
            else:
                await self._store_at_once(store, prepared, record)
        except StoreFull as exc:
            raise StoreFull(exc.message + "; the submission was not stored: send it again once there is space") from exc
        finally:
            for key, count in pending.items():
                self._pending_in_flight[key] -= count
                if not self._pending_in_flight[key]:
                    del self._pending_in_flight[key]
        return prepared

    async def _store_at_once(self, store: JobStore, jobs: list[Job], record: IdempotencyRecord | None) -> None:
        """Store a submission (with its arrays' tasks) in one transaction, shared with the submissions
        made in the same loop turn; return once it is committed."""
        everything: list[Job] = []
        for job in jobs:
            everything.append(job)
            if job.is_array_parent and job.spec.array is not None:
                tasks = self._make_tasks(job, job.spec.array.indices)
                everything.extend(tasks)
                self._array_counts[job.id] = {job.state: len(tasks)}
        # Group commit: submissions that arrive in the same loop turn (concurrent API clients)
        # share one transaction. Each caller still returns only after its jobs are committed.
        # When nothing else is ready to run in this turn, no one could join: commit at once.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inserts.append((everything, done, record))
        if len(self._inserts) == 1:
            if _nothing_else_ready():
                self._commit_inserts(store)
            else:
                asyncio.get_running_loop().call_soon(self._commit_inserts, store)
        try:
            await done
        except BaseException:
            for job in jobs:
                if job.id not in self.jobs:
                    self._array_counts.pop(job.id, None)
            raise

    async def _store_in_batches(self, store: JobStore, jobs: list[Job], record: IdempotencyRecord | None) -> None:
        """Store a submission with many array tasks in several transactions, letting other requests run
        between them, then take its jobs into the manager's indexes (in slices too).

        The jobs are stored first, marked incomplete (see :meth:`JobStore.start_build`), then the
        tasks in batches, then the mark is removed with the idempotency key and the events: a crash
        or a failure in between leaves nothing that runs (what was stored is discarded). Until this
        returns, actions on these jobs are refused (409).
        """
        build_id = jobs[0].id
        ids = [job.id for job in jobs]
        self._building.update(ids)
        pacer = Pacer()
        tasks: list[Job] = []
        try:
            store.start_build(build_id, jobs)
            for parent in jobs:
                if parent.is_array_parent and parent.spec.array is not None:
                    async for indices in pacer.each_batch(parent.spec.array.indices):
                        _still_open(self.store, store)
                        batch = self._make_tasks(parent, indices)
                        store.insert_tasks(batch)
                        tasks.extend(batch)
                    await pacer.rest()
            _still_open(self.store, store)
            events = store.finish_build(build_id, jobs, [record] if record else [], keep_keys=IDEMPOTENCY_WINDOW)
        except BaseException:
            self._building.difference_update(ids)
            if self._running:
                self._spawn(self._discard_build(build_id))
            raise
        at = 0
        try:
            for job in jobs:
                if job.is_array_parent:
                    self._array_counts[job.id] = {job.state: 0}
                self._take_in(job)
            self._publish(events)
            while at < len(tasks):  # the tasks are stored: from now on, even a cancelled request takes them in
                size = pacer.next_size(0, 0)
                started = time.monotonic()
                for task in tasks[at : at + size]:
                    self._take_in(task)
                    counts = self._array_counts[task.array_parent or ""]
                    counts[task.state] = counts.get(task.state, 0) + 1
                at += size
                pacer.next_size(size, time.monotonic() - started)
                self._wake.set()
                if at < len(tasks):
                    await pacer.rest()
        finally:
            for task in tasks[at:]:
                self._take_in(task)
                counts = self._array_counts[task.array_parent or ""]
                counts[task.state] = counts.get(task.state, 0) + 1
            self._building.difference_update(ids)
            self._wake.set()

    async def _discard_build(self, build_id: str) -> None:
        """Delete what a submission that failed stored, a batch at a time; retried while the store is
        full (a server stopped before it is done discards the rest when it opens the store again)."""
        pacer = Pacer()
        while self._running and self.store is not None:
            size = pacer.next_size(0, 0)
            started = time.monotonic()
            try:
                if not self.store.discard_build_step(build_id, size):
                    return
            except StoreFull:
                await asyncio.sleep(STORE_RETRY_SECONDS)
            else:
                pacer.next_size(size, time.monotonic() - started)
                await pacer.rest()

    def _take_in(self, job: Job) -> None:
        """Keep a newly stored job in memory and in the indexes."""
        self.jobs[job.id] = job
        self._published[job.id] = len(job.history)
        self._index(job)

    def _check_queue_limits(self, new: dict[tuple[str, str], int]) -> None:
        """Raise :class:`LimitExceeded` if ``new`` jobs (counted by :func:`_count_pending`) would take an
        owner over ``max_queued_per_user`` (all sites together, or a site's own limit). Jobs still being
        committed count as queued.
        """
        if not self.max_queued_per_user and not any(limit for _, limit in self._site_user_limits.values()):
            return
        queued = dict(self._pending)
        for key, count in self._pending_in_flight.items():
            queued[key] = queued.get(key, 0) + count
        limit = self.max_queued_per_user
        for owner in {owner for owner, _ in new} if limit else ():
            now = sum(count for (who, _), count in queued.items() if who == owner)
            adding = sum(count for (who, _), count in new.items() if who == owner)
            if now + adding > limit:
                raise LimitExceeded(
                    f"{owner or 'this user'} has {now} jobs queued or held and max_queued_per_user is {limit}: "
                    f"{adding} more cannot be accepted; wait for some to start, or cancel some",
                    [{"field": "", "message": f"max_queued_per_user {limit}, queued now {now}, submitted {adding}"}],
                )
        for (owner, site), adding in new.items():
            site_limit = self._site_user_limits.get(site, (0, 0))[1]
            now = queued.get((owner, site), 0)
            if site_limit and now + adding > site_limit:
                raise LimitExceeded(
                    f"{owner or 'this user'} has {now} jobs queued or held on {site} and that site's "
                    f"max_queued_per_user is {site_limit}: {adding} more cannot be accepted; wait for some to "
                    "start, or cancel some",
                    [
                        {
                            "field": "site",
                            "message": f"max_queued_per_user {site_limit}, queued now {now}, submitted {adding}",
                        }
                    ],
                )

    def _commit_inserts(self, store: JobStore) -> None:
        """Store every submission queued in this loop turn in one transaction, then answer them."""
        batch, self._inserts = self._inserts, []
        jobs = [job for group, _, _ in batch for job in group]
        keys = [record for _, _, record in batch if record is not None]
        try:
            events = store.insert_jobs(jobs, keys, keep_keys=IDEMPOTENCY_WINDOW)
        except Exception as exc:
            for _, done, _ in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for job in jobs:
            self._take_in(job)
        self._publish(events)
        if any(job.state is JobState.QUEUED for job in jobs):
            self._wake.set()
        for _, done, _ in batch:
            if not done.done():
                done.set_result(None)

    def submit_with(
        self,
        request: dict[str, Any],
        *,
        owner: str,
        extras: dict[str, dict[str, Any]],
        also: Callable[[Any, Job], list[tuple[str, dict[str, Any]]]],
        after: str | None = None,
    ) -> Job:
        """Validate and store one job like :meth:`submit`, at once and in one transaction with ``also(db)``
        (a schedule's run record: see :mod:`.schedule_runner`); ``extras`` are added to its spec, and
        with ``after`` the job waits for that job to end (``afterany``).

        Synchronous: nothing else runs between the caller's checks and the commit. Raises what
        :meth:`prepare` raises, :class:`LimitExceeded`, :class:`StoreFull`, or what ``also`` raises;
        then nothing is stored.
        """
        store = self._require_store()
        jobs = self.prepare(request, owner=owner)
        spec = replace_spec_extras(jobs[0].spec, extras, after)
        for job in jobs:
            job.spec = spec
        self._check_queue_limits(_count_pending(jobs[:1]))
        parent = jobs[0]
        events = store.insert_jobs(jobs, also=lambda db: also(db, parent))
        if parent.is_array_parent:
            self._array_counts[parent.id] = {parent.state: len(jobs) - 1}
        for job in jobs:
            self._take_in(job)
        self._publish(events)
        self._wake.set()
        return parent

    async def submit_script(self, script: str, overrides: dict[str, Any] | None = None, *, owner: str = "") -> Job:
        """Submit a script whose ``#SWM`` lines give the spec; ``overrides`` win over those lines."""
        request = dict(overrides or {})
        request["script"] = script
        return await self.submit(request, owner=owner)

    def dry_run(self, request: dict[str, Any], *, owner: str = "") -> dict[str, Any]:
        """Validate a request of ``owner`` (checked as a submission of theirs would be: a ``run_as_owner`` site
        needs their account) and return what would be submitted and its cost estimate; store nothing."""
        job = self.prepare(request, owner=owner, with_tasks=False)[0]  # an array's tasks are counted, not made
        data = job.to_dict()
        data.pop("id", None)
        tasks = len(job.spec.array.indices) if job.spec.array is not None else 0
        return {"job": data, "cost_estimate": job.cost.get("estimate"), "tasks": tasks}

    # -- reads -------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job with that id (or a unique prefix). Raises :class:`JobNotFound`."""
        job = self.jobs.get(job_id)
        if job is not None:
            return job
        return self._require_store().get(job_id)

    def list_jobs(self, query: JobQuery) -> JobPage:
        """A page of jobs from the store (pending writes are flushed first, if the store has space)."""
        self._flush(retry_now=True)
        return self._require_store().query(query)

    async def query_jobs(self, query: JobQuery) -> JobPage:
        """:meth:`list_jobs` read in a worker thread, with a connection of its own: however many jobs
        match, the event loop goes on serving other requests meanwhile."""
        self._flush(retry_now=True)
        return await asyncio.to_thread(self._require_store().query_in_thread, query)

    def events_after(self, last_id: int) -> list[dict[str, Any]]:
        """Stored events after ``last_id`` (for clients that reconnect)."""
        self._flush(retry_now=True)
        return self._require_store().events_after(last_id)

    def first_event_id(self) -> int:
        """The id of the oldest stored event still kept (older ones were deleted by retention); 0 if none."""
        return self._require_store().first_event_id()

    def last_event_id(self) -> int:
        """The id of the newest stored event."""
        self._flush(retry_now=True)
        return self._require_store().last_event_id()

    def subscribe(self, on_overflow: Callable[[], None] | None = None) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving every event from now on; give it back with :meth:`unsubscribe`.

        The queue holds at most :attr:`event_queue_size` events. A subscriber that falls further
        behind gets no more events: it is unsubscribed and ``on_overflow()`` is called (soon after,
        from the event loop), so that it can tell its client to catch up from the store
        (:meth:`events_after`) instead of silently missing events.
        """
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max(1, self.event_queue_size))
        self._subscribers[queue] = on_overflow
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending events to ``queue``."""
        self._subscribers.pop(queue, None)

    @property
    def subscriber_count(self) -> int:
        """How many event subscribers (events websockets) are being sent events."""
        return len(self._subscribers)

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
        """Bytes of the job's stdout or stderr from ``offset`` (live while the job runs).

        Empty while the file does not exist. Raises :class:`~.job_files.UnsafeJobFile` (403) if the
        job replaced it with a symbolic link or something other than a regular file.
        """
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
        return await asyncio.to_thread(read_job_file, job.folder, stream, offset, limit)

    def list_files(self, job_id: str) -> list[dict[str, Any]]:
        """Regular files in the job folder (paths relative to it), without the manager's own
        bookkeeping; symbolic links (and what they lead to) are not listed.
        """
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
                try:
                    info = full.lstat()
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    out.append({"path": str(full.relative_to(root)), "size": info.st_size, "mtime": info.st_mtime})
        return out

    async def open_file(self, job_id: str, path: str) -> BinaryIO:
        """Open a regular file of the job folder for reading, following no symbolic link.

        Raises :class:`PathNotAllowed` (400) for a path leaving the folder, :class:`JobNotFound`
        (404) if there is no such file, :class:`~.job_files.UnsafeJobFile` (403) for a link or a
        file that is not a regular file.
        """
        job = self.get(job_id)
        parts = job_path_parts(path)
        missing = JobNotFound(f"the job has no file {path!r}; list them with GET /jobs/{job.id}/files")
        if any(part.startswith(BOOKKEEPING_PREFIX) for part in parts):
            raise missing
        try:
            return await asyncio.to_thread(open_job_file, job.folder, path)
        except (FileNotFoundError, NotADirectoryError):
            raise missing from None

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
        python = gate.python
        if python:
            info["python"] = python  # the interpreter of notebook jobs and Executor calls on this site
        try:
            described = await gate.describe()
        except Exception as exc:
            info["health_message"] = redact_text(f"{type(exc).__name__}: {exc}")
            return info
        info.update({k: v for k, v in described.items() if k not in ("name", "counts")})
        if isinstance(info.get("health_message"), str):
            info["health_message"] = redact_text(info["health_message"])
        if name not in self._ready_sites:
            info["healthy"] = False
            info["health_message"] = self.site_health.get(name) or "starting"
        return info

    # -- user actions ------------------------------------------------------------------------------
    #
    # Each action is checked against the one table (states.ACTIONS) before anything changes. What
    # needs no site (hold or cancel a queued job, release or cancel a job held here) is done at once;
    # the rest is recorded as the job's wish (``wanted``, stored before the request returns) and
    # carried out by the reconciler with the gate (reconcile.py), which retries while the site fails
    # and records the outcome in the job's history.

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job (an array: all its live tasks); returns once the wish is stored.

        Raises :class:`InvalidTransition` (409) for a job that ended, :class:`SiteUnavailable` (503)
        when the site must act and its gate did not load.
        """
        return await self._act(job_id, Action.CANCEL, wait=False)

    async def hold(self, job_id: str) -> Job:
        """Keep a queued job from starting, or hold a waiting one in the site's queue (if the site can)."""
        return await self._act(job_id, Action.HOLD)

    async def release(self, job_id: str) -> Job:
        """Let a held job be scheduled again (or released in the site's queue, where it was held)."""
        return await self._act(job_id, Action.RELEASE)

    async def requeue(self, job_id: str) -> Job:
        """Run a job again: a finished, failed or canceled job goes back to the queue; a waiting or
        running one is stopped on its site first. Its folder keeps the files of the previous run.
        """
        return await self._act(job_id, Action.REQUEUE)

    async def _act(self, job_id: str, action: Action, *, wait: bool = True) -> Job:
        """:meth:`_act_checked`, with full garbage collections held while it walks an array's tasks."""
        if not self.get(job_id).is_array_parent:
            return await self._act_checked(job_id, action, wait=wait)
        with bulk_work(keeps_objects=False):
            return await self._act_checked(job_id, action, wait=wait)

    async def _act_checked(self, job_id: str, action: Action, *, wait: bool = True) -> Job:
        """Check ``action`` for the job (an array: each task), then do it or record it as a wish.

        With ``wait``, give the reconciler up to :data:`ACTION_WAIT` seconds to carry the wishes out
        before returning (a wish still pending shows in ``job.wanted``).
        """
        job = self.get(job_id)
        if job.id in self._building or job.array_parent in self._building:
            raise InvalidTransition(
                f"job {job.id} is still being submitted; try again once its submission is answered",
                [{"field": "state", "message": "still being submitted"}],
            )
        # An array's tasks are checked and changed a slice at a time, letting other requests run in
        # between; each slice's changes are stored before the next begins. What changed meanwhile
        # is checked again when its turn comes.
        pacer = Pacer()
        if job.is_array_parent:
            targets = await self._array_tasks_paced(job, pacer, live_only=action is not Action.REQUEUE)
        else:
            targets = [job]
        legal = [t for t in targets if t.state in ACTIONS[action]]
        if not legal:
            check_action(job.state, action)
            raise InvalidTransition(
                f"no task of array {job.id} can be {action.value}ed now",
                [
                    {
                        "field": "state",
                        "message": f"{action.value} is allowed from: " + ", ".join(s.value for s in ACTIONS[action]),
                    }
                ],
            )
        for target in legal:
            if target.wanted == Action.CANCEL.value and action is not Action.CANCEL:
                raise InvalidTransition(f"job {target.id} is being canceled; it cannot be {action.value}ed")
            if not self._at_once(target, action) and target.site not in self.gates:
                raise SiteUnavailable(self.gate_errors.get(target.site) or f"no site {target.site!r} is configured")
            await pacer.pause()
        wishes: list[Job] = []
        for target in legal:
            if target.state not in ACTIONS[action] or (
                target.wanted == Action.CANCEL.value and action is not Action.CANCEL
            ):
                continue  # it changed while other requests ran
            if self._at_once(target, action):
                self._do_at_once(target, action)
            else:
                target.wanted = action.value
                self._mark(target)
                wishes.append(target)
            if pacer.due(share=0.25):  # the rest of a slice: storing what it changed (and its events)
                self._refresh_parent(job)
                self._flush_action(action.value)
                await pacer.rest()
        self._refresh_parent(job)
        self._flush_action(action.value)  # the wish is durable before the request returns
        self._wake.set()
        carrying = [self._carry_out(target) for target in wishes]
        if wait and carrying:
            await asyncio.wait(carrying, timeout=ACTION_WAIT)
            self._flush()
        return job

    def _at_once(self, job: Job, action: Action) -> bool:
        """True if ``action`` on ``job`` needs no site: it is queued here (and not being handed over),
        or held here (not in the site's queue), and the action only moves it between those.
        """
        if job.id in self._launching:
            return False
        if job.state is JobState.QUEUED:
            return action in (Action.HOLD, Action.CANCEL)
        if job.state is JobState.HELD and not job.held_on_site:
            return action in (Action.RELEASE, Action.CANCEL)
        return False

    def _do_at_once(self, job: Job, action: Action) -> None:
        """Carry out an action for which :meth:`_at_once` is True."""
        new = check_action(job.state, action)
        job.wanted = None
        self._set_state(job, new, f"{_DONE[action]} by the user")
        if new is JobState.CANCELED:
            job.end_time = time.time()

    def _carry_out(self, job: Job) -> asyncio.Task[None]:
        """The reconciler's task carrying out ``job.wanted`` (started if none runs for that job)."""
        task = self._carrying.get(job.id)
        if task is not None:
            return task
        task = asyncio.create_task(self._carry_out_wish(job), name=f"swm-wish-{job.id}")
        self._carrying[job.id] = task
        self._ops.add(task)

        def done(_: asyncio.Task[None]) -> None:
            self._ops.discard(task)
            if self._carrying.get(job.id) is task:
                del self._carrying[job.id]
            if self._running and job.wanted and not task.cancelled():
                self._carry_out(job)  # a wish that came as the last one was finished

        task.add_done_callback(done)
        return task

    @staticmethod
    def _reset_for_run(job: Job) -> None:
        job.exit_code = None
        job.signal = None
        job.native_id = None
        job.start_time = None
        job.end_time = None
        job.wanted = None
        job.gate_data = {}
        job.launching = job.finalizing = job.held_on_site = False
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
            if changed and job.start_time and not job.is_array_parent:
                end = job.end_time or time.time()
                self._usage.add(job.owner, job.spec.resources.cpus * max(0.0, end - job.start_time), end)
            self._finished(job)

    def _index(self, job: Job) -> None:
        """Keep the queue, active and dependents indexes in step with ``job.state``."""
        job_id = job.id
        key = self._queue_keys.pop(job_id, None)
        if key is not None:
            _remove_sorted(self._queue, key)
            owner_queue = self._owner_queues.get(job.owner)
            if owner_queue is not None:
                _remove_sorted(owner_queue, key)
                if not owner_queue:
                    del self._owner_queues[job.owner]
        pending = self._pending_of.pop(job_id, None)
        if pending is not None:
            self._pending[pending] -= 1
            if not self._pending[pending]:
                del self._pending[pending]
        if job.state in (JobState.QUEUED, JobState.HELD) and not job.is_array_parent and self.jobs.get(job_id) is job:
            pending = (job.owner, job.site)
            self._pending_of[job_id] = pending
            self._pending[pending] = self._pending.get(pending, 0) + 1
        self._active.pop(job_id, None)
        self._held_on_site.pop(job_id, None)
        self._dependents.pop(job_id, None)
        if job.state is JobState.QUEUED and self.jobs.get(job_id) is job:
            key = priority_key(job)
            bisect.insort(self._queue, key)
            bisect.insort(self._owner_queues.setdefault(job.owner, []), key)
            self._queue_keys[job_id] = key
            if job.spec.depends_on:
                self._dependents[job_id] = job
        elif job.state in ACTIVE_STATES:
            self._active[job_id] = job
        elif job.state is JobState.HELD and job.held_on_site:
            self._held_on_site[job_id] = job

    def _mark(self, job: Job) -> None:
        self._dirty[job.id] = job

    def _finished(self, job: Job) -> None:
        for future in self._waiters.pop(job.id, []):
            if not future.done():
                future.set_result(job)

    def _flush(self, *, retry_now: bool = False) -> bool:
        """Write every changed job in one transaction, then publish their events.

        Returns True when everything is written. A write the store refuses for want of space keeps
        every change (and its events) for the next try, made at most every
        :data:`STORE_RETRY_SECONDS` (at once with ``retry_now``); :attr:`store_error` says why.
        """
        if self.store is None:
            return True
        if self._dirty_parents:
            self._update_parents()
        if not self._dirty:
            return True
        if self.store_error is not None and not retry_now and time.monotonic() < self._store_retry_at:
            return False
        jobs = list(self._dirty.values())
        steps: dict[str, list[HistoryEntry]] = {}
        for job in jobs:
            published = self._published.setdefault(job.id, max(len(job.history) - 1, 0))
            steps[job.id] = job.history[published:]
        try:
            events = self.store.update_jobs(jobs, events=True, steps=steps)
        except StoreFull as exc:
            if self.store_error is None:
                self.log.error(
                    "swm: %s; %d changed jobs are kept and written when there is space", exc.message, len(jobs)
                )
            self.store_error = exc.message
            self._store_retry_at = time.monotonic() + STORE_RETRY_SECONDS
            return False
        if self.store_error is not None:
            self.log.warning("swm: the job store can be written again; %d changed jobs written", len(jobs))
            self.store_error = None
        self._dirty.clear()  # nothing runs during the (synchronous) write: these are exactly the jobs written
        for job in jobs:
            self._published[job.id] = len(job.history)
        for job in jobs:
            if job.state.final and job.id in self.jobs and not self._busy(job):
                del self.jobs[job.id]
                self._published.pop(job.id, None)
        self._publish(events)
        return True

    def _flush_action(self, action: str) -> None:
        """Write a user action's changes at once; raises :class:`StoreFull` (507) if there is no space.

        The change is kept either way and written as soon as the store has space again.
        """
        if not self._flush(retry_now=True):
            raise StoreFull(
                f"{self.store_error}; the {action} is kept and stored as soon as there is space again",
                [{"field": "", "message": "the job store's file system is full"}],
            )

    def _busy(self, job: Job) -> bool:
        return job.wanted is not None

    def _publish(self, events: list[dict[str, Any]]) -> None:
        """Hand stored events to every subscriber; one whose queue is full is dropped and told so."""
        for event in events:
            for queue in list(self._subscribers):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    on_overflow = self._subscribers.pop(queue, None)
                    self.log.info("swm: an events subscriber fell %d events behind: told to resync", queue.qsize())
                    if on_overflow is not None:
                        asyncio.get_running_loop().call_soon(on_overflow)

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
            if self.store_error is not None:
                timeout = max(self._store_retry_at - time.monotonic(), FLUSH_WINDOW)
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
        if self.store_error is not None and self._dirty:
            return  # nothing starts while changes wait for space in the store (its intent could not be kept)
        if self._dependencies_changed and self._dependents:
            self._dependencies_changed = False
            for job, reason in failed_dependencies(list(self._dependents.values()), self._dependency_info):
                self._set_state(job, JobState.ERROR, reason)
                job.end_time = time.time()
                self._refresh_parent(job)
        if not self._queue:
            return
        capacity = self._capacity()

        def queued(keys: list[tuple[int, int, int, str]]) -> Iterable[Job]:
            for key in keys:  # read only: the plan is carried out after this pass
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
        users = UserPolicy(
            fair_share=self.scheduling_policy == "fairshare",
            usage=self._usage.now(time.time(), active) if self.scheduling_policy == "fairshare" else {},
            max_running_per_user=self.max_running_per_user,
        )
        decision = plan(
            {owner: queued(keys) for owner, keys in self._owner_queues.items()}
            if users.fair_share
            else queued(self._queue),
            active,
            capacity,
            self._dependency_info,
            throttle,
            users,
        )
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
            job.launching = True
            by_site.setdefault(job.site, []).append((job, native))
        if not by_site:
            return
        # The intent to launch is durable before any job reaches its site: a crash in between
        # makes the restarted manager check the site instead of starting the job a second time.
        # A site that recognises a job it already has needs no such record (one write fewer).
        if any(not self.gates[site].idempotent_submit for site in by_site) and not self._flush(retry_now=True):
            for batch in by_site.values():  # the intent could not be stored: start none of them now
                for job, _ in batch:
                    self._launching.discard(job.id)
                    job.launching = False
                    self._set_state(job, JobState.QUEUED, "waiting for space in the job store")
            return
        for site, batch in by_site.items():
            # A gate that hands many jobs over in one exchange gets them together (arrays sent
            # whole excepted); to others each job goes on its own, and is seen started on its own.
            together = self.gates[site].batch_submit
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
                    cpus=gate.slot_cpus,
                    native_dependencies=gate.native_dependencies,
                    native_arrays=gate.native_arrays,
                    max_running_per_user=self._site_user_limits.get(name, (0, 0))[0],
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


def _refused_options(cls: type[Gate], site: str, options: dict[str, Any]) -> str:
    """Why a gate refused its options, naming each option at fault and what it takes, never the value."""
    traits = cls.class_traits(config=True)
    bad: list[str] = []
    for key, value in options.items():
        try:
            cls(site_name=site, **{key: value})
        except TraitError as exc:
            said = str(exc)  # a gate's own check names the option; traitlets' message shows the value
            if str(value) and str(value) not in said and repr(value) not in said:
                bad.append(said)
            else:
                trait = traits.get(key)
                bad.append(f"{key} must be {trait.info()}" if trait is not None else key)
        except Exception:  # noqa: BLE001, S112 - only TraitError says that this option is at fault
            continue
    if not bad:
        return f"the options {', '.join(sorted(options))} do not fit together (values are not shown)"
    return "; ".join(bad) + " (values are not shown)"


def _remove_sorted(keys: list[tuple[int, int, int, str]], key: tuple[int, int, int, str]) -> None:
    """Remove ``key`` from the sorted list ``keys`` if it is there."""
    at = bisect.bisect_left(keys, key)
    if at < len(keys) and keys[at] == key:
        del keys[at]


def _count_pending(jobs: Iterable[Job]) -> dict[tuple[str, str], int]:
    """How many jobs each (owner, site) submits with ``jobs`` (jobs without their tasks): an array
    counts its tasks, not its parent."""
    counts: dict[tuple[str, str], int] = {}
    for job in jobs:
        count = len(job.spec.array.indices) if job.is_array_parent and job.spec.array is not None else 1
        counts[job.owner, job.site] = counts.get((job.owner, job.site), 0) + count
    return counts


def _user_limits_of(site: str, options: dict[str, Any]) -> tuple[int, int]:
    """Take the per-user limits out of a site's options: (max_running_per_user, max_queued_per_user).

    Raises ``ValueError`` (the site is then misconfigured) unless each is a whole number >= 0.
    """
    limits = []
    for name in ("max_running_per_user", "max_queued_per_user"):
        value = options.pop(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} of site {site!r} must be a whole number >= 0 (0: no limit), not {value!r}")
        limits.append(value)
    return limits[0], limits[1]


def _still_open(current: JobStore | None, store: JobStore) -> None:
    """Raise :class:`SiteUnavailable` (503) if the manager stopped (closed ``store``) meanwhile."""
    if current is not store:
        raise SiteUnavailable("the server is stopping: the submission was not stored; send it again once it runs")


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
