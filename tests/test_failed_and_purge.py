"""#18's REST side: ``GET /jobs?state=failed`` and ``DELETE /jobs/{id}?purge=1`` on a real server and local site."""

from __future__ import annotations

import os
from typing import Any

from swm_jupyter.core.states import JobState, is_failed
from swm_jupyter.core.store import FAILED_SQL
from tests.conftest import body


async def submit(api: Any, spec: dict[str, Any]) -> dict[str, Any]:
    response = await api("jobs", json_body=spec)
    assert response.code == 201, response.body
    return body(response)


async def test_failed_filter_lists_non_zero_exits_and_errors(api: Any, swm_started: Any) -> None:
    ok = await submit(api, {"command": ["true"], "name": "f-ok"})
    bad = await submit(api, {"command": ["sh", "-c", "exit 2"], "name": "f-bad"})
    killed = await submit(api, {"command": ["sh", "-c", "kill -9 $$"], "name": "f-killed"})
    held = await submit(api, {"command": ["true"], "name": "f-held", "hold": True})
    for job in (ok, bad, killed):
        await swm_started.wait(job["id"], timeout=30)
    page = body(await api("jobs", params={"state": "failed", "name": "f-"}))
    assert {j["name"] for j in page["jobs"]} == {"f-bad", "f-killed"} and page["total"] == 2
    assert all(j["failed"] for j in page["jobs"])
    mixed = body(await api("jobs", params={"state": "failed,held", "name": "f-"}))
    assert {j["name"] for j in mixed["jobs"]} == {"f-bad", "f-killed", "f-held"} and mixed["total"] == 3
    shown = body(await api("jobs", ok["id"]))
    assert shown["state"] == "finished" and shown["failed"] is False
    assert body(await api("jobs", held["id"]))["failed"] is False
    refused = await api("jobs", params={"state": "broken"})
    assert refused.code == 400 and "failed" in body(refused)["message"]


def test_the_sql_filter_and_the_python_rule_agree() -> None:
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE jobs (state TEXT, exit_code INTEGER, signal INTEGER)")
    cases = [(s.value, e, g) for s in JobState for e in (None, 0, 1, 255) for g in (None, 0, 9)]
    db.executemany("INSERT INTO jobs VALUES (?, ?, ?)", cases)
    found = set(db.execute(f"SELECT state, exit_code, signal FROM jobs WHERE {FAILED_SQL}").fetchall())
    assert found == {c for c in cases if is_failed(*c)}
    assert is_failed("error", None) and is_failed("finished", 1) and not is_failed("canceled", 1)


async def test_purge_deletes_a_final_job_and_its_folder_only(api: Any, swm_started: Any) -> None:
    done = await submit(api, {"command": ["sh", "-c", "echo out > result.txt"], "output_files": ["result.txt"]})
    await swm_started.wait(done["id"], timeout=30)
    folder = body(await api("jobs", done["id"]))["folder"]
    assert os.path.isdir(folder)
    live = await submit(api, {"command": ["true"], "hold": True})
    refused = await api("jobs", live["id"], method="DELETE", params={"purge": "1"})
    assert refused.code == 409 and "held" in body(refused)["message"]
    assert body(await api("jobs", live["id"]))["state"] == "held", "a refused purge changes nothing"
    deleted = await api("jobs", done["id"], method="DELETE", params={"purge": "1"})
    assert deleted.code == 200 and body(deleted) == {"deleted": done["id"], "jobs": 1}
    assert (await api("jobs", done["id"])).code == 404
    assert not os.path.exists(folder)
    assert (await api("jobs", done["id"], method="DELETE", params={"purge": "1"})).code == 404
    # without purge, DELETE still cancels
    canceled = await api("jobs", live["id"], method="DELETE")
    assert canceled.code == 202 and body(canceled)["state"] == "canceled"


async def test_purge_of_an_array_takes_its_tasks_and_refuses_a_task(api: Any, swm_started: Any) -> None:
    array = await submit(api, {"command": ["true"], "array": "0-2"})
    await swm_started.wait(array["id"], timeout=60)
    tasks = body(await api("jobs", params={"array_parent": array["id"]}))["jobs"]
    assert len(tasks) == 3
    task = await api("jobs", tasks[0]["id"], method="DELETE", params={"purge": "1"})
    assert task.code == 409 and "delete the whole array" in body(task)["message"]
    deleted = await api("jobs", array["id"], method="DELETE", params={"purge": "1"})
    assert deleted.code == 200 and body(deleted)["jobs"] == 4
    assert body(await api("jobs", params={"array_parent": array["id"]}))["total"] == 0
