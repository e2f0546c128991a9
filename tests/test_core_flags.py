"""The core's own job flags (``launching``, ``finalizing``, ``held_on_site``) live in their own store
columns, never in the gate's ``gate_data``: a gate sees only what it wrote, and an old store that kept
the flags inside ``gate_data`` is migrated (the flags moved out).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from swm_jupyter.core.model import Job, JobSpec
from swm_jupyter.core.states import JobState
from swm_jupyter.core.store import SCHEMA_VERSION, JobStore
from swm_jupyter.gates.local import LocalGate

from .core_helpers import run, running_manager, store_before

FLAGS = ("launching", "finalizing", "held_on_site")


class RecordingGate(LocalGate):
    """The local gate, noting the ``gate_data`` of every job it is handed (by method)."""

    stages_files = True
    seen: list[tuple[str, dict[str, Any]]] = []

    def _note(self, method: str, job: Job) -> None:
        RecordingGate.seen.append((method, dict(job.gate_data)))

    async def submit(self, job: Job, dependencies: Any = ()) -> Any:
        self._note("submit", job)
        return await super().submit(job, dependencies)

    async def submit_many(self, jobs: Any) -> Any:
        for job, _ in jobs:
            self._note("submit", job)
        return await super().submit_many(jobs)

    async def poll(self, jobs: list[Job]) -> Any:
        for job in jobs:
            self._note("poll", job)
        return await super().poll(jobs)

    async def hold(self, job: Job) -> bool:
        self._note("hold", job)
        return await super().hold(job)

    async def release(self, job: Job) -> bool:
        self._note("release", job)
        return await super().release(job)

    async def cancel(self, job: Job) -> None:
        self._note("cancel", job)
        await super().cancel(job)

    async def stage_out(self, job: Job) -> None:
        self._note("stage_out", job)
        await super().stage_out(job)

    async def release_resources(self, job: Job) -> None:
        self._note("release_resources", job)
        await super().release_resources(job)


async def _until(check: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _stored(db_path: Path, job_id: str) -> dict[str, Any]:
    """The job's row as another reader of the store sees it."""
    with sqlite3.connect(db_path) as db:
        row = db.execute(
            "SELECT gate_data, launching, finalizing, held_on_site FROM jobs WHERE id=?", (job_id,)
        ).fetchone()
    return {"gate_data": row[0], **dict(zip(FLAGS, row[1:], strict=True))}


def test_a_gate_never_sees_the_core_flags_in_gate_data(tmp_path: Path) -> None:
    RecordingGate.seen = []
    sites = {"busy": {"gate": "tests.test_core_flags:RecordingGate", "cpus": 1, "queue_ahead": 2}}

    async def main() -> None:
        async with running_manager(tmp_path / "data", sites=sites) as wm:
            assert wm.store is not None
            db_path = wm.store.path
            done = await wm.submit({"command": ["true"], "site": "busy", "output_files": []})
            assert (await wm.wait(done.id, 30)).state is JobState.FINISHED
            blocker = await wm.submit({"command": ["sleep", "30"], "site": "busy"})
            await _until(lambda: wm.get(blocker.id).state is JobState.RUNNING)
            waiting = await wm.submit({"command": ["true"], "site": "busy"})
            await _until(lambda: wm.get(waiting.id).state is JobState.WAITING and not wm.get(waiting.id).launching)
            held = await wm.hold(waiting.id)
            await _until(lambda: wm.get(waiting.id).held_on_site)
            assert held.state is JobState.HELD and "site's queue" in wm.get(waiting.id).state_details
            wm._flush()
            row = _stored(db_path, waiting.id)
            assert row["held_on_site"] == 1 and "held_on_site" not in row["gate_data"], row
            await asyncio.sleep(1.5)  # polls of the job held on the site
            await wm.release(waiting.id)
            await _until(lambda: not wm.get(waiting.id).held_on_site)
            await wm.cancel(blocker.id)
            assert (await wm.wait(waiting.id, 30)).state is JobState.FINISHED
            await wm.wait(blocker.id, 30)
            wm._flush()
            for job_id in (done.id, blocker.id, waiting.id):
                assert [_stored(db_path, job_id)[flag] for flag in FLAGS] == [0, 0, 0], job_id

    run(main(), timeout=120)
    methods = {method for method, _ in RecordingGate.seen}
    assert {"submit", "poll", "hold", "release", "cancel", "stage_out", "release_resources"} <= methods, methods
    leaked = [(method, data) for method, data in RecordingGate.seen if set(data) & set(FLAGS)]
    assert leaked == [], "the core's flags reached the gate's gate_data"


def _old_store(path: Path) -> int:
    """A store at the schema version before the flags had their own columns; return that version."""
    db, version = store_before(path, "ADD COLUMN launching")
    spec = JobSpec.from_dict({"command": ["true"]}).to_dict()
    rows = {
        "a0000000-0000-4000-8000-000000000000": ('{"pid": 5, "launching": true}', "W"),
        "b0000000-0000-4000-8000-000000000000": ('{"slurm_id": "7", "held_on_site": true}', "H"),
        "c0000000-0000-4000-8000-000000000000": ('{"finalizing": true, "folder": "/x"}', "T"),
        "d0000000-0000-4000-8000-000000000000": ('{"slurm_id": "8"}', "R"),
        "e0000000-0000-4000-8000-000000000000": ("{}", "Q"),
        "f0000000-0000-4000-8000-000000000000": ('{"launching": false, "held_on_site": true}', "H"),
    }
    for job_id, (gate_data, state) in rows.items():
        db.execute(
            "INSERT INTO jobs (id, name, site, state, submit_time, spec, gate_data) "
            "VALUES (?, 'x', 'local', ?, 1, ?, ?)",
            (job_id, JobState.parse(state).value, json.dumps(spec), gate_data),
        )
    db.close()
    return version


def test_an_old_store_with_the_flags_in_gate_data_migrates(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    old = _old_store(path)
    assert old < SCHEMA_VERSION
    store = JobStore(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        got = {key: store.get(key + "0000000") for key in "abcdef"}
        flags = {key: tuple(getattr(job, flag) for flag in FLAGS) for key, job in got.items()}
        assert flags == {
            "a": (True, False, False),
            "b": (False, False, True),
            "c": (False, True, False),
            "d": (False, False, False),
            "e": (False, False, False),
            "f": (False, False, True),
        }
        assert {key: job.gate_data for key, job in got.items()} == {
            "a": {"pid": 5},
            "b": {"slurm_id": "7"},
            "c": {"folder": "/x"},
            "d": {"slurm_id": "8"},
            "e": {},
            "f": {},
        }
        # The flags are the store's own columns from now on: written and read back as such.
        job = got["d"]
        job.held_on_site = True
        store.update_jobs([job], events=False)
    finally:
        store.close()
    again = JobStore(path)
    try:
        assert again.get("d0000000").held_on_site and again.get("d0000000").gate_data == {"slurm_id": "8"}
    finally:
        again.close()
