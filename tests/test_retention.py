"""Retention: old events and old final jobs (with their events and folders) are deleted in the background."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pytest

from tests.conftest import body

EVENTS = ("swm", "api", "v1", "events")


async def until_final(api: Any, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """The job once it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = body(await api("jobs", job_id))
        if job["state"] in ("finished", "error", "canceled"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


async def until_gone(api: Any, job_id: str, timeout: float = 30) -> None:
    """Wait until the API no longer knows the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await api("jobs", job_id)).code == 404:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} was never deleted")


class TestJobRetention:
    """``job_retention_days`` deletes final jobs, their events and folders; never one a live job needs."""

    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        """Final jobs are kept two seconds; retention runs every 0.2 s."""
        return {**jp_server_config, "WorkloadManager": {"job_retention_days": 2 / 86400, "retention_interval": 0.2}}

    async def test_old_final_jobs_go_with_their_events_and_folders(self, api: Any, swm_started: Any) -> None:
        manager = swm_started
        plain = body(await api("jobs", json_body={"command": ["sh", "-c", "echo hi > out.txt"]}))
        array = body(await api("jobs", json_body={"command": ["true"], "array": "0-2"}))
        needed = body(await api("jobs", json_body={"command": ["true"], "name": "needed"}))
        for job in (plain, array, needed):
            await until_final(api, job["id"])
        live = body(await api("jobs", json_body={"command": ["true"], "hold": True, "depends_on": [needed["id"]]}))
        tasks = body(await api("jobs", params={"array_parent": array["id"]}))["jobs"]
        assert len(tasks) == 3
        folders = [body(await api("jobs", j["id"]))["folder"] for j in (plain, array, needed)]
        assert all(os.path.isdir(folder) for folder in folders)
        await until_gone(api, plain["id"])
        await until_gone(api, array["id"])
        for task in tasks:
            assert (await api("jobs", task["id"])).code == 404, "an array goes with its tasks"
        assert not os.path.exists(folders[0]) and not os.path.exists(folders[1]), "their folders are deleted"
        gone = {plain["id"], array["id"], *(t["id"] for t in tasks)}
        left = [(e["type"], e["job"]["id"]) for e in manager.events_after(0) if (e.get("job") or {}).get("id") in gone]
        assert sorted(left) == sorted([("job_deleted", plain["id"]), ("job_deleted", array["id"])]), (
            "their events go; each deletion is one job_deleted event (none for the tasks)"
        )
        await asyncio.sleep(1)  # more retention passes
        kept = body(await api("jobs", needed["id"]))
        assert kept["state"] == "finished", "a job that a live job depends on is kept"
        assert os.path.isdir(folders[2])
        assert body(await api("jobs", live["id"]))["state"] == "held"
        await api("jobs", live["id"], method="DELETE")
        await until_gone(api, needed["id"])  # once nothing needs it, it goes too
        await until_gone(api, live["id"])


class TestEventRetention:
    """``event_retention`` keeps the newest events; a client asking for deleted ones is told to reload."""

    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        """Five events are kept; retention runs every 0.2 s."""
        return {**jp_server_config, "WorkloadManager": {"event_retention": 5, "retention_interval": 0.2}}

    async def test_only_the_newest_events_are_kept(self, api: Any, jp_ws_fetch: Any, swm_started: Any) -> None:
        manager = swm_started
        requests = [{"command": ["true"], "hold": True, "name": f"j{i}"} for i in range(12)]
        jobs = body(await api("jobs", json_body=requests))
        deadline = time.monotonic() + 15
        while len(manager.events_after(0)) > 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        kept = manager.events_after(0)
        assert [e["job"]["name"] for e in kept] == [f"j{i}" for i in range(7, 12)], "the newest five are kept"
        ws = await jp_ws_fetch(*EVENTS, params={"last_event_id": "0"})
        hello = json.loads(await ws.read_message())
        assert hello["type"] == "hello"
        reload = json.loads(await ws.read_message())
        assert reload["type"] == "reload" and "load the job list again" in reload["message"]
        replayed = [json.loads(await ws.read_message()) for _ in range(5)]
        assert [e["id"] for e in replayed] == [e["id"] for e in kept]
        ws.close()
        assert len(body(await api("jobs"))["jobs"]) == len(jobs["jobs"]), "event retention deletes no job"
