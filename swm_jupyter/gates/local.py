"""The ``local`` gate: jobs run on the Jupyter host, detached from the server process.

Each job runs in its own session under a tiny ``/bin/sh`` wrapper that writes the job's pid to
``.swm/pid`` before it starts and its exit status to ``.swm/rc`` when it ends (the files' mtimes are
the start and end times). The server process is not needed for a job to finish: after a restart,
:meth:`LocalGate.poll` reads those files and checks the pid, so nothing is lost or run twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
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
#: The wrapper: record our pid, run the job, record its exit status. POSIX sh, no extra process.
WRAPPER = 'echo $$ >"$1"; p=$1; r=$2; shift 2; "$@"; echo $? >"$r"'


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
    """When ``pid`` started (epoch seconds, from /proc), or None if no such process runs."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
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

    cpus = Int(help="CPUs jobs may use in total. Default: the number of cores of this host.").tag(config=True)
    memory_mb = Int(help="Memory jobs may ask for, in MB. Default: this host's memory.").tag(config=True)
    grace_period = Float(5.0, help="Seconds between TERM and KILL when a job is canceled or over walltime.").tag(
        config=True
    )
    shell = Unicode("/bin/sh", help="The POSIX shell that runs the small wrapper around each job.").tag(config=True)

    @default("cpus")
    def _default_cpus(self) -> int:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    @default("memory_mb")
    def _default_memory(self) -> int:
        return _meminfo_mb()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._over_walltime: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def slot_cpus(self) -> int:
        """The scheduler never runs jobs asking for more cpus in total than this."""
        return self.cpus

    stages_files = False

    async def setup(self) -> None:
        """Remember the loop (for exit watchers)."""
        self._loop = asyncio.get_running_loop()

    async def cleanup(self) -> None:
        """Stop watching children; the jobs themselves keep running."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        loop = self._loop
        for job_id, proc in list(self._children.items()):
            pidfd = getattr(proc, "_swm_pidfd", None)
            if pidfd is not None and loop is not None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
            self._children.pop(job_id, None)

    def validate(self, job: Job) -> list[dict[str, str]]:
        """Refuse what this host cannot give: more cpus or memory than it has, several nodes, GPUs."""
        errors = []
        res = job.spec.resources
        if res.cpus > self.cpus:
            errors.append({"field": "resources.cpus",
                           "message": f"asks for {res.cpus} cpus but site {self.site_name!r} has {self.cpus}"})
        if self.memory_mb and res.memory_mb and res.memory_mb > self.memory_mb:
            errors.append({"field": "resources.memory",
                           "message": f"asks for {res.memory_mb} MB but site {self.site_name!r} has {self.memory_mb} MB"})
        if res.nodes > 1:
            errors.append({"field": "resources.nodes", "message": "the local site is one node; use a Slurm site"})
        if res.gpus:
            errors.append({"field": "resources.gpus", "message": "the local site has no GPUs to hand out"})
        if job.spec.workdir and not os.path.isabs(job.spec.workdir):
            errors.append({"field": "workdir", "message": "give an absolute folder, or leave it out to use the job folder"})
        return errors

    def _workdir(self, job: Job) -> str:
        return job.spec.workdir or job.folder

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Start the job detached (own session) and return it running, with its pid as native id."""
        folder = Path(job.folder)
        status_dir = folder / STATUS_DIR
        status_dir.mkdir(exist_ok=True)
        workdir = self._workdir(job)
        env = dict(os.environ)
        env.update(job_environment(job, workdir))
        argv = job_argv(job)
        if job.spec.command is None:
            argv = [a if a not in ("job.sh", "job.json") else str(folder / a) for a in argv]
        started = time.time()
        stdout = open(folder / STDOUT_FILE, "ab")  # noqa: SIM115 - handed to the child
        stderr = open(folder / STDERR_FILE, "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                [self.shell, "-c", WRAPPER, "swm-job", str(status_dir / "pid"), str(status_dir / "rc"), *argv],
                cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise GateError(f"could not start the job: {exc}") from None
        finally:
            stdout.close()
            stderr.close()
        self._children[job.id] = proc
        self._watch(job, proc)
        if job.spec.resources.walltime:
            self._arm_walltime(job, proc.pid, job.spec.resources.walltime)
        return GateStatus(
            JobState.RUNNING, native_id=str(proc.pid), start_time=started,
            gate_data={"pid": proc.pid, "started": started},
        )

    def _watch(self, job: Job, proc: subprocess.Popen[bytes]) -> None:
        loop = self._loop or asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            return  # no pidfd: the periodic poll notices the end instead

        def exited() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            proc.poll()
            self.notify()

        proc._swm_pidfd = pidfd  # type: ignore[attr-defined]
        loop.add_reader(pidfd, exited)

    def _arm_walltime(self, job: Job, pid: int, walltime: int) -> None:
        loop = self._loop or asyncio.get_running_loop()
        started = job.start_time or time.time()
        delay = max(0.0, started + walltime - time.time())
        self._timers[job.id] = loop.call_later(delay, lambda: loop.create_task(self._kill_for_walltime(job, pid)))

    async def _kill_for_walltime(self, job: Job, pid: int) -> None:
        self._over_walltime.add(job.id)
        await self._terminate(pid, job.gate_data.get("started"))
        self.notify()

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """Read each job's status files and check its pid; enforce walltime for adopted jobs."""
        out: dict[str, GateStatus] = {}
        now = time.time()
        for job in jobs:
            status = self._status(job)
            if status is None:
                continue
            out[job.id] = status
            walltime = job.spec.resources.walltime
            if (status.state is JobState.RUNNING and walltime and job.id not in self._timers
                    and job.start_time and now - job.start_time > walltime):
                self._over_walltime.add(job.id)
                asyncio.get_running_loop().create_task(
                    self._terminate(int(job.native_id or 0), job.gate_data.get("started"))
                )
        return out

    def _status(self, job: Job) -> GateStatus | None:
        status_dir = Path(job.folder) / STATUS_DIR
        proc = self._children.get(job.id)
        rc_path = status_dir / "rc"
        rc_text = _read(rc_path)
        pid_path = status_dir / "pid"
        pid_text = _read(pid_path)
        if rc_text:
            return self._ended(job, int(rc_text), rc_path.stat().st_mtime, pid_path)
        alive: bool
        if proc is not None:
            alive = proc.poll() is None
        else:
            pid = int(pid_text) if pid_text else int(job.native_id or 0)
            alive = bool(pid) and _is_our_process(pid, job.gate_data.get("started"))
        if alive:
            if not pid_text and proc is None:
                return None
            return GateStatus(JobState.RUNNING, native_id=pid_text or job.native_id, start_time=_mtime(pid_path))
        rc_text = _read(rc_path)  # the job may have ended between the two reads
        if rc_text:
            return self._ended(job, int(rc_text), rc_path.stat().st_mtime, pid_path)
        self._forget(job.id)
        if not pid_text and proc is None and not job.native_id:
            return None  # never started (a launch interrupted by a restart)
        code = proc.returncode if proc is not None else None
        sig = None
        if code is not None and code < 0:
            sig, code = -code, 128 - code
        if job.id in self._over_walltime:
            return GateStatus(JobState.ERROR, details=self._walltime_text(job), exit_code=code, signal=sig,
                              end_time=time.time())
        return GateStatus(
            JobState.ERROR, exit_code=code, signal=sig, end_time=time.time(),
            details="the job's process ended without recording an exit status (killed from outside?)",
        )

    def _walltime_text(self, job: Job) -> str:
        return f"killed: walltime of {format_walltime(job.spec.resources.walltime or 0)} exceeded"

    def _ended(self, job: Job, rc: int, end: float, pid_path: Path) -> GateStatus:
        self._forget(job.id)
        end = max(end, job.start_time or 0.0)  # file times are coarser than the clock
        sig = rc - 128 if rc > 128 else None
        if job.id in self._over_walltime:
            self._over_walltime.discard(job.id)
            return GateStatus(JobState.ERROR, details=self._walltime_text(job), exit_code=rc, signal=sig,
                              end_time=end)
        details = f"exit code {rc}" if rc else ""
        reported = _read(pid_path.parent / "details")  # a runner's own one-line account, if any
        if reported:
            details = f"{details}: {reported}" if details else reported
        return GateStatus(JobState.FINISHED, exit_code=rc, signal=sig, end_time=end, details=details)

    def _forget(self, job_id: str) -> None:
        self._children.pop(job_id, None)
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
            await self._terminate(pid, job.gate_data.get("started"), job.id in self._children)
        self._forget(job.id)

    async def _terminate(self, pid: int, started: float | None, ours: bool = False) -> None:
        if not pid or not (ours or any(p.pid == pid for p in self._children.values())
                           or _is_our_process(pid, started)):
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
            child = next((p for p in self._children.values() if p.pid == pid), None)
            if child is not None:
                child.poll()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

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
        """Children report their own exit at once; this poll only catches jobs adopted after a restart."""
        return 1.0


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, ValueError):
        return ""


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None
