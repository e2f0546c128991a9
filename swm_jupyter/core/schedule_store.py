"""Schedules and their runs in the job store (tables ``schedules`` and ``schedule_runs``).

Write functions take the connection of an open store transaction (see :meth:`JobStore.write` and
the ``also`` step of :meth:`JobStore.insert_jobs`), so that a run's record, its job and the
schedule's ``last_due`` are committed together. A run's identity ``(schedule_id, due_time)`` is
UNIQUE: a second record of the same due time fails the transaction, and nothing of it is kept.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from .jsoncodec import parse, to_text
from .schedules import Schedule
from .states import JobState
from .store import JobStore

#: What became of a due time.
LAUNCHED = "launched"  # its job was submitted (``job_id``)
SKIPPED = "skipped"  # max_concurrent runs were active (overlap "skip")
MISSED = "missed"  # it passed while no server ran, and catch_up did not run it
FAILED = "failed"  # its job could not be submitted (``details`` says why)
RUN_STATUSES = (LAUNCHED, SKIPPED, MISSED, FAILED)


@dataclass(frozen=True)
class RunRecord:
    """One row of ``schedule_runs``."""

    seq: int
    schedule_id: str
    due_time: float
    status: str
    job_id: str | None
    details: str
    created: float
    ended: bool
    manual: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (without the job's state: see :func:`list_runs`)."""
        return {
            "schedule_id": self.schedule_id,
            "due_time": self.due_time,
            "status": self.status,
            "job_id": self.job_id,
            "details": self.details,
            "created": self.created,
            "manual": self.manual,
        }


_RUN_COLUMNS = "seq, schedule_id, due_time, status, job_id, details, created, ended, manual"


def _run(row: tuple[Any, ...]) -> RunRecord:
    seq, schedule_id, due_time, status, job_id, details, created, ended, manual = row
    return RunRecord(seq, schedule_id, due_time, status, job_id, details, created, bool(ended), bool(manual))


# -- writes (inside a transaction) -------------------------------------------------------------------


def save_schedule(db: sqlite3.Connection, schedule: Schedule) -> None:
    """Insert or replace a schedule."""
    db.execute(
        "INSERT OR REPLACE INTO schedules (id, owner, data) VALUES (?, ?, ?)",
        (schedule.id, schedule.owner, to_text(schedule.to_record())),
    )


def set_last_due(db: sqlite3.Connection, schedule: Schedule) -> None:
    """Store ``schedule.last_due`` (the whole record: it is small)."""
    save_schedule(db, schedule)


def delete_schedule(db: sqlite3.Connection, schedule_id: str) -> None:
    """Delete a schedule and its run records (its jobs stay, as ordinary jobs)."""
    db.execute("DELETE FROM schedule_runs WHERE schedule_id=?", (schedule_id,))
    db.execute("DELETE FROM schedules WHERE id=?", (schedule_id,))


def record_run(
    db: sqlite3.Connection,
    schedule_id: str,
    due_time: float,
    status: str,
    *,
    created: float,
    job_id: str | None = None,
    details: str = "",
    manual: bool = False,
) -> None:
    """Record what became of a due time. Raises ``sqlite3.IntegrityError`` if it was recorded already."""
    db.execute(
        "INSERT INTO schedule_runs (schedule_id, due_time, status, job_id, details, created, ended, manual) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (schedule_id, due_time, status, job_id, details, created, 0 if status == LAUNCHED else 1, int(manual)),
    )


def mark_ended(db: sqlite3.Connection, seq: int) -> None:
    """Mark a launched run as ended (its end was notified)."""
    db.execute("UPDATE schedule_runs SET ended=1 WHERE seq=?", (seq,))


def delete_runs(db: sqlite3.Connection, seqs: list[int]) -> None:
    """Delete run records (pruned by ``keep_last``)."""
    db.executemany("DELETE FROM schedule_runs WHERE seq=?", [(seq,) for seq in seqs])


# -- reads -------------------------------------------------------------------------------------------


def load_schedules(store: JobStore) -> list[Schedule]:
    """Every stored schedule, oldest first."""
    rows = store.db.execute("SELECT data FROM schedules").fetchall()
    schedules = [Schedule.from_record(parse(data)) for (data,) in rows]
    return sorted(schedules, key=lambda s: s.created)


def open_runs(store: JobStore) -> list[RunRecord]:
    """Launched runs whose end has not been handled yet, oldest first."""
    rows = store.db.execute(f"SELECT {_RUN_COLUMNS} FROM schedule_runs WHERE ended=0 ORDER BY seq").fetchall()
    return [_run(row) for row in rows]


def run_for_job(store: JobStore, job_id: str) -> RunRecord | None:
    """The run whose job this is, if any."""
    row = store.db.execute(f"SELECT {_RUN_COLUMNS} FROM schedule_runs WHERE job_id=?", (job_id,)).fetchone()
    return _run(row) if row else None


def list_runs(store: JobStore, schedule_id: str, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A schedule's runs, newest due time first, each with its job's state; and how many there are."""
    total = store.db.execute("SELECT COUNT(*) FROM schedule_runs WHERE schedule_id=?", (schedule_id,)).fetchone()[0]
    rows = store.db.execute(
        f"SELECT {', '.join('r.' + c.strip() for c in _RUN_COLUMNS.split(','))}, j.state, j.exit_code, "
        "j.start_time, j.end_time, j.folder FROM schedule_runs r LEFT JOIN jobs j ON j.id = r.job_id "
        "WHERE r.schedule_id=? ORDER BY r.due_time DESC LIMIT ? OFFSET ?",
        (schedule_id, limit, offset),
    ).fetchall()
    out = []
    for row in rows:
        run = _run(row[:9])
        state, exit_code, start_time, end_time, _folder = row[9:]
        data = run.to_dict()
        data.update(
            state=state,
            state_code=JobState(state).code if state else None,
            exit_code=exit_code,
            start_time=start_time,
            end_time=end_time,
        )
        out.append(data)
    return out, int(total)


def last_runs(store: JobStore, schedule_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each schedule's newest run (by due time) with its job's state: ``{schedule id: run}``.

    One lookup per schedule on the ``(schedule_id, due_time)`` index, however many runs are kept.
    """
    columns = ", ".join("r." + c.strip() for c in _RUN_COLUMNS.split(","))
    out: dict[str, dict[str, Any]] = {}
    for schedule_id in schedule_ids:
        row = store.db.execute(
            f"SELECT {columns}, j.state, j.exit_code FROM schedule_runs r LEFT JOIN jobs j ON j.id = r.job_id "
            "WHERE r.schedule_id = ? ORDER BY r.due_time DESC LIMIT 1",
            (schedule_id,),
        ).fetchone()
        if row is not None:
            data = _run(row[:9]).to_dict()
            data.update(state=row[9], exit_code=row[10])
            out[schedule_id] = data
    return out


def prunable_runs(store: JobStore, schedule_id: str, keep: int) -> list[tuple[int, str | None, str]]:
    """``(seq, job id, job folder)`` of the ended runs of a schedule beyond the newest ``keep`` ended ones."""
    rows = store.db.execute(
        "SELECT r.seq, r.job_id, COALESCE(j.folder, '') FROM schedule_runs r LEFT JOIN jobs j ON j.id = r.job_id "
        "WHERE r.schedule_id=? AND r.ended=1 ORDER BY r.due_time DESC LIMIT -1 OFFSET ?",
        (schedule_id, keep),
    ).fetchall()
    return [(int(seq), job_id, folder) for seq, job_id, folder in rows]


__all__ = [
    "FAILED",
    "LAUNCHED",
    "MISSED",
    "RUN_STATUSES",
    "SKIPPED",
    "RunRecord",
    "delete_runs",
    "delete_schedule",
    "last_runs",
    "list_runs",
    "load_schedules",
    "mark_ended",
    "open_runs",
    "prunable_runs",
    "record_run",
    "run_for_job",
    "save_schedule",
]
