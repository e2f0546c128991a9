"""The base of the batch gates (``slurm``, ``ssh``): what both do the same way.

- **The wrapper script.** Both run a job through a small shell script in its folder on the site.
  It is rendered from one template (:data:`WRAPPER_TEMPLATE`) in :func:`render_wrapper`, and every
  value put into it (folders, variables, the command's words) goes through one escaping function,
  :func:`sh_quote` (``shlex.quote``). The script writes the job's status record
  (:mod:`.status_record`), reads and removes the job's private variables, exports the job's
  environment, changes into the working folder, runs the job and records how it ended.
- **The status record** is turned into a :class:`GateStatus` the same way (:meth:`BatchGate.ended`).
- **The job folder on the site**, written, staged in and out over SFTP, read for live logs and
  cleaned for a requeue by the same methods.
- **The SSH connection** (:class:`~.ssh_transport.SshTransport`) is made from the same options.

A subclass says where its SSH connection goes (:meth:`BatchGate.ssh_target`), whether its job
folders are shared with this machine (:attr:`BatchGate.shared`), and how it starts and watches jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import re
import shlex
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from traitlets import Bool, Dict, Float, Unicode

from ..core.accounts import OwnerAccount
from ..core.errors import GateError, SiteUnavailable
from ..core.gate_contract import Gate, GateStatus
from ..core.job_files import read_job_file
from ..core.launch import BOOKKEEPING_PREFIX, SCRIPT_FILE, STDERR_FILE, STDOUT_FILE, job_argv
from ..core.model import Job
from ..core.owned_folders import owned_folder, unlink_owned, write_owned_file
from ..core.states import JobState
from .commands import CommandError
from .ssh_transport import SshTransport
from .status_record import STATUS_FILE, StatusRecord

#: A job's private_env, 0600 in its folder on the site from submission until the wrapper reads and
#: removes it (or the job is canceled or cannot start).
PRIVATE_ENV_FILE = ".swm-private-env"

#: The one escaping function of every value written into a wrapper or a private-variables file.
sh_quote = shlex.quote

#: The wrapper every batch gate runs a job with. ``@name@`` marks a part :func:`render_wrapper`
#: fills in; a line holding only a part that is empty is left out.
WRAPPER_TEMPLATE = """\
#!@shell@
# Written by swm-jupyter's @gate@ gate: runs the job and records how it ended.
@header@
# --- swm-jupyter wrapper ---
@locate@
__swm_status="$__swm_dir"/@status_file@
echo "start $(date +%s) @run_id@ $(hostname)" > "$__swm_status"
__swm_signal() { echo "signal $1 $(date +%s)" >> "$__swm_status"; exit $((128 + $1)); }
@traps@
# private_env (written 0600 at submission when the job has one): read, then removed, before anything runs
if [ -f "$__swm_dir"/@private_env_file@ ]; then
    . "$__swm_dir"/@private_env_file@; rm -f "$__swm_dir"/@private_env_file@
fi
@environment@
@enter_workdir@
@output_start@
@command@ &
__swm_pid=$!
# wait returns early when a trapped signal arrives; the trap then writes the status.
wait "$__swm_pid"
__swm_rc=$?
@output_end@
echo "exit $__swm_rc $(date +%s)" >> "$__swm_status"
exit "$__swm_rc"
"""

_FAILED_CD = '{ echo "exit 1 $(date +%s)" >> "$__swm_status"; exit 1; }'


@dataclass
class WrapperParts:
    """What differs between the wrappers of two gates (everything else is the template's).

    ``locate`` sets ``__swm_dir`` (the job folder on the site) and, if used, ``__swm_id``;
    ``exported`` are commands run before the job's environment (e.g. ``SWM_JOB_ID="$__swm_id"``);
    ``output`` is where the job's stdout and stderr go: ``"files"`` (the job folder's ``stdout`` and
    ``stderr``), ``"site"`` (left to the site, e.g. Slurm's ``--output``), or ``"tee"`` (to the
    site's and, copied, to the job folder's).
    """

    gate: str
    shell: str
    locate: list[str]
    run_id: str
    signals: Sequence[int]
    env: Mapping[str, str]
    workdir: str | None
    output: Literal["files", "site", "tee"] = "files"
    exported: Sequence[str] = ()
    header: Sequence[str] = ()
    in_folder: bool = True


def render_wrapper(job: Job, argv: Sequence[str], parts: WrapperParts) -> str:
    """The wrapper script of ``job`` (see :data:`WRAPPER_TEMPLATE`), running ``argv``.

    ``parts.workdir``: a folder to run in (absolute, or relative to the job folder); None runs in
    the job folder, or, with ``parts.in_folder`` False, where the site started the script.
    """
    q = sh_quote
    words = [q(a) for a in argv]
    if job.spec.command is None and argv and argv[-1] in (SCRIPT_FILE, "job.json"):
        words[-1] = f'"$__swm_dir"/{argv[-1]}'
    command = " ".join(words)
    output_start: list[str] = []
    output_end: list[str] = []
    if parts.output == "files":
        command += f' >"$__swm_dir"/{STDOUT_FILE} 2>"$__swm_dir"/{STDERR_FILE} </dev/null'
    elif parts.output == "tee":
        # Through two FIFOs, tee writes the output both to the site's own files (the script's stdout
        # and stderr) and to the job folder's; the copies are complete when the tees have ended.
        output_start = [
            f'__swm_fifo="$__swm_dir"/{BOOKKEEPING_PREFIX}-output',
            'rm -f "$__swm_fifo".out "$__swm_fifo".err; mkfifo "$__swm_fifo".out "$__swm_fifo".err',
            f'tee "$__swm_dir"/{STDOUT_FILE} < "$__swm_fifo".out & __swm_tees=$!',
            f'tee "$__swm_dir"/{STDERR_FILE} < "$__swm_fifo".err >&2 & __swm_tees="$__swm_tees $!"',
        ]
        command += ' >"$__swm_fifo".out 2>"$__swm_fifo".err </dev/null'
        output_end = ['wait $__swm_tees; rm -f "$__swm_fifo".out "$__swm_fifo".err']
    if parts.workdir:
        enter = [
            f'cd {q(parts.workdir)} 2>/dev/null || cd "$__swm_dir"/{q(parts.workdir)} || {_FAILED_CD}',
            'export SWM_WORKDIR="$PWD"',
        ]
    elif parts.in_folder:
        enter = [f'cd "$__swm_dir" || {_FAILED_CD}', 'export SWM_WORKDIR="$PWD"']
    else:
        enter = ['export SWM_WORKDIR="$PWD"']
    values = {
        "shell": parts.shell,
        "gate": parts.gate,
        "header": parts.header,
        "locate": parts.locate,
        "status_file": STATUS_FILE,
        "run_id": parts.run_id,
        "traps": [f"trap '__swm_signal {n}' {signal.Signals(n).name[3:]}" for n in parts.signals],
        "private_env_file": PRIVATE_ENV_FILE,
        "environment": [*parts.exported, *(f"export {key}={q(value)}" for key, value in parts.env.items())],
        "enter_workdir": enter,
        "output_start": output_start,
        "command": command,
        "output_end": output_end,
    }
    lines: list[str] = []
    for line in WRAPPER_TEMPLATE.split("\n"):
        whole = re.fullmatch(r"@(\w+)@", line)
        if whole and not isinstance(values[whole.group(1)], str):
            lines.extend(values[whole.group(1)])
            continue
        lines.append(re.sub(r"@(\w+)@", lambda m: str(values[m.group(1)]), line))
    return "\n".join(lines)


def private_env_text(job: Job) -> bytes:
    """The file that gives the wrapper the job's private variables (``export NAME=value`` lines)."""
    return "".join(f"export {key}={sh_quote(value)}\n" for key, value in job.private_env.items()).encode()


class BatchGate(Gate):
    """The base of gates that run a wrapper script in a job folder on the site (see the module docstring)."""

    #: Files of the remote job folder never brought back by :meth:`stage_out`.
    remote_only: tuple[str, ...] = (PRIVATE_ENV_FILE,)

    known_hosts = Unicode(
        None, allow_none=True, help="known_hosts file to check the SSH host key; None: ~/.ssh/known_hosts."
    ).tag(config=True)
    check_host_keys = Bool(True, help="Check the SSH host key (default True); turning it off trusts any host.").tag(
        config=True
    )
    use_agent = Bool(True, help="Also use keys of the SSH agent (SSH_AUTH_SOCK) (default True).").tag(config=True)
    env = Dict(help="Environment variables set for every command on the site.").tag(config=True)
    python = Unicode("python3", help="Python on the site, for notebook jobs (default python3).").tag(config=True)
    command_timeout = Float(60.0, help="Seconds a command on the site may take (default 60).").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._transport: SshTransport | None = None
        self._cancelled: set[str] = set()
        self._live = 0

    # --- the site --------------------------------------------------------------------------------

    def ssh_target(self) -> tuple[str, int, str, str]:
        """``(host, port, user, key file)`` of the site's SSH connection; an empty host: none."""
        raise NotImplementedError

    @property
    def shared(self) -> bool:
        """True when job folders have the same path here and on the site (no staging)."""
        return False

    @property
    def transport(self) -> SshTransport:
        """The site's one SSH connection (made on first use, reused, made again when it drops)."""
        if self._transport is None:
            host, port, user, key_file = self.ssh_target()
            if not host:
                raise SiteUnavailable(f"the {self.kind} site {self.site_name!r} has no SSH host configured")
            self._transport = SshTransport(
                host,
                port=port,
                username=user or None,
                key_files=[key_file] if key_file else [],
                known_hosts=self.known_hosts,
                check_host_keys=self.check_host_keys,
                use_agent=self.use_agent,
                env=self.env,
                log=self.log,
            )
        return self._transport

    async def setup(self) -> None:
        """Connect to the site (if it is reached over SSH); an unreachable host is reported by
        describe() and retried by the next command."""
        if self.ssh_target()[0]:
            try:
                await self.transport.connect()
            except SiteUnavailable as exc:
                self.log.warning("%s site %s: %s", self.kind, self.site_name, exc.message)

    async def cleanup(self) -> None:
        """Close the SSH connection; jobs keep running on the site."""
        if self._transport is not None:
            await self._transport.close()

    # --- the job folder on the site ----------------------------------------------------------------

    def remote_folder(self, job: Job) -> str:
        """The job folder as the site sees it."""
        raise NotImplementedError

    def job_shared(self, job: Job) -> bool:
        """Whether ``job``'s folder is shared (as it was when the job was submitted)."""
        return bool(job.gate_data.get("shared", self.shared))

    async def _write(self, path: str, data: bytes, mode: int = 0o644, account: OwnerAccount | None = None) -> None:
        """Write a file of a job folder on the site (as ``account`` when given)."""
        if account is not None:
            await asyncio.to_thread(_write_owned, path, data, mode & 0o700, account)
        elif self.shared:
            await asyncio.to_thread(_write_local, path, data, mode)
        else:
            await self.transport.write_bytes(path, data, mode=mode)

    async def _remove(self, folder: str, name: str, account: OwnerAccount | None = None, *, check: bool = True) -> None:
        """Remove ``name`` from a job folder on the site, if it is there."""
        if account is not None:
            await asyncio.to_thread(unlink_owned, folder, name, account)
        elif self.shared:
            await asyncio.to_thread(_remove_local, posixpath.join(folder, name))
        else:
            await self.transport.run(
                ["rm", "-f", "--", posixpath.join(folder, name)], check=check, timeout=self.command_timeout
            )

    async def write_private_env(self, job: Job, folder: str, account: OwnerAccount | None = None) -> None:
        """Write the job's private variables (if it has any), 0600, for its wrapper to read."""
        if job.private_env:
            await self._write(posixpath.join(folder, PRIVATE_ENV_FILE), private_env_text(job), 0o600, account)

    async def remove_private_env(self, job: Job, account: OwnerAccount | None = None) -> None:
        """Remove the job's private variables file (its wrapper will not); never raises but for a
        cancellation of this task."""
        try:
            await self._remove(self.remote_folder(job), PRIVATE_ENV_FILE, account, check=False)
        except (CommandError, SiteUnavailable, OSError) as exc:
            self.log.warning(
                "%s site %s: could not remove job %s's private file: %s", self.kind, self.site_name, job.id, exc
            )

    async def reset_run(self, job: Job) -> None:
        """A requeued job runs again in the same folder: remove the last run's status record first,
        or a poll made before the new run starts would read the old run's end."""
        await self._remove(self.remote_folder(job), STATUS_FILE, self.owner_account(job))

    async def upload_job_folder(self, job: Job) -> None:
        """Copy the local job folder (script, inputs) into the job's folder on the site over SFTP
        (nothing to do when folders are shared)."""
        folder = self.remote_folder(job)
        if self.shared:
            return
        if not job.folder:
            await self.transport.makedirs(folder)
            return
        await self.transport.upload_folder(job.folder, folder)

    async def stage_out(self, job: Job) -> None:
        """Bring the job's folder on the site (stdout, stderr, outputs) back into the local job folder."""
        if self.job_shared(job) or not job.folder:
            return
        await asyncio.to_thread(Path(job.folder).mkdir, parents=True, exist_ok=True)
        await self.transport.download_folder(self.remote_folder(job), job.folder, skip=self.remote_only)

    async def read_output(self, job: Job, stream: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Live log bytes of ``stream`` (stdout or stderr) from ``offset``, from the site's side."""
        if stream not in (STDOUT_FILE, STDERR_FILE):
            raise GateError(f"unknown stream {stream!r}; use stdout or stderr")
        if self.job_shared(job):
            return await asyncio.to_thread(read_job_file, self.remote_folder(job), stream, offset, limit)
        return await self.transport.read_range(posixpath.join(self.remote_folder(job), stream), offset, limit)

    def unanswered_description(self, **more: Any) -> dict[str, Any]:
        """What :meth:`describe` says before the site has answered (not healthy), with ``more``."""
        return {
            "kind": self.kind,
            "healthy": False,
            "health_message": "",
            "limits": {},
            "flavors": [],
            "images": [],
            **more,
        }

    # --- the wrapper and its record ----------------------------------------------------------------

    def wrapper(self, job: Job, parts: WrapperParts) -> str:
        """The job's wrapper script (see :func:`render_wrapper`), running what the job runs."""
        return render_wrapper(job, job_argv(job, self.python), parts)

    def canceled_here(self, job: Job) -> bool:
        """True when the job's end was asked for (by this gate, or by its user)."""
        return job.id in self._cancelled or job.wanted == "cancel"

    def ended(self, job: Job, record: StatusRecord, details: str = "") -> GateStatus | None:
        """The final status the record tells (None while it tells no end): its exit code, or the
        signal that stopped it (C when the job was being canceled)."""
        start, end = record.start, record.end
        if record.exit_code is not None:
            details = details or ("exit code 0" if record.exit_code == 0 else f"exit code {record.exit_code}")
            return GateStatus(JobState.FINISHED, details, exit_code=record.exit_code, start_time=start, end_time=end)
        if record.signal is not None:
            if self.canceled_here(job):
                return GateStatus(JobState.CANCELED, "canceled", signal=record.signal, start_time=start, end_time=end)
            return GateStatus(
                JobState.FINISHED,
                details or f"ended by signal {record.signal}",
                exit_code=128 + record.signal,
                signal=record.signal,
                start_time=start,
                end_time=end,
            )
        return None


def _write_local(path: str, data: bytes, mode: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    # created with at most the owner's rights, so a 0600 file is never readable by others meanwhile
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o700), "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_owned(path: str, data: bytes, mode: int, account: OwnerAccount) -> None:
    with owned_folder(os.path.dirname(path), account) as folder:
        write_owned_file(folder, os.path.basename(path), data, mode, account)


def _remove_local(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
