"""The ``slurm`` gate: jobs on an existing Slurm cluster through its commands, locally or over SSH.

How a job's state is known, cheapest first:

1. a status file that the batch script writes in the job folder (start time, end time, exit code);
   reading it is no Slurm command, so ends are seen quickly;
2. one ``squeue`` call per poll for all of the site's jobs (pending reasons, refusals, cancels),
   made at an adaptive interval: quick after a submission, backing off to ``poll_interval_max``,
   and never more than ``max_status_calls_per_minute``;
3. ``sacct`` for jobs missing from ``squeue``, when accounting is on.

A job missing from ``squeue`` is not taken as finished until its status file or ``sacct`` says so:
right after a controller restart ``squeue`` may list nothing for a while.
"""

from __future__ import annotations

import asyncio
import collections
import os
import posixpath
import re
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from traitlets import Float, Int, List, Unicode, validate

from ..core.accounts import OwnerAccount
from ..core.directives import script_sbatch_options
from ..core.errors import GateError, SiteUnavailable
from ..core.gate_contract import GateStatus
from ..core.job_files import read_job_text
from ..core.launch import STDERR_FILE, STDOUT_FILE, job_environment
from ..core.model import Job
from ..core.states import JobState
from ..core.units import format_walltime, parse_memory_mb, parse_walltime_seconds
from .batch import PRIVATE_ENV_FILE, BatchGate, WrapperParts, sh_quote
from .commands import CommandError, CommandResult, run_command
from .ssh_transport import check_host_option, read_remote_files
from .status_record import STATUS_FILE, StatusRecord, parse_status_file

#: Files the gate writes in a job folder.
BATCH_FILE = "slurm-batch.sh"
ARRAY_MAP_FILE = "slurm-array-tasks.tsv"

_SQUEUE_FORMAT = "%i|%T|%r|%S|%e"
#: Every batch script carries ``--comment=swm:<job id>`` so that a job can be found by its id.
COMMENT_PREFIX = "swm:"
_CONTROLLER_DOWN = re.compile(
    r"unable to contact slurm controller|connection refused|socket timed out|communications connection failure"
    r"|slurm_load_jobs error: (?:unable|socket|zero bytes)|Slurm backup controller in standby",
    re.IGNORECASE,
)

#: Slurm's pending reasons, in words people read.
PENDING_REASONS = {
    "None": "pending",
    "Resources": "waiting for resources",
    "Priority": "waiting: other jobs have priority",
    "Dependency": "waiting for dependencies",
    "DependencyNeverSatisfied": "dependency never satisfied",
    "JobHeldUser": "held",
    "JobHeldAdmin": "held by an administrator",
    "BeginTime": "waiting for its start time",
    "JobArrayTaskLimit": "waiting: array throttle reached",
    "ReqNodeNotAvail": "requested nodes are not available",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "PartitionNodeLimit": "more nodes than the partition allows",
    "PartitionConfig": "the request does not fit the partition's nodes",
    "PartitionTimeLimit": "walltime above the partition's limit",
    "NodeDown": "a required node is down",
    "BadConstraints": "the constraints cannot be satisfied",
    "Reservation": "waiting for its reservation",
    "InvalidAccount": "invalid account",
    "InvalidQOS": "invalid QOS",
    "launch failed requeued held": "launch failed; requeued and held",
}

_RUNNING_STATES = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"}
_WAITING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "RESV_DEL_HOLD"}
_ERROR_STATES = {
    "NODE_FAIL": "a node of the job failed",
    "BOOT_FAIL": "a node failed to boot",
    "DEADLINE": "the job's deadline passed",
    "PREEMPTED": "preempted by another job",
    "REVOKED": "revoked by a sibling cluster",
}


@dataclass(frozen=True)
class SlurmRow:
    """One line of ``squeue`` (or ``sacct``): a job's Slurm id, state, reason and times."""

    slurm_id: str
    state: str
    reason: str = ""
    start: float | None = None
    end: float | None = None
    exit_code: int | None = None
    signal: int | None = None


def _slurm_time(text: str) -> float | None:
    text = text.strip()
    if not text or text in ("N/A", "Unknown", "None", "(null)"):
        return None
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def parse_squeue(text: str) -> dict[str, SlurmRow]:
    """Parse ``squeue -h -r -o '%i|%T|%r|%S|%e'`` output into rows keyed by Slurm id."""
    rows: dict[str, SlurmRow] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        start = _slurm_time(parts[3]) if len(parts) > 3 else None
        end = _slurm_time(parts[4]) if len(parts) > 4 else None
        rows[parts[0]] = SlurmRow(parts[0], parts[1].split()[0].rstrip("+"), parts[2], start, end)
    return rows


def parse_sacct(text: str) -> dict[str, SlurmRow]:
    """Parse ``sacct -n -P -X -o JobID,State,ExitCode,Start,End`` output into rows."""
    rows: dict[str, SlurmRow] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        code, _, sig = parts[2].partition(":")
        rows[parts[0]] = SlurmRow(
            parts[0],
            parts[1].split()[0].rstrip("+"),
            "",
            _slurm_time(parts[3]) if len(parts) > 3 else None,
            _slurm_time(parts[4]) if len(parts) > 4 else None,
            int(code) if code.isdigit() else None,
            int(sig) if sig.isdigit() and int(sig) else None,
        )
    return rows


def readable_reason(reason: str) -> str:
    """Slurm's pending reason in words (``Resources`` -> ``waiting for resources``)."""
    reason = reason.strip().strip("()")
    if reason in PENDING_REASONS:
        return PENDING_REASONS[reason]
    if reason.startswith(("QOS", "Assoc")):
        return f"waiting for account or QOS limits ({reason})"
    return f"pending ({reason})" if reason else "pending"


def compress_indices(indices: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (Slurm's ``--array`` syntax)."""
    values = sorted(set(indices))
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


def _same_value(name: str, ours: str, theirs: str) -> bool:
    if ours == theirs:
        return True
    try:
        if name == "mem":
            return parse_memory_mb(ours) == parse_memory_mb(theirs)
        if name == "time":
            return parse_walltime_seconds(ours) == parse_walltime_seconds(theirs)
        if name == "gres":
            return ours.replace("gpu:", "") == theirs.replace("gpu:", "")
    except ValueError:
        return False
    return False


def _check_line(value: str, what: str) -> None:
    if any(c in value for c in "\n\r\x00"):
        raise GateError(f"{what} must be on one line", [{"field": what, "message": "must not contain a newline"}])


class SlurmGate(BatchGate):
    """Runs jobs on a Slurm cluster with ``sbatch``/``squeue``/``sacct``/``scancel``/``scontrol``.

    Commands run on this machine, or on a login node over SSH when ``ssh_host`` is set (one
    connection, reused, made again when it drops). Job folders are shared with the cluster unless
    ``remote_workdir`` is set, in which case inputs and outputs move over SFTP.

    Per-job data kept in ``gate_data`` (enough for a new process after a restart): ``slurm_id``,
    ``folder`` (the job folder as the cluster sees it), ``shared``.

    With ``run_as_owner``, ``sbatch``, ``scancel`` and ``scontrol`` run as the job's owner through
    ``OwnerAccounts.exec_prefix`` (so Slurm records the real user and applies their limits); the
    batched ``squeue``/``sacct`` status calls stay one call as the server's account, which sees
    every user's jobs unless the cluster sets ``PrivateData=jobs``.
    """

    kind = "slurm"
    native_arrays = True
    native_dependencies = True
    supports_run_as_owner = True
    private_env = True  # a 0600 file in the job folder, read and removed by the batch script (or at cancel)

    ssh_host = Unicode("", help="Login node to run Slurm commands on over SSH; empty: run them here.").tag(config=True)
    ssh_port = Int(22, help="SSH port of the login node (default 22).").tag(config=True)
    ssh_user = Unicode("", help="SSH user name; empty: the current user.").tag(config=True)
    ssh_key_file = Unicode("", help="Private key file for SSH; empty: the agent and ~/.ssh keys.").tag(config=True)
    partition = Unicode("", help="Default partition (sbatch --partition); empty: the cluster's default.").tag(
        config=True
    )
    account = Unicode("", help="Default account (sbatch --account).").tag(config=True)
    qos = Unicode("", help="Default QOS (sbatch --qos).").tag(config=True)
    constraint = Unicode("", help="Default node constraint (sbatch --constraint).").tag(config=True)
    reservation = Unicode("", help="Default reservation (sbatch --reservation).").tag(config=True)
    extra_args = List(Unicode(), help='More sbatch options for every job, e.g. ["--exclusive"].').tag(config=True)
    remote_workdir = Unicode(
        "",
        help="Folder on the cluster for job folders when they are not on a shared filesystem (needs "
        "ssh_host); files then move over SFTP. Empty: job folders have the same path on both sides.",
    ).tag(config=True)
    poll_interval_min = Float(2.0, help="Seconds between squeue calls right after a submission (default 2).").tag(
        config=True
    )
    poll_interval_max = Float(10.0, help="Ceiling, in seconds, of the squeue interval (default 10).").tag(config=True)
    max_status_calls_per_minute = Int(6, help="Most squeue/sacct calls in any minute (default 6); 0: no limit.").tag(
        config=True
    )
    status_interval = Float(
        1.0, help="Seconds between reads of the jobs' status files (no Slurm command) (default 1)."
    ).tag(config=True)
    lost_after = Float(
        1800.0,
        help="Seconds a job may be missing from squeue and sacct with no status file before it is "
        "reported as an error (default 1800).",
    ).tag(config=True)
    python = Unicode(
        "python3",
        help="Python on the cluster, for notebook jobs and Executor calls: a path or command (default python3); "
        "Executor calls also accept a shell line that ends with one ('module load python/3.11 && python3').",
    ).tag(config=True)

    @validate("ssh_host")
    def _check_ssh_host(self, proposal: Any) -> str:
        return check_host_option(proposal["value"], "ssh_host", "ssh_user")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.runs_as_owner and not self.shared:
            raise ValueError(
                "run_as_owner needs job folders that the cluster shares (the owner's data root); remove remote_workdir"
            )
        self._rows: dict[str, SlurmRow] = {}
        self._rows_time = 0.0
        self._squeue_ok = False
        self._next_squeue = 0.0
        self._squeue_interval = self.poll_interval_min
        self._call_times: collections.deque[float] = collections.deque()
        self._accounting: bool | None = None
        self._accounting_checked = 0.0
        self._missing_since: dict[str, float] = {}
        self._staged: set[str] = set()
        #: Counters for benchmarks and describe(): Slurm commands made, by name.
        self.command_counts: collections.Counter[str] = collections.Counter()

    # --- plumbing --------------------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """True when job folders have the same path here and on the cluster."""
        return not (self.ssh_host and self.remote_workdir)

    def ssh_target(self) -> tuple[str, int, str, str]:
        """The login node Slurm commands run on (no host: they run here)."""
        return self.ssh_host, self.ssh_port, self.ssh_user, self.ssh_key_file

    async def setup(self) -> None:
        """Connect to the login node (if any). An unreachable node is reported by describe()."""
        if self.remote_workdir and not self.ssh_host:
            self.log.warning("slurm site %s: remote_workdir is ignored without ssh_host", self.site_name)
        await super().setup()

    async def _run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        idempotent: bool = True,
        status_call: bool = False,
        account: OwnerAccount | None = None,
    ) -> CommandResult:
        """Run a Slurm command here or on the login node; as ``account`` (through the exec prefix) if given."""
        self.command_counts[argv[0]] += 1
        if account is not None and self.accounts is not None:
            argv = self.accounts.command(account, argv, self._owner_env())
        if status_call:
            self._call_times.append(time.monotonic())
        if self.ssh_host:
            return await self.transport.run(argv, check=check, idempotent=idempotent, timeout=self.command_timeout)
        return await run_command(argv, env=self.env or None, check=check, timeout=self.command_timeout)

    def _owner_env(self) -> dict[str, str]:
        """Variables given to a command run as a job's owner (the exec prefix resets the environment):
        the site's ``env``, and this server's own ``SLURM_CONF`` when the commands run here.
        """
        env = {} if self.ssh_host or "SLURM_CONF" not in os.environ else {"SLURM_CONF": os.environ["SLURM_CONF"]}
        return {**env, **self.env}

    def remote_folder(self, job: Job) -> str:
        """The job folder as the cluster sees it."""
        known = job.gate_data.get("folder")
        if known:
            return str(known)
        if self.shared:
            return job.folder
        return posixpath.join(self.remote_workdir, job.id)

    def _slurm_id(self, job: Job) -> str | None:
        return str(job.gate_data.get("slurm_id") or job.native_id or "") or None

    def _speed_up(self) -> None:
        """Poll Slurm soon again (after a submission or an action)."""
        self._squeue_interval = self.poll_interval_min
        self._next_squeue = min(self._next_squeue, time.monotonic() + self.poll_interval_min)

    def next_poll_delay(self) -> float:
        """Seconds until :meth:`poll` has something new to look at (the manager may sleep that long).

        Short (``status_interval``) while jobs are live, as status files are read every poll; the
        Slurm commands inside :meth:`poll` keep their own slower, adaptive pace.
        """
        if self._live:
            return max(0.05, min(self.status_interval, self._next_squeue - time.monotonic()))
        return self.poll_interval_max

    def status_calls_last_minute(self) -> int:
        """How many squeue/sacct calls were made in the last 60 seconds."""
        cutoff = time.monotonic() - 60
        while self._call_times and self._call_times[0] < cutoff:
            self._call_times.popleft()
        return len(self._call_times)

    def _may_call_slurm(self) -> bool:
        limit = self.max_status_calls_per_minute
        return limit <= 0 or self.status_calls_last_minute() < limit

    # --- checks and the batch script --------------------------------------------------------------

    def validate(self, job: Job) -> list[dict[str, str]]:
        """Check extras and ``#SBATCH`` conflicts without I/O; return ``{"field", "message"}`` errors."""
        errors: list[dict[str, str]] = []
        if job.private_env and job.spec.array is not None:
            errors.append({"field": "private_env", "message": "an array job cannot have private variables on Slurm"})
        try:
            self._request_options(job, dependencies=())
        except GateError as exc:
            errors.extend(exc.errors or [{"field": "script", "message": exc.message}])
        return errors

    def _request_options(
        self, job: Job, dependencies: Sequence[tuple[str, str]], array: str | None = None
    ) -> list[tuple[str, str]]:
        """The sbatch options the request sets, as ``(name, value)``, after the conflict check.

        Raises :class:`GateError` naming the line when the script's own ``#SBATCH`` lines disagree.
        """
        spec = job.spec
        res = spec.resources
        extras = spec.extra("slurm")
        requested: list[tuple[str, str]] = []
        if res.nodes != 1:
            requested.append(("nodes", str(res.nodes)))
        if res.cpus != 1:
            requested.append(("cpus-per-task", str(res.cpus)))
        if res.memory_mb is not None:
            requested.append(("mem", f"{res.memory_mb}M"))
        if res.gpus:
            requested.append(("gres", f"gpu:{res.gpus}"))
        if res.walltime is not None:
            requested.append(("time", format_walltime(res.walltime)))
        if res.storage_mb is not None:  # Sky Port's storage: the disk the job needs on each node
            requested.append(("tmp", f"{res.storage_mb}M"))
        if array:
            requested.append(("array", array))
        if dependencies:
            by_kind: dict[str, list[str]] = {}
            for kind, native in dependencies:
                if kind not in ("afterok", "afterany"):
                    raise GateError(f"unknown dependency type {kind!r}")
                by_kind.setdefault(kind, []).append(str(native))
            requested.append(("dependency", ",".join(f"{k}:{':'.join(v)}" for k, v in by_kind.items())))
        # The site's name is its Sky Port account when none is configured: a job routed by it is
        # charged the cluster's default account, not a Slurm account named like the site.
        own = spec.account if spec.account and (self.account or spec.account != self.site_name) else None
        account = extras.get("account") or own
        for name, value in (
            ("partition", extras.get("partition")),
            ("account", account),
            ("qos", extras.get("qos")),
            ("constraint", extras.get("constraint")),
            ("reservation", extras.get("reservation")),
        ):
            if value:
                requested.append((name, str(value)))
        for key in extras:
            if key not in ("partition", "account", "qos", "constraint", "reservation", "extra_args"):
                raise GateError(
                    f"unknown slurm option {key!r}",
                    [
                        {
                            "field": f"slurm.{key}",
                            "message": "known: partition, account, qos, constraint, reservation, extra_args",
                        }
                    ],
                )
        for name, value in requested:
            _check_line(value, f"slurm.{name}")
        user_extra = extras.get("extra_args") or []
        if not isinstance(user_extra, list) or not all(isinstance(a, str) for a in user_extra):
            raise GateError(
                "slurm.extra_args must be a list of strings",
                [{"field": "slurm.extra_args", "message": "must be a list of strings"}],
            )
        for arg in user_extra:
            _check_line(arg, "slurm.extra_args")
        theirs = script_sbatch_options(spec.script)
        their_names = {name: (value, line) for name, value, line in theirs}
        conflicts: list[dict[str, str]] = []
        for name, value in requested:
            if name in their_names:
                their_value, line = their_names[name]
                if not _same_value(name, value, their_value):
                    conflicts.append(
                        {
                            "field": "script",
                            "message": f"the script's '{line}' conflicts with the "
                            f"request's --{name}={value}; remove one of them",
                        }
                    )
            if name == "gres" and "gpus" in their_names:
                their_value, line = their_names["gpus"]
                if their_value.replace("gpu:", "") != value.replace("gpu:", ""):
                    conflicts.append(
                        {
                            "field": "script",
                            "message": f"the script's '{line}' conflicts with the "
                            f"request's --gres={value}; remove one of them",
                        }
                    )
        if conflicts:
            raise GateError("; ".join(c["message"] for c in conflicts), conflicts)
        return [(n, v) for n, v in requested if n not in their_names] + [("", a) for a in user_extra]

    def _site_options(self, job: Job) -> list[str]:
        """The site's own defaults (skipped where the request or the script sets the option)."""
        extras = job.spec.extra("slurm")
        theirs = {name for name, _, _ in script_sbatch_options(job.spec.script)}
        lines: list[str] = []
        for name in ("partition", "account", "qos", "constraint", "reservation"):
            value = getattr(self, name)
            if value and name not in theirs and not extras.get(name) and not (name == "account" and job.spec.account):
                lines.append(f"--{name}={value}")
        lines.extend(self.extra_args)
        return lines

    def _sbatch_options(
        self, job: Job, options: list[tuple[str, str]], *, folder: str, array: bool = False, array_parent: str = ""
    ) -> list[str]:
        """The options given to ``sbatch`` on its command line, one argument each.

        Never written as ``#SBATCH`` lines: sbatch splits those at spaces and reads quotes and
        backslashes its own way, so a value (a folder with a space, ``--partition="a --wrap=x"``)
        could break in two or add an option. As arguments, each value reaches Slurm whole. The
        script's own ``#SBATCH`` lines stay in the script and keep precedence: an option the script
        sets is not given here (a command-line option would override it).
        """
        theirs = {name for name, _, _ in script_sbatch_options(job.spec.script)}
        name = re.sub(r"[^A-Za-z0-9_.@+=:,-]", "_", job.spec.name)[:128] or "swm"
        pattern_safe = folder.replace("%", "%%")  # Slurm expands %j, %x, ... in --output/--error
        ours: list[str] = []
        if "job-name" not in theirs:
            ours.append(f"--job-name={name}")
        if "comment" not in theirs:
            # Lets a restarted server find a job it submitted but had not yet recorded (adopt()).
            ours.append(f"--comment={COMMENT_PREFIX}{array_parent or job.id}")
        # A script that names its own output files gets them (Slurm writes them, patterns and all);
        # the wrapper copies the job's output into the job folder too, where the API reads it.
        if "output" not in theirs and "error" not in theirs:
            if array:
                ours.append(f"--output={pattern_safe}/slurm-%A_%a.out")
            else:
                ours += [f"--output={pattern_safe}/{STDOUT_FILE}", f"--error={pattern_safe}/{STDERR_FILE}"]
        if "chdir" not in theirs:
            ours.append(f"--chdir={folder}")
        ours.extend(f"--{n}={v}" if n else v for n, v in options)
        ours.extend(self._site_options(job))
        for option in ours:
            _check_line(option, "sbatch option")
        return [option for option in ours if _option_name(option) not in theirs]

    def _batch_script(
        self, job: Job, sbatch: list[str], *, folder: str, array_map: str | None = None, array_parent: str = ""
    ) -> str:
        """The batch script: the script's own ``#SBATCH`` lines, then the wrapper (:mod:`.batch`)."""
        q = sh_quote
        own = script_sbatch_options(job.spec.script)
        theirs = {name for name, _, _ in own}
        header = [line for _, _, line in dict.fromkeys(own)]  # the script's own #SBATCH lines, as they are
        header.append("# sbatch options, given on its command line: " + " ".join(q(o) for o in sbatch))
        if array_map is not None:
            locate = [
                f"__swm_map={q(array_map)}",
                "IFS=$'\\t' read -r __swm_id __swm_dir < <(awk -F'\\t' -v i=\"$SLURM_ARRAY_TASK_ID\" "
                '\'$1 == i { print $2 "\\t" $3; exit }\' "$__swm_map")',
                'if [ -z "${__swm_dir:-}" ]; then',
                '    echo "swm: no task $SLURM_ARRAY_TASK_ID in $__swm_map" >&2; exit 1',
                "fi",
            ]
            exported = [
                'export SWM_JOB_ID="$__swm_id" SWM_ARRAY_TASK_ID="$SLURM_ARRAY_TASK_ID"',
                f"export SWM_ARRAY_JOB_ID={q(array_parent)}",
            ]
        else:
            locate = [f"__swm_id={q(job.id)}", f"__swm_dir={q(folder)}"]
            exported = ['export SWM_JOB_ID="$__swm_id"']
        workdir = job.spec.workdir
        if workdir and not posixpath.isabs(workdir) and not self.shared:
            workdir = None
        env = job_environment(job, workdir or folder)
        for key in ("SWM_WORKDIR", "SWM_JOB_ID", "SWM_ARRAY_TASK_ID", "SWM_ARRAY_JOB_ID"):
            env.pop(key, None)  # set by the wrapper (an array task's from the map)
        own_output = "output" in theirs or "error" in theirs
        parts = WrapperParts(
            gate=self.kind,
            shell="/bin/bash",
            header=header,
            locate=locate,
            run_id="${SLURM_JOB_ID:-}",
            signals=(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1),
            exported=exported,
            env=env,
            workdir=workdir,
            in_folder="chdir" not in theirs,  # the script's own --chdir: Slurm started it there
            output="tee" if own_output else ("files" if array_map is not None else "site"),
        )
        return self.wrapper(job, parts)

    # --- submission --------------------------------------------------------------------------------

    async def _sbatch(self, script_path: str, options: list[str], account: OwnerAccount | None) -> str:
        try:
            argv = ["sbatch", "--parsable", *options, script_path]
            result = await self._run(argv, idempotent=False, account=account)
        except CommandError as exc:
            if exc.exit_code is None or _CONTROLLER_DOWN.search(exc.stderr):
                raise SiteUnavailable(f"Slurm could not take the job now: {exc.message}") from None
            text = " ".join(line.strip() for line in exc.stderr.splitlines() if line.strip())
            raise GateError(f"Slurm refused the job: {text or exc.message}") from None
        first = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        slurm_id = first.split(";")[0].strip()
        if not slurm_id.isdigit():
            raise GateError(f"sbatch gave no job id: {result.stdout.strip()!r} {result.stderr.strip()!r}")
        self._speed_up()
        self._live += 1
        return slurm_id

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Write the batch script into the job folder and submit it with ``sbatch --parsable``.

        Raises :class:`GateError` with Slurm's message when Slurm refuses the job (or the script's
        ``#SBATCH`` lines conflict with the request), :class:`SiteUnavailable` when the controller
        or the login node cannot be reached.
        """
        options = self._request_options(job, dependencies)
        account = self.owner_account(job)
        folder = self.remote_folder(job)
        if not self.shared and job.id not in self._staged:
            await self.upload_job_folder(job)
            self._staged.add(job.id)
        sbatch = self._sbatch_options(job, options, folder=folder)
        script = self._batch_script(job, sbatch, folder=folder)
        script_path = posixpath.join(folder, BATCH_FILE)
        await self._write(script_path, script.encode(), 0o755, account)
        await self.write_private_env(job, folder, account)
        try:
            slurm_id = await self._sbatch(script_path, sbatch, account)
        except BaseException:
            if job.private_env:
                await self.remove_private_env(job, account)
            raise
        self.log.info("slurm site %s: job %s is Slurm job %s", self.site_name, job.id, slurm_id)
        return GateStatus(
            JobState.WAITING,
            details="submitted to Slurm",
            native_id=slurm_id,
            gate_data={"slurm_id": slurm_id, "folder": folder, "shared": self.shared},
        )

    async def submit_array(
        self, parent: Job, tasks: list[Job], dependencies: Sequence[tuple[str, str]] = ()
    ) -> dict[str, GateStatus]:
        """Submit all ``tasks`` as one ``sbatch --array`` (with the parent's throttle).

        Each task's folder is found by the batch script from ``SLURM_ARRAY_TASK_ID`` through a
        small map file. Returns each task's first status with native id ``<array id>_<index>``.
        """
        if not tasks:
            return {}
        indices = [int(t.array_index if t.array_index is not None else 0) for t in tasks]
        if len(set(indices)) != len(indices):
            raise GateError("array tasks must have distinct indices")
        spec_array = parent.spec.array
        text = compress_indices(indices)
        if spec_array is not None and spec_array.throttle:
            text += f"%{spec_array.throttle}"
        options = self._request_options(parent, dependencies, array=text)
        account = self.owner_account(parent)
        if self.shared:
            array_folder = parent.folder or tasks[0].folder
        else:
            array_folder = posixpath.join(self.remote_workdir, parent.id)
            await self.transport.makedirs(array_folder)
        folders: dict[str, str] = {}
        lines = []
        for task in tasks:
            folder = self.remote_folder(task)
            if any(c in folder for c in "\t\n\r"):
                raise GateError(f"the job folder {folder!r} has a tab or newline")
            folders[task.id] = folder
            lines.append(f"{task.array_index}\t{task.id}\t{folder}\n")
            if not self.shared and task.id not in self._staged:
                await self.upload_job_folder(task)
                self._staged.add(task.id)
        map_path = posixpath.join(array_folder, ARRAY_MAP_FILE)
        await self._write(map_path, "".join(lines).encode(), 0o644, account)
        sbatch = self._sbatch_options(parent, options, folder=array_folder, array=True, array_parent=parent.id)
        script = self._batch_script(parent, sbatch, folder=array_folder, array_map=map_path, array_parent=parent.id)
        script_path = posixpath.join(array_folder, BATCH_FILE)
        await self._write(script_path, script.encode(), 0o755, account)
        array_id = await self._sbatch(script_path, sbatch, account)
        self.log.info("slurm site %s: array %s is Slurm array %s (%s)", self.site_name, parent.id, array_id, text)
        out: dict[str, GateStatus] = {}
        for task in tasks:
            native = f"{array_id}_{task.array_index}"
            out[task.id] = GateStatus(
                JobState.WAITING,
                details="submitted to Slurm",
                native_id=native,
                gate_data={"slurm_id": native, "array_id": array_id, "folder": folders[task.id], "shared": self.shared},
            )
        return out

    # --- status ------------------------------------------------------------------------------------

    async def _find_unrecorded(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """Jobs whose launch a crash interrupted: find any that reached Slurm by their comment.

        One ``squeue`` call for all of them. A job found is answered waiting, with its Slurm id; a
        job not found is left out, and the manager queues it again. An array sent as one
        ``sbatch --array`` carries its parent's comment: when ``jobs`` holds the parent and its
        tasks, each task is answered with its id ``<array id>_<index>``.
        """
        if not jobs:
            return {}
        result = await self._run(["squeue", "-h", "--states=all", "-o", "%i|%k"], check=False, status_call=True)
        if result.exit_code != 0:
            raise GateError(f"cannot tell whether jobs reached Slurm: {result.stderr.strip()[:300]}")
        by_comment: dict[str, str] = {}
        for line in result.stdout.splitlines():
            slurm_id, _, comment = line.strip().partition("|")
            if comment.startswith(COMMENT_PREFIX):
                by_comment.setdefault(comment[len(COMMENT_PREFIX) :], slurm_id)
        found: dict[str, GateStatus] = {}
        for job in jobs:
            if job.array_parent:  # a task of an array sent as one sbatch, found by its parent's comment
                array_id = by_comment.get(job.array_parent, "").split("_")[0]
                if array_id:
                    native = f"{array_id}_{job.array_index}"
                    found[job.id] = GateStatus(
                        JobState.WAITING,
                        "found in Slurm after a restart",
                        native_id=native,
                        gate_data={
                            "slurm_id": native,
                            "array_id": array_id,
                            "folder": self.remote_folder(job),
                            "shared": self.shared,
                        },
                    )
                continue
            slurm_id = by_comment.get(job.id)
            if not slurm_id:
                continue
            if job.is_array_parent:  # squeue shows an array as "<id>_[0-9%2]" or "<id>_<task>"
                found[job.id] = GateStatus(
                    JobState.WAITING, "found in Slurm after a restart", gate_data={"array_id": slurm_id.split("_")[0]}
                )
                continue
            found[job.id] = GateStatus(
                JobState.WAITING,
                "found in Slurm after a restart",
                native_id=slurm_id,
                gate_data={"slurm_id": slurm_id, "folder": self.remote_folder(job), "shared": self.shared},
            )
        return found

    async def _squeue(self, slurm_ids: Sequence[str]) -> dict[str, SlurmRow] | None:
        """One squeue call for all ``slurm_ids``; None when Slurm did not answer."""
        base_ids = sorted({s.split("_")[0] for s in slurm_ids}, key=lambda s: int(s) if s.isdigit() else 0)
        argv = ["squeue", "-h", "-r", "--states=all", "-o", _SQUEUE_FORMAT, "-j", ",".join(base_ids)]
        try:
            result = await self._run(argv, check=False, status_call=True)
        except CommandError as exc:
            self.log.info("slurm site %s: squeue failed: %s", self.site_name, exc.message)
            return None
        if result.exit_code != 0:
            if "invalid job id" in result.stderr.lower():
                return {}
            self.log.info(
                "slurm site %s: squeue failed (%s): %s", self.site_name, result.exit_code, result.stderr.strip()[:500]
            )
            return None
        return parse_squeue(result.stdout)

    async def _sacct(self, slurm_ids: Sequence[str]) -> dict[str, SlurmRow] | None:
        """One sacct call for jobs missing from squeue; None when accounting is off or failed."""
        now = time.monotonic()
        if self._accounting is False and now - self._accounting_checked < 600:
            return None
        argv = ["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode,Start,End", "-j", ",".join(slurm_ids)]
        try:
            result = await self._run(argv, check=False, status_call=True)
        except CommandError:
            return None
        self._accounting_checked = now
        if result.exit_code != 0:
            if "accounting storage is disabled" in (result.stderr + result.stdout).lower():
                if self._accounting is not False:
                    self.log.info("slurm site %s: accounting is off; relying on status files", self.site_name)
                self._accounting = False
            return None
        self._accounting = True
        return parse_sacct(result.stdout)

    async def _read_statuses(self, jobs: Sequence[Job]) -> dict[str, StatusRecord | None]:
        paths = {job.id: posixpath.join(self.remote_folder(job), STATUS_FILE) for job in jobs}
        local = {job.id: paths[job.id] for job in jobs if self.job_shared(job)}
        remote = {jid: p for jid, p in paths.items() if jid not in local}
        out: dict[str, StatusRecord | None] = {}
        if local:
            texts = await asyncio.to_thread(_read_local_texts, list(local.values()))
            out.update({jid: parse_status_file(texts[p]) for jid, p in local.items()})
        if remote:
            try:
                remote_texts = await read_remote_files(self.transport, list(remote.values()))
            except (CommandError, SiteUnavailable) as exc:
                self.log.info("slurm site %s: cannot read status files: %s", self.site_name, exc.message)
                remote_texts = {}
            out.update({jid: parse_status_file(remote_texts.get(p)) for jid, p in remote.items()})
        return out

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """The status of many jobs: at most one squeue and one sacct call, whatever ``len(jobs)``.

        Status files are read every call; ``squeue`` only when its adaptive interval has passed
        (and never above ``max_status_calls_per_minute``). Jobs with nothing new are left out.
        """
        launching = {j.id for j in jobs if not self._slurm_id(j) and j.launching}
        interrupted = [j for j in jobs if j.id in launching or (j.array_parent in launching and not self._slurm_id(j))]
        adopted = await self._find_unrecorded(interrupted)
        known = [j for j in jobs if self._slurm_id(j)]
        self._live = len(known)
        if not known:
            return adopted
        now = time.monotonic()
        fresh = False
        if now >= self._next_squeue and self._may_call_slurm():
            rows = await self._squeue([self._slurm_id(j) or "" for j in known])
            self._squeue_ok = rows is not None
            if rows is not None:
                self._rows = rows
                self._rows_time = time.time()
                fresh = True
            self._squeue_interval = min(self.poll_interval_max, max(self.poll_interval_min, self._squeue_interval * 2))
            self._next_squeue = time.monotonic() + self._squeue_interval
        statuses = await self._read_statuses(known)
        missing = [
            j for j in known if fresh and (self._slurm_id(j) or "") not in self._rows and not _ended(statuses.get(j.id))
        ]
        accounted: dict[str, SlurmRow] = {}
        if missing and self._may_call_slurm():
            accounted = await self._sacct([self._slurm_id(j) or "" for j in missing]) or {}
        out: dict[str, GateStatus] = dict(adopted)
        for job in known:
            status = self._decide(job, statuses.get(job.id), accounted, fresh)
            if status is not None:
                out[job.id] = status
        return out

    def _decide(
        self, job: Job, record: StatusRecord | None, accounted: dict[str, SlurmRow], fresh: bool
    ) -> GateStatus | None:
        slurm_id = self._slurm_id(job) or ""
        row = self._rows.get(slurm_id) or accounted.get(slurm_id)
        if row is not None or (record is not None and record.start is not None):
            self._missing_since.pop(job.id, None)
        if record is not None and record.exit_code is not None:
            self._missing_since.pop(job.id, None)
            return self.ended(job, record)
        if row is not None:
            state = row.state
            if state in _WAITING_STATES:
                if record is not None and record.start is not None and state == "CONFIGURING":
                    return GateStatus(JobState.RUNNING, "running", start_time=record.start)
                return GateStatus(JobState.WAITING, readable_reason(row.reason))
            if state in _RUNNING_STATES:
                details = "running" if state == "RUNNING" else state.lower().replace("_", " ")
                start = record.start if record and record.start else row.start
                return GateStatus(JobState.RUNNING, details, start_time=start)
            if state == "COMPLETED":
                return self._final(job, JobState.FINISHED, row.exit_code or 0, None, "", record, row)
            if state == "CANCELLED":
                return self._final(
                    job, JobState.CANCELED, None, record.signal if record else None, "canceled in Slurm", record, row
                )
            if state == "TIMEOUT":
                return self._final(job, JobState.FINISHED, 128 + 15, 15, "walltime limit reached", record, row)
            if state == "OUT_OF_MEMORY":
                return self._final(job, JobState.FINISHED, row.exit_code or 137, 9, "out of memory", record, row)
            if state == "FAILED":
                code = row.exit_code if row.exit_code is not None else 1
                reason = f"failed in Slurm ({row.reason})" if row.reason and row.reason != "None" else "failed"
                return self._final(job, JobState.FINISHED, code, row.signal, reason, record, row)
            if state in _ERROR_STATES:
                return self._final(job, JobState.ERROR, None, None, _ERROR_STATES[state], record, row)
            return GateStatus(JobState.RUNNING, f"Slurm state {state}")
        # Slurm does not list the job (purged, or the controller just restarted).
        if record is not None and record.signal is not None:
            self._missing_since.pop(job.id, None)
            return self.ended(job, record)
        if record is not None and record.start is not None:
            return GateStatus(JobState.RUNNING, "running", start_time=record.start)
        if fresh and self._squeue_ok:
            since = self._missing_since.setdefault(job.id, time.monotonic())
            if time.monotonic() - since > self.lost_after:
                return GateStatus(JobState.ERROR, "Slurm no longer knows this job and it left no status file")
        return None

    def _final(
        self,
        job: Job,
        state: JobState,
        exit_code: int | None,
        signal: int | None,
        details: str,
        record: StatusRecord | None,
        row: SlurmRow | None = None,
    ) -> GateStatus:
        self._missing_since.pop(job.id, None)
        start = (record.start if record else None) or (row.start if row else None)
        end = (record.end if record else None) or (row.end if row else None)
        if state is JobState.FINISHED and not details:
            details = "exit code 0" if exit_code == 0 else f"exit code {exit_code}"
        return GateStatus(state, details, exit_code=exit_code, signal=signal, start_time=start, end_time=end)

    # --- actions -------------------------------------------------------------------------------------

    async def cancel(self, job: Job) -> None:
        """``scancel`` the job (idempotent: a job Slurm no longer knows is not an error)."""
        slurm_id = self._slurm_id(job)
        self._cancelled.add(job.id)
        if not slurm_id:
            return
        result = await self._run(["scancel", slurm_id], check=False, account=self.owner_account(job))
        if (
            result.exit_code != 0
            and "invalid job id" not in result.stderr.lower()
            and "already completing or completed" not in result.stderr.lower()
        ):
            raise CommandError(result.argv, result.exit_code, result.stderr)
        if job.private_env or self.shared:  # a job canceled before it started leaves no private variables
            await self._remove(self.remote_folder(job), PRIVATE_ENV_FILE, self.owner_account(job), check=False)
        self._speed_up()

    async def hold(self, job: Job) -> bool:
        """``scontrol uhold`` (a user hold, as the user would place): True if Slurm now holds the job."""
        return await self._scontrol("uhold", job)

    async def release(self, job: Job) -> bool:
        """``scontrol release``: True if Slurm released the job."""
        return await self._scontrol("release", job)

    async def _scontrol(self, action: str, job: Job) -> bool:
        slurm_id = self._slurm_id(job)
        if not slurm_id:
            return False
        result = await self._run(["scontrol", action, slurm_id], check=False, account=self.owner_account(job))
        self._speed_up()
        if result.exit_code != 0:
            self.log.info(
                "slurm site %s: scontrol %s %s: %s", self.site_name, action, slurm_id, result.stderr.strip()[:300]
            )
            return False
        return True

    async def describe(self) -> dict[str, Any]:
        """Partitions and limits from ``sinfo``; ``healthy`` False with a message when Slurm is unreachable."""
        info = self.unanswered_description(
            partitions=[],
            login_node=f"{self.ssh_host}:{self.ssh_port}" if self.ssh_host else "",
            shared_filesystem=self.shared,
        )
        try:
            result = await self._run(["sinfo", "-h", "-o", "%P|%a|%l|%D|%c|%m|%G"], check=True)
        except (CommandError, SiteUnavailable) as exc:
            info["health_message"] = f"Slurm does not answer: {exc.message}"
            return info
        partitions: dict[str, dict[str, Any]] = {}
        for line in result.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 7:
                continue
            name = parts[0].rstrip("*")
            part = partitions.setdefault(
                name,
                {
                    "name": name,
                    "default": parts[0].endswith("*"),
                    "available": parts[1] == "up",
                    "walltime": None,
                    "nodes": 0,
                    "cpus": 0,
                    "memory": 0,
                    "gpus": 0,
                },
            )
            part["nodes"] += _int(parts[3])
            part["cpus"] = max(part["cpus"], _int(parts[4]))
            part["memory"] = max(part["memory"], _int(parts[5]))
            gpus = re.search(r"gpu(?::[^:(,]+)?:(\d+)", parts[6])
            part["gpus"] = max(part["gpus"], int(gpus.group(1)) if gpus else 0)
            limit = parts[2].strip()
            if limit not in ("infinite", "UNLIMITED", "n/a"):
                try:
                    part["walltime"] = parse_walltime_seconds(limit)
                except ValueError:
                    part["walltime"] = None
        info["partitions"] = list(partitions.values())
        if partitions:
            values = list(partitions.values())
            walltimes = [p["walltime"] for p in values]
            info["limits"] = {
                "cpus": max(p["cpus"] for p in values),
                "memory": max(p["memory"] for p in values),
                "gpus": max(p["gpus"] for p in values),
                "nodes": max(p["nodes"] for p in values),
                "walltime": None if any(w is None for w in walltimes) else max(walltimes),
            }
        info["healthy"] = True
        info["health_message"] = f"{len(partitions)} partitions"
        return info


def _ended(record: StatusRecord | None) -> bool:
    return record is not None and record.ended


def _int(text: str) -> int:
    match = re.match(r"\d+", text.strip())
    return int(match.group(0)) if match else 0


def _option_name(option: str) -> str:
    """The long name of an sbatch option given as one argument (``-p x`` -> ``partition``), or ""."""
    found = script_sbatch_options("#SBATCH " + sh_quote(option))
    return found[0][0] if found else ""


def _read_local_texts(paths: list[str]) -> dict[str, str | None]:
    """Status records on the shared filesystem; one the job replaced by a link reads as missing."""
    return {path: read_job_text(posixpath.dirname(path), posixpath.basename(path)) for path in paths}


__all__ = [
    "SlurmGate",
    "StatusRecord",
    "compress_indices",
    "parse_squeue",
    "parse_status_file",
    "readable_reason",
    "script_sbatch_options",
]
