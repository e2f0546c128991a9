"""SwmSpawner on a real JupyterHub: users' servers as jobs of the swm service on the local site.

One hub per module (``tests/hub_fixtures.py``, the example config) with ``spawner_class`` set to
SwmSpawner, named servers on, and servers left running when the hub stops (so a restart can find
them). Real configurable-http-proxy, real OS users, real ``jupyterhub-singleuser`` processes started
by the swm service's local gate. Needs root (CI runs as root).

The example's local site runs jobs as their owners (``run_as_owner``), so each server runs as its
user's OS account, in a job folder of theirs; ``SwmSpawner.allow_root`` is not set, so a server
started as root would refuse to run.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub_fixtures import REPO, Hub
from tests.hub_fixtures import hub_users as hub_users  # noqa: F401 - fixture

SERVICE_API = "/services/swm/swm/api/v1"
BROKEN_SERVER = "broken"

pytestmark = pytest.mark.timeout(600)


class SpawnerHub(Hub):
    """The example hub with SwmSpawner (named servers on, servers kept across hub restarts)."""

    def write_config(self) -> Path:
        """The hub fixture's config plus the spawner's settings."""
        config = super().write_config()
        config.write_text(
            config.read_text()
            + f"""
c.JupyterHub.spawner_class = "swm_jupyter.spawner.SwmSpawner"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 3
c.JupyterHub.cleanup_servers = False
c.SwmSpawner.poll_interval = 0.2
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # start requests answer at once (202)

def broken_server(spawner):
    if spawner.name == {BROKEN_SERVER!r}:
        fail = "import sys, time; time.sleep(3); sys.stderr.write('cannot import jupyterlab_missing_thing')"
        fail += "; sys.exit(7)"
        spawner.cmd = ["python3", "-c", fail]

c.Spawner.pre_spawn_hook = broken_server
"""
        )
        return config


@pytest.fixture(scope="module")
def hub(hub_users: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpawnerHub]:  # noqa: F811
    """A running hub whose spawner is SwmSpawner."""
    root = tmp_path_factory.mktemp("spawnerhub")
    os.chmod(root, 0o755)
    running = SpawnerHub(root).start()
    try:
        yield running
    finally:
        for user in ("alice", "bob"):
            _, model = running.admin("GET", f"users/{user}")
            for name in (model or {}).get("servers", {}) if isinstance(model, dict) else ():
                running.admin("DELETE", f"users/{user}/servers/{name}" if name else f"users/{user}/server")
        time.sleep(2)
        running.stop()
        kept = REPO / "tests" / ".artifacts" / "spawner-hub.log"
        kept.parent.mkdir(exist_ok=True)
        kept.write_bytes(running.log_path.read_bytes())
        print(f"hub log: {kept}")


def server_path(user: str, name: str = "") -> str:
    """The hub API path of a user's (named) server."""
    return f"users/{user}/servers/{name}" if name else f"users/{user}/server"


def server_model(hub: Hub, user: str, name: str = "") -> dict[str, Any] | None:
    """The hub's model of a user's server, or None."""
    status, model = hub.admin("GET", f"users/{user}")
    assert status == 200, (status, model)
    return (model.get("servers") or {}).get(name)


def start(hub: Hub, user: str, name: str = "", timeout: float = 120) -> dict[str, Any]:
    """Start a user's server through the hub API; return its model once ready."""
    status, answer = hub.admin("POST", server_path(user, name))
    assert status in (201, 202), (status, answer, hub.log_tail())
    hub.wait_for(lambda: (server_model(hub, user, name) or {}).get("ready"), timeout, f"{user}/{name} to be ready")
    model = server_model(hub, user, name)
    assert model is not None
    return model


def stop(hub: Hub, user: str, name: str = "", timeout: float = 90) -> None:
    """Stop a user's server through the hub API; return once the hub has no such server."""
    status, answer = hub.admin("DELETE", server_path(user, name))
    assert status in (202, 204), (status, answer)
    hub.wait_for(lambda: server_model(hub, user, name) is None, timeout, f"{user}/{name} to stop")


def job_of(hub: Hub, model: dict[str, Any]) -> dict[str, Any]:
    """The swm job of a server (job id from the spawner's state), through the service as an admin."""
    job_id = model["state"]["job_id"]
    status, job = hub.call("GET", f"{SERVICE_API}/jobs/{job_id}", token=hub.user_token("admin"))
    assert status == 200, (status, job)
    return job  # type: ignore[no-any-return]


def answers_through_proxy(hub: Hub, user: str, name: str, token: str) -> bool:
    """True if the user's server answers its API through the hub's proxy."""
    path = f"/user/{user}/{name + '/' if name else ''}api/status"
    status, body = hub.call("GET", path, token=token)
    return status == 200 and isinstance(body, dict) and "started" in body


def server_token(job_id: str) -> str:
    """The hub token in the environment of the job's server process (found by its SWM_JOB_ID)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            raw = (proc / "environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        if env.get("SWM_JOB_ID") == job_id and env.get("JUPYTERHUB_API_TOKEN"):
            return env["JUPYTERHUB_API_TOKEN"]
    raise AssertionError(f"no process of job {job_id} has a hub token")


def test_spawn_reach_and_stop_with_the_token_nowhere(hub: SpawnerHub) -> None:
    """alice's server is her swm job, answers through the proxy, its token is in no file/event/log; stop cancels."""
    alice = hub.user_token("alice")
    model = start(hub, "alice")
    job = job_of(hub, model)
    assert job["owner"] == "alice" and job["state"] == "running" and job["name"] == "jupyterhub-alice", job
    assert Path(job["folder"]).stat().st_uid == pwd.getpwnam("alice").pw_uid, job["folder"]
    assert answers_through_proxy(hub, "alice", "", alice)
    assert not {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"} & set(job["spec"]["env"]), job["spec"]["env"]

    token = server_token(job["id"])
    assert len(token) >= 16
    status, mine = hub.call("GET", f"{SERVICE_API}/jobs/{job['id']}", token=alice)
    assert status == 200 and token not in json.dumps(mine)
    for path in Path(job["folder"]).rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"the token is in {path}"
    state_dir = hub.root / "state"
    for path in state_dir.rglob("*"):
        if path.is_file() and path.suffix not in (".sqlite-shm",):
            assert token.encode() not in path.read_bytes(), f"the token is in {path}"
    assert token not in hub.log_path.read_text(errors="replace"), "the token is in the hub's log"
    status, page = hub.call("GET", f"{SERVICE_API}/jobs?owner=alice", token=alice)
    assert status == 200 and token not in json.dumps(page)

    stop(hub, "alice")
    status, job = hub.call("GET", f"{SERVICE_API}/jobs/{job['id']}", token=alice)
    assert status == 200 and job["state"] == "canceled", job


def test_two_named_servers_at_once(hub: SpawnerHub) -> None:
    """Two named servers of bob run at once, as two jobs on two ports, each reachable through the proxy."""
    bob = hub.user_token("bob")
    one, two = start(hub, "bob", "one"), start(hub, "bob", "two")
    jobs = [job_of(hub, one), job_of(hub, two)]
    assert jobs[0]["id"] != jobs[1]["id"]
    assert {j["name"] for j in jobs} == {"jupyterhub-bob-one", "jupyterhub-bob-two"}
    assert {j["state"] for j in jobs} == {"running"}
    assert answers_through_proxy(hub, "bob", "one", bob) and answers_through_proxy(hub, "bob", "two", bob)
    stop(hub, "bob", "one")
    assert answers_through_proxy(hub, "bob", "two", bob)
    stop(hub, "bob", "two")


def test_hub_restart_reattaches_to_a_running_server(hub: SpawnerHub) -> None:
    """The hub stops and starts again while alice's server runs: same job, still running, still reachable."""
    alice = hub.user_token("alice")
    before = job_of(hub, start(hub, "alice", "kept"))
    hub.stop()
    hub.start()
    hub.wait_for(lambda: (server_model(hub, "alice", "kept") or {}).get("ready"), 60, "the hub to find alice/kept")
    after = job_of(hub, server_model(hub, "alice", "kept") or {})
    assert after["id"] == before["id"] and after["state"] == "running", (before, after)
    hub.wait_for(lambda: answers_through_proxy(hub, "alice", "kept", alice), 60, "alice/kept through the proxy")
    # the restarted hub's spawner acts on the job with a token of its own: stop still cancels it
    stop(hub, "alice", "kept")
    status, job = hub.call("GET", f"{SERVICE_API}/jobs/{before['id']}", token=alice)
    assert status == 200 and job["state"] == "canceled", job


def progress_events(hub: Hub, user: str, name: str, timeout: float = 90) -> list[dict[str, Any]]:
    """The hub's progress event stream of a pending server (server-sent events) until it ends."""
    request = urllib.request.Request(
        f"{hub.url}/hub/api/users/{user}/servers/{name}/progress",
        headers={"Authorization": f"token {hub.token}", "Accept": "text/event-stream"},
    )
    events: list[dict[str, Any]] = []
    with urllib.request.urlopen(request, timeout=timeout) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("failed") or events[-1].get("ready"):
                    break
    return events


def test_a_server_that_dies_on_start_shows_its_reason_on_the_progress_page(hub: SpawnerHub) -> None:
    """The job ends before the server listens: the progress stream says so, with exit code and stderr's last lines."""
    status, answer = hub.admin("POST", server_path("bob", BROKEN_SERVER))
    assert status in (201, 202), (status, answer)
    events = progress_events(hub, "bob", BROKEN_SERVER)
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("failed"), events
    assert any("queued on site local" in m for m in messages), messages
    assert "exit code 7" in events[-1]["message"], events[-1]
    assert "cannot import jupyterlab_missing_thing" in events[-1]["message"], events[-1]


def test_the_example_can_name_the_spawner_by_its_entry_point() -> None:
    """pyproject.toml registers SwmSpawner as the jupyterhub.spawners entry point "swm"."""
    text = (REPO / "pyproject.toml").read_text()
    assert '[project.entry-points."jupyterhub.spawners"]\nswm = "swm_jupyter.spawner:SwmSpawner"' in text
    result = subprocess.run(
        [sys.executable, "-c", "import swm_jupyter.spawner as s; print(s.SwmSpawner.__name__)"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.stdout.strip() == "SwmSpawner", result

