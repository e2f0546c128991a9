"""Schedules in the job store: a run's identity is unique, and it is stored with its job or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from swm_jupyter.core import schedule_store as runs_db
from swm_jupyter.core.model import SCHEDULE_SECTION, replace_spec_extras
from swm_jupyter.core.schedules import schedule_from_request
from swm_jupyter.core.store import SCHEMA_VERSION, JobStore
from tests.test_store import make_jobs

from .core_helpers import store_before


def test_a_run_is_stored_with_its_job_or_not_at_all(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    schedule = schedule_from_request({"job": {"command": ["true"]}, "every": 60}, owner="ana", now=1000.0)
    store.write(lambda db: (runs_db.save_schedule(db, schedule), [])[1])
    first, second = make_jobs(2)
    first.spec = replace_spec_extras(first.spec, {SCHEDULE_SECTION: {"id": schedule.id, "due_time": 1060.0}})

    def record(job_id: str):
        def step(db: sqlite3.Connection) -> list[tuple[str, dict]]:
            runs_db.record_run(db, schedule.id, 1060.0, runs_db.LAUNCHED, created=1061.0, job_id=job_id)
            return [(job_id, {"type": "schedule_run", "time": 1061.0})]

        return step

    events = store.insert_jobs([first], also=record(first.id))
    assert [e["type"] for e in events] == ["job", "schedule_run"]
    # the same due time again: the whole transaction fails, the second job is not stored either
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_jobs([second], also=record(second.id))
    assert store.exists(first.id) and not store.exists(second.id)
    assert store.last_event_id() == events[-1]["id"]
    store.close()

    again = JobStore(tmp_path / "s.sqlite")
    assert again.schema_version == SCHEMA_VERSION
    [run] = runs_db.open_runs(again)
    assert (run.schedule_id, run.due_time, run.job_id) == (schedule.id, 1060.0, first.id)
    job = again.get(first.id)
    assert job.summary()["schedule"] == {"id": schedule.id, "due_time": 1060.0}
    [kept] = runs_db.load_schedules(again)
    assert kept.id == schedule.id and kept.every == 60
    runs, total = runs_db.list_runs(again, schedule.id)
    assert total == 1 and runs[0]["state"] == "queued" and runs[0]["job_id"] == first.id
    again.close()


def test_a_store_of_schema_3_gets_the_schedule_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    store_before(path, "CREATE TABLE IF NOT EXISTS schedules (")[0].close()
    store = JobStore(path)
    assert store.schema_version == SCHEMA_VERSION
    assert runs_db.load_schedules(store) == [] and runs_db.open_runs(store) == []
    store.close()
