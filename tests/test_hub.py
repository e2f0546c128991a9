"""swm on a real JupyterHub: the service, hub tokens and scopes, client mode in users' servers, ownership.

One hub per module (``tests/hub_fixtures.py``): the example config, configurable-http-proxy, the OS
users alice, bob and admin, their single-user servers spawned by the hub. Needs root (CI runs as root).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.hub_fixtures import *  # noqa: F403 - the hub and hub_users fixtures
from tests.hub_fixtures import BIN, Hub

SERVICE_API = "/services/swm/swm/api/v1"

pytestmark = pytest.mark.timeout(420)


def user_api(user: str) -> str:
    """The swm API of ``user``'s single-user server, through the hub's proxy."""
    return f"/user/{user}/swm/api/v1"


def submit(hub: Hub, base: str, token: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Submit one job; assert it was acknowledged (201) and return it."""
    status, job = hub.call("POST", f"{base}/jobs", token=token, body=spec)
    assert status == 201, (status, job)
    return job  # type: ignore[no-any-return]


def wait_final(hub: Hub, token: str, ids: list[str], timeout: float = 90) -> dict[str, dict[str, Any]]:
    """Wait (through the service) until every job is final; return them by id."""
    jobs: dict[str, dict[str, Any]] = {}

    def all_final() -> bool:
        for job_id in ids:
            status, job = hub.call("GET", f"{SERVICE_API}/jobs/{job_id}", token=token)
            assert status == 200, (status, job)
            jobs[job_id] = job
        return all(job["state"] in ("finished", "error", "canceled") for job in jobs.values())

    hub.wait_for(all_final, timeout, f"jobs {ids} to end")
    return jobs


def open_events(hub: Hub, path: str, token: str, last_event_id: int | None = None) -> ClientConnection:
    """An events websocket (``path`` under the proxy) of ``token``'s user, replaying after ``last_event_id``."""
    url = "ws" + hub.url[4:] + path + (f"?last_event_id={last_event_id}" if last_event_id is not None else "")
    return connect(url, additional_headers={"Authorization": f"token {token}"}, open_timeout=20)


def read_until(socket: ClientConnection, until: Any, timeout: float = 20) -> list[Any]:
    """Messages of an open events websocket until ``until(messages)`` holds."""
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    while not until(messages):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"events did not arrive in {timeout}s; got {messages}")
        try:
            messages.append(json.loads(socket.recv(timeout=left)))
        except TimeoutError:
            continue
    return messages


def events(hub: Hub, path: str, token: str, last_event_id: int | None, until: Any, timeout: float = 20) -> list[Any]:
    """Messages of an events websocket (``path`` under the proxy) until ``until(messages)`` holds."""
    with open_events(hub, path, token, last_event_id) as socket:
        return read_until(socket, until, timeout)


def hello(hub: Hub, path: str, token: str) -> int:
    """The newest event id the events websocket at ``path`` says hello with."""
    first = events(hub, path, token, None, lambda m: bool(m))[0]
    assert first["type"] == "hello", first
    return int(first["last_event_id"])


def server_env(pid: int) -> dict[str, str]:
    """The environment of a running process (a user's server: what its terminals inherit)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def run_cli_as(user: str, env: dict[str, str], *args: str, stdin: str = "") -> Any:
    """Run ``swm ... --json`` as the OS ``user`` with ``env``; return its JSON output."""
    result = subprocess.run(
        [str(BIN / "swm"), *args, "--json"],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=env.get("HOME", "/"),
        user=user,
        timeout=60,
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_service_started_outside_a_hub_says_so_without_a_traceback(tmp_path: Path) -> None:
    """``python -m swm_jupyter.hub.service`` without the hub's environment: exit 2 and one clear line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run(
        [str(BIN / "python"), "-m", "swm_jupyter.hub.service"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "JUPYTERHUB_SERVICE_URL is not set" in result.stderr and "c.JupyterHub.services" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_users_see_and_act_on_their_own_jobs_admins_on_all(hub: Hub) -> None:
    """alice submits from her server's API and its terminal's swm; bob gets 404; admin sees all; no scope: 403."""
    alice, bob, admin = hub.user_token("alice"), hub.user_token("bob"), hub.user_token("admin")
    hub.start_server("alice")

    from_api = submit(hub, user_api("alice"), alice, {"name": "from-api", "command": ["sleep", "30"]})
    assert from_api["owner"] == "alice"
    env = server_env(hub.server_pid("alice"))
    from_cli = run_cli_as("alice", env, "submit", "-", "--name", "from-cli", stdin="#!/bin/sh\necho cli\n")
    assert from_cli["owner"] == "alice", from_cli
    listed = run_cli_as("alice", env, "jobs")
    listed_ids = {j["id"] for j in (listed["jobs"] if isinstance(listed, dict) else listed)}
    assert {from_api["id"], from_cli["id"]} <= listed_ids, listed
    bobs = submit(hub, SERVICE_API, bob, {"name": "bobs", "command": ["true"]})
    assert bobs["owner"] == "bob"

    # bob: alice's job does not exist for him, in every route
    job_path = f"{SERVICE_API}/jobs/{from_api['id']}"
    for method, path in [
        ("GET", job_path),
        ("DELETE", job_path),
        ("POST", f"{job_path}/cancel"),
        ("POST", f"{job_path}/hold"),
        ("GET", f"{job_path}/log"),
        ("GET", f"{job_path}/files"),
    ]:
        status, answer = hub.call(method, path, token=bob)
        assert status == 404, (method, path, status, answer)
    status, bulk = hub.call("POST", f"{SERVICE_API}/jobs/actions/cancel", token=bob, body={"ids": [from_api["id"]]})
    assert status == 200 and bulk["done"] == [] and bulk["failed"][0]["id"] == from_api["id"], bulk
    status, page = hub.call("GET", f"{SERVICE_API}/jobs", token=bob)
    assert status == 200 and {j["owner"] for j in page["jobs"]} == {"bob"}, page
    status, page = hub.call("GET", f"{SERVICE_API}/jobs?owner=alice", token=bob)
    assert status == 200 and page["jobs"] == [], page
    replay = events(
        hub, f"{SERVICE_API}/events", bob, 0, lambda m: any(e.get("job", {}).get("id") == bobs["id"] for e in m)
    )
    assert {e["job"]["owner"] for e in replay if e["type"] == "job"} == {"bob"}, replay
    # the hello says whose jobs a connection sees (the jobs table shows owners only to who sees several):
    # alice through her own server (client mode) only hers, admin every user's
    first = events(hub, f"{user_api('alice')}/events", alice, None, bool)[0]
    assert first["type"] == "hello" and first["owner"] == "alice" and first["all_owners"] is False, first
    first = events(hub, f"{SERVICE_API}/events", admin, None, bool)[0]
    assert first["owner"] == "admin" and first["all_owners"] is True, first
    status, job = hub.call("GET", job_path, token=alice)
    assert status == 200 and job["state"] not in ("canceled",), job
    # nor can alice learn of bob's job by depending on it: the same 400 as for a job that does not exist
    missing = "00000000-0000-0000-0000-000000000000"
    answers = {}
    for dep in (bobs["id"], missing):
        spec = {"command": ["true"], "depends_on": {"afterok": [dep]}}
        status, answer = hub.call("POST", f"{SERVICE_API}/jobs", token=alice, body=spec)
        assert status == 400, (status, answer)
        answers[dep] = answer["message"].replace(dep, "ID")
    assert answers[bobs["id"]] == answers[missing], answers

    # admin sees both users' jobs and may act on them
    status, page = hub.call("GET", f"{SERVICE_API}/jobs", token=admin)
    assert status == 200 and {from_api["id"], from_cli["id"], bobs["id"]} <= {j["id"] for j in page["jobs"]}, page
    status, job = hub.call("DELETE", job_path, token=admin)
    assert status == 202, job

    # no token reaches a log: the hub's log holds the service's, the servers' and the hub's own
    log = hub.log_tail(size=10**8)
    for secret in (alice, bob, admin, env["JUPYTERHUB_API_TOKEN"]):
        assert secret not in log

    # a token without the swm scope, or without access to the service: 403
    no_swm = hub.user_token("alice", ["access:services!service=swm"])
    no_access = hub.user_token("alice", ["custom:swm:jobs!user"])
    for token in (no_swm, no_access):
        status, answer = hub.call("GET", f"{SERVICE_API}/jobs", token=token)
        assert status == 403, (status, answer)
        status, answer = hub.call("POST", f"{SERVICE_API}/jobs", token=token, body={"command": ["true"]})
        assert status == 403, (status, answer)


def test_jobs_go_on_while_the_users_server_is_stopped(hub: Hub) -> None:
    """alice's server is stopped while a job runs and another waits for it; both end; her server shows them again."""
    alice = hub.user_token("alice")
    hub.start_server("alice")
    mine = user_api("alice")
    before = hello(hub, f"{mine}/events", alice)
    first = submit(hub, mine, alice, {"name": "first", "command": ["sleep", "6"]})
    second = submit(
        hub, mine, alice, {"name": "second", "command": ["echo", "after"], "depends_on": {"afterok": [first["id"]]}}
    )
    hub.wait_for(
        lambda: hub.call("GET", f"{SERVICE_API}/jobs/{first['id']}", token=alice)[1]["state"] == "running",
        30,
        "the first job to run",
    )

    hub.stop_server("alice")  # what the idle culler does: DELETE /hub/api/users/alice/server
    ended = wait_final(hub, alice, [first["id"], second["id"]])
    assert [ended[j]["state"] for j in (first["id"], second["id"])] == ["finished", "finished"], ended
    assert ended[second["id"]]["exit_code"] == 0

    hub.start_server("alice")
    status, page = hub.call("GET", f"{mine}/jobs", token=alice)
    assert status == 200, page
    states = {j["id"]: j["state"] for j in page["jobs"]}
    assert states[first["id"]] == states[second["id"]] == "finished", states
    ids = {first["id"], second["id"]}

    def both_final(messages: list[Any]) -> bool:
        done = {e["job"]["id"] for e in messages if e.get("type") == "job" and e["job"]["state"] == "finished"}
        return ids <= done

    replay = events(hub, f"{mine}/events", alice, before, both_final)
    assert replay[0]["type"] == "hello"
    seen = [(e["job"]["id"], e["job"]["state"]) for e in replay if e.get("type") == "job"]
    assert (first["id"], "running") in seen and (second["id"], "finished") in seen, seen


def test_service_killed_mid_burst_is_restarted_and_loses_or_repeats_nothing(hub: Hub) -> None:
    """SIGKILL the service during a burst of submissions: the hub restarts it; acknowledged jobs all run, once."""
    bob = hub.user_token("bob")
    runs = hub.shared / "runs.txt"  # bob's jobs run as bob (the example's local site has run_as_owner)
    runs.write_text("")
    runs.chmod(0o666)
    acknowledged: list[str] = []
    refused: list[int] = []
    stop = threading.Event()

    def burst() -> None:
        while not stop.is_set():
            time.sleep(0.02)  # a steady burst (about 30 a second here), so that the kill falls in its middle
            spec = {"name": "burst", "command": ["sh", "-c", f'echo "$SWM_JOB_ID" >> {runs}']}
            try:
                status, job = hub.call("POST", f"{SERVICE_API}/jobs", token=bob, body=spec)
            except OSError:
                status, job = 0, None
            if status == 201:
                acknowledged.append(job["id"])
            else:
                refused.append(status)
                time.sleep(0.2)

    old_pid = hub.service_pid()
    sender = threading.Thread(target=burst)
    sender.start()
    try:
        hub.wait_for(lambda: len(acknowledged) >= 15, 60, "15 acknowledged submissions")
        os.kill(old_pid, signal.SIGKILL)
        hub.wait_for(lambda: hub.service_pid() != old_pid, 60, "the hub to restart the service")
        hub.wait_service()
        after_restart = len(acknowledged)
        hub.wait_for(lambda: len(acknowledged) >= after_restart + 15, 90, "15 acknowledged submissions after it")
    finally:
        stop.set()
        sender.join()
    assert refused, "the service was killed mid-burst: some submissions must have been refused"
    ended = wait_final(hub, bob, acknowledged, timeout=120)
    assert {j["state"] for j in ended.values()} == {"finished"}, {i: j["state"] for i, j in ended.items()}
    ran = runs.read_text().split()
    assert sorted(set(ran)) == sorted(ran), "a job ran twice"
    assert set(acknowledged) <= set(ran), set(acknowledged) - set(ran)


def deletions(messages: list[Any]) -> list[str]:
    """The ids of the jobs whose ``job_deleted`` events are among ``messages``, in order."""
    return [m["job"]["id"] for m in messages if m.get("type") == "job_deleted"]


def purge(hub: Hub, base: str, token: str, job_id: str) -> None:
    """Delete an ended job's record (``DELETE ?purge=1``), retrying while it is still being wound up (409)."""
    answers: list[Any] = []

    def purged() -> bool:
        status, answer = hub.call("DELETE", f"{base}/jobs/{job_id}?purge=1", token=token)
        answers.append((status, answer))
        assert status in (200, 409), (status, answer)
        return status == 200

    hub.wait_for(purged, 30, f"job {job_id} to be purged")
    assert answers[-1][1]["deleted"] == job_id, answers[-1]


def test_job_deleted_events_reach_only_who_may_see_the_job(hub: Hub) -> None:
    """alice and bob each purge an ended job: alice's socket (through her server) gets hers, not bob's, live
    and on replay after last_event_id; an swm admin's socket gets both, live and on replay."""
    alice, bob, admin = hub.user_token("alice"), hub.user_token("bob"), hub.user_token("admin")
    hub.start_server("alice")
    mine = user_api("alice")
    alices = submit(hub, mine, alice, {"name": "alice-gone", "command": ["true"]})
    bobs = submit(hub, SERVICE_API, bob, {"name": "bob-gone", "command": ["true"]})
    wait_final(hub, admin, [alices["id"], bobs["id"]])

    with (
        open_events(hub, f"{mine}/events", alice) as alice_live,
        open_events(hub, f"{SERVICE_API}/events", admin) as admin_live,
    ):
        before = read_until(alice_live, bool)[0]
        assert before["type"] == "hello" and before["owner"] == "alice", before
        assert read_until(admin_live, bool)[0]["all_owners"] is True
        # bob's deletion first: events are sent in order, so once alice has hers she would have had bob's
        purge(hub, SERVICE_API, bob, bobs["id"])
        purge(hub, mine, alice, alices["id"])
        seen_by_alice = read_until(alice_live, lambda m: alices["id"] in deletions(m))
        seen_by_admin = read_until(admin_live, lambda m: alices["id"] in deletions(m))
    assert deletions(seen_by_alice) == [alices["id"]], seen_by_alice
    assert deletions(seen_by_admin) == [bobs["id"], alices["id"]], seen_by_admin
    deleted = next(m for m in seen_by_alice if m.get("type") == "job_deleted")
    assert deleted["job"] == {"id": alices["id"], "name": "alice-gone", "owner": "alice", "array_parent": None}
    assert not any(bobs["id"] in json.dumps(m) for m in seen_by_alice), seen_by_alice

    # reconnecting with the id of her hello, alice is told of her deletion only (the same event)
    replay = events(hub, f"{mine}/events", alice, before["last_event_id"], lambda m: alices["id"] in deletions(m))
    assert replay[0]["type"] == "hello" and deletions(replay) == [alices["id"]], replay
    assert next(m for m in replay if m.get("type") == "job_deleted") == deleted
    assert not any(bobs["id"] in json.dumps(m) for m in replay), replay
    # the admin's replay holds both
    replay = events(hub, f"{SERVICE_API}/events", admin, before["last_event_id"], lambda m: len(deletions(m)) == 2)
    assert deletions(replay) == [bobs["id"], alices["id"]], replay
