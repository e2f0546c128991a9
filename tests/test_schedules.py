"""Schedules through a real Jupyter server: REST, runs exactly once per due time, options, notifications."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import body, free_port

from .notebook_fixtures import notebook

EVENTS = ("swm", "api", "v1", "events")


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(
            {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "text": envelope.content.decode()}
        )
        return "250 OK"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on loopback."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def jp_server_config(swm_data_dir: Path, swm_sites: dict[str, Any], mailbox: tuple[Mailbox, int]) -> dict[str, Any]:
    """The test server, with quick webhook retries and the loopback SMTP server."""
    return {
        "ServerApp": {"jpserver_extensions": {"swm_jupyter": True}},
        "SwmApp": {"data_dir": str(swm_data_dir), "sites": swm_sites, "poll_interval": 0.3, "synchronous": "NORMAL"},
        "ScheduleRunner": {
            "webhook_backoff": 0.2,
            "webhook_attempts": 4,
            "webhook_allow_private": True,  # the receivers of these tests are on loopback
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox[1],
            "smtp_password": "smtp-pw-never-shown",
            "smtp_username": "",
            "email_from": "swm@example.org",
        },
    }


async def create(api: Any, **request: Any) -> dict[str, Any]:
    response = await api("schedules", json_body=request)
    assert response.code == 201, response.body
    return body(response)


async def runs_of(api: Any, schedule_id: str) -> list[dict[str, Any]]:
    response = await api("schedules", schedule_id, "runs", params={"limit": "1000"})
    assert response.code == 200, response.body
    return body(response)["runs"]


async def wait_for(check: Any, timeout: float = 30.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(every)


async def test_interval_of_2s_runs_at_least_3_times_in_7s_once_per_due_time(api: Any, tmp_path: Path) -> None:
    marks = tmp_path / "marks.log"
    job = {"command": ["sh", "-c", f'echo "$SWM_JOB_ID" >> {marks}'], "name": "tick"}
    schedule = await create(api, job=job, every="2s")
    started = time.time()
    await asyncio.sleep(7 - (time.time() - started))
    runs = [r for r in await runs_of(api, schedule["id"]) if r["status"] == "launched"]
    assert len(runs) >= 3, runs
    dues = sorted(r["due_time"] for r in runs)
    assert len(set(dues)) == len(dues), "one run per due time"
    assert all(abs((b - a) - 2.0) < 1e-6 for a, b in itertools.pairwise(dues)), dues
    assert abs(dues[0] - schedule["created"] - 2.0) < 1e-6
    assert len({r["job_id"] for r in runs}) == len(runs)

    async def all_final() -> bool:
        current = [r for r in await runs_of(api, schedule["id"]) if r["status"] == "launched"]
        return all(r["state"] == "finished" for r in current) and current

    await api("schedules", schedule["id"], "pause", method="POST")  # first: no run launches after the wait
    await wait_for(all_final)
    launched = [r for r in await runs_of(api, schedule["id"]) if r["status"] == "launched"]
    # each run is an ordinary job carrying its schedule and due time, and ran once
    for run in launched:
        shown = body(await api("jobs", run["job_id"]))
        assert shown["schedule"]["id"] == schedule["id"] and shown["schedule"]["due_time"] == run["due_time"]
        assert shown["spec"]["schedule"]["due_time"] == run["due_time"]
        assert shown["state"] == "finished" and shown["exit_code"] == 0
    ran = marks.read_text().split()
    assert sorted(ran) == sorted(r["job_id"] for r in launched)


async def test_create_list_show_update_delete_and_bad_input(api: Any) -> None:
    bad = await api("schedules", json_body={"job": {"command": ["true"], "site": "nowhere"}, "every": "1h"})
    assert bad.code == 400 and any(e["field"] == "job.site" for e in body(bad)["errors"]), bad.body
    bad = await api("schedules", json_body={"job": {"command": ["true"]}, "cron": "not cron", "lunch": 1})
    assert bad.code == 400
    assert {e["field"] for e in body(bad)["errors"]} >= {"cron", "lunch"}
    bad = await api("schedules", body=b"{", method="POST", headers={"Content-Type": "application/json"})
    assert bad.code == 400 and "traceback" not in bad.body.decode().lower()
    assert body(await api("schedules"))["schedules"] == [], "nothing was stored"

    made = await create(
        api,
        name="nightly",
        job={"command": ["true"], "env": {"API_TOKEN": "env-secret-1"}},
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        webhook={"url": "http://127.0.0.1:9/hook", "token": "hook-secret-2"},
    )
    assert made["name"] == "nightly" and made["next_due"] > time.time()
    assert "env-secret-1" not in json.dumps(made) and "hook-secret-2" not in json.dumps(made)
    listed = body(await api("schedules"))["schedules"]
    assert [s["id"] for s in listed] == [made["id"]]
    assert "hook-secret-2" not in json.dumps(listed) and "env-secret-1" not in json.dumps(listed)
    shown = body(await api("schedules", made["id"]))
    assert shown["cron"] == "30 2 * * *" and shown["timezone"] == "Europe/Berlin"

    patch = {"every": "1h", "catch_up": "all", "webhook": shown["webhook"]}
    changed = await api(
        "schedules", made["id"], method="PATCH", body=json.dumps(patch), headers={"Content-Type": "application/json"}
    )
    assert changed.code == 200, changed.body
    assert body(changed)["every"] == "1h" and body(changed)["cron"] is None and body(changed)["catch_up"] == "all"
    refused = await api(
        "schedules",
        made["id"],
        method="PATCH",
        body=json.dumps({"max_concurrent": "two"}),
        headers={"Content-Type": "application/json"},
    )
    assert refused.code == 400 and body(refused)["errors"][0]["field"] == "max_concurrent"
    assert body(await api("schedules", made["id"]))["max_concurrent"] == 1, "nothing changed"

    missing = await api("schedules", "no-such-schedule")
    assert missing.code == 404
    gone = await api("schedules", made["id"], method="DELETE")
    assert gone.code == 204
    assert (await api("schedules", made["id"])).code == 404
    assert body(await api("schedules"))["schedules"] == []


async def test_every_schedule_route_needs_authentication(api: Any) -> None:
    made = await create(api, job={"command": ["true"]}, every="1h")
    sid = made["id"]
    calls = [
        ("GET", "schedules"),
        ("POST", "schedules"),
        ("GET", f"schedules/{sid}"),
        ("PATCH", f"schedules/{sid}"),
        ("DELETE", f"schedules/{sid}"),
        ("POST", f"schedules/{sid}/pause"),
        ("POST", f"schedules/{sid}/resume"),
        ("POST", f"schedules/{sid}/run"),
        ("GET", f"schedules/{sid}/runs"),
    ]
    for method, path in calls:
        kwargs: dict[str, Any] = {"method": method, "headers": {"Authorization": ""}}
        if method in ("POST", "PATCH"):
            kwargs["body"] = json.dumps({"paused": True})
        response = await api(*path.split("/"), **kwargs)
        assert response.code == 403, (method, path, response.code)
    shown = body(await api("schedules", sid))
    assert shown["paused"] is False and await runs_of(api, sid) == [], "nothing changed"


async def test_max_concurrent_1_skips_and_records(api: Any) -> None:
    schedule = await create(api, job={"command": ["sleep", "3.5"]}, every="1s")

    async def some_skipped() -> list[dict[str, Any]]:
        runs = await runs_of(api, schedule["id"])
        return [r for r in runs if r["status"] == "skipped"] and runs

    runs = await wait_for(some_skipped, timeout=20)
    await api("schedules", schedule["id"], "pause", method="POST")
    skipped = [r for r in runs if r["status"] == "skipped"]
    assert skipped and all("max_concurrent 1" in r["details"] and r["job_id"] is None for r in skipped)
    launched = [r for r in runs if r["status"] == "launched"]
    jobs = [body(await api("jobs", r["job_id"])) for r in launched]
    running = [j for j in jobs if not j["end_time"]]
    assert len(running) <= 1
    # launched runs never overlapped: each started after the previous one ended
    done = sorted((j for j in jobs if j["start_time"]), key=lambda j: j["start_time"])
    for earlier, later in itertools.pairwise(done):
        assert earlier["end_time"] is not None and later["start_time"] >= earlier["end_time"] - 0.05
    assert len({r["due_time"] for r in runs}) == len(runs)


async def test_queue_overlap_runs_every_due_time_one_after_another(api: Any) -> None:
    schedule = await create(api, job={"command": ["sleep", "1.5"]}, every="1s", overlap="queue")

    async def three_launched() -> list[dict[str, Any]]:
        runs = await runs_of(api, schedule["id"])
        return len(runs) >= 3 and runs

    await wait_for(three_launched, timeout=20)
    await api("schedules", schedule["id"], "pause", method="POST")
    runs = await runs_of(api, schedule["id"])
    assert all(r["status"] == "launched" for r in runs), runs
    jobs = [body(await api("jobs", r["job_id"])) for r in sorted(runs, key=lambda r: r["due_time"])]
    for earlier, later in itertools.pairwise(jobs):
        assert {"type": "afterany", "job": earlier["id"]} in later["spec"]["depends_on"]
    for job in jobs:
        await api("jobs", job["id"], "cancel", method="POST")


async def test_pause_and_resume(api: Any) -> None:
    schedule = await create(api, job={"command": ["true"]}, every="1s", paused=True)
    assert schedule["next_due"] is None
    await asyncio.sleep(2.5)
    assert await runs_of(api, schedule["id"]) == [], "a paused schedule does not run"
    resumed = body(await api("schedules", schedule["id"], "resume", method="POST"))
    resumed_at = time.time()
    assert resumed["paused"] is False and resumed["next_due"] >= resumed_at - 1
    assert (await api("schedules", schedule["id"], "resume", method="POST")).code == 409

    async def ran() -> list[dict[str, Any]]:
        return await runs_of(api, schedule["id"])

    runs = await wait_for(ran, timeout=10)
    assert all(r["due_time"] >= resumed_at - 1 for r in runs), "due times of the pause never run"
    paused = body(await api("schedules", schedule["id"], "pause", method="POST"))
    assert paused["paused"] is True
    count = len(await runs_of(api, schedule["id"]))
    await asyncio.sleep(2.5)
    assert len(await runs_of(api, schedule["id"])) == count


async def test_run_now_launches_a_manual_run(api: Any) -> None:
    schedule = await create(api, job={"command": ["true"]}, cron="0 0 1 1 *", paused=True)
    response = await api("schedules", schedule["id"], "run", method="POST")
    assert response.code == 201, response.body
    run = body(response)
    assert run["status"] == "launched" and run["manual"] is True
    job = body(await api("jobs", run["job_id"]))
    assert job["schedule"]["id"] == schedule["id"] and job["schedule"]["manual"] is True
    runs = await runs_of(api, schedule["id"])
    assert [r["job_id"] for r in runs] == [run["job_id"]]
    shown = body(await api("schedules", schedule["id"]))
    assert shown["last_run"]["job_id"] == run["job_id"]
    assert job["name"] == shown["name"] == "schedule", "a job with no name is named after its schedule"
    # a script that names itself keeps its name
    scripted = await create(api, name="sched", job={"script": "#!/bin/sh\n#SWM name scripted\ntrue\n"}, every="1h")
    run = body(await api("schedules", scripted["id"], "run", method="POST"))
    assert body(await api("jobs", run["job_id"]))["name"] == "scripted"


async def test_keep_last_prunes_old_runs_and_their_folders(api: Any) -> None:
    schedule = await create(api, job={"command": ["sh", "-c", "echo out > result.txt"]}, every="1s", keep_last=2)
    seen: dict[str, str] = {}

    async def several_seen() -> bool:
        for run in await runs_of(api, schedule["id"]):
            if run["job_id"] and run["job_id"] not in seen:
                job = await api("jobs", run["job_id"])
                if job.code == 200:
                    seen[run["job_id"]] = body(job)["folder"]
        return len(seen) >= 5

    await wait_for(several_seen, timeout=30, every=0.3)
    await api("schedules", schedule["id"], "pause", method="POST")

    async def pruned_down() -> list[dict[str, Any]] | None:
        # the last run ends and the pruning follows: every run ended, at most keep_last of them kept
        runs = await runs_of(api, schedule["id"])
        ended = [r for r in runs if r["state"] in ("finished", "error", "canceled") or r["status"] != "launched"]
        return runs if len(ended) == len(runs) and len(runs) <= 2 else None

    runs = await wait_for(pruned_down, timeout=30, every=0.2)
    kept = {r["job_id"] for r in runs}
    pruned = [job_id for job_id in seen if job_id not in kept]
    assert len(pruned) >= 3
    for job_id in pruned:
        assert (await api("jobs", job_id)).code == 404
        assert not Path(seen[job_id]).exists(), "the pruned run's folder is deleted"
    for job_id in kept:
        assert Path(seen.get(job_id) or body(await api("jobs", job_id))["folder"]).exists()


async def test_notebook_schedule_with_parameters_produces_executed_notebooks(api: Any, jp_root_dir: Path) -> None:
    nb = notebook("x = 1", "print('x*2 =', x * 2)", tags={0: ["parameters"]})
    nbformat.write(nb, jp_root_dir / "report.ipynb")
    schedule = await create(api, job={"notebook": "report.ipynb", "parameters": {"x": 21}}, every="2s")

    async def two_finished() -> list[dict[str, Any]]:
        runs = [r for r in await runs_of(api, schedule["id"]) if r["state"] == "finished"]
        return len(runs) >= 2 and runs

    runs = await wait_for(two_finished, timeout=90, every=0.5)
    await api("schedules", schedule["id"], "pause", method="POST")
    for run in runs:
        job = body(await api("jobs", run["job_id"]))
        assert job["exit_code"] == 0, job
        executed = nbformat.read(Path(job["folder"]) / "report.executed.ipynb", as_version=4)
        texts = [o.get("text", "") for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
        assert "x*2 = 42\n" in texts, texts


class Hook(BaseHTTPRequestHandler):
    """A webhook receiver: answers 500 to the first request, then 200; keeps every request."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append({"body": json.loads(self.rfile.read(length)), "auth": self.headers.get("Authorization")})
        self.send_response(500 if len(self.received) == 1 else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("TestHook", (Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


async def test_failure_notifies_webhook_with_retry_email_and_websocket(
    api: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    hook_server: tuple[str, list[dict[str, Any]]],
    mailbox: tuple[Mailbox, int],
) -> None:
    url, received = hook_server
    box, _ = mailbox
    runner = jp_serverapp.web_app.settings["swm_schedules"]
    lines: list[str] = []
    catcher = logging.Handler(logging.DEBUG)
    catcher.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = runner.log if isinstance(runner.log, logging.Logger) else runner.log.logger
    logger.addHandler(catcher)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    ws = await jp_ws_fetch(*EVENTS)
    json.loads(await ws.read_message())  # hello
    schedule = await create(
        api,
        name="failing",
        job={"command": ["sh", "-c", "exit 3"]},
        cron="0 0 1 1 *",
        webhook={"url": url, "token": "hook-token-xyz"},
        email=["ops@example.org"],
    )
    run = body(await api("schedules", schedule["id"], "run", method="POST"))

    async def delivered() -> bool:
        return len(received) >= 2

    await wait_for(delivered, timeout=30)
    first, second = received[0], received[1]
    assert first["body"] == second["body"], "the retry sends the same notification"
    assert second["auth"] == "Bearer hook-token-xyz"
    payload = second["body"]
    assert payload["failed"] is True and payload["run"]["job_id"] == run["job_id"]
    assert payload["run"]["exit_code"] == 3 and payload["schedule"]["id"] == schedule["id"]

    async def mailed() -> bool:
        return any("failing" in m["text"] for m in box.messages)

    await wait_for(mailed, timeout=30)
    message = next(m for m in box.messages if "failing" in m["text"])
    assert message["to"] == ["ops@example.org"] and run["job_id"] in message["text"]

    async def status_recorded() -> dict[str, Any]:
        shown = body(await api("schedules", schedule["id"]))
        return shown["webhook_status"].get("last_ok_time") and shown

    shown = await wait_for(status_recorded)
    assert shown["webhook_status"]["last_attempts"] == 2
    assert "hook-token-xyz" not in json.dumps(shown)

    # the websocket carried the run's end, marked for a browser notification
    notified = None
    deadline = time.monotonic() + 10
    while notified is None and time.monotonic() < deadline:
        event = json.loads(await asyncio.wait_for(ws.read_message(), 10))
        assert "hook-token-xyz" not in json.dumps(event)
        if event["type"] == "schedule_run" and event["ended"]:
            notified = event
    assert notified is not None and notified["notify"] is True and notified["run"]["failed"] is True
    ws.close()
    logger.removeHandler(catcher)
    logger.setLevel(old_level)
    logged = "\n".join(lines)
    assert "swm: schedule" in logged, "the runner's log was captured"
    assert "hook-token-xyz" not in logged and "smtp-pw-never-shown" not in logged


async def test_webhook_failures_are_visible_in_the_schedule(api: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    schedule = await create(api, job={"command": ["false"]}, cron="0 0 1 1 *", webhook={"url": dead})
    await api("schedules", schedule["id"], "run", method="POST")

    async def failure_recorded() -> dict[str, Any]:
        shown = body(await api("schedules", schedule["id"]))
        return shown["webhook_status"].get("failures") and shown

    shown = await wait_for(failure_recorded, timeout=30)
    assert "could not be reached" in shown["webhook_status"]["last_error"]
    assert shown["webhook_status"]["last_attempts"] == 4


async def test_openapi_documents_schedules(api: Any) -> None:
    document = body(await api("openapi.json"))
    paths = document["paths"]
    for path in ("/schedules", "/schedules/{schedule_id}", "/schedules/{schedule_id}/runs"):
        assert path in paths, sorted(paths)
    assert {"get", "post"} <= set(paths["/schedules"])
    assert {"get", "patch", "delete"} <= set(paths["/schedules/{schedule_id}"])


async def test_a_run_that_cannot_be_submitted_is_recorded_failed(api: Any, jp_root_dir: Path) -> None:
    nbformat.write(notebook("print(1)"), jp_root_dir / "gone.ipynb")
    schedule = await create(api, job={"notebook": "gone.ipynb"}, every="1s")
    (jp_root_dir / "gone.ipynb").unlink()

    async def failed_runs() -> list[dict[str, Any]]:
        return [r for r in await runs_of(api, schedule["id"]) if r["status"] == "failed"]

    failed = await wait_for(failed_runs, timeout=15)
    assert "does not exist" in failed[0]["details"] and failed[0]["job_id"] is None
    shown = body(await api("schedules", schedule["id"]))
    assert shown["last_run"]["status"] == "failed"
    manual = await api("schedules", schedule["id"], "run", method="POST")
    assert manual.code == 201 and body(manual)["status"] == "failed"
    await api("schedules", schedule["id"], "pause", method="POST")
