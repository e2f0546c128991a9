"""The ``ssh`` gate: jobs on any host reachable with SSH, detached on the remote side, files over SFTP.

Each job gets a folder on the host (``remote_workdir/<job id>``) holding its files and a small
wrapper that runs in its own session (``setsid``): it survives the SSH connection and the Jupyter
server, writes its pid, start time and exit code to a status file, and is stopped as a whole
process group. One SSH command per poll reads the state of every job of the site.

A job's ``private_env`` is written, created with mode 0600, to ``.swm-private-env`` in its remote
folder just before the job starts; the wrapper reads and removes it before it runs anything. It is
removed too when the job cannot be started or is canceled, and is never brought back.
"""

from __future__ import annotations

import posixpath
import signal
import time
from collections.abc import Sequence
from typing import Any

from traitlets import Float, Int, Unicode, validate

from ..core.errors import GateError, SiteUnavailable
from ..core.gate_contract import GateStatus
from ..core.launch import job_environment
from ..core.model import Job
from ..core.states import JobState
from .batch import PRIVATE_ENV_FILE, BatchGate, WrapperParts
from .commands import CommandError
from .ssh_transport import check_host_option
from .status_record import STATUS_FILE, parse_status_file

RUN_FILE = ".swm-run.sh"

#: Starts the wrapper in a new session; prints its pid (= its process group id). $1: the folder.
_LAUNCH_SCRIPT = 'cd "$1" || exit 97; setsid /bin/sh ./' + RUN_FILE + ' </dev/null >/dev/null 2>&1 & echo "$!"'

#: Reads every job in one go. Arguments: folder pid folder pid ... For each job: a record separator,
#: the folder, ``alive`` or ``dead`` (its process group), then its status file.
_POLL_SCRIPT = (
    'while [ "$#" -gt 1 ]; do d="$1"; p="$2"; shift 2; '
    'printf "\\036%s\\n" "$d"; '
    'if [ -n "$p" ] && kill -0 "-$p" 2>/dev/null; then echo alive; else echo dead; fi; '
    'cat -- "$d/' + STATUS_FILE + '" 2>/dev/null; done'
)

#: Stops a process group: TERM now, KILL after a grace period (detached). $1: pgid, $2: grace.
_CANCEL_SCRIPT = (
    'kill -TERM "-$1" 2>/dev/null; ( sleep "$2"; kill -KILL "-$1" 2>/dev/null ) </dev/null >/dev/null 2>&1 & exit 0'
)

_DESCRIBE_SCRIPT = (
    "nproc 2>/dev/null || echo 0; "
    "awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo 2>/dev/null || echo 0; "
    "uname -sr"
)


class SshGate(BatchGate):
    """Runs jobs on a plain host over SSH (asyncssh): detached, polled in one command, files by SFTP.

    Per-job data kept in ``gate_data``: ``folder`` (remote job folder) and ``pid`` (the wrapper's
    pid, which is also its process group id).
    """

    kind = "ssh"
    private_env = True  # a 0600 file in the remote job folder, read and removed by the wrapper (or at cancel)
    remote_only = (RUN_FILE, PRIVATE_ENV_FILE)
    collect_on_cancel = True  # a canceled job's remote folder comes back too (a spawned server's saved notebooks)

    host = Unicode("", help="The host to run jobs on (name or address).").tag(config=True)
    port = Int(22, help="SSH port (default 22).").tag(config=True)
    user = Unicode("", help="SSH user name; empty: the current user.").tag(config=True)
    key_file = Unicode("", help="Private key file; empty: the agent and ~/.ssh keys.").tag(config=True)
    remote_workdir = Unicode(
        ".swm/jobs", help="Folder on the host for job folders; relative paths are under the home folder."
    ).tag(config=True)
    python = Unicode(
        "python3",
        help="Python on the host, for notebook jobs and Executor calls: a path or command (default python3); "
        "Executor calls also accept a shell line that ends with one ('source venv/bin/activate && python').",
    ).tag(config=True)
    poll_interval = Float(1.0, help="Seconds between polls while jobs are live (default 1).").tag(config=True)
    idle_poll_interval = Float(10.0, help="Seconds between polls with no live job (default 10).").tag(config=True)
    kill_grace = Float(5.0, help="Seconds between SIGTERM and SIGKILL when a job is canceled (default 5).").tag(
        config=True
    )

    @validate("host")
    def _check_host(self, proposal: Any) -> str:
        return check_host_option(proposal["value"], "host", "user")

    def ssh_target(self) -> tuple[str, int, str, str]:
        """The host jobs run on."""
        return self.host, self.port, self.user, self.key_file

    def next_poll_delay(self) -> float:
        """Seconds until the next poll: ``poll_interval`` with live jobs, else ``idle_poll_interval``."""
        return self.poll_interval if self._live else self.idle_poll_interval

    def remote_folder(self, job: Job) -> str:
        """The job's folder on the host: ``remote_workdir/<job id>`` (relative: under the home folder)."""
        return str(job.gate_data.get("folder") or posixpath.join(self.remote_workdir, job.id))

    def _wrapper(self, job: Job, folder: str) -> str:
        workdir = job.spec.workdir if job.spec.workdir and posixpath.isabs(job.spec.workdir) else None
        env = job_environment(job, workdir or folder)
        env.pop("SWM_WORKDIR", None)
        parts = WrapperParts(
            gate=self.kind,
            shell="/bin/sh",
            locate=["__swm_dir=$(pwd)"],  # the launch command starts the wrapper in its folder
            run_id="$$",
            signals=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
            env={**self.env, **env},
            workdir=workdir,
        )
        return self.wrapper(job, parts)

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Copy the job folder to the host and start the job detached; its native id is the pid.

        Raises :class:`GateError` when the job cannot be started, :class:`SiteUnavailable` when
        the host cannot be reached.
        """
        folder = self.remote_folder(job)
        await self.upload_job_folder(job)
        await self._write(posixpath.join(folder, RUN_FILE), self._wrapper(job, folder).encode(), 0o700)
        await self.write_private_env(job, folder)
        try:
            result = await self.transport.run(
                ["sh", "-c", _LAUNCH_SCRIPT, "sh", folder], idempotent=False, timeout=self.command_timeout
            )
        except CommandError as exc:
            await self._forget_private_env(job)
            raise GateError(f"the job could not be started on {self.host}: {exc.message}") from None
        except BaseException:
            await self._forget_private_env(job)
            raise
        pid = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if not pid.isdigit():
            await self._forget_private_env(job)
            raise GateError(f"the job did not start on {self.host}: {result.stderr.strip()[:500]}")
        self._live += 1
        self.log.info("ssh site %s: job %s runs as process %s on %s", self.site_name, job.id, pid, self.host)
        return GateStatus(
            JobState.RUNNING,
            "running",
            native_id=pid,
            start_time=time.time(),
            gate_data={"folder": folder, "pid": pid},
        )

    async def _forget_private_env(self, job: Job) -> None:
        """Remove the job's private_env file on the host (the wrapper did not start, so it will not)."""
        if job.private_env:
            await self.remove_private_env(job)

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """One SSH command for all ``jobs``: is each process group alive, and what its status file says."""
        known = [j for j in jobs if j.gate_data.get("folder") and (j.gate_data.get("pid") or j.native_id)]
        self._live = len(known)
        if not known:
            return {}
        args: list[str] = []
        for job in known:
            args += [self.remote_folder(job), str(job.gate_data.get("pid") or job.native_id)]
        result = await self.transport.run(
            ["sh", "-c", _POLL_SCRIPT, "sh", *args], check=False, timeout=self.command_timeout
        )
        answers: dict[str, tuple[bool, str]] = {}
        for chunk in result.stdout.split("\x1e")[1:]:
            folder, _, rest = chunk.partition("\n")
            alive_text, _, status_text = rest.partition("\n")
            answers[folder] = (alive_text.strip() == "alive", status_text)
        out: dict[str, GateStatus] = {}
        for job in known:
            answer = answers.get(self.remote_folder(job))
            if answer is None:
                continue
            alive, text = answer
            record = parse_status_file(text) if text else None
            start = record.start if record else None
            ended = None
            if record is not None and (record.exit_code is not None or not alive):
                ended = self.ended(job, record)  # a signal counts once the process group is gone
            if ended is not None:
                out[job.id] = ended
            elif alive:
                out[job.id] = GateStatus(JobState.RUNNING, "running", start_time=start)
            elif self.canceled_here(job):
                out[job.id] = GateStatus(JobState.CANCELED, "canceled", start_time=start, end_time=time.time())
            else:
                out[job.id] = GateStatus(
                    JobState.ERROR,
                    "the job's process ended without recording an exit code (killed, or the host restarted)",
                    start_time=start,
                )
        return out

    async def cancel(self, job: Job) -> None:
        """Stop the job's whole process group (TERM, then KILL after ``kill_grace``). Idempotent."""
        self._cancelled.add(job.id)
        pid = str(job.gate_data.get("pid") or job.native_id or "")
        if job.private_env or pid:  # a wrapper stopped before it read its private file leaves none behind
            await self._remove(self.remote_folder(job), PRIVATE_ENV_FILE, check=False)
        if not pid.isdigit():
            return
        await self.transport.run(
            ["sh", "-c", _CANCEL_SCRIPT, "sh", pid, f"{self.kill_grace:g}"], check=False, timeout=self.command_timeout
        )

    async def describe(self) -> dict[str, Any]:
        """The host's CPUs and memory; ``healthy`` False with a message when it cannot be reached."""
        info = self.unanswered_description(host=f"{self.host}:{self.port}")
        try:
            result = await self.transport.run(["sh", "-c", _DESCRIBE_SCRIPT], timeout=self.command_timeout)
        except (CommandError, SiteUnavailable) as exc:
            info["health_message"] = f"the host does not answer: {exc.message}"
            return info
        lines = [*result.stdout.splitlines(), "", "", ""]
        cpus = int(lines[0]) if lines[0].strip().isdigit() else 0
        memory = int(lines[1]) if lines[1].strip().isdigit() else 0
        info["limits"] = {"cpus": cpus, "memory": memory, "nodes": 1, "gpus": 0, "walltime": None}
        info["healthy"] = True
        info["health_message"] = lines[2].strip()
        return info


__all__ = ["SshGate"]
