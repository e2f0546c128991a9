"""The embedded job store: SQLite in WAL mode, one writer, a lock file, versioned schema."""

from __future__ import annotations

import base64
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import BACKSTOP_PAGES, WalCheckpointer
from .disk_full import is_disk_full, no_space_text
from .errors import JobNotFound, StoreFull, StoreLocked
from .jsoncodec import parse, to_text
from .model import Job, JobSpec, spec_from_json
from .states import HistoryEntry, JobState

SCHEMA_VERSION = 6

#: A write made inside a store transaction: it returns the events to store, as ``(job id, payload)``.
WriteStep = Callable[[sqlite3.Connection], list[tuple[str, dict[str, Any]]]]

#: Migrations: MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: dict[int, list[str]] = {
    0: [
        """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            site TEXT NOT NULL,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            owner TEXT NOT NULL DEFAULT '',
            array_parent TEXT,
            array_index INTEGER,
            submit_time REAL NOT NULL,
            start_time REAL,
            end_time REAL,
            exit_code INTEGER,
            signal INTEGER,
            native_id TEXT,
            state_details TEXT NOT NULL DEFAULT '',
            wanted TEXT,
            folder TEXT NOT NULL DEFAULT '',
            spec TEXT,
            gate_data TEXT NOT NULL DEFAULT '{}',
            cost TEXT NOT NULL DEFAULT '{}',
            history TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX jobs_state ON jobs (state, site)",
        "CREATE INDEX jobs_site ON jobs (site, state)",
        "CREATE INDEX jobs_parent ON jobs (array_parent, array_index)",
        "CREATE INDEX jobs_submit ON jobs (submit_time)",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            job_id TEXT NOT NULL,
            payload TEXT NOT NULL
        )""",
    ],
    1: [
        # Idempotency-Key of a submission: the same key answers with the same jobs.
        """CREATE TABLE idempotency_keys (
            key TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            job_ids TEXT NOT NULL,
            created REAL NOT NULL
        )""",
        "CREATE INDEX idempotency_created ON idempotency_keys (created)",
    ],
    2: [
        # One user's jobs (a hub service lists, counts and limits them per owner): without it, a
        # listing of one user's jobs scans every user's.
        "CREATE INDEX jobs_owner ON jobs (owner, state)",
    ],
    3: [
        # Schedules (see core/schedule_store.py): the schedule's fields as JSON, and one row per run.
        # A run's identity (schedule_id, due_time) is UNIQUE and is stored in the transaction that
        # stores its job: a due time is run once, whatever crashes. (IF NOT EXISTS: a store made by
        # a newer version and marked older by hand, as tests do, migrates again.)
        """CREATE TABLE IF NOT EXISTS schedules (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS schedules_owner ON schedules (owner)",
        """CREATE TABLE IF NOT EXISTS schedule_runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            schedule_id TEXT NOT NULL,
            due_time REAL NOT NULL,
            status TEXT NOT NULL,
            job_id TEXT,
            details TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            ended INTEGER NOT NULL DEFAULT 0,
            manual INTEGER NOT NULL DEFAULT 0,
            UNIQUE (schedule_id, due_time)
        )""",
        "CREATE INDEX IF NOT EXISTS schedule_runs_open ON schedule_runs (ended, schedule_id)",
        "CREATE INDEX IF NOT EXISTS schedule_runs_job ON schedule_runs (job_id)",
    ],
    4: [
        # The core's own flags get their own columns; they used to live in the gate's gate_data.
        "ALTER TABLE jobs ADD COLUMN launching INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN finalizing INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN held_on_site INTEGER NOT NULL DEFAULT 0",
        """UPDATE jobs SET
            launching = CASE WHEN json_extract(gate_data, '$.launching') THEN 1 ELSE 0 END,
            finalizing = CASE WHEN json_extract(gate_data, '$.finalizing') THEN 1 ELSE 0 END,
            held_on_site = CASE WHEN json_extract(gate_data, '$.held_on_site') THEN 1 ELSE 0 END,
            gate_data = json_remove(gate_data, '$.launching', '$.finalizing', '$.held_on_site')
        WHERE gate_data != '{}' AND (json_type(gate_data, '$.launching') IS NOT NULL
            OR json_type(gate_data, '$.finalizing') IS NOT NULL
            OR json_type(gate_data, '$.held_on_site') IS NOT NULL)""",
    ],
    5: [
        # Name search (GET /jobs?name=...): a trigram index of the names finds a substring of three
        # or more characters without scanning the table. It holds no copy of the names (external
        # content); the triggers keep it in step with the jobs table. (IF NOT EXISTS, as for 3.)
        "CREATE VIRTUAL TABLE IF NOT EXISTS jobs_name "
        "USING fts5(name, content='jobs', content_rowid='seq', tokenize='trigram')",
        "INSERT INTO jobs_name (jobs_name) VALUES ('rebuild')",
        """CREATE TRIGGER IF NOT EXISTS jobs_name_insert AFTER INSERT ON jobs BEGIN
            INSERT INTO jobs_name (rowid, name) VALUES (new.seq, new.name);
        END""",
        """CREATE TRIGGER IF NOT EXISTS jobs_name_delete AFTER DELETE ON jobs BEGIN
            INSERT INTO jobs_name (jobs_name, rowid, name) VALUES ('delete', old.seq, old.name);
        END""",
        """CREATE TRIGGER IF NOT EXISTS jobs_name_update AFTER UPDATE OF name ON jobs
            WHEN old.name IS NOT new.name BEGIN
            INSERT INTO jobs_name (jobs_name, rowid, name) VALUES ('delete', old.seq, old.name);
            INSERT INTO jobs_name (rowid, name) VALUES (new.seq, new.name);
        END""",
        # The table's most used sorts (GET /jobs?sort=name, state) read their index in order instead
        # of sorting the matching jobs' keys; the others (site, owner, exit code...) sort the keys,
        # which costs a few hundred ms at 100,000 jobs, not an index write per submitted job.
        "CREATE INDEX IF NOT EXISTS jobs_sort_name ON jobs (name, seq)",
        # With array_parent, it also counts the top-level jobs of each state without reading the rows.
        "CREATE INDEX IF NOT EXISTS jobs_sort_state ON jobs (state, seq DESC, array_parent)",
    ],
}


@dataclass(frozen=True)
class IdempotencyRecord:
    """A submission made with an ``Idempotency-Key``: whose, the key, the request's fingerprint, its jobs."""

    owner: str
    key: str
    fingerprint: str
    job_ids: tuple[str, ...]
    created: float


#: The columns a job's later writes change, in the order of :func:`_changing_values`.
_CHANGING = (
    "name, site, state, priority, start_time, end_time, exit_code, signal, native_id, state_details, wanted, "
    "folder, gate_data, cost, history, launching, finalizing, held_on_site"
).split(", ")
_INSERT = (
    f"INSERT INTO jobs (id, owner, array_parent, array_index, submit_time, spec, {', '.join(_CHANGING)}) "
    f"VALUES ({', '.join('?' * (6 + len(_CHANGING)))})"
)
#: The ``meta`` keys that mark a submission stored in several transactions and not yet complete.
_BUILD_PREFIX = "build:"
_BUILD_END = "build;"
_UPDATE = f"UPDATE jobs SET {', '.join(f'{column}=?' for column in _CHANGING)} WHERE id=?"

SORTS = {
    "submit_time": "seq ASC",
    "-submit_time": "seq DESC",
    "priority": "priority DESC, seq ASC",
    "-priority": "priority ASC, seq ASC",
    "name": "name ASC, seq ASC",
    "-name": "name DESC, seq DESC",
    "state": "state ASC, seq DESC",
    "-state": "state DESC, seq ASC",
    "site": "site ASC, seq DESC",
    "-site": "site DESC, seq ASC",
    "owner": "owner ASC, seq DESC",
    "-owner": "owner DESC, seq ASC",
    "exit_code": "exit_code ASC, seq DESC",
    "-exit_code": "exit_code DESC, seq ASC",
    "start_time": "start_time ASC, seq DESC",
    "-start_time": "start_time DESC, seq ASC",
}
#: A name substring this long or longer is looked up in the trigram index; shorter ones scan.
TRIGRAM = 3

_COLUMNS = (
    "seq, id, name, site, state, priority, owner, array_parent, array_index, submit_time, start_time, "
    "end_time, exit_code, signal, native_id, state_details, wanted, folder, spec, gate_data, cost, history, "
    "launching, finalizing, held_on_site"
)


@dataclass
class JobQuery:
    """Filters, order and page of a job listing."""

    states: tuple[JobState, ...] = ()
    site: str | None = None
    name: str | None = None
    since: float | None = None
    array_parent: str | None = None
    owner: str | None = None
    top_level: bool = False
    #: Also (with ``states``: or) the jobs that failed (:func:`~swm_jupyter.core.states.is_failed`).
    failed: bool = False
    sort: str = "-submit_time"
    limit: int = 100
    offset: int = 0
    cursor: str | None = None


#: :func:`~swm_jupyter.core.states.is_failed` in SQL: ended in error, or finished with a non-zero exit or a signal.
FAILED_SQL = "(state = 'error' OR (state = 'finished' AND (COALESCE(exit_code, 0) != 0 OR COALESCE(signal, 0) != 0)))"


@dataclass
class JobPage:
    """One page of a listing: the jobs, the count of all matches, per-state counts, the next cursor."""

    jobs: list[Job]
    total: int
    counts: dict[str, int]
    next_cursor: str | None


class JobStore:
    """Jobs and their events in one SQLite file. Not thread-safe: use it from one thread (the loop).

    Opening takes an exclusive lock on ``<path>.lock``; a second store on the same file raises
    :class:`StoreLocked`. Opening discards a submission stored only in part (see :meth:`start_build`).
    Every write method commits before it returns.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_handle = self._take_lock()
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous}")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            self._migrate()
            #: Submissions the previous server did not finish storing (never acknowledged), deleted on opening.
            self.discarded_builds = self.unfinished_builds()
            for build_id in self.discarded_builds:
                while self.discard_build_step(build_id):
                    pass
        except BaseException:
            self._release_lock()
            raise
        self._spec_cache: dict[str, JobSpec] = {}
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._checkpointer = WalCheckpointer(self.path, synchronous)
        self._checkpointer.start()

    # -- lifecycle ---------------------------------------------------------------------------------

    def _take_lock(self) -> Any:
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise StoreLocked(
                f"another swm-jupyter manager ({owner}) is using the job store {self.path}; stop it first, "
                "or give this server its own store with --SwmApp.store_path=PATH"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}")
        handle.flush()
        return handle

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def close(self) -> None:
        """Close the database and release the lock."""
        try:
            self._checkpointer.stop()
            with self._reader_lock:
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
            self.db.close()
        finally:
            self._release_lock()

    def _migrate(self) -> None:
        has_meta = self.db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        version = 0
        if has_meta:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreLocked(
                f"the job store {self.path} has schema version {version}, newer than this swm-jupyter "
                f"understands ({SCHEMA_VERSION}); upgrade swm-jupyter"
            )
        while version < SCHEMA_VERSION:
            with self.transaction():
                for statement in MIGRATIONS[version]:
                    self.db.execute(statement)
                version += 1
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),)
                )

    @property
    def schema_version(self) -> int:
        """The schema version of the open store."""
        return int(self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one transaction, committed (durably) at the end, rolled back on error.

        Raises :class:`StoreFull` when the file system has no space left (at any statement or at
        the commit); the transaction is then rolled back, the store is as before and usable again.
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # SQLite may have rolled back already (a full disk can)
                    with suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            if is_disk_full(exc):
                raise StoreFull(
                    f"the job store cannot be written: {no_space_text(self.path)} (free space, nothing was lost)"
                ) from exc
            raise

    # -- writes ------------------------------------------------------------------------------------

    def insert_jobs(
        self,
        jobs: Iterable[Job],
        keys: Iterable[IdempotencyRecord] = (),
        *,
        keep_keys: float = 86400.0,
        also: WriteStep | None = None,
    ) -> list[dict[str, Any]]:
        """Store new jobs (and the idempotency ``keys`` of their submissions) in one transaction;
        return their events (already stored). Keys older than ``keep_keys`` seconds are dropped.

        ``also(db)``: more writes made in the same transaction (a schedule's run record); the
        events it returns, as ``(job id, payload)`` pairs, are stored after the jobs' own.
        Array tasks get no event of their own at submission (their parent has one).
        """
        jobs = list(jobs)
        with self.transaction():
            self._insert_keys(list(keys), keep_keys)
            self._insert_rows(jobs)
            events = self._submission_events(jobs)
            if also is not None:
                events += self._insert_events(also(self.db))
            return events

    def write(self, step: WriteStep) -> list[dict[str, Any]]:
        """Run ``step(db)`` in one transaction and store the events it returns (``(job id, payload)``
        pairs, ``""`` for events of no job); return them with their ids. Raises :class:`StoreFull`."""
        with self.transaction():
            return self._insert_events(step(self.db))

    # A submission too big for one transaction (a large array) is stored in several: first its
    # jobs without their tasks, with a mark saying that the submission is not complete; then its
    # tasks, in batches; last, its events and idempotency key, and the mark is removed. A store
    # opened with a mark left (the server died in between) discards that submission, which was
    # never acknowledged: no part of a half-stored array ever runs.

    def start_build(self, build_id: str, jobs: list[Job]) -> None:
        """Store the jobs of a submission (array parents, without their tasks) as not yet complete."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                (_BUILD_PREFIX + build_id, to_text([job.id for job in jobs])),
            )
            self._insert_rows(jobs)

    def insert_tasks(self, tasks: list[Job]) -> None:
        """Store a batch of array tasks of a submission begun with :meth:`start_build`, in one transaction."""
        with self.transaction():
            self._insert_rows(tasks)

    def finish_build(
        self, build_id: str, jobs: list[Job], keys: Iterable[IdempotencyRecord] = (), *, keep_keys: float = 86400.0
    ) -> list[dict[str, Any]]:
        """Mark a submission begun with :meth:`start_build` complete, store its idempotency ``keys``
        and the events of its ``jobs``; return the events. All in one transaction."""
        with self.transaction():
            if not self.db.execute("DELETE FROM meta WHERE key=?", (_BUILD_PREFIX + build_id,)).rowcount:
                raise JobNotFound(f"the submission {build_id} is not being stored")
            self._insert_keys(list(keys), keep_keys)
            return self._submission_events(jobs)

    def unfinished_builds(self) -> list[str]:
        """The ids of submissions begun with :meth:`start_build` and not finished."""
        rows = self.db.execute("SELECT key FROM meta WHERE key >= ? AND key < ?", (_BUILD_PREFIX, _BUILD_END))
        return [key[len(_BUILD_PREFIX) :] for (key,) in rows]

    def discard_build_step(self, build_id: str, batch: int = 5000) -> int:
        """Delete up to ``batch`` tasks an unfinished submission stored (one transaction); once none
        is left, its jobs and its mark. Returns how many rows were deleted: 0 once nothing is left."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (_BUILD_PREFIX + build_id,)).fetchone()
        if row is None:
            return 0
        ids = parse(row[0])
        with self.transaction():
            for job_id in ids:
                count = self.db.execute(
                    "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE array_parent=? LIMIT ?)",
                    (job_id, batch),
                ).rowcount
                if count:
                    return int(count)
            self.db.execute("DELETE FROM meta WHERE key=?", (_BUILD_PREFIX + build_id,))
            return 1 + int(self.db.executemany("DELETE FROM jobs WHERE id=?", [(job_id,) for job_id in ids]).rowcount)

    def _insert_keys(self, keys: list[IdempotencyRecord], keep_keys: float) -> None:
        """Store idempotency keys (inside a transaction), dropping those older than ``keep_keys`` seconds."""
        if not keys:
            return
        self.db.execute("DELETE FROM idempotency_keys WHERE created < ?", (time.time() - keep_keys,))
        self.db.executemany(
            "INSERT OR REPLACE INTO idempotency_keys (owner, key, fingerprint, job_ids, created) "
            "VALUES (?, ?, ?, ?, ?)",
            [(k.owner, k.key, k.fingerprint, to_text(list(k.job_ids)), k.created) for k in keys],
        )

    def _submission_events(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Store the submission events of ``jobs`` (inside a transaction): one per job, tasks aside."""
        now = time.time()
        return self._insert_events([(job.id, _event_payload(job, None, now)) for job in jobs if not job.array_parent])

    def _insert_rows(self, jobs: list[Job]) -> None:
        """Insert new jobs (inside a transaction) and give each its ``seq``."""
        at = 0
        while at < len(jobs):
            # One statement for each run of jobs: separate jobs, or the tasks of one array.
            parent = jobs[at].array_parent
            end = at
            while end < len(jobs) and jobs[end].array_parent == parent:
                end += 1
            batch = jobs[at:end]
            if parent is None:
                rows = [self._row(job, to_text(job.spec.to_dict())) for job in batch]
            else:
                # Tasks of one submission mostly share these fields: encode them once.
                first = batch[0]
                shared = (to_text(first.gate_data), _cost_json(first.cost), _history_json(first))
                rows = [
                    self._row(task, None)
                    if task.gate_data != first.gate_data or task.cost != first.cost or task.history != first.history
                    else self._row(task, None, shared)
                    for task in batch
                ]
            if len(rows) == 1:  # a lone submission: no statement more than it needs
                first_seq = self.db.execute(_INSERT, rows[0]).lastrowid
            else:
                self.db.executemany(_INSERT, rows)
                # One writer inside one transaction: AUTOINCREMENT gave the rows consecutive seqs.
                first_seq = self.db.execute("SELECT seq FROM jobs WHERE id=?", (batch[0].id,)).fetchone()[0]
            for offset, job in enumerate(batch):
                job.seq = first_seq + offset
            at = end

    def update_jobs(
        self, jobs: Iterable[Job], *, events: bool = True, steps: dict[str, list[HistoryEntry]] | None = None
    ) -> list[dict[str, Any]]:
        """Write the current fields of existing jobs in one transaction; return their events.

        A job gets one event per entry of ``steps[job.id]`` (each state it went through since the
        last write, oldest first), or one event with its current state if it has no steps.
        """
        jobs = list(jobs)
        rows = [(*_changing_values(job), job.id) for job in jobs]
        payloads = []
        if events:
            now = time.time()
            for job in jobs:
                for step in (steps or {}).get(job.id) or [None]:
                    payloads.append((job.id, _event_payload(job, step, now)))
        with self.transaction():
            updated = self.db.executemany(_UPDATE, rows).rowcount
            if updated != len(rows):
                for job in jobs:
                    if self.db.execute("SELECT 1 FROM jobs WHERE id=?", (job.id,)).fetchone() is None:
                        raise JobNotFound(f"job {job.id} is not in the store")
            return self._insert_events(payloads)

    def _insert_events(self, payloads: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Store events in one statement (inside a transaction); give each payload its id, in order."""
        if not payloads:
            return []
        insert = "INSERT INTO events (time, job_id, payload) VALUES (?, ?, ?)"
        rows = [(payload["time"], job_id, to_text(payload)) for job_id, payload in payloads]
        if len(rows) == 1:
            last = self.db.execute(insert, rows[0]).lastrowid
        else:
            self.db.executemany(insert, rows)
            # One writer inside one transaction: AUTOINCREMENT gave the rows consecutive ids.
            last = self.db.execute("SELECT last_insert_rowid()").fetchone()[0]
        first = last - len(payloads) + 1
        out = []
        for offset, (_, payload) in enumerate(payloads):
            payload["id"] = first + offset
            out.append(payload)
        return out

    def _row(self, job: Job, spec_json: str | None, encoded: tuple[str, str, str] | None = None) -> tuple[Any, ...]:
        """The INSERT values of ``job``; ``encoded``: its gate_data, cost and history already as JSON."""
        return (
            job.id,
            job.owner,
            job.array_parent,
            job.array_index,
            job.submit_time,
            spec_json,
            *_changing_values(job, encoded),
        )

    def prune_events(self, keep: int, limit: int = 10_000) -> int:
        """Delete the oldest events beyond the newest ``keep``, at most ``limit`` of them; return how many."""
        with self.transaction():
            return self.db.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= "
                "(SELECT MAX(id) FROM events) - ? ORDER BY id LIMIT ?)",
                (keep, limit),
            ).rowcount

    def expired_jobs(self, ended_before: float, limit: int) -> list[tuple[str, str]]:
        """``(id, folder)`` of up to ``limit`` top-level jobs (arrays by their parent) that ended before
        ``ended_before`` and have no wish pending, oldest end first; an array whose tasks have not all
        ended is not one of them.
        """
        finals = tuple(s.value for s in JobState if s.final)
        return [
            (row[0], row[1])
            for row in self.db.execute(
                "SELECT id, folder FROM jobs j WHERE array_parent IS NULL AND state IN (?, ?, ?) "
                "AND end_time < ? AND wanted IS NULL AND NOT EXISTS (SELECT 1 FROM jobs t WHERE "
                "t.array_parent = j.id AND (t.state NOT IN (?, ?, ?) OR t.wanted IS NOT NULL)) "
                "ORDER BY end_time LIMIT ?",
                (*finals, ended_before, *finals, limit),
            )
        ]

    def busy_tasks(self, parent_id: str) -> int:
        """How many tasks of array ``parent_id`` have not ended, or have a wish pending."""
        finals = tuple(s.value for s in JobState if s.final)
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM jobs WHERE array_parent = ? AND (state NOT IN (?, ?, ?) OR wanted IS NOT NULL)",
                (parent_id, *finals),
            ).fetchone()[0]
        )

    def delete_jobs(self, job_ids: Iterable[str]) -> tuple[int, list[dict[str, Any]]]:
        """Delete jobs, their array tasks and all their events in one transaction, and store one
        ``job_deleted`` event for each of ``job_ids`` that existed (an array's tasks go with it,
        without events of their own). Returns ``(how many jobs were deleted, the new events)``.
        """
        ids = to_text(list(job_ids))
        with self.transaction():
            gone = self.db.execute(
                "SELECT id, name, owner, array_parent FROM jobs WHERE id IN (SELECT value FROM json_each(?1))",
                (ids,),
            ).fetchall()
            self.db.execute(
                "DELETE FROM events WHERE job_id IN (SELECT value FROM json_each(?1)) OR job_id IN "
                "(SELECT id FROM jobs WHERE array_parent IN (SELECT value FROM json_each(?1)))",
                (ids,),
            )
            count = self.db.execute(
                "DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?1)) "
                "OR array_parent IN (SELECT value FROM json_each(?1))",
                (ids,),
            ).rowcount
            now = time.time()
            events = self._insert_events([(row[0], _deletion_payload(*row, now)) for row in gone])
            return int(count), events

    # -- reads -------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """Return the job with that id (a unique prefix of at least 4 characters is enough).

        Raises :class:`JobNotFound`.
        """
        row = self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None and len(job_id) >= 4 and all(c in "0123456789abcdef-" for c in job_id):
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE id >= ? AND id < ? LIMIT 2", (job_id, job_id + "\uffff")
            ).fetchall()
            if len(rows) == 1:
                row = rows[0]
        if row is None:
            raise JobNotFound(f"no job {job_id!r}; list jobs with `swm jobs` or GET /swm/api/v1/jobs")
        return self._job(row)

    def idempotency_record(self, key: str, since: float) -> IdempotencyRecord | None:
        """The submission made with ``key`` at ``since`` or later, if any."""
        row = self.db.execute(
            "SELECT owner, fingerprint, job_ids, created FROM idempotency_keys WHERE key=? AND created >= ?",
            (key, since),
        ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(row[0], key, row[1], tuple(parse(row[2])), row[3])

    def exists(self, job_id: str) -> bool:
        """True if a job with exactly this id is stored."""
        return self.db.execute("SELECT 1 FROM jobs WHERE id=?", (job_id,)).fetchone() is not None

    def live_jobs(self) -> list[Job]:
        """Every job not in a final state, or with a user's wish not yet carried out (what the manager
        keeps in memory)."""
        finals = tuple(s.value for s in JobState if s.final)
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE state NOT IN (?, ?, ?) OR wanted IS NOT NULL ORDER BY seq", finals
        ).fetchall()
        return [self._job(r) for r in rows]

    def usage_since(self, since: float) -> list[tuple[str, int, float, float]]:
        """(owner, cpus, start_time, end_time) of every job (array parents aside) that ran and ended at
        or after ``since``: what fair share between users counts.
        """
        rows = self.db.execute(
            "SELECT j.owner, COALESCE(json_extract(j.spec, '$.resources.cpus'), "
            "json_extract(p.spec, '$.resources.cpus'), 1), j.start_time, j.end_time "
            "FROM jobs j LEFT JOIN jobs p ON p.id = j.array_parent "
            "WHERE j.end_time >= ? AND j.start_time IS NOT NULL "
            "AND (j.array_index IS NOT NULL OR json_extract(j.spec, '$.array') IS NULL)",
            (since,),
        ).fetchall()
        return [(owner, int(cpus), float(start), float(end)) for owner, cpus, start, end in rows]

    def array_tasks(self, parent_id: str) -> list[Job]:
        """The tasks of an array, by index."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE array_parent=? ORDER BY array_index", (parent_id,)
        ).fetchall()
        return [self._job(r) for r in rows]

    def array_task_ids(self, parent_id: str, *, live_only: bool = False) -> list[str]:
        """The ids of an array's tasks (``live_only``: those not in a final state), by index.

        Cheap next to :meth:`array_tasks`: no job is rebuilt.
        """
        sql = "SELECT id FROM jobs WHERE array_parent=?"
        args: tuple[Any, ...] = (parent_id,)
        if live_only:
            sql += " AND state NOT IN (?, ?, ?)"
            args += tuple(s.value for s in JobState if s.final)
        return [job_id for (job_id,) in self.db.execute(sql + " ORDER BY array_index", args)]

    def get_many(self, job_ids: list[str]) -> list[Job]:
        """The jobs with exactly these ids (those that exist), in the order given."""
        found: dict[str, Job] = {}
        for at in range(0, len(job_ids), 500):
            chunk = job_ids[at : at + 500]
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            for row in rows:
                found[row[1]] = self._job(row)
        return [found[job_id] for job_id in job_ids if job_id in found]

    def query(self, q: JobQuery, db: sqlite3.Connection | None = None) -> JobPage:
        """List jobs matching ``q`` with the total, per-state counts and a cursor to the next page.

        ``db``: the connection to read with (default: the store's own; see :meth:`query_in_thread`).
        """
        db = db or self.db
        where: list[str] = []
        args: list[Any] = []
        if q.site:
            where.append("site = ?")
            args.append(q.site)
        if q.name and len(q.name) >= TRIGRAM:
            # The trigram index finds the names holding the substring (case-insensitive, as LIKE).
            where.append("seq IN (SELECT rowid FROM jobs_name WHERE jobs_name MATCH ?)")
            args.append('"' + q.name.replace('"', '""') + '"')
        elif q.name:
            where.append("name LIKE ? ESCAPE '\\'")
            args.append("%" + q.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if q.since is not None:
            where.append("submit_time >= ?")
            args.append(q.since)
        if q.array_parent:
            where.append("array_parent = ?")
            args.append(q.array_parent)
        elif q.top_level:
            # Nearly every job is top-level: the unary + keeps SQLite from reading them through the
            # array_parent index, which it would take for a selective one.
            where.append("+array_parent IS NULL")
        if q.owner is not None:
            where.append("owner = ?")
            args.append(q.owner)
        base_where = " AND ".join(where) or "1"
        counts = {s.value: 0 for s in JobState}
        for state, count in db.execute(f"SELECT state, COUNT(*) FROM jobs WHERE {base_where} GROUP BY state", args):
            counts[state] = count
        if q.failed:
            alternatives = [FAILED_SQL]
            if q.states:
                alternatives.append(f"state IN ({', '.join('?' for _ in q.states)})")
                args.extend(s.value for s in q.states)
            where.append(f"({' OR '.join(alternatives)})")
            total = db.execute(f"SELECT COUNT(*) FROM jobs WHERE {' AND '.join(where)}", args).fetchone()[0]
        elif q.states:
            where.append(f"state IN ({', '.join('?' for _ in q.states)})")
            args.extend(s.value for s in q.states)
            total = sum(counts[s.value] for s in q.states)
        else:
            total = sum(counts.values())
        order = SORTS.get(q.sort, SORTS["-submit_time"])
        offset = q.offset
        seq_sort = q.sort in ("submit_time", "-submit_time")
        if q.cursor:
            kind, value = _decode_cursor(q.cursor)
            if kind == "s" and seq_sort:
                where.append("seq < ?" if q.sort == "-submit_time" else "seq > ?")
                args.append(value)
                offset = 0
            else:
                offset = value
        # The page's keys first, then its rows: a sort without an index then sorts keys, not whole rows.
        sql = f"SELECT seq FROM jobs WHERE {' AND '.join(where) or '1'} ORDER BY {order} LIMIT ? OFFSET ?"
        seqs = [seq for (seq,) in db.execute(sql, [*args, q.limit + 1, offset])]
        more = len(seqs) > q.limit
        seqs = seqs[: q.limit]
        rows = {
            r[0]: r
            for r in db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE seq IN ({', '.join('?' * len(seqs))})", seqs)
        }
        jobs = [self._job(rows[seq], db=db) for seq in seqs if seq in rows]
        next_cursor = None
        if more and jobs:
            next_cursor = _encode_cursor("s", jobs[-1].seq) if seq_sort else _encode_cursor("o", offset + q.limit)
        return JobPage(jobs=jobs, total=total, counts=counts, next_cursor=next_cursor)

    def query_in_thread(self, q: JobQuery) -> JobPage:
        """:meth:`query` for a worker thread: it reads with a connection of its own (WAL readers see
        every committed write and never wait for the writer), so a listing of a big store or a big
        array does not hold up the event loop. One listing at a time uses that connection."""
        with self._reader_lock:
            if self._reader is None:
                self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._reader.execute("PRAGMA query_only=ON")
            return self.query(q, self._reader)

    def events_after(self, last_id: int, limit: int = 10_000) -> list[dict[str, Any]]:
        """Stored events with an id above ``last_id``, oldest first."""
        rows = self.db.execute(
            "SELECT id, payload FROM events WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
        ).fetchall()
        out = []
        for event_id, payload in rows:
            event = parse(payload)
            event["id"] = event_id
            out.append(event)
        return out

    def last_event_id(self) -> int:
        """The id of the newest event, 0 if none."""
        row = self.db.execute("SELECT MAX(id) FROM events").fetchone()
        return int(row[0] or 0)

    def first_event_id(self) -> int:
        """The id of the oldest event still kept, 0 if none."""
        row = self.db.execute("SELECT MIN(id) FROM events").fetchone()
        return int(row[0] or 0)

    def _job(self, row: tuple[Any, ...], with_spec: bool = True, db: sqlite3.Connection | None = None) -> Job:
        (
            seq,
            job_id,
            _name,
            site,
            state,
            _priority,
            owner,
            array_parent,
            array_index,
            submit_time,
            start_time,
            end_time,
            exit_code,
            signal,
            native_id,
            state_details,
            wanted,
            folder,
            spec,
            gate_data,
            cost,
            history,
            launching,
            finalizing,
            held_on_site,
        ) = row
        if spec is None and array_parent:
            job_spec = self._parent_spec(array_parent, db or self.db)
        else:
            job_spec = spec_from_json(parse(spec))
        return Job(
            id=job_id,
            spec=job_spec,
            site=site,
            state=JobState(state),
            state_details=state_details,
            exit_code=exit_code,
            signal=signal,
            native_id=native_id,
            array_parent=array_parent,
            array_index=array_index,
            submit_time=submit_time,
            start_time=start_time,
            end_time=end_time,
            history=[HistoryEntry(h["time"], JobState(h["state"]), h.get("details", "")) for h in parse(history)],
            gate_data=parse(gate_data),
            wanted=wanted,
            launching=bool(launching),
            finalizing=bool(finalizing),
            held_on_site=bool(held_on_site),
            folder=folder,
            cost=parse(cost),
            owner=owner,
            seq=seq,
        )

    def _parent_spec(self, parent_id: str, db: sqlite3.Connection) -> JobSpec:
        spec = self._spec_cache.get(parent_id)
        if spec is None:
            row = db.execute("SELECT spec FROM jobs WHERE id=?", (parent_id,)).fetchone()
            spec = spec_from_json(parse(row[0]))
            if len(self._spec_cache) > 1000:
                self._spec_cache.clear()
            self._spec_cache[parent_id] = spec
        return spec


def _event_payload(job: Job, step: HistoryEntry | None, now: float) -> dict[str, Any]:
    """The event of ``job`` (as of ``step`` of its history, if given: a state it went through)."""
    summary = job.summary()
    if step is not None and step.state is not job.state:
        summary.update(state=step.state.value, state_code=step.state.code, state_details=step.details)
    return {"type": "job", "time": now, "job": summary}


def _deletion_payload(job_id: str, name: str, owner: str, array_parent: str | None, now: float) -> dict[str, Any]:
    """The ``job_deleted`` event of a job whose record was deleted: who may see it follows ``owner``."""
    return {
        "type": "job_deleted",
        "time": now,
        "job": {"id": job_id, "name": name, "owner": owner, "array_parent": array_parent},
    }


_NO_COST = {"estimate": None, "actual": None}
_NO_COST_JSON = to_text(_NO_COST)


def _cost_json(cost: dict[str, Any]) -> str:
    """``cost`` as JSON; most jobs have no cost, and that JSON is made once."""
    return _NO_COST_JSON if cost == _NO_COST else to_text(cost)


def _changing_values(job: Job, encoded: tuple[str, str, str] | None = None) -> tuple[Any, ...]:
    """``job``'s values for the :data:`_CHANGING` columns; ``encoded``: gate_data, cost and history as JSON."""
    gate_data, cost, history = encoded or (
        to_text(job.gate_data) if job.gate_data else "{}",
        _cost_json(job.cost),
        _history_json(job),
    )
    return (
        job.spec.name,
        job.site,
        job.state.value,
        job.spec.priority,
        job.start_time,
        job.end_time,
        job.exit_code,
        job.signal,
        job.native_id,
        job.state_details,
        job.wanted,
        job.folder,
        gate_data,
        cost,
        history,
        int(job.launching),
        int(job.finalizing),
        int(job.held_on_site),
    )


def _history_json(job: Job) -> str:
    return to_text([{"time": h.time, "state": h.state.value, "details": h.details} for h in job.history])


def _encode_cursor(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    from .errors import ValidationError

    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = text.split(":", 1)
        number = int(value)
        if kind not in ("s", "o") or not 0 <= number < 1 << 63:  # SQLite integers are 64-bit
            raise ValueError
        return kind, number
    except ValueError:
        raise ValidationError(
            "the cursor is not one this server gave out", [{"field": "cursor", "message": "use next_cursor as given"}]
        ) from None
