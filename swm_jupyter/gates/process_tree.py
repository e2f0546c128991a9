"""Every process of a local job, found in ``/proc``, and signals sent only to those.

A local job is started by the supervisor as the leader of a new session. Its processes are the
leader itself, every process of its session, every descendant of those (by parent pid), and the
sessions those descendants started (``setsid``). A process is named by its pid AND its start time,
so a pid that the kernel gave to an unrelated process later is never signalled. A process that
left both the session and the tree (a daemon that forked twice and whose parent is gone) is out of
reach of this module; where jobs have cgroups of their own, :mod:`.job_cgroup` reaches it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds two readings of one process's start time may differ by (clock ticks, rounding).
START_TOLERANCE = 2.0


def _boot_time() -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("btime"):
                return float(line.split()[1])
    return 0.0


_BOOT_TIME = _boot_time()


@dataclass(frozen=True)
class ProcessInfo:
    """What ``/proc/<pid>/stat`` says of one process."""

    pid: int
    ppid: int
    session: int
    start: float  # epoch seconds
    uid: int
    zombie: bool


def process_info(pid: int) -> ProcessInfo | None:
    """The process ``pid`` (a zombie included), or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        uid = os.stat(f"/proc/{pid}").st_uid
    except (OSError, ValueError):
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        session=int(fields[3]),
        start=_BOOT_TIME + int(fields[19]) / _CLOCK_TICKS,
        uid=uid,
        zombie=fields[0] == b"Z",
    )


def process_start(pid: int) -> float | None:
    """When ``pid`` started (epoch seconds), or None if there is no such process."""
    info = process_info(pid)
    return info.start if info is not None else None


def same_process(pid: int, started: float | None) -> bool:
    """True if ``pid`` exists and started at ``started`` (not a later process reusing the pid)."""
    begun = process_start(pid)
    if begun is None:
        return False
    return started is None or abs(begun - started) < START_TOLERANCE


def _all_processes() -> list[ProcessInfo]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = process_info(int(name))
            if info is not None:
                out.append(info)
    return out


def job_processes(leader: int, leader_start: float, known: dict[int, float] | None = None) -> dict[int, float]:
    """The live processes of the job whose session leader is ``leader`` (started ``leader_start``).

    ``known`` (pid -> start time) are processes found before, e.g. at the TERM that precedes a
    KILL: those still running are kept even if their parent has gone. Only processes of this
    user count. Answers pid -> start time.
    """
    uid = os.geteuid()
    table = [p for p in _all_processes() if p.uid == uid or uid == 0]
    by_pid = {p.pid: p for p in table}
    found: dict[int, float] = {}
    leader_info = by_pid.get(leader)
    if leader_info is not None and abs(leader_info.start - leader_start) < START_TOLERANCE:
        found[leader] = leader_info.start
    for pid, start in (known or {}).items():
        info = by_pid.get(pid)
        if info is not None and abs(info.start - start) < START_TOLERANCE:
            found[pid] = info.start
    sessions = {leader} | {pid for pid in found if by_pid[pid].session == pid}
    while True:
        more = {
            p.pid: p.start
            for p in table
            if p.pid not in found and p.pid != os.getpid() and (p.session in sessions or p.ppid in found)
        }
        if not more:
            return found
        found.update(more)
        sessions |= {pid for pid in more if by_pid[pid].session == pid}


def signal_processes(processes: dict[int, float], signum: int) -> None:
    """Send ``signum`` to each of ``processes`` (pid -> start time) that is still that process."""
    for pid, start in processes.items():
        if same_process(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
