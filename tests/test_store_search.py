"""The store's name search (a trigram index kept by triggers) and the jobs table's sort orders."""

from __future__ import annotations

from pathlib import Path

import pytest

from swm_jupyter.core.model import Job, JobSpec
from swm_jupyter.core.states import HistoryEntry, JobState
from swm_jupyter.core.store import SCHEMA_VERSION, SORTS, JobQuery, JobStore

from .core_helpers import store_before

NAMES = ["Train-ResNet", "train-vit", "eval_100", "say hi", "Zurich-Run", "ab", "prep_data", "prepXdata"]


def make_job(i: int, name: str, **fields: object) -> Job:
    spec = JobSpec.from_dict({"command": ["true"], "name": name})
    job = Job(id=f"{i:08d}-0000-4000-8000-000000000000", spec=spec, site="local", submit_time=1000.0 + i)
    job.history = [HistoryEntry(job.submit_time, JobState.QUEUED)]
    for key, value in fields.items():
        setattr(job, key, value)
    return job


def names(store: JobStore, text: str, **query: object) -> list[str]:
    page = store.query(JobQuery(name=text, limit=100, **query))  # type: ignore[arg-type]
    assert page.total == len(page.jobs)
    return sorted(job.spec.name for job in page.jobs)


def test_name_substrings_are_found_case_insensitively_as_before(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    store.insert_jobs([make_job(i, n) for i, n in enumerate(NAMES)])
    assert names(store, "train") == ["Train-ResNet", "train-vit"]
    assert names(store, "RESNET") == ["Train-ResNet"]
    # LIKE's wildcards and FTS syntax in the text are plain characters.
    assert names(store, "100%") == []
    assert names(store, "p_d") == ["prep_data"]
    assert names(store, "_") == ["eval_100", "prep_data"]
    assert names(store, '"hi"') == []
    assert names(store, "y h") == ["say hi"]
    assert names(store, "hi OR train") == []
    assert names(store, "URICH-r") == ["Zurich-Run"]
    # Shorter than a trigram: still found (by scanning).
    assert names(store, "ab") == ["ab"]
    assert names(store, "b") == ["ab"]
    assert names(store, "zzzz") == []


def test_the_index_follows_renames_and_deletions(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    jobs = [make_job(i, n) for i, n in enumerate(NAMES)]
    store.insert_jobs(jobs)
    store.db.execute("UPDATE jobs SET name='renamed-model' WHERE id=?", (jobs[0].id,))
    assert names(store, "resnet") == []
    assert [j.id for j in store.query(JobQuery(name="renamed")).jobs] == [jobs[0].id]
    store.delete_jobs([jobs[1].id])
    assert names(store, "train") == []
    # Changing other columns (every state change rewrites the row) keeps the entry.
    jobs[6].state = JobState.RUNNING
    store.update_jobs([jobs[6]])
    assert names(store, "prep_") == ["prep_data"]


def test_name_search_combines_with_state_and_top_level_through_the_index(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    jobs = [make_job(i, f"bench-{i}", state=JobState.HELD if i % 2 else JobState.QUEUED) for i in range(300)]
    jobs.append(make_job(300, "bench-99-task", array_parent=jobs[99].id, array_index=0, state=JobState.HELD))
    store.insert_jobs(jobs)
    page = store.query(JobQuery(name="bench-9", states=(JobState.HELD,), top_level=True, limit=5))
    expected = sorted((i for i in range(300) if str(i).startswith("9") and i % 2), reverse=True)
    assert [j.spec.name for j in page.jobs] == [f"bench-{i}" for i in expected[:5]]
    assert page.total == len(expected)
    assert page.counts["held"] == len(expected) and page.counts["queued"] == 5
    plan = " ".join(
        str(row[-1])
        for row in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE seq IN "
            "(SELECT rowid FROM jobs_name WHERE jobs_name MATCH ?) ORDER BY seq DESC",
            ('"bench-9"',),
        )
    )
    assert "VIRTUAL TABLE INDEX" in plan, plan


def test_an_old_store_is_migrated_and_its_names_indexed(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db, _version = store_before(path, "jobs_name")
    db.execute(
        "INSERT INTO jobs (id, name, site, state, submit_time, spec) VALUES (?, ?, 'local', 'finished', 1, ?)",
        ("a", "legacy-run", '{"command": ["true"], "name": "legacy-run"}'),
    )
    db.close()
    store = JobStore(path)
    assert store.schema_version == SCHEMA_VERSION
    tables = {name for (name,) in store.db.execute("SELECT name FROM sqlite_master")}
    assert {"jobs_name", "jobs_name_insert", "jobs_sort_name", "jobs_sort_state"} <= tables
    assert names(store, "legacy") == ["legacy-run"]
    assert names(store, "acy-r") == ["legacy-run"]


#: Every sort of the jobs table's columns (and the older ones), both ways.
TABLE_SORTS = [
    *(
        f"{d}{k}"
        for k in ("submit_time", "name", "state", "site", "owner", "exit_code", "start_time")
        for d in ("", "-")
    ),
    "priority",
    "-priority",
]


def test_the_table_sorts_are_all_known() -> None:
    assert set(TABLE_SORTS) <= set(SORTS)


@pytest.mark.parametrize("sort", TABLE_SORTS)
def test_every_sort_orders_the_whole_listing(tmp_path: Path, sort: str) -> None:
    store = JobStore(tmp_path / "s.sqlite")
    states = [JobState.RUNNING, JobState.FINISHED, JobState.HELD, JobState.ERROR]
    jobs = [
        make_job(
            i,
            f"job-{(i * 7) % 10}",
            state=states[i % 4],
            owner=f"user{i % 3}",
            exit_code=None if i % 4 in (0, 2) else i % 5,
            start_time=None if i % 4 == 2 else 2000.0 + (i * 13) % 17,
        )
        for i in range(20)
    ]
    for i, job in enumerate(jobs):
        job.site = f"site{(i * 3) % 4}"
    store.insert_jobs(jobs)
    pages: list[Job] = []
    cursor = None
    while True:
        page = store.query(JobQuery(sort=sort, limit=6, cursor=cursor))
        pages.extend(page.jobs)
        cursor = page.next_cursor
        if not cursor:
            break
    field = sort.lstrip("-")
    # "priority" lists the highest first; every other sort is ascending unless it starts with "-".
    descending = sort.startswith("-") != (field == "priority")

    def key(job: Job) -> object:
        if field == "submit_time":
            return job.seq
        value = getattr(job.spec, field) if field in ("name", "priority") else getattr(job, field)
        return value.value if isinstance(value, JobState) else value

    got = [key(j) for j in pages]
    assert len(pages) == 20 and len({j.id for j in pages}) == 20
    present = [v for v in got if v is not None]
    # SQLite orders NULL first ascending, last descending.
    assert got == ([None] * (20 - len(present)) + present if not descending else present + [None] * (20 - len(present)))
    assert present == sorted(present, reverse=descending)
