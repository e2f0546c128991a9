"""What a job runs and with which environment: shared by every gate."""

from __future__ import annotations

import shlex
import sys

from .model import Job

#: File names inside a job folder.
SCRIPT_FILE = "job.sh"
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
#: Names the gates' own records start with (``.swm-status``, ``.swm-details``, ``.swm-run.sh``):
#: hidden from a job's file list and never served.
BOOKKEEPING_PREFIX = ".swm"


def job_environment(job: Job, workdir: str) -> dict[str, str]:
    """The variables a job sees besides its own ``env``: ``SWM_JOB_ID`` and friends."""
    env = {
        "SWM_JOB_ID": job.id,
        "SWM_JOB_NAME": job.spec.name,
        "SWM_WORKDIR": workdir,
        "SWM_SITE": job.site,
    }
    if job.array_index is not None:
        env["SWM_ARRAY_TASK_ID"] = str(job.array_index)
        env["SWM_ARRAY_JOB_ID"] = job.array_parent or ""
    env.update(job.spec.env)
    return env


def job_argv(job: Job, python: str | None = None) -> list[str]:
    """The argument list that runs ``job`` from inside its working folder.

    Script jobs run ``job.sh`` (written by the manager into the job folder) with the interpreter of
    its ``#!`` line, or bash; command jobs run their command as given; notebook jobs run the
    notebook runner with ``python`` (default: this interpreter). A job whose spec names files for
    its standard streams (Sky Port's ``#SWM stdin``/``stdout``/``stderr``, relative to its working
    folder) runs through ``/bin/sh`` redirecting them there; the last argument stays the same.
    """
    argv = _program_argv(job, python)
    spec = job.spec
    if not (spec.stdin or spec.stdout or spec.stderr):
        return argv
    redirects = ['exec "$@"']
    if spec.stdin:
        redirects.append(f"<{shlex.quote(spec.stdin)}")
    if spec.stdout:
        redirects.append(f">{shlex.quote(spec.stdout)}")
    if spec.stderr:
        redirects.append("2>&1" if spec.stderr == spec.stdout else f"2>{shlex.quote(spec.stderr)}")
    return ["/bin/sh", "-c", " ".join(redirects), "swm-job", *argv]


def _program_argv(job: Job, python: str | None) -> list[str]:
    if job.spec.command is not None:
        return list(job.spec.command)
    if job.spec.notebook is not None:
        return [python or sys.executable, "-m", "swm_jupyter.runners.notebook", "job.json"]
    first = (job.spec.script or "").splitlines()[0] if job.spec.script else ""
    if first.startswith("#!"):
        return [*shlex.split(first[2:].strip()), SCRIPT_FILE]
    return ["/bin/bash", SCRIPT_FILE]


def job_command_line(job: Job, python: str = "python3") -> str:
    """:func:`job_argv` as one shell-quoted line, for batch scripts and remote shells."""
    return shlex.join(job_argv(job, python))
