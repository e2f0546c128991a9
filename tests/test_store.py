"""The SQLite store: durability across reopen, the single-manager lock, schema version, queries."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from swm_jupyter.core.errors import JobNotFound, StoreLocked, ValidationError
from swm_jupyter.core.model import Job, JobSpec
from swm_jupyter.core.states import HistoryEntry, JobState
from swm_jupyter.core.store import SCHEMA_VERSION, JobQuery, JobStore

from .core_helpers import store_before


def make_jobs(n: int, site: str = "local") -> list[Job]:
    jobs = []
    for i in range(n):
        spec = JobSpec.from_dict({"command": ["true"], "name": f"job-{i}", "priority": i % 3})
        job = Job(id=f"{i:08d}-0000-4000-8000-000000000000", spec=spec, site=site, submit_time=1000.0 + i)
        job.history = [HistoryEntry(job.submit_time, JobState.QUEUED)]
        jobs.append(job)
    return jobs


def test_jobs_survive_reopen(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    jobs = make_jobs(3)
    events = store.insert_jobs(jobs)
    assert [e["id"] for e in events] == [1, 2, 3]
    jobs[1].state = JobState.RUNNING
    jobs[1].gate_data = {"pid": 5}
    store.update_jobs([jobs[1]])
    store.close()
    again = JobStore(tmp_path / "s.sqlite")
    assert again.schema_version == SCHEMA_VERSION
    got = again.get(jobs[1].id)
    assert got.state is JobState.RUNNING and got.gate_data == {"pid": 5} and got.spec == jobs[1].spec
    assert [e["job"]["state"] for e in again.events_after(0)] == ["queued", "queued", "queued", "running"]
    assert again.get(jobs[2].id[:8]).id == jobs[2].id, "a unique id prefix finds the job"
    with pytest.raises(JobNotFound):
        again.get("nope")
    again.close()


def test_batched_writes_give_each_job_and_event_its_own_ids(tmp_path: Path) -> None:
    """Jobs and events written by one statement per batch get the ids the store really gave them."""
    store = JobStore(tmp_path / "s.sqlite")
    store.insert_jobs(make_jobs(1))  # ids do not start at 1 for the batch below
    jobs = make_jobs(5)[1:]
    events = store.insert_jobs(jobs)
    assert [job.seq for job in jobs] == [store.get(job.id).seq for job in jobs] == [2, 3, 4, 5]
    for job in jobs:
        job.history += [HistoryEntry(2000.0, JobState.WAITING), HistoryEntry(2001.0, JobState.RUNNING)]
        job.state = JobState.RUNNING
    events += store.update_jobs(jobs, steps={job.id: job.history[1:] for job in jobs})
    stored = store.events_after(0)[1:]
    assert [e["id"] for e in events] == [e["id"] for e in stored] == list(range(2, 14))
    assert [(e["job"]["id"], e["job"]["state"]) for e in events] == [
        (e["job"]["id"], e["job"]["state"]) for e in stored
    ]
    assert [e["job"]["state"] for e in stored[4:6]] == ["waiting", "running"]
    missing = make_jobs(7)[6]
    jobs[0].state = JobState.FINISHED
    with pytest.raises(JobNotFound, match=missing.id):
        store.update_jobs([jobs[0], missing])
    assert store.get(jobs[0].id).state is JobState.RUNNING and len(store.events_after(0)) == 13, "nothing written"
    store.close()


def test_second_store_on_the_same_file_is_refused(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    with pytest.raises(StoreLocked, match="another swm-jupyter manager"):
        JobStore(tmp_path / "s.sqlite")
    code = (
        "import sys\nfrom swm_jupyter.core.store import JobStore\nfrom swm_jupyter.core.errors import StoreLocked\n"
        f"try:\n    JobStore({str(tmp_path / 's.sqlite')!r})\nexcept StoreLocked as e:\n    print(e); sys.exit(3)\n"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert other.returncode == 3, other.stderr
    assert "pid" in other.stdout
    store.close()
    JobStore(tmp_path / "s.sqlite").close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    store.db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    store.close()
    with pytest.raises(StoreLocked, match="newer than this swm-jupyter"):
        JobStore(tmp_path / "s.sqlite")


def test_one_owners_jobs_are_listed_and_counted_through_an_index(tmp_path: Path) -> None:
    """A hub service's store holds every user's jobs: one user's page and counts must not scan them all,
    in a new store and in one made by the previous version (schema 2), which is migrated."""
    old = tmp_path / "old.sqlite"
    store_before(old, "jobs_owner")[0].close()
    for path in (tmp_path / "new.sqlite", old):
        store = JobStore(path)
        assert store.schema_version == SCHEMA_VERSION
        jobs = make_jobs(6)
        for i, job in enumerate(jobs):
            job.owner = "alice" if i % 2 else "bob"
        store.insert_jobs(jobs)
        page = store.query(JobQuery(owner="alice", limit=2))
        assert [j.owner for j in page.jobs] == ["alice", "alice"] and page.total == 3 and page.counts["queued"] == 3
        for sql in (
            "SELECT state, COUNT(*) FROM jobs WHERE owner = ? GROUP BY state",
            "SELECT id FROM jobs WHERE owner = ? ORDER BY seq DESC LIMIT 101",
        ):
            plan = " ".join(str(row[-1]) for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}", ("alice",)))
            assert "USING INDEX jobs_owner" in plan or "USING COVERING INDEX jobs_owner" in plan, plan
        store.close()


def test_query_filters_sort_and_pages(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    jobs = make_jobs(25) + make_jobs(5, site="other")
    for i, job in enumerate(jobs[25:]):
        job.id = f"{i:08d}-1111-4000-8000-000000000000"
    jobs[0].state = JobState.FINISHED
    store.insert_jobs(jobs)
    page = store.query(JobQuery(site="local", limit=10))
    assert page.total == 25 and page.counts["queued"] == 24 and page.counts["finished"] == 1
    assert [j.spec.name for j in page.jobs][:2] == ["job-24", "job-23"]
    seen = [j.id for j in page.jobs]
    while page.next_cursor:
        page = store.query(JobQuery(site="local", limit=10, cursor=page.next_cursor))
        seen += [j.id for j in page.jobs]
    assert len(seen) == len(set(seen)) == 25
    assert store.query(JobQuery(states=(JobState.FINISHED,))).total == 1
    assert {j.spec.name for j in store.query(JobQuery(name="job-1", site="local")).jobs} == {
        "job-1",
        *(f"job-1{i}" for i in range(10)),
    }
    assert store.query(JobQuery(name="%")).total == 0, "LIKE wildcards in a name filter are literal"
    assert store.query(JobQuery(since=1020.0, site="local")).total == 5
    by_priority = store.query(JobQuery(sort="priority", site="local", limit=25)).jobs
    assert [j.spec.priority for j in by_priority] == sorted((j.spec.priority for j in by_priority), reverse=True)
    offset_page = store.query(JobQuery(sort="name", limit=5, offset=5))
    assert offset_page.next_cursor is not None
    with pytest.raises(ValidationError):
        store.query(JobQuery(cursor="garbage!"))
    store.close()


def test_hundred_thousand_jobs_first_page_is_quick(tmp_path: Path) -> None:
    """Not a timing assertion (see benchmarks/): checks the query plan uses the indexes."""
    store = JobStore(tmp_path / "s.sqlite", synchronous="NORMAL")
    plan = store.db.execute(
        "EXPLAIN QUERY PLAN SELECT state, COUNT(*) FROM jobs WHERE site=? GROUP BY state", ("x",)
    ).fetchall()
    assert any("INDEX" in str(row) for row in plan)
    store.close()
    _ = time


def test_array_tasks_get_consecutive_sequence_numbers(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    parent, *tasks = make_jobs(5)
    single = make_jobs(1)[0]
    single.id = "ffffffff-0000-4000-8000-000000000000"
    for index, task in enumerate(tasks):
        task.array_parent, task.array_index = parent.id, index
    events = store.insert_jobs([parent, *tasks, single])
    assert [e["job"]["id"] for e in events] == [parent.id, single.id], "tasks are not announced one by one"
    assert [t.seq for t in tasks] == [parent.seq + i for i in range(1, 5)]
    assert single.seq == parent.seq + 5
    assert [t.seq for t in store.array_tasks(parent.id)] == [t.seq for t in tasks]
    store.close()


def test_the_log_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite", synchronous="NORMAL")
    try:
        base = (tmp_path / "s.sqlite").stat().st_size
        for job in make_jobs(1500):
            store.insert_jobs([job])  # one commit each, far below the backstop of a commit-time checkpoint
        wal = tmp_path / "s.sqlite-wal"
        assert wal.stat().st_size > 1_000_000, "the commits went to the write-ahead log"
        deadline = time.monotonic() + 20
        while (tmp_path / "s.sqlite").stat().st_size - base <= 500_000 and time.monotonic() < deadline:
            time.sleep(0.1)  # checkpoints run every 0.5 s; one made during the inserts may be partial
        moved = (tmp_path / "s.sqlite").stat().st_size - base
        assert moved > 500_000, "the background thread moved the log into the database file"
    finally:
        store.close()
    again = JobStore(tmp_path / "s.sqlite")
    try:
        assert again.query(JobQuery(limit=10)).total == 1500
    finally:
        again.close()
