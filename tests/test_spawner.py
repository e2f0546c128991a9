"""SwmSpawner on a real JupyterHub: users' servers as jobs of the swm service on its sites.

One hub per module (``tests/hub_fixtures.py``, the example config) with ``spawner_class`` set to
SwmSpawner, named servers on, and servers left running when the hub stops (so a restart can find
them). Real configurable-http-proxy, real OS users, real ``jupyterhub-singleuser`` processes. The swm
service has four sites: ``local`` and ``cluster`` (the one-node test Slurm) with ``run_as_owner``, so
servers run as their users; ``host``, the loopback sshd (as root, which the tests allow there with
``SwmSpawner.allow_root``); and ``cloud``, the Sky Port gate stand-in (for the form's flavors and
prices). Needs root (CI runs as root).
"""

from __future__ import annotations

import html
import http.cookiejar
import json
import os
import pwd
import re
import secrets
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub_fixtures import EXAMPLE, REPO, Hub
from tests.hub_fixtures import hub_users as hub_users  # noqa: F401 - fixture
from tests.services_fixtures import SERVICES_DIR
from tests.skyport_gate_standin import FLAVORS, SkyPortGateStandin

SERVICE_API = "/services/swm/swm/api/v1"
BROKEN_SERVER = "broken"

pytestmark = pytest.mark.timeout(600)


#: Profiles of the test hub: "small" for everyone, "slurm-pair" for bob only.
PROFILES = [
    {"name": "small", "display": "Small: 1 cpu here", "options": {"site": "local", "cpus": 1}},
    {
        "name": "slurm-pair",
        "display": "Slurm: 2 cpus, 1 hour",
        "options": {"site": "cluster", "cpus": 2, "walltime": "1:00:00"},
        "users": ["bob"],
    },
]


class SpawnerHub(Hub):
    """The example hub with SwmSpawner (named servers on, servers kept across hub restarts) and four sites."""

    def __init__(self, root: Path, services: dict[str, str], standin: SkyPortGateStandin) -> None:
        super().__init__(root)
        self.services = services
        self.standin = standin

    def write_service_config(self) -> Path:
        """The swm service's config: the example's, with the four sites of the module docstring."""
        sites = {
            "local": {"gate": "local", "run_as_owner": True},
            "cluster": {"gate": "slurm", "run_as_owner": True, "poll_interval_min": 1.0, "poll_interval_max": 5.0},
            "host": {
                "gate": "ssh",
                "host": self.services["SWM_TEST_SSH_HOST"],
                "port": int(self.services["SWM_TEST_SSH_PORT"]),
                "user": self.services["SWM_TEST_SSH_USER"],
                "key_file": self.services["SWM_TEST_SSH_KEY"],
                "known_hosts": self.services["SWM_TEST_KNOWN_HOSTS"],
                "use_agent": False,
                "remote_workdir": str(self.root / "ssh-jobs"),
                "poll_interval": 0.5,
            },
            "cloud": {  # the stand-in's VMs are the loopback sshd
                "gate": "cloud",
                "url": self.standin.url,
                "cloud_kind": "azure",
                "retries": 1,
                "ssh_port": int(self.services["SWM_TEST_SSH_PORT"]),
                "ssh_user": self.services["SWM_TEST_SSH_USER"],
                "ssh_key_file": self.services["SWM_TEST_SSH_KEY"],
                "known_hosts": self.services["SWM_TEST_KNOWN_HOSTS"],
                "use_agent": False,
                "remote_workdir": str(self.root / "cloud-jobs"),
                "poll_interval": 0.5,
            },
        }
        config = self.root / "swm_service_config.py"
        config.write_text(
            f"c = get_config()  # noqa\nload_subconfig({str(EXAMPLE / 'swm_service_config.py')!r})\n"
            f"c.SwmApp.sites = {sites!r}\nc.SwmApp.default_site = 'local'\n"
        )
        return config

    def write_config(self) -> Path:
        """The hub fixture's config plus the spawner's settings."""
        config = super().write_config()
        service_config = self.write_service_config()
        config.write_text(
            config.read_text()
            + f"""
swm["command"] = [w for w in swm["command"] if not w.startswith("--config=")] + ["--config={service_config}"]
swm["environment"]["SLURM_CONF"] = {self.services["SLURM_CONF"]!r}
c.JupyterHub.spawner_class = "swm_jupyter.spawner.SwmSpawner"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0  # no limit: refused and failed starts keep their names
c.JupyterHub.cleanup_servers = False
c.SwmSpawner.start_poll_interval = 0.2
c.SwmSpawner.profiles = {PROFILES!r}
c.SwmSpawner.estimate_walltime = "2:00:00"
c.Spawner.poll_interval = 3  # the hub asks often whether servers still run (the outage test watches it)
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # start requests answer at once (202)

def server_hook(spawner):
    if spawner.name == {BROKEN_SERVER!r}:
        fail = "import sys, time; time.sleep(3); sys.stderr.write('cannot import jupyterlab_missing_thing')"
        fail += "; sys.exit(7)"
        spawner.cmd = ["python3", "-c", fail]
    if (spawner.user_options or {{}}).get("site") in ("host", "cloud"):
        spawner.allow_root = True  # the ssh and cloud sites run every job as their own account (root here)

c.Spawner.pre_spawn_hook = server_hook
"""
        )
        return config


@pytest.fixture(scope="module")
def standin() -> Iterator[SkyPortGateStandin]:
    """The Sky Port gate stand-in behind the hub's cloud site (its flavors and prices fill the form)."""
    gate = SkyPortGateStandin().start()
    yield gate
    gate.stop()


@pytest.fixture(scope="module")
def hub(
    hub_users: tuple[str, ...],  # noqa: F811
    services: dict[str, str],
    standin: SkyPortGateStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SpawnerHub]:
    """A running hub whose spawner is SwmSpawner."""
    root = tmp_path_factory.mktemp("spawnerhub")
    os.chmod(root, 0o755)
    running = SpawnerHub(root, services, standin).start()
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


def server_uids(user: str, name: str = "") -> dict[int, int]:
    """``{pid: uid}`` of the processes of ``user``'s server ``name`` (server_job and the server itself)."""
    found: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            raw = (proc / "environ").read_bytes()
            command = (proc / "cmdline").read_bytes()
            status = (proc / "status").read_text()
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        if env.get("JUPYTERHUB_USER") != user or env.get("JUPYTERHUB_SERVER_NAME", "") != name:
            continue
        if b"server_job" in command or b"jupyterhub-singleuser" in command:
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            found[int(proc.name)] = int(uid_line.split()[1])
    return found


def assert_runs_as(user: str, name: str) -> None:
    """Every process of the server runs as the OS account ``user`` (real uid), and there are some."""
    uids = server_uids(user, name)
    assert uids, f"no process of {user}/{name} found"
    assert set(uids.values()) == {pwd.getpwnam(user).pw_uid}, uids


def test_spawn_reach_and_stop_with_the_token_nowhere(hub: SpawnerHub) -> None:
    """alice's server is her swm job, runs as alice, answers through the proxy, its token is in no file/event/log;
    stop cancels."""
    alice = hub.user_token("alice")
    model = start(hub, "alice")
    job = job_of(hub, model)
    assert job["owner"] == "alice" and job["state"] == "running" and job["name"] == "jupyterhub-alice", job
    assert job["site"] == "local", job
    assert Path(job["folder"]).stat().st_uid == pwd.getpwnam("alice").pw_uid, job["folder"]
    assert answers_through_proxy(hub, "alice", "", alice)
    assert_runs_as("alice", "")
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


class HubSession:
    """A browser's session on the hub: logged in through the hub's login form (PAM), cookies kept."""

    def __init__(self, hub: Hub, user: str, password: str) -> None:
        self.hub = hub
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        _, page = self.open("/hub/login")
        status, page = self.open("/hub/login", {"username": user, "password": password}, xsrf_from=page)
        assert status == 200 and "/hub/logout" in page, f"{user} could not log in: {status} {page[-1500:]}"

    def open(self, path: str, form: dict[str, str] | None = None, xsrf_from: str = "") -> tuple[int, str]:
        """``(status, text)`` of a GET, or of a POST of ``form`` (with the ``_xsrf`` of the page ``xsrf_from``)."""
        data = None
        if form is not None:
            match = re.search(r'name="_xsrf" value="([^"]+)"|xsrf_token: "([^"]+)"', xsrf_from)
            xsrf = {"_xsrf": html.unescape(match.group(1) or match.group(2))} if match else {}
            data = urllib.parse.urlencode({**form, **xsrf}).encode()
        try:
            with self.opener.open(urllib.request.Request(self.hub.url + path, data=data), timeout=90) as answer:
                return answer.status, answer.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def spawn_page(self, user: str, name: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        """``(status, HTML)`` of the hub's spawn page of ``user``'s server ``name`` (GET, or POST of ``form``)."""
        status, page = self.open(f"/hub/spawn/{user}/{name}")
        if form is None:
            return status, page
        action = re.search(r'id="spawn_form"\s+action="([^"]+)"', page)
        assert action is not None, f"no spawn form: {status} {page[-1500:]}"
        return self.open(html.unescape(action.group(1)), form, xsrf_from=page)


@pytest.fixture(scope="module")
def passwords(hub_users: tuple[str, ...]) -> dict[str, str]:  # noqa: F811
    """New random login passwords of alice and bob (the hub's PAM login form)."""
    chosen = {user: secrets.token_urlsafe(16) for user in ("alice", "bob")}
    lines = "".join(f"{user}:{password}\n" for user, password in chosen.items())
    subprocess.run(["chpasswd"], input=lines, text=True, check=True)
    return chosen


@pytest.fixture(scope="module")
def sessions(hub: SpawnerHub, passwords: dict[str, str]) -> dict[str, HubSession]:
    """alice's and bob's logged-in sessions."""
    return {user: HubSession(hub, user, password) for user, password in passwords.items()}


def dry_run_cost(hub: Hub, token: str, site: str, flavor: str, walltime: str) -> float:
    """The service's own cost estimate of a job of ``flavor`` for ``walltime`` (its dry run)."""
    request = {"command": ["true"], "site": site, "flavor": flavor, "resources": {"walltime": walltime}}
    status, answer = hub.call("POST", f"{SERVICE_API}/jobs?dry_run=1", token=token, body=request)
    assert status == 200, (status, answer)
    return float(answer["cost_estimate"])


def test_the_spawn_form_lists_the_sites_with_their_fields_and_the_users_profiles(
    hub: SpawnerHub, sessions: dict[str, HubSession]
) -> None:
    """The form comes from the service's live /sites: every site, Slurm partitions, cloud flavors with price per hour
    and the service's cost estimate of the walltime, images; profiles only for those allowed."""
    alice = hub.user_token("alice")
    status, page = sessions["alice"].spawn_page("alice", "formcheck")
    assert status == 200, page[-2000:]
    for site in ("local", "cluster", "host", "cloud"):
        assert f'<option value="{site}"' in page, site
    assert 'name="cluster.partition"' in page and '<option value="other"' in page
    assert 'name="cluster.account"' in page
    for flavor in FLAVORS:
        cost = dry_run_cost(hub, alice, "cloud", flavor["name"], "2:00:00")
        assert f"{flavor['price']} per hour, about {cost:.2f} for 2:00:00" in page, (flavor, page[-3000:])
    assert '<option value="ubuntu-22.04"' in page
    assert '<option value="small">Small: 1 cpu here</option>' in page
    assert "slurm-pair" not in page, "alice may not use bob's profile"
    status, page = sessions["bob"].spawn_page("bob", "formcheck")
    assert status == 200 and '<option value="slurm-pair">' in page


def test_a_bad_value_in_the_form_shows_the_services_message_and_starts_nothing(
    hub: SpawnerHub, sessions: dict[str, HubSession]
) -> None:
    """More cpus than the site has: the form comes back with the service's own message; no job is made."""
    alice = hub.user_token("alice")
    status, page = sessions["alice"].spawn_page("alice", "badform", {"site": "local", "cpus": "999"})
    assert "cpus" in page and "999" in page and "alert" in page, page[-3000:]
    status, jobs = hub.call("GET", f"{SERVICE_API}/jobs?owner=alice", token=alice)
    assert status == 200 and not [j for j in jobs["jobs"] if j["name"] == "jupyterhub-alice-badform"], jobs
    assert server_model(hub, "alice", "badform") is None or not server_model(hub, "alice", "badform").get("ready")


def test_a_profile_the_user_may_not_use_is_refused(hub: SpawnerHub, sessions: dict[str, HubSession]) -> None:
    """alice asks for bob's profile: the form says so, and a start through the API fails with the reason."""
    _, page = sessions["alice"].spawn_page("alice", "notmine", {"profile": "slurm-pair"})
    assert "alice may not use the profile" in page, page[-3000:]
    status, answer = hub.admin("POST", server_path("alice", "notmine2"), {"profile": "slurm-pair"})
    assert status in (202, 400), (status, answer)  # 400 if the refusal comes before the hub answers
    hub.wait_for(lambda: "alice may not use the profile 'slurm-pair'" in hub.log_tail(20000), 30, "the refusal")
    assert not (server_model(hub, "alice", "notmine2") or {}).get("ready")
    status, jobs = hub.call("GET", f"{SERVICE_API}/jobs?owner=alice", token=hub.user_token("alice"))
    assert status == 200 and not [j for j in jobs["jobs"] if "notmine" in j["name"]], jobs


def squeue_user(slurm_id: str) -> str:
    """The user Slurm runs the job as, or "" once Slurm no longer has the job."""
    result = subprocess.run(["squeue", "-h", "-j", slurm_id, "-o", "%u"], capture_output=True, text=True)
    return result.stdout.strip()


def test_a_spawn_from_the_form_runs_on_slurm_as_the_user_and_is_preselected_next_time(
    hub: SpawnerHub, sessions: dict[str, HubSession]
) -> None:
    """The form's choice lands on the one-node Slurm with the chosen resources, as a Slurm job of alice; stopped, the
    Slurm job is gone; the form then shows alice's last choice."""
    alice = hub.user_token("alice")
    choice = {"site": "cluster", "cpus": "2", "walltime": "0:30:00", "cluster.partition": "other"}
    status, page = sessions["alice"].spawn_page("alice", "onslurm", choice)
    assert status == 200, page[-2000:]
    hub.wait_for(lambda: (server_model(hub, "alice", "onslurm") or {}).get("ready"), 120, "alice/onslurm")
    job = job_of(hub, server_model(hub, "alice", "onslurm") or {})
    assert job["site"] == "cluster" and job["spec"]["resources"]["cpus"] == 2, job
    assert job["spec"]["resources"]["walltime"] in ("0:30:00", "00:30:00", 1800), job["spec"]["resources"]
    assert job["spec"]["slurm"]["partition"] == "other", job["spec"]
    slurm_id = job["native_id"]
    assert squeue_user(slurm_id) == "alice"
    assert_runs_as("alice", "onslurm")
    assert answers_through_proxy(hub, "alice", "onslurm", alice)
    stop(hub, "alice", "onslurm")
    assert squeue_user(slurm_id) == "", "the Slurm job is still there after stop"
    _, page = sessions["alice"].spawn_page("alice", "onslurm")
    assert '<option value="cluster" selected>' in page and 'name="cpus" value="2"' in page, page[-3000:]
    assert '<option value="other" selected>' in page


def test_spawn_on_the_ssh_site(hub: SpawnerHub) -> None:
    """bob's server on the ssh site (the loopback sshd): it answers through the proxy; its token is in no file of the
    remote job folder; stop cancels the job."""
    bob = hub.user_token("bob")
    status, answer = hub.admin("POST", server_path("bob", "onssh"), {"site": "host"})
    assert status in (201, 202), (status, answer)
    hub.wait_for(lambda: (server_model(hub, "bob", "onssh") or {}).get("ready"), 120, "bob/onssh")
    model = server_model(hub, "bob", "onssh") or {}
    job = job_of(hub, model)
    assert job["site"] == "host" and job["state"] == "running", job
    assert answers_through_proxy(hub, "bob", "onssh", bob)
    token = server_token(job["id"])
    for path in (hub.root / "ssh-jobs").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"the token is in {path}"
    stop(hub, "bob", "onssh")
    status, job = hub.call("GET", f"{SERVICE_API}/jobs/{job['id']}", token=bob)
    assert status == 200 and job["state"] == "canceled", job


def test_a_slurmctld_outage_does_not_stop_a_server(hub: SpawnerHub) -> None:
    """slurmctld is stopped for 30 s while bob's Slurm server runs: the hub keeps it (polls say running), and it still
    answers afterwards; stop then removes the Slurm job."""
    bob = hub.user_token("bob")
    status, answer = hub.admin("POST", server_path("bob", "outage"), {"site": "cluster"})
    assert status in (201, 202), (status, answer)
    hub.wait_for(lambda: (server_model(hub, "bob", "outage") or {}).get("ready"), 120, "bob/outage")
    job = job_of(hub, server_model(hub, "bob", "outage") or {})
    assert job["site"] == "cluster" and squeue_user(job["native_id"]) == "bob", job
    pid = int(Path(hub.services["SWM_TEST_SLURMCTLD_PIDFILE"]).read_text().strip())
    os.kill(pid, 15)
    try:
        hub.wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "slurmctld to stop")
        down_since = time.monotonic()
        while time.monotonic() - down_since < 30:  # the hub polls every 3 s (c.Spawner.poll_interval)
            model = server_model(hub, "bob", "outage")
            assert model is not None and model.get("ready"), f"the hub dropped the server during the outage: {model}"
            time.sleep(2)
    finally:
        start_sh = ["bash", str(SERVICES_DIR / "start.sh")]
        subprocess.run(start_sh, capture_output=True, text=True, timeout=240, check=True)
    assert answers_through_proxy(hub, "bob", "outage", bob)
    status, now = hub.call("GET", f"{SERVICE_API}/jobs/{job['id']}", token=bob)
    assert status == 200 and now["state"] == "running", now
    stop(hub, "bob", "outage")
    assert squeue_user(job["native_id"]) == ""


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by .ci/setup.sh
SCREENSHOTS = REPO / "tests" / ".artifacts"


def test_the_form_and_a_failed_start_in_chromium(hub: SpawnerHub, passwords: dict[str, str]) -> None:
    """In Chromium (Playwright): alice logs in through the hub's form, sees the spawn form with the cloud flavors,
    starts a server that dies from it, and the hub's progress page shows the job's reason. Screenshots of both pages
    go to tests/.artifacts (docs/img has copies)."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", "alice")
            page.fill("#password_input", passwords["alice"])
            page.click("#login_submit")
            page.wait_for_url(lambda url: "/hub/login" not in url)
            page.goto(f"{hub.url}/hub/spawn/alice/{BROKEN_SERVER}")
            try:
                page.wait_for_selector("#swm-site")
            except Exception:
                page.screenshot(path=str(SCREENSHOTS / "spawner-form-missing.png"), full_page=True)
                raise AssertionError(f"no spawn form at {page.url}: {page.inner_text('body')[:1500]}") from None
            page.select_option("#swm-site", "cloud")
            assert page.is_visible("#swm-cloud-flavor") and not page.is_visible("#swm-cluster-partition")
            assert "per hour, about" in page.inner_text("#swm-cloud-flavor")
            page.screenshot(path=str(SCREENSHOTS / "spawner-form.png"), full_page=True)
            page.select_option("#swm-site", "local")
            page.fill("#swm-walltime", "0:10:00")
            page.click("#spawn_form button[type=submit]")
            page.wait_for_url("**/spawn-pending/**")
            page.wait_for_selector("text=cannot import jupyterlab_missing_thing", timeout=90_000)
            shown = page.inner_text("body")
            assert "ended (finished, exit code 7)" in shown and "Spawn failed" in shown, shown[-2000:]
            page.screenshot(path=str(SCREENSHOTS / "spawner-progress.png"), full_page=True)
        finally:
            browser.close()


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


def test_staged_files_come_back_from_the_ssh_site(hub: SpawnerHub) -> None:
    """bob's server on the ssh site (no shared home) with ``stage: ["work"]``: his folder is copied into the job,
    the server serves it; a notebook edited there, and a new file, are back in his home after stop, as his files.
    A file he changed at home meanwhile is kept, the server's copy written beside it."""
    import nbformat

    from tests.notebook_fixtures import notebook

    bob = hub.user_token("bob")
    account = pwd.getpwnam("bob")
    work = Path(account.pw_dir) / "work"
    work.mkdir(exist_ok=True)
    os.chown(work, account.pw_uid, account.pw_gid)
    for name, text in (("notes.ipynb", nbformat.writes(notebook("print('before')"))), ("plan.txt", "plan at home\n")):
        (work / name).write_text(text)
        os.chown(work / name, account.pw_uid, account.pw_gid)
        (work / name).chmod(0o640)
    status, answer = hub.admin("POST", server_path("bob", "staged"), {"site": "host", "stage": ["work"]})
    assert status in (201, 202), (status, answer)
    hub.wait_for(lambda: (server_model(hub, "bob", "staged") or {}).get("ready"), 120, "bob/staged")
    job = job_of(hub, server_model(hub, "bob", "staged") or {})
    assert job["site"] == "host" and job["spec"]["input_files"] == ["work"], job["spec"]
    contents = "/user/bob/staged/api/contents/work"
    status, listing = hub.call("GET", contents, token=bob)
    assert status == 200 and {e["name"] for e in listing["content"]} >= {"notes.ipynb", "plan.txt"}, listing
    edited = notebook("print('edited on the ssh host')")
    status, saved = hub.call(
        "PUT",
        f"{contents}/notes.ipynb",
        token=bob,
        body={"type": "notebook", "content": json.loads(nbformat.writes(edited))},
    )
    assert status in (200, 201), (status, saved)
    for name in ("new.txt", "plan.txt"):
        body = {"type": "file", "format": "text", "content": f"{name} from the server\n"}
        status, saved = hub.call("PUT", f"{contents}/{name}", token=bob, body=body)
        assert status in (200, 201), (status, saved)
    (work / "plan.txt").write_text("plan changed at home meanwhile\n")  # bob changes it at home too
    stop(hub, "bob", "staged")
    back = nbformat.read(work / "notes.ipynb", as_version=4)
    assert back.cells[0].source == "print('edited on the ssh host')", back.cells
    assert (work / "new.txt").read_text() == "new.txt from the server\n"
    assert (work / "plan.txt").read_text() == "plan changed at home meanwhile\n"
    beside = work / f"plan.txt.swm-{job['id'][:8]}"
    assert beside.read_text() == "plan.txt from the server\n"
    for path in (work / "notes.ipynb", work / "new.txt", beside):
        assert path.lstat().st_uid == account.pw_uid, path
    assert stat.S_IMODE((work / "notes.ipynb").lstat().st_mode) == 0o640


def test_spawn_on_the_cloud_site(hub: SpawnerHub, standin: SkyPortGateStandin) -> None:
    """alice's server on the cloud site, through the Sky Port gate stand-in (its VM is the loopback sshd): the
    partition is created, the server answers through the proxy with its token only in its process, and stop
    cancels the job and deletes the partition. Needs the cloud gate to pass private_env (the token) to the job."""
    alice = hub.user_token("alice")
    status, answer = hub.admin("POST", server_path("alice", "oncloud"), {"site": "cloud", "flavor": "small"})
    assert status in (201, 202), (status, answer)
    events = progress_events(hub, "alice", "oncloud", timeout=180)
    assert events[-1].get("ready"), events
    model = server_model(hub, "alice", "oncloud") or {}
    job = job_of(hub, model)
    assert job["site"] == "cloud" and job["state"] == "running" and job["spec"]["flavor"] == "small", job
    assert [p["status"] for p in standin.live_partitions()] == ["succeeded"], standin.live_partitions()
    assert answers_through_proxy(hub, "alice", "oncloud", alice)
    token = server_token(job["id"])
    for path in (hub.root / "cloud-jobs").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"the token is in {path}"
    stop(hub, "alice", "oncloud")
    status, job = hub.call("GET", f"{SERVICE_API}/jobs/{job['id']}", token=alice)
    assert status == 200 and job["state"] == "canceled", job
    assert standin.wait_empty(timeout=60) == [], "the cloud partition is still there after stop"
