"""The ``local`` gate: jobs run on the Jupyter host, detached from the server process.

Jobs are started by the local supervisor (:mod:`swm_jupyter.gates.local_supervisor`), a small
process in its own session that outlives the server: each job runs in a session of its own, its
pid is in ``.swm/pid`` before :meth:`LocalGate.submit` returns, and its exit status lands in
``.swm/rc`` when it ends, whether or not a server is running then. After a restart,
:meth:`LocalGate.poll` reads those files and checks the pid, so nothing is lost or run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitlets import Float, Int, Unicode, default

from ..core.errors import GateError
from ..core.launch import STDERR_FILE, STDOUT_FILE, job_argv, job_environment
from ..core.model import Job
from ..core.states import JobState
from ..core.units import format_walltime
from .base import Gate, GateStatus

STATUS_DIR = ".swm"
#: Seconds a job may be gone without an exit status before it is declared lost.
VANISH_GRACE = 3.0


def _meminfo_mb() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _boot_time() -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("btime"):
                return float(line.split()[1])
    return 0.0


_BOOT_TIME = _boot_time()
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_start_epoch(pid: int) -> float | None:
    """When ``pid`` started (epoch seconds, from /proc), or None if there is no such process.

    A zombie counts: it has ended but its parent (the supervisor) has not recorded that yet.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return _BOOT_TIME + int(fields[19]) / _CLOCK_TICKS


def _is_our_process(pid: int, started: float | None) -> bool:
    """True if ``pid`` runs and started when our job did (not a later process reusing the pid)."""
    begun = _process_start_epoch(pid)
    if begun is None:
        return False
    return started is None or abs(begun - started) < 2.0


class LocalGate(Gate):
    """Runs jobs as detached process groups on this host, never more cpus at once than it has."""

    kind = "local"
    stages_files = False

    cpus = Int(help="CPUs jobs may use in total. Default: the number of cores of this host.").tag(config=True)
    memory_mb = Int(help="Memory jobs may ask for, in MB. Default: this host's memory.").tag(config=True)
    grace_period = Float(5.0, help="Seconds between TERM and KILL when a job is canceled or over walltime.").tag(
        config=True
    )
    supervisor_socket = Unicode(
        help="UNIX socket of the local supervisor that starts jobs. Default: one per job store, in a "
        "folder of the temp dir that only this user can open."
    ).tag(config=True)

    @default("cpus")
    def _default_cpus(self) -> int:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    @default("memory_mb")
    def _default_memory(self) -> int:
        return _meminfo_mb()

    @default("supervisor_socket")
    def _default_socket(self) -> str:
        store = str(getattr(self.parent, "store_path", "") or os.getcwd())
        folder = Path(tempfile.gettempdir()) / f"swm-local-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        return str(folder / (hashlib.sha1(store.encode()).hexdigest()[:16] + ".sock"))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._over_walltime: set[str] = set()
        self._exits: dict[str, tuple[int, float]] = {}
        self._vanished: dict[str, float] = {}
        self._starting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._ids = itertools.count()

    @property
    def slot_cpus(self) -> int:
        """The scheduler never runs jobs asking for more cpus in total than this."""
        return self.cpus

    # -- the supervisor connection ------------------------------------------------------------------

    async def setup(self) -> None:
        """Connect to the local supervisor, starting it if none runs."""
        await self._connection()

    async def cleanup(self) -> None:
        """Disconnect from the supervisor; it and the jobs keep running."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _connection(self) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.open_unix_connection(self.supervisor_socket)
            except OSError:
                self._start_supervisor()
                reader, writer = await self._wait_for_supervisor()
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_messages(reader))
            return writer

    def _start_supervisor(self) -> None:
        log = open(self.supervisor_socket + ".log", "ab")
        try:
            subprocess.Popen(
                [sys.executable, "-m", "swm_jupyter.gates.local_supervisor", self.supervisor_socket],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            log.close()

    async def _wait_for_supervisor(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        deadline = time.monotonic() + 15
        while True:
            try:
                return await asyncio.open_unix_connection(self.supervisor_socket)
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise GateError(f"the local supervisor did not start: {exc}") from None
                await asyncio.sleep(0.05)

    async def _read_messages(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if "reply" in message:
                    future = self._starting.pop(str(message["reply"]), None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif "exit" in message:
                    self._exits[str(message["exit"])] = (int(message["rc"]), float(message["end"]))
                    self.notify()
        finally:
            self._writer = None
            for future in self._starting.values():
                if not future.done():
                    future.set_exception(GateError("the local supervisor went away"))
            self._starting.clear()
            self.notify()

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

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Have the supervisor start the job in its own session; return it running, pid as native id."""
        folder = Path(job.folder)
        status_dir = folder / STATUS_DIR
        status_dir.mkdir(exist_ok=True)
        workdir = self._workdir(job)
        env = dict(os.environ)
        env.update(job_environment(job, workdir))
        argv = job_argv(job)
        if job.spec.command is None:
            argv = [a if a not in ("job.sh", "job.json") else str(folder / a) for a in argv]
        writer = await self._connection()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._starting[job.id] = future
        request = {
            "op": "spawn",
            "id": job.id,
            "argv": argv,
            "cwd": workdir,
            "env": env,
            "stdout": str(folder / STDOUT_FILE),
            "stderr": str(folder / STDERR_FILE),
            "status_dir": str(status_dir),
        }
        writer.write((json.dumps(request) + "\n").encode())
        await writer.drain()
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise GateError(answer["error"])
        pid, started = int(answer["pid"]), float(answer["started"])
        if job.spec.resources.walltime:
            self._arm_walltime(job, pid, started, job.spec.resources.walltime)
        return GateStatus(
            JobState.RUNNING, native_id=str(pid), start_time=started, gate_data={"pid": pid, "started": started}
        )

    def _arm_walltime(self, job: Job, pid: int, started: float, walltime: int) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, started + walltime - time.time())
        self._timers[job.id] = loop.call_later(
            delay, lambda: loop.create_task(self._kill_for_walltime(job.id, pid, started))
        )

    async def _kill_for_walltime(self, job_id: str, pid: int, started: float) -> None:
        self._over_walltime.add(job_id)
        await self._terminate(pid, started)
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
                asyncio.get_running_loop().create_task(
                    self._kill_for_walltime(job.id, int(job.native_id or 0), started)
                )
        return out

    def _status(self, job: Job) -> GateStatus | None:
        reported = self._exits.pop(job.id, None)
        if reported is not None:
            return self._ended(job, *reported)
        status_dir = Path(job.folder) / STATUS_DIR
        rc_path = status_dir / "rc"
        rc_text = _read(rc_path)
        if rc_text:
            return self._ended(job, int(rc_text), rc_path.stat().st_mtime)
        pid_text = _read(status_dir / "pid")
        pid = int(pid_text) if pid_text else int(job.native_id or 0)
        if pid and _is_our_process(pid, job.gate_data.get("started")):
            return GateStatus(JobState.RUNNING, native_id=str(pid))
        rc_text = _read(rc_path)  # the job may have ended between the two reads
        if rc_text:
            return self._ended(job, int(rc_text), rc_path.stat().st_mtime)
        if not pid:
            return None  # never started (a launch interrupted by a restart)
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

    def _walltime_text(self, job: Job) -> str:
        return f"killed: walltime of {format_walltime(job.spec.resources.walltime or 0)} exceeded"

    def _ended(self, job: Job, rc: int, end: float) -> GateStatus:
        self._forget(job.id)
        self._vanished.pop(job.id, None)
        end = max(end, job.start_time or 0.0)  # file times are coarser than the clock
        sig = rc - 128 if rc > 128 else None
        if job.id in self._over_walltime:
            self._over_walltime.discard(job.id)
            return GateStatus(JobState.ERROR, details=self._walltime_text(job), exit_code=rc, signal=sig, end_time=end)
        details = f"exit code {rc}" if rc else ""
        reported = _read(Path(job.folder) / STATUS_DIR / "details")  # a runner's own account, if any
        if reported:
            details = f"{details}: {reported}" if details else reported
        return GateStatus(JobState.FINISHED, exit_code=rc, signal=sig, end_time=end, details=details)

    def _forget(self, job_id: str) -> None:
        timer = self._timers.pop(job_id, None)
        if timer is not None:
            timer.cancel()

    async def cancel(self, job: Job) -> None:
        """Send TERM to the job's whole process group, then KILL after the grace period."""
        pid = int(job.native_id or job.gate_data.get("pid") or 0)
        if not pid:
            pid_text = _read(Path(job.folder) / STATUS_DIR / "pid")
            pid = int(pid_text) if pid_text else 0
        if pid:
            await self._terminate(pid, job.gate_data.get("started"))
        self._forget(job.id)

    async def _terminate(self, pid: int, started: float | None) -> None:
        if not pid or not _is_our_process(pid, started):
            return  # that pid now belongs to another process (or none): never signal it
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + self.grace_period
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    async def describe(self) -> dict[str, Any]:
        """This host: its cpus and memory."""
        return {
            "kind": self.kind,
            "healthy": True,
            "health_message": "",
            "limits": {"cpus": self.cpus, "memory": self.memory_mb, "nodes": 1, "gpus": 0, "walltime": None},
            "flavors": [],
            "images": [],
            "host": os.uname().nodename,
        }

    def next_poll_delay(self) -> float:
        """The supervisor reports exits at once; this poll only catches what it could not report."""
        return 1.0


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, ValueError):
        return ""
