"""The ``local`` gate: jobs run on the Jupyter host, detached from the server process.

Jobs are handed to the local supervisor (:mod:`swm_jupyter.daemons.local_supervisor`), a small
process in its own session that outlives the server and, like a batch system, queues them and
starts each as soon as the host's cpus allow. The manager keeps that queue :attr:`queue_ahead`
cpus ahead, so the next job starts the moment one ends, without a round trip to the server.
Each job runs in a session of its own; the supervisor appends its pid and start time to the job's
status record (``.swm-status``) when it starts and its exit status when it ends, whether or not a
server is running then. After a restart, :meth:`LocalGate.poll` reads that record and checks the
pid, and hands the supervisor again any job that had not started (which it recognises), so
nothing is lost or run twice.

The supervisor's socket lives in a folder private to this user (:mod:`.local_runtime`), verified
before every connection, and the gate talks only to a supervisor of its own uid. The gate never
signals a process itself: cancel and walltime ask the supervisor, which kills only the processes
of jobs it started. The environment the supervisor gives jobs is the server's minus its secrets
(:mod:`swm_jupyter.core.job_env`).

With ``run_as_owner`` each job runs under its owner's OS account: the gate starts one supervisor
per account, through the exec prefix, and talks to each over a socket only that account and the
service can reach (:mod:`.local_owners`). The cpus of the site stay one pool for every account:
the scheduler hands the supervisors no more jobs than the site has cpus (``queue_ahead`` is 0), so
whatever each supervisor starts at once fits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bool, Float, Int, Unicode, default

from ..core.accounts import OwnerAccount
from ..core.errors import GateError, SiteUnavailable, ValidationError
from ..core.job_env import for_account, without_secrets
from ..core.job_files import read_job_text
from ..core.jsoncodec import parse, to_bytes
from ..core.launch import STDERR_FILE, STDOUT_FILE, job_argv, job_environment
from ..core.model import Job
from ..core.owned_folders import unlink_owned
from ..core.states import JobState
from ..core.tasks import stop_task
from ..core.units import format_walltime
from ..daemons.local_supervisor import LEGACY_DIR, PROTOCOL, read_job_record
from ..runners.notebook import DETAILS_FILE
from .base import Gate, GateStatus
from .local_owners import (
    default_owners_folder,
    log_tail,
    open_owner_folder,
    open_owners_folder,
    supervisor_command,
)
from .local_runtime import UnsafeFolder, default_folder, open_append, open_private_folder, peer_uid
from .process_tree import same_process
from .status_record import STATUS_FILE, StatusRecord

#: Seconds a job may be gone without an exit status before it is declared lost.
VANISH_GRACE = 3.0
#: Seconds the supervisor has to answer a request before the request fails.
REPLY_TIMEOUT = 30.0


@dataclass
class SupervisorLink:
    """The gate's connection to one supervisor: the service's own, or one OS account's (``run_as_owner``)."""

    socket_path: str
    account: OwnerAccount | None = None
    writer: asyncio.StreamWriter | None = None
    reader_task: asyncio.Task[None] | None = None
    #: Requests waiting for their answer, by (op, job id).
    replies: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def uid(self) -> int:
        """The uid the supervisor must run as."""
        return self.account.uid if self.account is not None else os.geteuid()

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        return self.writer is not None and not self.writer.is_closing()


def _meminfo_mb() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


class LocalGate(Gate):
    """Runs jobs as detached process groups on this host, never more cpus at once than it has."""

    kind = "local"
    stages_files = False
    batch_submit = True
    idempotent_submit = True  # the supervisor keeps one copy of a job, and .swm-status says it started
    supports_run_as_owner = True  # one supervisor per account (see the module docstring)
    private_env = True  # sent to the supervisor with the spawn request; lives only in the job's process

    cpus = Int(help="CPUs jobs may use in total. Default: the number of cores of this host.").tag(config=True)
    memory_mb = Int(help="Memory jobs may ask for, in MB. Default: this host's memory.").tag(config=True)
    grace_period = Float(5.0, help="Seconds between TERM and KILL when a job is canceled or over walltime.").tag(
        config=True
    )
    queue_ahead = Int(
        help="CPUs' worth of jobs handed to the local supervisor beyond what the host runs at once, "
        "so that the next job starts the moment one ends (they wait in state W, by priority, then "
        "submission). 0 hands a job over only when its cpus are free. Default: 4 x cpus; 0 with run_as_owner, "
        "which allows no other value (each account has its own supervisor: the site's cpus are counted by "
        "the scheduler alone)."
    ).tag(config=True)
    fast_python_start = Bool(
        True,
        help="Start Executor calls that use the site's default interpreter (no 'python' option) by forking a "
        "warm Python that has already imported cloudpickle, instead of a new interpreter each (about 3 ms "
        "instead of 40 ms of CPU per call; the job sees the same environment, folder, files, session and "
        "cgroup). False: always start a new interpreter. Default: True.",
    ).tag(config=True)
    supervisor_socket = Unicode(
        help="UNIX socket of the local supervisor that starts jobs. Default: one per job store, in "
        "$XDG_RUNTIME_DIR/swm-local, or <temp dir>/swm-local-<uid> (created with mode 0700; refused if "
        "it belongs to another user or has other modes). A socket given here must be in a folder of "
        "this user that no one else can write to."
    ).tag(config=True)
    owners_folder = Unicode(
        help="With run_as_owner: the folder of the per-account folders that hold each account's supervisor "
        "socket (<uid>, mode 0700, the account's). Made by the service with mode 0711; refused if another "
        "user owns it or may write to it. Default: <temp dir>/swm-local-<service uid>-owners."
    ).tag(config=True)

    python = Unicode(
        help="Python for notebook jobs and Executor calls: a path or command; Executor calls also accept a shell "
        "line that ends with one ('source venv/bin/activate && python'). Default: the server's own interpreter."
    ).tag(config=True)

    @default("python")
    def _default_python(self) -> str:
        return sys.executable

    @default("owners_folder")
    def _default_owners_folder(self) -> str:
        return default_owners_folder()

    @default("cpus")
    def _default_cpus(self) -> int:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    @default("queue_ahead")
    def _default_queue_ahead(self) -> int:
        return 0 if self.run_as_owner else 4 * self.cpus

    @default("memory_mb")
    def _default_memory(self) -> int:
        return _meminfo_mb()

    @default("supervisor_socket")
    def _default_socket(self) -> str:
        # The protocol version is in the name: a supervisor left running by an older swm-jupyter
        # keeps its own socket (and jobs) until it idles out, and is never spoken to wrongly.
        return os.path.join(default_folder(), f"{self._store_hash()}-v{PROTOCOL}.sock")

    def _store_hash(self) -> str:
        store = str(getattr(self.parent, "store_path", "") or os.getcwd())
        return hashlib.sha1(store.encode()).hexdigest()[:16]

    def _open_folder(self) -> int:
        """A descriptor of the socket's folder, checked to be this user's alone (see :mod:`.local_runtime`).

        The default folder is created (mode 0700) if missing. Raises :class:`SiteUnavailable` with
        the reason otherwise: the site is then unhealthy, and its jobs are not handed to anyone.
        """
        folder = os.path.dirname(os.path.abspath(self.supervisor_socket))
        is_default = self.supervisor_socket == self._default_socket()
        try:
            return open_private_folder(folder, create=is_default, exact=is_default)
        except UnsafeFolder as exc:
            raise SiteUnavailable(str(exc)) from None

    def _older_supervisor(self) -> str:
        """The socket of a supervisor of an older swm-jupyter still serving this store, or "".

        Only for the default socket, whose older names are known (``<hash>.sock`` for protocol 1,
        ``<hash>-v<N>.sock`` after).
        """
        suffix = f"-v{PROTOCOL}.sock"
        if self.supervisor_socket != self._default_socket() or not self.supervisor_socket.endswith(suffix):
            return ""
        stem = self.supervisor_socket[: -len(suffix)]
        olders = [f"{stem}.sock", *(f"{stem}-v{n}.sock" for n in range(2, PROTOCOL))]
        # Protocols up to 3 kept their sockets in <temp dir>/swm-local-<uid>, looked at only if it is ours.
        legacy = os.path.join(tempfile.gettempdir(), f"swm-local-{os.geteuid()}")
        if legacy != os.path.dirname(stem):
            try:
                os.close(open_private_folder(legacy, create=False, exact=True))
                olders += [os.path.join(legacy, f"{self._store_hash()}-v{n}.sock") for n in range(2, PROTOCOL)]
            except UnsafeFolder:
                pass
        for older in olders:
            if not os.path.exists(older):
                continue
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(older)
                return older  # it answers: it may still hold (and later start) jobs of this store
            except OSError:
                continue  # left behind by a supervisor that is gone
            finally:
                probe.close()
        return ""

    def __init__(self, **kwargs: Any) -> None:
        """Raises :class:`SiteUnavailable` if the supervisor's folder is not private to this user, and
        ValueError for ``queue_ahead`` with ``run_as_owner``."""
        super().__init__(**kwargs)
        if self.runs_as_owner and self.queue_ahead:
            raise ValueError(
                "queue_ahead must be 0 with run_as_owner: each account has its own supervisor, so only the "
                "scheduler can keep the site's jobs within its cpus; remove queue_ahead"
            )
        os.close(self._open_folder())
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._over_walltime: set[str] = set()
        # job id -> (exit code, end, error, signal); code None: it never started
        self._exits: dict[str, tuple[int | None, float, str, int | None]] = {}
        self._started: dict[str, tuple[int, float]] = {}
        self._walltimes: dict[str, tuple[Job, int]] = {}
        self._tracked: dict[str, SupervisorLink] = {}  # jobs a live supervisor connection reports on
        self._exit_reported: dict[str, asyncio.Event] = {}  # jobs being canceled, until their end is known
        self._vanished: dict[str, float] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._links: dict[int | None, SupervisorLink] = {}  # by the account's uid; None: the service's own

    @property
    def slot_cpus(self) -> int:
        """CPUs of the jobs the scheduler hands over at once: those running plus the queue ahead.

        The supervisor itself never runs jobs asking for more than :attr:`cpus` in total. With
        ``run_as_owner`` (no queue ahead) this is the site's whole limit, whatever the accounts.
        """
        return self.cpus + max(0, self.queue_ahead)

    # -- the supervisor connections -----------------------------------------------------------------

    async def setup(self) -> None:
        """Connect to the local supervisor, starting it if none runs.

        While a supervisor of an older swm-jupyter still serves this store (after an upgrade with
        jobs running or waiting), the site waits for it to finish: it would start the jobs waiting
        in its queue even if they were handed to the new one. The jobs it started are followed
        through the records it left (:func:`~swm_jupyter.daemons.local_supervisor.read_job_record`).

        With ``run_as_owner`` nothing is started here: each account's supervisor is started with
        the first request for one of its jobs; the owners' folder is checked.
        """
        if self.runs_as_owner:
            self._check_owners_folder()
            return
        older = self._older_supervisor()
        if older:
            raise GateError(
                f"the local supervisor of an older swm-jupyter still runs or holds jobs of this store ({older}); "
                "this site starts once it has finished them (it leaves 20 s after its last job)"
            )
        await self._connection(self._link(None))

    async def cleanup(self) -> None:
        """Disconnect from the supervisors; they and the jobs keep running."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for link in self._links.values():
            if link.reader_task is not None:
                failure = await stop_task(link.reader_task)
                if failure is not None:
                    self.log.debug("swm: the reader of a local supervisor had failed: %s", failure)
                link.reader_task = None
            if link.writer is not None:
                link.writer.close()
                link.writer = None

    def _link(self, account: OwnerAccount | None) -> SupervisorLink:
        """The link to the supervisor of ``account`` (None: the service's own)."""
        key = account.uid if account is not None else None
        link = self._links.get(key)
        if link is None:
            path = self.supervisor_socket
            if account is not None:
                path = os.path.join(self.owners_folder, str(account.uid), f"{self._store_hash()}-v{PROTOCOL}.sock")
            link = self._links[key] = SupervisorLink(path, account)
        return link

    def _link_for(self, job: Job) -> SupervisorLink:
        """The link to the supervisor that runs ``job`` (its owner's with ``run_as_owner``)."""
        try:
            return self._link(self.owner_account(job))
        except ValidationError as exc:  # the account went away after the job was accepted
            raise GateError(exc.message) from None

    def _check_owners_folder(self) -> None:
        """Raise :class:`SiteUnavailable` unless the owners' folder is the service's alone (made if missing)."""
        try:
            os.close(open_owners_folder(self.owners_folder))
        except UnsafeFolder as exc:
            raise SiteUnavailable(str(exc)) from None

    def _open_link_folder(self, link: SupervisorLink) -> int:
        """A descriptor of the folder of ``link``'s socket, checked (see :mod:`.local_owners`)."""
        if link.account is None:
            return self._open_folder()
        try:
            owners = open_owners_folder(self.owners_folder)
            try:
                return open_owner_folder(owners, link.account)
            finally:
                os.close(owners)
        except UnsafeFolder as exc:
            raise SiteUnavailable(str(exc)) from None

    async def _connection(self, link: SupervisorLink) -> asyncio.StreamWriter:
        writer = link.writer
        if writer is not None and not writer.is_closing():
            return writer
        async with link.lock:
            if link.writer is not None and not link.writer.is_closing():
                return link.writer
            os.close(self._open_link_folder(link))  # checked again: nothing is sent to a folder not ours alone
            try:
                reader, writer = await asyncio.open_unix_connection(link.socket_path)
            except OSError:
                process, log_path = self._start_supervisor(link)
                reader, writer = await self._wait_for_supervisor(link, process, log_path)
            self._check_peer(writer, link)
            # The server's environment without its secrets, once per connection: jobs get it plus
            # their SWM_* variables and their own env.
            base = {"op": "env", "id": "", "pool": self.site_name, "env": self.job_base_environment(link.account)}
            writer.write(to_bytes(base) + b"\n")
            link.writer = writer
            link.reader_task = asyncio.create_task(self._read_messages(reader, link))
            return writer

    def job_base_environment(self, account: OwnerAccount | None = None) -> dict[str, str]:
        """The environment local jobs start from: the server's, minus the secrets of
        :mod:`swm_jupyter.core.job_env` and of the manager's ``secret_env``; for a job of ``account``,
        with that account's ``HOME``, ``USER``, ``LOGNAME`` and ``SHELL``."""
        env = without_secrets(os.environ, getattr(self.parent, "secret_env", None) or ())
        if account is not None:
            env = for_account(env, pwd.getpwuid(account.uid))
        return env

    def _check_peer(self, writer: asyncio.StreamWriter, link: SupervisorLink) -> None:
        """Close ``writer`` and raise :class:`SiteUnavailable` unless a process of ``link``'s uid serves the socket."""
        uid = peer_uid(writer.get_extra_info("socket"))
        if uid != link.uid:
            writer.close()
            whose = f"{link.account.username}'s" if link.account is not None else "this server's user"
            raise SiteUnavailable(
                f"the local supervisor's socket {link.socket_path} is served by uid {uid}, not by {whose} "
                f"(uid {link.uid}): refusing to talk to it"
            )

    def _start_supervisor(self, link: SupervisorLink) -> tuple[subprocess.Popen[bytes], str]:
        """Start the supervisor of ``link`` (through the exec prefix for an account); return it and its log.

        The log is in the service's own folder: an account's supervisor writes to it through the
        descriptor it is given, and cannot reach it otherwise.
        """
        folder_fd = self._open_folder()
        name = os.path.basename(link.socket_path) + ".log"
        argv = [sys.executable, "-m", "swm_jupyter.daemons.local_supervisor", link.socket_path]
        if link.account is not None and self.accounts is not None:
            name = f"{link.account.username}-{name}"
            argv = supervisor_command(self.accounts, link.account, link.socket_path)
        try:
            log = os.fdopen(open_append(name, dir_fd=folder_fd), "ab")
        except OSError as exc:
            raise SiteUnavailable(f"the local supervisor's log cannot be opened: {exc.strerror or exc}") from None
        finally:
            os.close(folder_fd)
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                cwd="/" if link.account is not None else None,  # the service's folder may be closed to the account
            )
        except OSError as exc:
            raise GateError(f"the local supervisor could not be started ({argv[0]}): {exc.strerror or exc}") from None
        finally:
            log.close()
        return process, os.path.join(os.path.dirname(os.path.abspath(self.supervisor_socket)), name)

    async def _wait_for_supervisor(
        self, link: SupervisorLink, process: subprocess.Popen[bytes], log_path: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the supervisor just started; fail with its last words if it ends first."""
        deadline = time.monotonic() + 15
        whose = f" of {link.account.username}" if link.account is not None else ""
        while True:
            try:
                return await asyncio.open_unix_connection(link.socket_path)
            except OSError as exc:
                if process.poll() is not None:
                    said = log_tail(log_path)
                    raise GateError(
                        f"the local supervisor{whose} did not start (exit {process.returncode})"
                        + (f": {said}" if said else "")
                    ) from None
                if time.monotonic() > deadline:
                    raise GateError(f"the local supervisor{whose} did not start: {exc}") from None
                await asyncio.sleep(0.01)  # it listens some 50 ms after it was started

    async def _read_messages(self, reader: asyncio.StreamReader, link: SupervisorLink | None = None) -> None:
        """Take in a supervisor's news and answers until it closes (``link``: whose; default the site's own)."""
        link = link if link is not None else self._link(None)
        try:
            while (line := await reader.readline()).endswith(b"\n"):  # a cut last line: it dropped us
                self._on_message(parse(line), link)
        finally:
            writer, link.writer = link.writer, None
            if writer is not None:
                writer.close()  # the next request opens a new connection
            for job_id in [j for j, by in self._tracked.items() if by is link]:
                del self._tracked[job_id]  # a new connection must learn each job's state again
            for future in link.replies.values():
                if not future.done():
                    future.set_exception(GateError("the local supervisor went away"))
                    future.exception()  # its waiters get it; no "never retrieved" warning if none is left
            link.replies.clear()
            self.notify()

    def _on_message(self, message: dict[str, Any], link: SupervisorLink) -> None:
        if "reply" in message:
            if message.get("op") == "spawn":
                self._spawn_answered(str(message["reply"]), message)
                if not message.get("queued"):
                    self.notify()
                return
            future = link.replies.pop((str(message.get("op")), str(message["reply"])), None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if "started" in message:
            job_id = str(message["started"])
            self._started[job_id] = (int(message["pid"]), float(message["at"]))
            armed = self._walltimes.pop(job_id, None)
            if armed is not None:
                self._arm_walltime(armed[0], int(message["pid"]), float(message["at"]), armed[1])
        elif "exit" in message:
            job_id = str(message["exit"])
            signum = message.get("signal")
            self._exits[job_id] = (
                int(message["rc"]),
                float(message["end"]),
                str(message.get("error", "")),
                int(signum) if signum is not None else None,
            )
            self._walltimes.pop(job_id, None)
            reported = self._exit_reported.get(job_id)
            if reported is not None:
                reported.set()
        self.notify()

    async def _ask(
        self, request: dict[str, Any], link: SupervisorLink, timeout: float = REPLY_TIMEOUT
    ) -> dict[str, Any]:
        """Send one request to the supervisor of ``link`` and wait for its answer."""
        writer = await self._connection(link)
        key = (str(request["op"]), str(request["id"]))
        future = link.replies.get(key)
        if future is None or future.done():
            future = link.replies[key] = asyncio.get_running_loop().create_future()
        writer.write(to_bytes(request) + b"\n")
        await writer.drain()
        # A timer, not asyncio.wait_for: one of these per job, and wait_for costs a task each time.
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future, request["op"])
        try:
            return await asyncio.shield(future)  # others may wait for the same answer
        finally:
            timer.cancel()

    def validate(self, job: Job) -> list[dict[str, str]]:
        """Refuse what this host cannot give: more cpus or memory than it has, several nodes, GPUs."""
        errors = []
        res = job.spec.resources
        if res.cpus > self.cpus:
            errors.append(
                {
                    "field": "resources.cpus",
                    "message": f"asks for {res.cpus} cpus but site {self.site_name!r} has {self.cpus}",
                }
            )
        if self.memory_mb and res.memory_mb and res.memory_mb > self.memory_mb:
            errors.append(
                {
                    "field": "resources.memory",
                    "message": f"asks for {res.memory_mb} MB but site {self.site_name!r} has {self.memory_mb} MB",
                }
            )
        if res.nodes > 1:
            errors.append({"field": "resources.nodes", "message": "the local site is one node; use a Slurm site"})
        if res.gpus:
            errors.append({"field": "resources.gpus", "message": "the local site has no GPUs to hand out"})
        if job.spec.workdir and not os.path.isabs(job.spec.workdir):
            errors.append(
                {"field": "workdir", "message": "give an absolute folder, or leave it out to use the job folder"}
            )
        return errors

    def _workdir(self, job: Job) -> str:
        return job.spec.workdir or job.folder

    def _spawn_request(self, job: Job) -> dict[str, Any]:
        folder = job.folder
        workdir = self._workdir(job)
        argv = job_argv(job, self.python if len(self.python.split()) == 1 else None)
        if job.spec.command is None:
            argv = [a if a not in ("job.sh", "job.json") else os.path.join(folder, a) for a in argv]
        return {
            "op": "spawn",
            "id": job.id,
            "pool": self.site_name,
            "capacity": self.cpus,
            "cpus": job.spec.resources.cpus,
            "order": [-job.spec.priority, job.seq, job.array_index or 0],
            "argv": argv,
            "cwd": workdir,
            "env": {**job_environment(job, workdir), **job.private_env},  # private_env: process only, never on disk
            "stdout": os.path.join(folder, STDOUT_FILE),
            "stderr": os.path.join(folder, STDERR_FILE),
            "status_file": os.path.join(folder, STATUS_FILE),
            "fast_start": self.fast_python_start,
        }

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Hand one job to the supervisor (see :meth:`submit_many`); it is then waiting (W)."""
        answer = (await self.submit_many([(job, dependencies)]))[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def submit_many(
        self, jobs: Sequence[tuple[Job, Sequence[tuple[str, str]]]]
    ) -> list[GateStatus | BaseException]:
        """Hand several jobs to the supervisor in one write; each is then waiting (state W).

        The supervisor's answer to each (started, queued for cpus, or why it cannot start) comes
        like its other news (:meth:`_spawn_answered`) and is taken in at the next poll: no task,
        future or timer per job.
        """
        by_link: dict[int, tuple[SupervisorLink, list[Job]]] = {}
        answers: list[GateStatus | BaseException] = []
        for job, _ in jobs:
            try:
                link = self._link_for(job)
            except GateError as exc:
                answers.append(exc)
                continue
            by_link.setdefault(id(link), (link, []))[1].append(job)
            answers.append(GateStatus(JobState.WAITING, details=job.state_details))
        failed: dict[str, BaseException] = {}
        for link, group in by_link.values():
            try:
                writer = await self._connection(link)
            except (GateError, SiteUnavailable) as exc:
                if link.account is None:
                    raise  # the site's own supervisor: nothing can start
                # One account's trouble (its folder, its supervisor) fails its jobs with the reason; the
                # site stays up for the others (SiteUnavailable would rest the whole site).
                refused = GateError(exc.message)
                failed.update((job.id, refused) for job in group)
                continue
            lines: list[bytes] = []
            for job in group:
                self._exits.pop(job.id, None)
                self._started.pop(job.id, None)
                if job.spec.resources.walltime:
                    self._walltimes[job.id] = (job, job.spec.resources.walltime)
                self._tracked[job.id] = link
                lines.append(to_bytes(self._spawn_request(job)))
            writer.write(b"\n".join(lines) + b"\n")
            await writer.drain()
        return [failed.get(job.id, answer) for (job, _), answer in zip(jobs, answers, strict=True)]

    def _spawn_answered(self, job_id: str, answer: dict[str, Any]) -> None:
        """Take in the supervisor's answer to a spawn request (reported at the next poll)."""
        if answer.get("recorded"):
            self._tracked.pop(job_id, None)  # started before, by another supervisor: its files tell how it ends
        if "error" in answer:
            self._walltimes.pop(job_id, None)
            self._exits[job_id] = (None, time.time(), str(answer["error"]), None)
        elif not answer.get("queued"):
            self._started[job_id] = (int(answer["pid"]), float(answer.get("started") or time.time()))

    async def reset_run(self, job: Job) -> None:
        """A requeued job runs again in the same folder: remove the records of its last run.

        Done when the job is requeued, never when it is launched: a launch repeated after a crash
        must find the records of its own run, which tell the supervisor the job already started.
        """
        account = self.owner_account(job)
        if account is not None:  # the owner's folder: nothing followed that the owner may have put there
            for name in (STATUS_FILE, DETAILS_FILE):
                await asyncio.to_thread(unlink_owned, job.folder, name, account)
        else:
            for name in (STATUS_FILE, DETAILS_FILE, *(os.path.join(LEGACY_DIR, n) for n in ("pid", "rc", "details"))):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    os.unlink(os.path.join(job.folder, name))
        self._exits.pop(job.id, None)
        self._started.pop(job.id, None)

    def _running(self, job: Job, pid: int, started: float | None) -> GateStatus:
        """The status of a job seen started; arms its walltime if nothing has yet."""
        # File times come from a coarser clock than time.time(): never before the submission.
        started = max(float(started) if started else time.time(), job.submit_time or 0.0)
        armed = self._walltimes.pop(job.id, None)
        if armed is not None and job.id not in self._timers:
            self._arm_walltime(job, pid, started, armed[1])
        return GateStatus(
            JobState.RUNNING, native_id=str(pid), start_time=started, gate_data={"pid": pid, "started": started}
        )

    def _arm_walltime(self, job: Job, pid: int, started: float, walltime: int) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, started + walltime - time.time())
        self._timers[job.id] = loop.call_later(delay, lambda: loop.create_task(self._kill_for_walltime(job)))

    async def _kill_for_walltime(self, job: Job) -> None:
        self._over_walltime.add(job.id)
        with contextlib.suppress(GateError):  # the supervisor is gone: so is the job (its end is seen by poll)
            await self._ask(self._kill_request(job), self._link_for(job))
        self.notify()

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """Each job's status from the supervisor's exit reports, its status files and its pid."""
        out: dict[str, GateStatus] = {}
        now = time.time()
        for job in jobs:
            status = self._status(job)
            if status is None:
                continue
            out[job.id] = status
            walltime = job.spec.resources.walltime
            started = job.gate_data.get("started") or job.start_time
            if (
                status.state is JobState.RUNNING
                and walltime
                and job.id not in self._timers
                and started
                and now - started > walltime
            ):
                self._over_walltime.add(job.id)
                self._timers[job.id] = asyncio.get_running_loop().call_soon(lambda: None)
                asyncio.get_running_loop().create_task(self._kill_for_walltime(job))
        return out

    def _status(self, job: Job) -> GateStatus | None:
        reported = self._exits.pop(job.id, None)
        if reported is not None:
            rc, end, error, signum = reported
            started = self._started.pop(job.id, None)
            if error or rc is None:
                self._forget(job.id)
                return GateStatus(JobState.ERROR, exit_code=rc, end_time=end, details=error)
            if started is None:
                return self._ended(job, rc, end, signum=signum)
            return self._ended(job, rc, end, started[1], native_id=str(started[0]), signum=signum)
        started = self._started.pop(job.id, None)
        if started is not None:
            return self._running(job, *started)
        link = self._tracked.get(job.id)
        if link is not None and link.connected:
            return None  # the live supervisor connection tells us when this job starts or ends
        record = read_job_record(job.folder)
        if record is not None and record.ended:
            return self._ended_as_recorded(job, record)
        pid = _recorded_pid(record) or int(job.native_id or 0)
        if pid and same_process(pid, job.gate_data.get("started")):
            if job.native_id == str(pid):
                return GateStatus(JobState.RUNNING, native_id=str(pid))
            return self._running(job, pid, record.start if record else None)  # it started while we were away
        record = read_job_record(job.folder)  # the job may have ended between the two looks
        if record is not None and record.ended:
            return self._ended_as_recorded(job, record)
        if not pid:
            if job.state is JobState.WAITING and not job.launching:
                self._hand_over_again(job)
            return None  # not started yet (or a launch interrupted by a restart: the manager decides)
        first_seen = self._vanished.setdefault(job.id, time.monotonic())
        if time.monotonic() - first_seen < VANISH_GRACE:
            return GateStatus(JobState.RUNNING, native_id=str(pid))  # its exit status is being written
        self._vanished.pop(job.id, None)
        self._forget(job.id)
        if job.id in self._over_walltime:
            self._over_walltime.discard(job.id)
            return GateStatus(JobState.ERROR, details=self._walltime_text(job), end_time=time.time())
        return GateStatus(
            JobState.ERROR,
            end_time=time.time(),
            details="the job's process ended without recording an exit status (its supervisor was killed?)",
        )

    def _hand_over_again(self, job: Job) -> None:
        """A job waiting for cpus that this connection does not know: send it again.

        After a restart of the server or of the supervisor the job is either still in the
        supervisor's queue (which then keeps it once) or was lost with a killed supervisor (which
        then starts it: it had never run, since it left no pid file).
        """
        try:
            link = self._link_for(job)
        except GateError:
            return  # its account is gone: the job waits (cancel it, or make the account again)
        self._tracked[job.id] = link
        if job.spec.resources.walltime:
            self._walltimes.setdefault(job.id, (job, job.spec.resources.walltime))

        async def send() -> None:  # answered like any spawn (_spawn_answered)
            try:
                writer = await self._connection(link)  # a new supervisor, if the last one was killed
                writer.write(to_bytes(self._spawn_request(job)) + b"\n")
            except Exception:
                self._tracked.pop(job.id, None)  # tried again at the next poll

        task = asyncio.get_running_loop().create_task(send())
        self._sends.add(task)  # keep a reference until it is done
        task.add_done_callback(self._sends.discard)

    def _ended_as_recorded(self, job: Job, record: StatusRecord) -> GateStatus:
        # A signal is reported only when the record says one killed the job (never read into a code).
        rc = record.exit_code if record.exit_code is not None else 128 + (record.signal or 0)
        return self._ended(
            job, rc, record.end or time.time(), record.start, native_id=record.run_id or None, signum=record.signal
        )

    def _walltime_text(self, job: Job) -> str:
        return f"killed: walltime of {format_walltime(job.spec.resources.walltime or 0)} exceeded"

    def _ended(
        self,
        job: Job,
        rc: int,
        end: float,
        started: float | None = None,
        native_id: str | None = None,
        signum: int | None = None,
    ) -> GateStatus:
        """The final status of a run that ended with ``rc`` (``native_id``: its pid, if known;
        ``signum``: the signal that killed it, if one did)."""
        self._forget(job.id)
        self._vanished.pop(job.id, None)
        started = job.start_time or (max(started, job.submit_time or 0.0) if started else None)
        end = max(end, started or 0.0)  # file times are coarser than the clock
        sig = signum
        if job.id in self._over_walltime:
            self._over_walltime.discard(job.id)
            return GateStatus(
                JobState.ERROR,
                details=self._walltime_text(job),
                exit_code=rc,
                signal=sig,
                start_time=started,
                end_time=end,
                native_id=native_id,
            )
        details = f"exit code {rc}" if rc else ""
        # The notebook runner's own account of a failure
        reported = (read_job_text(job.folder, DETAILS_FILE) or "").strip() if rc and job.spec.notebook else ""
        if reported:
            details = f"{details}: {reported}" if details else reported
        return GateStatus(
            JobState.FINISHED,
            native_id=native_id,
            exit_code=rc,
            signal=sig,
            start_time=started,
            end_time=end,
            details=details,
        )

    def _forget(self, job_id: str) -> None:
        self._tracked.pop(job_id, None)
        self._walltimes.pop(job_id, None)
        timer = self._timers.pop(job_id, None)
        if timer is not None:
            timer.cancel()

    async def cancel(self, job: Job) -> None:
        """Take a waiting job out of the supervisor's queue, or have the supervisor kill a running
        one: TERM to every process of the job, KILL after the grace period."""
        reported = self._exit_reported.setdefault(job.id, asyncio.Event())
        try:
            link = self._link_for(job)
            answer = await self._ask(self._kill_request(job), link)
            if answer.get("child") and link.connected and job.id not in self._exits:
                # Wait for the supervisor to record the end of this run, so that nothing of it
                # (its exit report, its status record) can be taken for a later run of the same job.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reported.wait(), self.grace_period + 2.0)
        finally:
            self._exit_reported.pop(job.id, None)
        self._forget(job.id)

    def _kill_request(self, job: Job) -> dict[str, Any]:
        """The request that has the supervisor cancel ``job`` (see :mod:`~swm_jupyter.daemons.local_supervisor`)."""
        return {
            "op": "cancel",
            "id": job.id,
            "grace": self.grace_period,
            "status_file": os.path.join(job.folder, STATUS_FILE),
        }

    async def hold(self, job: Job) -> bool:
        """Keep a job that waits in the supervisor's queue from starting."""
        if job.native_id:
            return False
        return bool((await self._ask({"op": "hold", "id": job.id}, self._link_for(job))).get("done"))

    async def release(self, job: Job) -> bool:
        """Put a held job back at the end of the supervisor's queue."""
        return bool((await self._ask({"op": "release", "id": job.id}, self._link_for(job))).get("done"))

    async def describe(self) -> dict[str, Any]:
        """This host: its cpus and memory; unhealthy if the supervisor's folder is not ours alone."""
        try:
            os.close(self._open_folder())
            if self.runs_as_owner:
                self._check_owners_folder()
            problem = ""
        except SiteUnavailable as exc:
            problem = exc.message
        return {
            "kind": self.kind,
            "healthy": not problem,
            "health_message": problem,
            "limits": {"cpus": self.cpus, "memory": self.memory_mb, "nodes": 1, "gpus": 0, "walltime": None},
            "flavors": [],
            "images": [],
            "host": os.uname().nodename,
        }

    def next_poll_delay(self) -> float:
        """The supervisor reports exits at once; this poll only catches what it could not report."""
        return 1.0


def _expire(future: asyncio.Future[dict[str, Any]], op: str) -> None:
    if not future.done():
        future.set_exception(GateError(f"the local supervisor did not answer a {op!r} request in time"))
        future.exception()  # its waiters get it; no "never retrieved" warning if none is left


def _recorded_pid(record: StatusRecord | None) -> int:
    """The pid in a status record's start line, or 0 if it has none."""
    return int(record.run_id) if record is not None and record.run_id.isdigit() else 0
