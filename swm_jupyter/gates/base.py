"""The ``Gate`` contract every kind of site implements (all methods async, no Jupyter imports)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import Bool, Int, Unicode
from traitlets.config import LoggingConfigurable

from ..core.accounts import OwnerAccount, OwnerAccounts
from ..core.errors import PathNotAllowed
from ..core.job_files import read_job_file
from ..core.model import Job
from ..core.states import JobState


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

    #: Called by the gate (no arguments) when it knows that some job changed, to poll sooner.
    notify: Callable[[], None] = staticmethod(lambda: None)

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
        concurrently. A gate that can hand many jobs over in one exchange overrides it; the manager
        then gives it the jobs that start together in one call (other gates get one
        :meth:`submit` per job, each job seen started as soon as its own call returns).
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

    async def stage_in(self, job: Job) -> None:
        """Move the job's inputs to the site (the default: nothing, the folder is shared)."""

    async def stage_out(self, job: Job) -> None:
        """Bring outputs, stdout and stderr back to the job folder (default: nothing)."""

    async def read_output(self, job: Job, stream: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Return up to ``limit`` bytes of ``stream`` (stdout or stderr) from ``offset``.

        The default reads the file in the local job folder (never through a symbolic link: see
        :mod:`swm_jupyter.core.job_files`).
        """
        return await asyncio.to_thread(read_job_file, job.folder, stream, offset, limit)

    async def release_resources(self, job: Job) -> None:
        """Give back what the job held on the site (VMs, ...) whatever happened. Idempotent."""

    async def describe(self) -> dict[str, Any]:
        """What the site offers: ``{"kind", "healthy", "limits", "flavors", "images", ...}``."""
        return {"kind": self.kind, "healthy": True, "limits": {}, "flavors": [], "images": []}

    def estimate_cost(self, job: Job) -> float | None:
        """The price of ``job`` before it runs (price x nodes x walltime), or None if free/unknown."""
        return None


def safe_path(root: str | os.PathLike[str], user_path: str, *, must_exist: bool = False) -> Path:
    """Resolve ``user_path`` inside ``root`` and return it; raise :class:`PathNotAllowed` otherwise.

    Refuses absolute paths, ``..`` segments that leave ``root``, and symlinks that point outside.
    """
    if not user_path or "\x00" in user_path:
        raise PathNotAllowed(f"the path {user_path!r} is empty or has a NUL byte")
    if os.path.isabs(user_path):
        raise PathNotAllowed(f"the path {user_path!r} must be relative to the job folder")
    base = Path(root).resolve()
    target = (base / user_path).resolve()
    if target != base and base not in target.parents:
        raise PathNotAllowed(f"the path {user_path!r} leaves the job folder")
    if must_exist and not target.exists():
        raise PathNotAllowed(f"the path {user_path!r} does not exist")
    return target
