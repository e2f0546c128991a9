"""Schedules on a JupyterHub live in the swm service: made from a user's server (client mode), they
keep running while that server is stopped, and other users neither see them nor act on them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hub_fixtures import *  # noqa: F403 - the hub and hub_users fixtures
from tests.hub_fixtures import Hub
from tests.test_hub import SERVICE_API, events, user_api

pytestmark = pytest.mark.timeout(300)


def launched(hub: Hub, token: str, schedule_id: str) -> list[dict[str, Any]]:
    status, page = hub.call("GET", f"{SERVICE_API}/schedules/{schedule_id}/runs?limit=1000", token=token)
    assert status == 200, (status, page)
    return [r for r in page["runs"] if r["status"] == "launched"]


def test_schedules_live_in_the_service_per_user(hub: Hub) -> None:
    alice, bob, admin = hub.user_token("alice"), hub.user_token("bob"), hub.user_token("admin")
    hub.start_server("alice")
    before_bob = events(hub, f"{SERVICE_API}/events", bob, None, lambda m: bool(m))[0]["last_event_id"]
    status, made = hub.call(
        "POST",
        f"{user_api('alice')}/schedules",
        token=alice,
        body={"name": "alices", "job": {"command": ["true"]}, "every": "2s"},
    )
    assert status == 201, (status, made)
    assert made["owner"] == "alice"
    schedule_id = made["id"]
    status, mine = hub.call("GET", f"{user_api('alice')}/schedules", token=alice)
    assert status == 200 and [s["id"] for s in mine["schedules"]] == [schedule_id], mine

    # bob: alice's schedule does not exist for him
    status, listed = hub.call("GET", f"{SERVICE_API}/schedules", token=bob)
    assert status == 200 and listed["schedules"] == [], listed
    path = f"{SERVICE_API}/schedules/{schedule_id}"
    for method, route in [
        ("GET", path),
        ("PATCH", path),
        ("DELETE", path),
        ("POST", f"{path}/pause"),
        ("POST", f"{path}/run"),
        ("GET", f"{path}/runs"),
    ]:
        body = {"paused": True} if method == "PATCH" else None
        status, answer = hub.call(method, route, token=bob, body=body)
        assert status == 404, (method, route, status, answer)
    status, answer = hub.call("GET", f"{SERVICE_API}/schedules/{schedule_id[:8]}", token=bob)
    assert status == 404, answer

    hub.wait_for(lambda: len(launched(hub, alice, schedule_id)) >= 1, 30, "a first run")
    first = launched(hub, alice, schedule_id)[0]
    status, job = hub.call("GET", f"{SERVICE_API}/jobs/{first['job_id']}", token=alice)
    assert status == 200 and job["owner"] == "alice" and job["schedule"]["id"] == schedule_id, job

    # alice's server stops (as the idle culler does): the runs go on in the service
    hub.stop_server("alice")
    count = len(launched(hub, alice, schedule_id))
    hub.wait_for(lambda: len(launched(hub, alice, schedule_id)) >= count + 2, 30, "runs while the server is down")

    # the admin sees it; bob's events never carried it
    status, everything = hub.call("GET", f"{SERVICE_API}/schedules", token=admin)
    assert status == 200 and schedule_id in {s["id"] for s in everything["schedules"]}, everything
    status, _ = hub.call("POST", f"{SERVICE_API}/schedules/{schedule_id}/pause", token=admin)
    assert status == 200
    # bob's own job comes after all of that in the events: his replay up to it has none of alice's
    status, bobs = hub.call("POST", f"{SERVICE_API}/jobs", token=bob, body={"command": ["true"], "hold": True})
    assert status == 201, bobs
    replay = events(
        hub,
        f"{SERVICE_API}/events",
        bob,
        before_bob,
        lambda m: any(e.get("job", {}).get("id") == bobs["id"] for e in m),
    )
    assert not [e for e in replay if e.get("type") in ("schedule", "schedule_run")], replay
    mine = events(
        hub,
        f"{SERVICE_API}/events",
        alice,
        before_bob,
        lambda m: any(e.get("type") == "schedule" and e.get("action") == "paused" for e in m),
    )
    assert {e["schedule"]["owner"] for e in mine if e.get("type") in ("schedule", "schedule_run")} == {"alice"}
    hub.call("DELETE", f"{SERVICE_API}/jobs/{bobs['id']}", token=bob)
