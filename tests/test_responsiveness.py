"""No request stalls another: while a 100,000-task array is submitted, listed and canceled through a
real server, the server keeps answering ``GET /api/status`` at once. A submission that fails half-way
leaves nothing behind, and a server killed half-way through storing one runs none of its tasks."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from swm_jupyter.core.errors import StoreFull
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.store import JobStore
from tests.conftest import body

from .core_helpers import run, with_manager

#: The slowest answer to GET /api/status the tests accept while a big array is handled (generous:
#: this machine is shared; before the work was sliced, answers waited 5 to 20 s).
BOUND = 1.0


async def _status_latencies(jp_fetch: Any, work: asyncio.Task[Any]) -> list[float]:
    """Ask GET /api/status every 50 ms until ``work`` is done; the time each answer took."""
    latencies: list[float] = []
    while not work.done():
        started = time.monotonic()
        answer = await jp_fetch("api", "status")
        latencies.append(time.monotonic() - started)
        assert answer.code == 200
        await asyncio.sleep(0.05)
    return latencies


async def test_status_answers_while_a_100k_array_is_submitted_and_canceled(api: Any, jp_fetch: Any) -> None:
    array = {"command": ["true"], "array": "0-99999", "hold": True}
    submit = asyncio.ensure_future(api("jobs", json_body=array, request_timeout=300))  # this machine is shared
    latencies = await _status_latencies(jp_fetch, submit)
    answer = submit.result()
    assert answer.code == 201, body(answer)
    parent = body(answer)["id"]
    print(f"submission: {len(latencies)} polls, slowest {max(latencies):.3f}s")
    assert max(latencies) < BOUND, f"GET /api/status took {max(latencies):.2f}s while the array was submitted"
    assert len(latencies) >= 3, "the submission was answered before the server could be asked anything"

    listing = asyncio.ensure_future(api("jobs", params={"array_parent": parent, "limit": "10"}, request_timeout=300))
    latencies = await _status_latencies(jp_fetch, listing)
    page = body(listing.result())
    assert page["total"] == 100_000 and page["counts"]["held"] == 100_000, page["counts"]
    assert max(latencies, default=0) < BOUND

    cancel = asyncio.ensure_future(api("jobs", parent, method="DELETE", request_timeout=300))
    latencies = await _status_latencies(jp_fetch, cancel)
    assert cancel.result().code == 202, body(cancel.result())
    print(f"cancel: {len(latencies)} polls, slowest {max(latencies):.3f}s")
    assert max(latencies) < BOUND, f"GET /api/status took {max(latencies):.2f}s while the array was canceled"
    assert len(latencies) >= 3
    page = body(await api("jobs", params={"array_parent": parent, "limit": "1"}))
    assert page["counts"]["canceled"] == 100_000, page["counts"]
    assert body(await api("jobs", parent))["state"] == "canceled"


def test_a_submission_that_fails_half_way_leaves_nothing(tmp_path: Path) -> None:
    """The store fills up in the middle of a big array: 507, and no job or task of it is left."""

    async def check(wm: WorkloadManager) -> None:
        store = wm.store
        assert store is not None
        insert = store.insert_tasks
        batches: list[int] = []

        def filling(tasks: list[Any]) -> None:
            if len(batches) == 3:
                raise StoreFull("the job store cannot be written: no space left (test)")
            batches.append(len(tasks))
            insert(tasks)

        store.insert_tasks = filling  # type: ignore[method-assign]
        try:
            await wm.submit({"command": ["true"], "array": "0-19999"})
        except StoreFull as exc:
            assert "the submission was not stored" in exc.message
        else:
            raise AssertionError("the submission did not fail")
        assert sum(batches) > 0
        deadline = time.monotonic() + 20
        while store.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert store.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
        assert not store.unfinished_builds()
        assert not wm.jobs and not wm._pending and not wm._queue

    run(with_manager(tmp_path, check))


def test_a_store_left_half_way_through_a_submission_discards_it(tmp_path: Path) -> None:
    """A store in which a big submission was begun and not finished (the server died) runs none of it."""

    async def begin(wm: WorkloadManager) -> None:
        kept = await wm.submit({"command": ["true"], "hold": True})
        parent = wm.prepare({"command": ["true"], "array": "0-2999"}, with_tasks=False)[0]
        assert wm.store is not None
        wm.store.start_build(parent.id, [parent])
        wm.store.insert_tasks(wm._make_tasks(parent, range(2000)))
        ids.extend([kept.id, parent.id])

    ids: list[str] = []
    run(with_manager(tmp_path, begin))
    store = JobStore(tmp_path / "jobs.sqlite", synchronous="NORMAL")
    try:
        assert store.discarded_builds == [ids[1]]
        assert [job.id for job in store.live_jobs()] == [ids[0]], "only the acknowledged job is left"
    finally:
        store.close()


def test_sigkill_while_a_big_array_is_stored_runs_none_of_it(server_process: Any, tmp_path: Path) -> None:
    """SIGKILL the server while it stores a 100,000-task array: after a restart no task of it exists or runs."""
    import json
    import threading
    import urllib.request

    server = server_process().start()
    store_path = server.data_dir / "jobs.sqlite"

    def post() -> None:
        request = urllib.request.Request(
            f"{server.url}/swm/api/v1/jobs",
            data=json.dumps({"command": ["true"], "array": "0-99999"}).encode(),
            headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            urllib.request.urlopen(request, timeout=120).read()
        except OSError:
            pass  # the server was killed: no answer

    threading.Thread(target=post, daemon=True).start()
    db = sqlite3.connect(store_path, timeout=10)
    deadline = time.monotonic() + 60
    tasks = 0
    while time.monotonic() < deadline:
        tasks = db.execute("SELECT COUNT(*) FROM jobs WHERE array_parent IS NOT NULL").fetchone()[0]
        if tasks >= 2000:
            break
        time.sleep(0.01)
    building = db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'build:%'").fetchone()[0]
    server.kill()
    db.close()
    assert tasks >= 2000 and building == 1, f"killed too late or too early: {tasks} tasks, {building} builds"
    server.start()
    with urllib.request.urlopen(
        urllib.request.Request(f"{server.url}/swm/api/v1/jobs", headers={"Authorization": f"token {server.token}"})
    ) as answer:
        listing = json.loads(answer.read())
    assert listing["total"] == 0, listing["counts"]
    assert not list((server.data_dir / "jobs").glob("*/task-*")), "a task of the discarded array ran"
