"""The contract between the core and its gates: :class:`Gate` (what a site driver implements) and
:class:`GateStatus` (what it answers). All methods are async; no Jupyter imports.

The core owns this module; gates subclass :class:`Gate` (also importable as
``swm_jupyter.gates.base.Gate``). See ``docs/architecture.md`` for the rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bool, Int, Unicode
from traitlets.config import LoggingConfigurable

from .accounts import OwnerAccount, OwnerAccounts
from .job_files import read_job_file
from .model import Job
from .states import JobState


@dataclass
class GateStatus:
    """What a site says about one job. ``state`` is one of W, T, R, F, E, C.

    ``exit_code`` is set for F (and for E/C when known); times are epoch seconds.
    ``gate_data`` (if not None) replaces the job's stored gate data.
    """

    state: JobState
    details: str = ""
    exit_code: int | None = None
    signal: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    native_id: str | None = None
    gate_data: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Gate(LoggingConfigurable):
    """Drives one site. Subclasses override the async methods below.

    Lifecycle: made by the manager with ``parent=manager`` and the site's options as traits;
    ``setup()`` when the manager starts, ``cleanup()`` when it stops. Every method may be called
    again after a restart with jobs that a previous process submitted: all per-job knowledge must
    be in ``job.gate_data`` (returned through :class:`GateStatus`) or in files of the job folder.

    **What a gate must implement:** :meth:`submit`, :meth:`poll`, :meth:`cancel`. Everything else
    has a default that is right for a site that shares the server's file system and has no queue
    of its own.

    **Capabilities are declared, never probed:** the class attributes below (``native_arrays``,
    ``native_dependencies``, ``idempotent_submit``, ``batch_submit``, ``stages_files``,
    ``collect_on_cancel``, ``supports_run_as_owner``, ``private_env``) and the methods :meth:`next_poll_delay` and
    :attr:`slot_cpus` say what the site can do; the core reads them and nothing else.

    **Job fields:** a gate reads a job's spec and the core's fields (``state``, ``native_id``,
    ``launching``, ...) but changes none of them: it answers with :class:`GateStatus`, whose
    ``gate_data`` becomes the job's (the only field a gate owns).
    """

    kind = "base"

    site_name = Unicode("", help="The name of the site this gate drives (set by the manager).")
    max_running = Int(0, help="The most jobs of this site running at once; 0 means no limit.").tag(config=True)
    description = Unicode("", help="A sentence shown to users about this site.").tag(config=True)
    run_as_owner = Bool(
        False,
        help="Run each job under its owner's OS account, with job folders in that account's data root "
        "(see OwnerAccounts); only gates that support it accept True (default False: every job runs as "
        "the server's own account).",
    ).tag(config=True)

    #: True if the site runs a whole array from one submission (:meth:`submit_array`).
    native_arrays = False
    #: True if the site orders jobs itself: the manager then hands over a dependent job as soon as
    #: every job it depends on has a native id on this same site, passing ``dependencies``.
    native_dependencies = False
    #: True if handing the site a job it already has starts nothing (the site recognises the job).
    #: The manager then need not store its intent to launch before each launch: after a crash it
    #: may simply launch again.
    idempotent_submit = False
    #: True if :meth:`submit_many` hands many jobs to the site in one exchange: the manager then
    #: gives it the jobs that start together in one call (others get one :meth:`submit` per job,
    #: each job seen started as soon as its own call returns).
    batch_submit = False
    #: True if the job runs in a folder of its own on the site (not the local job folder): when the
    #: job ends, the manager moves it to T (transferring) and calls :meth:`stage_out` and
    #: :meth:`release_resources`. False: the job wrote into the local job folder itself; the manager
    #: only checks that the declared output files exist and stores the final state at once.
    stages_files = True
    #: True if a running job that is canceled has its folder brought back (:meth:`stage_out`) once stopped,
    #: before its site resources are released, as for a job that ended (what it saved is not lost).
    collect_on_cancel = False
    #: True if this kind of gate can run jobs under their owner's OS account (``run_as_owner``).
    supports_run_as_owner = False
    #: True when this site runs each job under its owner's OS account (configured and supported):
    #: the core then checks owners at submission and makes job folders the owner's.
    #: A job then cannot read what the server's account can (its token): see ``SwmApp.allow_shared_account``.
    runs_as_owner = False
    #: True if the gate gives a job's ``private_env`` to its process without writing it into a
    #: script, spec or log (see :attr:`~swm_jupyter.core.model.Job.private_env`). Other gates refuse
    #: a job that has one.
    private_env = False

    #: The Python that runs notebook jobs and Executor calls on the site, shown in the site's
    #: description; None: the server's own (gates with a ``python`` option override it).
    python: str | None = None

    #: Called by the gate (no arguments) when it knows that some job changed, to poll sooner.
    notify: Callable[[], None] = staticmethod(lambda: None)
    #: Called by the gate (no arguments) for the site's jobs that are not final, as the core holds
    #: them (queued and held ones too); set by the manager. A gate made alone sees none.
    live_jobs: Callable[[], list[Job]] = staticmethod(lambda: [])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Maps owners to OS accounts when :attr:`runs_as_owner`; None otherwise.
        self.accounts: OwnerAccounts | None = None
        if self.run_as_owner:
            if not self.supports_run_as_owner:
                raise ValueError(f"the {self.kind} gate cannot run jobs under their owner's account (run_as_owner)")
            self.accounts = OwnerAccounts(parent=self)
            self.runs_as_owner = True

    def owner_account(self, job: Job) -> OwnerAccount | None:
        """The OS account ``job`` runs as on this site, or None when the site runs every job as itself.

        Raises :class:`~swm_jupyter.core.errors.ValidationError` when the owner has no usable account.
        """
        if self.accounts is None:
            return None
        return self.accounts.resolve(job.owner, self.site_name)

    async def setup(self) -> None:
        """Open connections and sessions. Called once when the manager starts."""

    async def cleanup(self) -> None:
        """Close what :meth:`setup` opened. Jobs keep running on the site."""

    def validate(self, job: Job) -> list[dict[str, str]]:
        """Check a job against this site at submission; return ``{"field", "message"}`` errors.

        Must not do I/O that can block; the default accepts everything.
        """
        return []

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Start ``job`` on the site and return its first status (with ``native_id``).

        ``dependencies`` holds ``(kind, native_id)`` pairs (kind ``afterok``/``afterany``), given
        only to gates with :attr:`native_dependencies`. Raise
        :class:`~swm_jupyter.core.errors.GateError` when the site refuses the job.
        """
        raise NotImplementedError

    async def submit_many(
        self, jobs: Sequence[tuple[Job, Sequence[tuple[str, str]]]]
    ) -> list[GateStatus | BaseException]:
        """Start several jobs, each with its ``dependencies`` as in :meth:`submit`.

        Returns one answer per job, in order: its first status, or the exception that refused it
        (one refused job does not stop the others). The default calls :meth:`submit` for each,
        concurrently. A gate that can hand many jobs over in one exchange overrides it and declares
        :attr:`batch_submit`.
        """
        return await asyncio.gather(*(self.submit(job, deps) for job, deps in jobs), return_exceptions=True)

    async def submit_array(
        self, parent: Job, tasks: list[Job], dependencies: Sequence[tuple[str, str]] = ()
    ) -> dict[str, GateStatus]:
        """Start every task of an array in one submission (gates with :attr:`native_arrays`).

        Returns the first status of each task, keyed by task job id (each with its native id).
        """
        raise NotImplementedError

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """Return the status of many jobs in one batched call, keyed by job id.

        A job missing from the answer is taken as unchanged, except right after a restart for a
        job whose launch was interrupted: missing then means "it never reached the site", and the
        manager queues it again. A gate must therefore answer for every job it has started.
        """
        raise NotImplementedError

    async def cancel(self, job: Job) -> None:
        """Stop ``job`` on the site (the whole process tree). Idempotent."""
        raise NotImplementedError

    async def hold(self, job: Job) -> bool:
        """Hold a job waiting in the site's own queue; return False if the site cannot."""
        return False

    async def release(self, job: Job) -> bool:
        """Release a job held with :meth:`hold`; return False if the site cannot."""
        return False

    async def reset_run(self, job: Job) -> None:
        """Forget what the site recorded of a job's previous run before it runs again (requeue)."""

    async def stage_out(self, job: Job) -> None:
        """Bring outputs, stdout and stderr back to the job folder (default: nothing).

        Called once the job has ended, on gates that declare :attr:`stages_files`. (Inputs are
        the gate's own business: it moves them in :meth:`submit`, before the job starts.)
        """

    async def read_output(self, job: Job, stream: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Return up to ``limit`` bytes of ``stream`` (stdout or stderr) from ``offset``.

        The default reads the file in the local job folder (never through a symbolic link: see
        :mod:`swm_jupyter.core.job_files`).
        """
        return await asyncio.to_thread(read_job_file, job.folder, stream, offset, limit)

    async def release_resources(self, job: Job) -> None:
        """Give back what the job held on the site (VMs, ...) whatever happened. Idempotent."""

    def next_poll_delay(self) -> float | None:
        """Seconds the manager waits before the next :meth:`poll` of this site; None (the default):
        the manager's own ``poll_interval``. A gate may answer less while jobs are live and more
        while the site is idle. :attr:`notify` wakes the manager sooner in any case."""
        return None

    @property
    def slot_cpus(self) -> int | None:
        """The cpus the scheduler may hand this site at once (jobs running plus queued on the site),
        counted by each job's ``resources.cpus``; None (the default): no cpu limit, only
        :attr:`max_running` counts."""
        return None

    async def describe(self) -> dict[str, Any]:
        """What the site offers: ``{"kind", "healthy", "limits", "flavors", "images", ...}``."""
        return {"kind": self.kind, "healthy": True, "limits": {}, "flavors": [], "images": []}

    def estimate_cost(self, job: Job) -> float | None:
        """The price of ``job`` before it runs (price x nodes x walltime), or None if free/unknown."""
        return None
