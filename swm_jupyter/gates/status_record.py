"""The status record a job leaves in its folder: ``.swm-status``, one line per event.

Every gate's wrapper appends to it (the local supervisor, the Slurm and SSH wrappers):

- ``start <epoch> <run id> [<host>]`` when the job starts; the run id is the pid for local and
  SSH jobs, the Slurm job id for Slurm jobs;
- ``exit <code> <epoch>`` when it ends, or ``signal <n> <epoch>`` when a signal stopped it.

A signal is known only from a ``signal`` line: the local supervisor writes one when the kernel says
a signal killed the job, the Slurm and SSH wrappers when they are signalled themselves (cancel,
walltime). It is never read into an exit code: ``exit 255`` is exit code 255, no signal.

Each line is written in one ``write``; a reader takes only lines that end with a newline, so a
line being written is never half-read. A requeued job's record is removed before it runs again
(``Gate.reset_run``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

#: Name of the record in the job folder.
STATUS_FILE = ".swm-status"


@dataclass
class StatusRecord:
    """What a job's status file says: when it started, and how it ended (if it did)."""

    start: float | None = None
    run_id: str = ""
    end: float | None = None
    exit_code: int | None = None
    signal: int | None = None

    @property
    def ended(self) -> bool:
        """True when the file records an exit code or a signal."""
        return self.exit_code is not None or self.signal is not None


def parse_status_file(text: str | None) -> StatusRecord | None:
    """Parse a status record (see the module docstring); None for a missing file.

    Unknown or broken lines, and a last line without its newline (still being written), are skipped.
    """
    if text is None:
        return None
    record = StatusRecord()
    for line in text.split("\n")[:-1]:
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            if parts[0] == "start":
                record.start = float(parts[1])
                record.run_id = parts[2] if len(parts) > 2 else ""
            elif parts[0] in ("exit", "signal"):
                value = int(parts[1])
                if parts[0] == "exit":
                    record.exit_code = value
                else:
                    record.signal = value
                if len(parts) > 2:
                    record.end = float(parts[2])
        except ValueError:
            continue
    return record


def read_status_file(path: str) -> StatusRecord | None:
    """The record at ``path`` on this machine, or None if there is none (see :func:`read_job_file`)."""
    return parse_status_file(read_job_file(path))


#: The most of a job's bookkeeping file that is read.
READ_LIMIT = 1 << 16


def read_job_file(path: str, limit: int = READ_LIMIT) -> str | None:
    """The first ``limit`` bytes of a small file the job's account may have written (its status record,
    its notebook runner's details), or None if it is missing.

    The reader may have more rights than the job (a service that runs jobs as their owners): a symbolic
    link in the file's place is not followed and anything but a regular file (a FIFO would block the
    reader) is read as no file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read(limit).decode("utf-8", errors="replace")
