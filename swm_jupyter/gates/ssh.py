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

import asyncio
import posixpath
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitlets import Bool, Dict, Float, Int, Unicode, validate

from ..core.errors import GateError, SiteUnavailable
from ..core.launch import SCRIPT_FILE, STDERR_FILE, STDOUT_FILE, job_argv, job_environment
from ..core.model import Job
from ..core.states import JobState
from .base import Gate, GateStatus
from .commands import CommandError
from .slurm import PRIVATE_ENV_FILE
from .ssh_transport import SshTransport, check_host_option
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


class SshGate(Gate):
    """Runs jobs on a plain host over SSH (asyncssh): detached, polled in one command, files by SFTP.

    Per-job data kept in ``gate_data``: ``folder`` (remote job folder) and ``pid`` (the wrapper's
    pid, which is also its process group id).
    """

    kind = "ssh"
    private_env = True  # a 0600 file in the remote job folder, read and removed by the wrapper (or at cancel)
    collect_on_cancel = True  # a canceled job's remote folder comes back too (a spawned server's saved notebooks)

    host = Unicode("", help="The host to run jobs on (name or address).").tag(config=True)
    port = Int(22, help="SSH port (default 22).").tag(config=True)
    user = Unicode("", help="SSH user name; empty: the current user.").tag(config=True)
    key_file = Unicode("", help="Private key file; empty: the agent and ~/.ssh keys.").tag(config=True)
    known_hosts = Unicode(
        None, allow_none=True, help="known_hosts file to check the host key; None: ~/.ssh/known_hosts."
    ).tag(config=True)
    check_host_keys = Bool(True, help="Check the host key (default True); turning it off trusts any host.").tag(
        config=True
    )
    use_agent = Bool(True, help="Also use keys of the SSH agent (default True).").tag(config=True)
    env = Dict(help="Environment variables set for every remote command and job.").tag(config=True)
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
    command_timeout = Float(60.0, help="Seconds a remote command may take (default 60).").tag(config=True)

    @validate("host")
    def _check_host(self, proposal: Any) -> str:
        return check_host_option(proposal["value"], "host", "user")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._transport: SshTransport | None = None
        self._cancelled: set[str] = set()
        self._live = 0

    @property
    def transport(self) -> SshTransport:
        """The site's one SSH connection (made on first use, reused, made again when it drops)."""
        if self._transport is None:
            if not self.host:
                raise SiteUnavailable(f"the ssh site {self.site_name!r} has no host configured")
            self._transport = SshTransport(
                self.host,
                port=self.port,
                username=self.user or None,
                key_files=[self.key_file] if self.key_file else [],
                known_hosts=self.known_hosts,
                check_host_keys=self.check_host_keys,
                use_agent=self.use_agent,
                env=self.env,
                log=self.log,
            )
        return self._transport

    async def setup(self) -> None:
        """Connect to the host; an unreachable host is reported by describe() and retried."""
        try:
            await self.transport.connect()
        except SiteUnavailable as exc:
            self.log.warning("ssh site %s: %s", self.site_name, exc.message)

    async def cleanup(self) -> None:
        """Close the connection; remote jobs keep running."""
        if self._transport is not None:
            await self._transport.close()

    def next_poll_delay(self) -> float:
        """Seconds until the next poll: ``poll_interval`` with live jobs, else ``idle_poll_interval``."""
        return self.poll_interval if self._live else self.idle_poll_interval

    def _folder(self, job: Job) -> str:
        return str(job.gate_data.get("folder") or posixpath.join(self.remote_workdir, job.id))

    def _wrapper(self, job: Job, folder: str) -> str:
        q = shlex.quote
        workdir = job.spec.workdir if job.spec.workdir and posixpath.isabs(job.spec.workdir) else None
        lines = [
            "#!/bin/sh",
            "# Written by swm-jupyter's ssh gate: runs the job detached and records how it ended.",
            "__swm_dir=$(pwd)",
            f'__swm_status="$__swm_dir"/{STATUS_FILE}',
            'echo "start $(date +%s) $$ $(hostname)" > "$__swm_status"',
            '__swm_signal() { echo "signal $1 $(date +%s)" >> "$__swm_status"; exit $((128 + $1)); }',
            "trap '__swm_signal 15' TERM",
            "trap '__swm_signal 2' INT",
            "trap '__swm_signal 1' HUP",
            # private_env (submit() wrote it, 0600, when the job has one): read, then removed, before anything runs
            f'if [ -f "$__swm_dir"/{PRIVATE_ENV_FILE} ]; then',
            f'    . "$__swm_dir"/{PRIVATE_ENV_FILE}; rm -f "$__swm_dir"/{PRIVATE_ENV_FILE}',
            "fi",
        ]
        env = job_environment(job, workdir or folder)
        env.pop("SWM_WORKDIR", None)
        for key, value in {**self.env, **env}.items():
            lines.append(f"export {key}={q(str(value))}")
        if workdir:
            lines.append(f'cd {q(workdir)} || {{ echo "exit 1 $(date +%s)" >> "$__swm_status"; exit 1; }}')
        lines.append('export SWM_WORKDIR="$PWD"')
        argv = job_argv(job, self.python)
        words = [q(a) for a in argv]
        if job.spec.command is None and argv and argv[-1] in (SCRIPT_FILE, "job.json"):
            words[-1] = f'"$__swm_dir"/{argv[-1]}'
        lines += [
            " ".join(words) + f' >"$__swm_dir"/{STDOUT_FILE} 2>"$__swm_dir"/{STDERR_FILE} </dev/null &',
            'wait "$!"',
            "__swm_rc=$?",
            'echo "exit $__swm_rc $(date +%s)" >> "$__swm_status"',
            "",
        ]
        return "\n".join(lines)

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Copy the job folder to the host and start the job detached; its native id is the pid.

        Raises :class:`GateError` when the job cannot be started, :class:`SiteUnavailable` when
        the host cannot be reached.
        """
        folder = self._folder(job)
        await self.stage_in(job)
        await self.transport.write_bytes(
            posixpath.join(folder, RUN_FILE), self._wrapper(job, folder).encode(), mode=0o700
        )
        private_path = posixpath.join(folder, PRIVATE_ENV_FILE)
        if job.private_env:
            lines = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in job.private_env.items())
            await self.transport.write_bytes(private_path, lines.encode(), mode=0o600)
        try:
            result = await self.transport.run(
                ["sh", "-c", _LAUNCH_SCRIPT, "sh", folder], idempotent=False, timeout=self.command_timeout
            )
        except CommandError as exc:
            await self._remove_private_env(job)
            raise GateError(f"the job could not be started on {self.host}: {exc.message}") from None
        except BaseException:
            await self._remove_private_env(job)
            raise
        pid = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if not pid.isdigit():
            await self._remove_private_env(job)
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

    async def _remove_private_env(self, job: Job) -> None:
        """Remove the job's private_env file on the host (the wrapper did not start, so it will not); never raises
        but for a cancellation of this task."""
        if not job.private_env:
            return
        path = posixpath.join(self._folder(job), PRIVATE_ENV_FILE)
        try:
            await self.transport.run(["rm", "-f", "--", path], check=False, timeout=self.command_timeout)
        except (CommandError, SiteUnavailable) as exc:
            self.log.warning("ssh site %s: could not remove job %s's private file: %s", self.site_name, job.id, exc)

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """One SSH command for all ``jobs``: is each process group alive, and what its status file says."""
        known = [j for j in jobs if j.gate_data.get("folder") and (j.gate_data.get("pid") or j.native_id)]
        self._live = len(known)
        if not known:
            return {}
        args: list[str] = []
        for job in known:
            args += [self._folder(job), str(job.gate_data.get("pid") or job.native_id)]
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
            answer = answers.get(self._folder(job))
            if answer is None:
                continue
            alive, text = answer
            record = parse_status_file(text) if text else None
            start = record.start if record else None
            end = record.end if record else None
            if record is not None and record.exit_code is not None:
                details = "exit code 0" if record.exit_code == 0 else f"exit code {record.exit_code}"
                out[job.id] = GateStatus(
                    JobState.FINISHED, details, exit_code=record.exit_code, start_time=start, end_time=end
                )
            elif record is not None and record.signal is not None and not alive:
                if job.id in self._cancelled or job.wanted == "cancel":
                    out[job.id] = GateStatus(
                        JobState.CANCELED, "canceled", signal=record.signal, start_time=start, end_time=end
                    )
                else:
                    out[job.id] = GateStatus(
                        JobState.FINISHED,
                        f"ended by signal {record.signal}",
                        exit_code=128 + record.signal,
                        signal=record.signal,
                        start_time=start,
                        end_time=end,
                    )
            elif alive:
                out[job.id] = GateStatus(JobState.RUNNING, "running", start_time=start)
            elif job.id in self._cancelled or job.wanted == "cancel":
                out[job.id] = GateStatus(JobState.CANCELED, "canceled", start_time=start, end_time=time.time())
            else:
                out[job.id] = GateStatus(
                    JobState.ERROR,
                    "the job's process ended without recording an exit code (killed, or the host restarted)",
                    start_time=start,
                )
        return out

    async def reset_run(self, job: Job) -> None:
        """A requeued job runs again in the same remote folder: remove the last run's status file."""
        path = posixpath.join(self._folder(job), STATUS_FILE)
        await self.transport.run(["rm", "-f", "--", path], timeout=self.command_timeout)

    async def cancel(self, job: Job) -> None:
        """Stop the job's whole process group (TERM, then KILL after ``kill_grace``). Idempotent."""
        self._cancelled.add(job.id)
        pid = str(job.gate_data.get("pid") or job.native_id or "")
        if job.private_env or pid:  # a wrapper stopped before it read its private file leaves none behind
            path = posixpath.join(self._folder(job), PRIVATE_ENV_FILE)
            await self.transport.run(["rm", "-f", "--", path], check=False, timeout=self.command_timeout)
        if not pid.isdigit():
            return
        await self.transport.run(
            ["sh", "-c", _CANCEL_SCRIPT, "sh", pid, f"{self.kill_grace:g}"], check=False, timeout=self.command_timeout
        )

    async def stage_in(self, job: Job) -> None:
        """Copy the local job folder (script, inputs) into the job's remote folder over SFTP."""
        folder = self._folder(job)
        if not job.folder:
            await self.transport.makedirs(folder)
            return
        await self.transport.upload_folder(job.folder, folder)

    async def stage_out(self, job: Job) -> None:
        """Bring the remote folder (stdout, stderr, outputs) back into the local job folder."""
        if not job.folder:
            return
        await asyncio.to_thread(Path(job.folder).mkdir, parents=True, exist_ok=True)
        await self.transport.download_folder(self._folder(job), job.folder, skip=(RUN_FILE, PRIVATE_ENV_FILE))

    async def read_output(self, job: Job, stream: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Live log bytes of ``stream`` (stdout or stderr) from ``offset``, read on the host over SFTP."""
        if stream not in (STDOUT_FILE, STDERR_FILE):
            raise GateError(f"unknown stream {stream!r}; use stdout or stderr")
        return await self.transport.read_range(posixpath.join(self._folder(job), stream), offset, limit)

    async def describe(self) -> dict[str, Any]:
        """The host's CPUs and memory; ``healthy`` False with a message when it cannot be reached."""
        info: dict[str, Any] = {
            "kind": self.kind,
            "healthy": False,
            "health_message": "",
            "limits": {},
            "flavors": [],
            "images": [],
            "host": f"{self.host}:{self.port}",
        }
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
