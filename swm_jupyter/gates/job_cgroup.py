"""A cgroup (v2) of its own for each local job, where the supervisor may make one.

A process that leaves both a job's session and its process tree (a daemon that forks twice, whose
parent is gone) is out of reach of :mod:`.process_tree`. The kernel's control groups are not: a
child stays in its parent's cgroup whatever it does, unless it is moved by someone allowed to
write the cgroup files. So where the supervisor can create cgroups (as root, or in a cgroup
delegated to its user), each job starts in ``<the supervisor's cgroup>/swm-job-<job id>``, and a
cancel signals every process listed there as well as the process tree; the final KILL uses
``cgroup.kill`` (Linux 5.14+) or, without it, freezes the group and kills each process.

Placement needs no help from the child: the single-threaded supervisor moves itself into the job's
cgroup, spawns, and moves back (a child is born in its parent's cgroup), so even a job that forks
at once cannot leave a process behind. Where none of this is possible (no cgroup2 mount, no right
to write it), :func:`JobCgroups.open` answers None and the process tree alone is used.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator

#: Job ids become folder names: only these characters are used (UUIDs and array task ids fit).
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
PREFIX = "swm-job-"


def cgroup2_mount() -> str | None:
    """Where the unified (v2) cgroup hierarchy is mounted, or None."""
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4]
    except OSError:
        return None
    return None


def own_cgroup() -> str | None:
    """This process's cgroup v2 path (``/...``), or None."""
    try:
        with open("/proc/self/cgroup") as handle:
            for line in handle:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


class JobCgroups:
    """The cgroups of one supervisor's jobs, under the supervisor's own cgroup."""

    def __init__(self, home: str) -> None:
        self.home = home

    @classmethod
    def open(cls) -> JobCgroups | None:
        """The job cgroups of this process, if it may create them and move processes into them; else None."""
        mount, path = cgroup2_mount(), own_cgroup()
        if mount is None or path is None:
            return None
        home = os.path.join(mount, path.lstrip("/"))
        groups = cls(home)
        probe = f"probe-{os.getpid()}"
        try:
            with groups.placed(probe):  # creating one and moving into it and back: the whole capability
                pass
        except OSError:
            return None
        finally:
            groups.remove(probe)
        return groups

    def leftovers(self) -> list[str]:
        """The job ids of the cgroups an earlier supervisor left here (jobs whose processes outlived them)."""
        try:
            names = os.listdir(self.home)
        except OSError:
            return []
        return [
            name[len(PREFIX) :] for name in names if name.startswith(PREFIX) and _SAFE_ID.match(name[len(PREFIX) :])
        ]

    def folder(self, job_id: str) -> str:
        """The cgroup folder of job ``job_id``."""
        if not _SAFE_ID.match(job_id):
            raise ValueError(f"job id {job_id!r} cannot name a cgroup")
        return os.path.join(self.home, PREFIX + job_id)

    def enter(self, job_id: str) -> None:
        """Move this process into job ``job_id``'s cgroup (created if need be): what it spawns next is
        born there. Raises OSError (or ValueError for an id that cannot name a cgroup) if it cannot."""
        folder = self.folder(job_id)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o755)
        _write(os.path.join(folder, "cgroup.procs"), "0")

    def place(self, job_id: str, pid: int) -> None:
        """Move process ``pid`` (one of this user's, in this process's own cgroup) into job
        ``job_id``'s cgroup (created if need be). Raises OSError or ValueError if it cannot."""
        folder = self.folder(job_id)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o755)
        _write(os.path.join(folder, "cgroup.procs"), str(pid))

    def leave(self) -> None:
        """Move this process back into its own cgroup. Raises OSError if it cannot."""
        _write(os.path.join(self.home, "cgroup.procs"), "0")

    @contextlib.contextmanager
    def placed(self, job_id: str) -> Iterator[None]:
        """Run the block with this process in job ``job_id``'s cgroup (see :meth:`enter`, :meth:`leave`)."""
        self.enter(job_id)
        try:
            yield
        finally:
            self.leave()

    def processes(self, job_id: str) -> list[int]:
        """The pids in job ``job_id``'s cgroup (none if it has no cgroup)."""
        try:
            with open(os.path.join(self.folder(job_id), "cgroup.procs")) as handle:
                return [int(line) for line in handle if line.strip()]
        except (OSError, ValueError):
            return []

    def signal(self, job_id: str, signum: int) -> int:
        """Send ``signum`` to every process of the job's cgroup; how many there were."""
        pids = self.processes(job_id)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        return len(pids)

    def kill(self, job_id: str) -> None:
        """KILL every process of the job's cgroup, including any forked meanwhile."""
        folder = self.folder(job_id)
        if not os.path.isdir(folder):
            return
        try:
            _write(os.path.join(folder, "cgroup.kill"), "1")
            return
        except OSError:
            pass  # before Linux 5.14: freeze, kill each, thaw
        freeze = os.path.join(folder, "cgroup.freeze")
        with contextlib.suppress(OSError):
            _write(freeze, "1")
        for _ in range(10):
            if not self.signal(job_id, signal.SIGKILL):
                break
            time.sleep(0.01)
        with contextlib.suppress(OSError):
            _write(freeze, "0")

    def remove(self, job_id: str) -> bool:
        """Remove the job's cgroup if no process is left in it; True if it is gone."""
        try:
            os.rmdir(self.folder(job_id))
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
