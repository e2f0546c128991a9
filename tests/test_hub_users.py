"""The example hub runs each user's jobs under their own OS account, and shares its sites fairly.

One hub for the module (``tests/hub_fixtures.py``): the example config as it is (its local site has
``run_as_owner``, fair share between users, per-user limits), plus, in the service's config, a
second site on the one-node Slurm of ``tests/services`` with ``run_as_owner``, 4 cpus on the local
site and ``max_running_per_user = 3``. Real OS users alice and bob (made by the example's
``create-users.sh``), real single-user servers, real sudo, real Slurm. Needs root (CI runs as root).
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub_fixtures import Hub, hub_users, running_hub  # noqa: F401 - hub_users is a fixture
from tests.test_hub import SERVICE_API, submit, user_api, wait_final

pytestmark = pytest.mark.timeout(300)

#: The per-user limit and the local site's cpus the service is given here.
LIMIT, CPUS = 3, 4


@pytest.fixture(scope="module")
def users_hub(
    hub_users: tuple[str, ...],  # noqa: F811
    services: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hub]:
    """The example hub, its service given a Slurm site with run_as_owner and a per-user limit."""
    fast = {"poll_interval_min": 0.5, "poll_interval_max": 2.0, "max_status_calls_per_minute": 0}
    cluster = {"gate": "slurm", "run_as_owner": True, "env": {"SLURM_CONF": services["SLURM_CONF"]}, **fast}
    service_config = f"""
sites = dict(c.SwmApp.sites)
assert sites["local"]["run_as_owner"] is True, sites  # the example's own local site
sites["local"] = {{**sites["local"], "cpus": {CPUS}}}
sites["cluster"] = {cluster!r}
c.SwmApp.sites = sites
c.SwmApp.max_running_per_user = {LIMIT}
"""
    with running_hub(hub_users, tmp_path_factory, "hub-users", service_config) as hub:
        yield hub


def log(hub: Hub, base: str, token: str, job_id: str, stream: str = "stdout") -> str:
    """A job's output (``stream``) through the API at ``base``."""
    status, text = hub.call("GET", f"{base}/jobs/{job_id}/log?stream={stream}", token=token)
    assert status == 200, (status, text)
    return text if isinstance(text, str) else str(text)  # "0\n" would come back as JSON


def test_jobs_run_under_their_owners_accounts_in_folders_only_they_can_read(users_hub: Hub) -> None:
    """alice's job, submitted through her own server, prints ``id -un`` -> alice in a 0700 folder of
    hers; bob's job, trying to read it, runs as bob and is refused by the OS."""
    hub = users_hub
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    hub.start_server("alice")
    mine = user_api("alice")
    job = submit(hub, mine, alice, {"name": "whoami", "script": 'id -un\necho "$HOME"\necho alice-secret > secret\n'})
    assert job["site"] == "local" and job["owner"] == "alice", job
    done = wait_final(hub, alice, [job["id"]])[job["id"]]
    assert done["state"] == "finished" and done["exit_code"] == 0, done
    account = pwd.getpwnam("alice")
    assert log(hub, mine, alice, job["id"]) == f"alice\n{account.pw_dir}\n"

    folder = Path(done["folder"])
    assert folder.parent == Path(account.pw_dir) / ".swm" / "jobs", folder
    for path in (folder, folder / "secret", folder / "stdout"):
        assert path.lstat().st_uid == account.pw_uid, path
    assert stat.S_IMODE(folder.lstat().st_mode) == 0o700

    spy = submit(hub, SERVICE_API, bob, {"name": "spy", "script": f"id -un\ncat {folder}/secret\nls {folder}\n"})
    seen = wait_final(hub, bob, [spy["id"]])[spy["id"]]
    assert seen["state"] == "finished" and seen["exit_code"] != 0, seen
    assert log(hub, SERVICE_API, bob, spy["id"]) == "bob\n"
    errors = log(hub, SERVICE_API, bob, spy["id"], "stderr")
    assert "Permission denied" in errors and "alice-secret" not in errors, errors
    assert Path(seen["folder"]).lstat().st_uid == pwd.getpwnam("bob").pw_uid


def test_a_slurm_job_is_the_owners_in_slurm(users_hub: Hub, services: dict[str, str]) -> None:
    """Submitted through alice's server to the Slurm site: Slurm runs it as alice, ``squeue -u alice``
    lists it while it runs; canceled through her server, Slurm cancels it."""
    hub = users_hub
    alice = hub.user_token("alice")
    hub.start_server("alice")
    mine = user_api("alice")
    job = submit(hub, mine, alice, {"name": "on-slurm", "site": "cluster", "script": "id -un\nsleep 120\n"})
    running: dict[str, Any] = {}

    def is_running() -> bool:
        status, answer = hub.call("GET", f"{mine}/jobs/{job['id']}", token=alice)
        assert status == 200 and answer["state"] not in ("finished", "error", "canceled"), answer
        running.update(answer)
        return answer["state"] == "running" and log(hub, mine, alice, job["id"]) == "alice\n"

    hub.wait_for(is_running, 90, "the Slurm job to run and print its user")
    slurm_id = running["native_id"]
    env = dict(os.environ, SLURM_CONF=services["SLURM_CONF"])
    listed = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%i %u"], capture_output=True, text=True, env=env)
    assert f"{slurm_id} alice" in listed.stdout.splitlines(), listed

    status, answer = hub.call("POST", f"{mine}/jobs/{job['id']}/cancel", token=alice)
    assert status in (200, 202), (status, answer)
    ended = wait_final(hub, alice, [job["id"]], timeout=60)[job["id"]]
    assert ended["state"] == "canceled", ended

    def gone() -> bool:
        left = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%i"], capture_output=True, text=True, env=env)
        return slurm_id not in left.stdout.split()

    hub.wait_for(gone, 30, "Slurm to cancel the job")


def _at_once(spans: list[tuple[float, float]], before: float = float("inf")) -> int:
    """The most of ``spans`` (start, end) that overlap at one moment earlier than ``before``."""
    edges = sorted([(start, 1) for start, _ in spans if start < before] + [(end, -1) for _, end in spans])
    count = most = 0
    for when, step in edges:
        count += step
        if when < before:
            most = max(most, count)
    return most


def test_two_users_flooding_the_service_share_the_site_within_their_limits(users_hub: Hub) -> None:
    """alice fills her share (3 running, the 4th cpu left free, her others held back by the limit),
    then bob floods too: fair share gives bob the cpus alice frees until he runs as many as his limit,
    while alice still has jobs waiting (first come, first served would keep giving them to alice).
    From the jobs' recorded times: never more than the limit of one user, nor the site's cpus, at once."""
    hub = users_hub
    tokens = {user: hub.user_token(user) for user in ("alice", "bob")}
    count, seconds = 6, 3

    def flood(user: str) -> list[str]:
        specs = [{"name": f"{user}-{i}", "command": ["sleep", str(seconds)]} for i in range(count)]
        status, answer = hub.call("POST", f"{SERVICE_API}/jobs", token=tokens[user], body=specs)
        assert status == 201, (status, answer)
        return [job["id"] for job in answer["jobs"]]

    def states(user: str, ids: list[str]) -> list[dict[str, Any]]:
        status, page = hub.call("GET", f"{SERVICE_API}/jobs?limit=100", token=tokens[user])
        assert status == 200, page
        by_id = {job["id"]: job for job in page["jobs"]}
        return [by_id[job_id] for job_id in ids]

    alices = flood("alice")
    hub.wait_for(
        lambda: [job["state"] for job in states("alice", alices)].count("running") == LIMIT, 30, "alice's 3 jobs to run"
    )
    waiting = [job for job in states("alice", alices) if job["state"] == "queued"]
    assert len(waiting) == count - LIMIT, waiting
    assert waiting[0]["state_details"] == f"waiting: alice already runs {LIMIT} jobs (max_running_per_user)"
    bobs = flood("bob")
    ended = wait_final(hub, tokens["alice"], alices, timeout=90) | wait_final(hub, tokens["bob"], bobs, timeout=90)
    assert {job["state"] for job in ended.values()} == {"finished"}, ended
    spans = {
        user: [(ended[i]["start_time"], ended[i]["end_time"]) for i in ids]
        for user, ids in (("alice", alices), ("bob", bobs))
    }
    assert _at_once(spans["alice"]) == _at_once(spans["bob"]) == LIMIT, spans
    assert _at_once(spans["alice"] + spans["bob"]) <= CPUS, spans
    last_start_of_alice = max(start for start, _ in spans["alice"])
    assert _at_once(spans["bob"], before=last_start_of_alice) == LIMIT, spans
    order = [user for _, user in sorted((s, u) for u, sp in spans.items() for s, _ in sp)]
    assert order[:LIMIT] == ["alice"] * LIMIT, order
