"""A real JupyterHub for the hub tests: the example config, real OS users, real single-user servers.

The hub runs ``jupyter-config/jupyterhub/jupyterhub_config.py`` (loaded by a small test config that
only moves it to free loopback ports and a temporary folder, and adds a test service holding an
admin token). It needs root: the hub starts each user's server as that OS user. The users
``alice``, ``bob`` and ``admin`` are made by the example's ``create-users.sh``; they are given
traverse rights (an ACL entry ``u:<user>:--x``, nothing more) on the folders above this Python,
its environment and this checkout that they could not enter, so their servers can run this code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "jupyter-config" / "jupyterhub"
USERS = ("alice", "bob", "admin")
BIN = Path(sys.executable).parent


def grant_traverse(paths: list[Path], users: tuple[str, ...]) -> None:
    """Let ``users`` enter every folder above ``paths`` that others cannot enter (an ACL ``--x`` entry)."""
    setfacl = shutil.which("setfacl")
    seen: set[Path] = set()
    for path in paths:
        for folder in [path, *path.parents]:
            if folder in seen or not folder.is_dir():
                continue
            seen.add(folder)
            if folder.stat().st_mode & 0o001:
                continue
            if setfacl is None:
                pytest.fail(f"{folder} is closed to other users and setfacl is missing (apt-get install acl)")
            for user in users:
                subprocess.run([setfacl, "-m", f"u:{user}:x", str(folder)], check=True)


@pytest.fixture(scope="session")
def hub_users() -> tuple[str, ...]:
    """The OS users alice, bob and admin, able to run this checkout's code. Needs root (CI runs as root)."""
    if os.geteuid() != 0:
        print("hub tests skipped: they need root to add OS users and start servers as them")
        pytest.skip("needs root: the hub starts each user's server as that OS user")
    subprocess.run(["bash", str(EXAMPLE / "create-users.sh")], check=True, capture_output=True)
    grant_traverse([Path(os.path.realpath(sys.executable)), BIN, REPO], USERS)
    return USERS


class HubError(AssertionError):
    """The hub or one of its servers did not do what a test waited for."""


class Hub:
    """A running JupyterHub (as a subprocess) and helpers to call it and its services."""

    def __init__(self, root: Path, service_config: str = "") -> None:
        self.root = root
        self.service_config = service_config  # lines added to the example's swm_service_config.py
        self.port, self.hub_port, self.proxy_api_port, self.swm_port = (free_port() for _ in range(4))
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)  # the test service's token (hub admin)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "hub.log"

    @functools.cached_property
    def shared(self) -> Path:
        """A folder for files a test shares with the users' jobs (which run as the users): pytest's own
        folders are root's alone (and pytest makes them so again at each session start, ACLs or not)."""
        folder = Path(tempfile.mkdtemp(prefix="swm-hub-shared-", dir="/tmp"))
        folder.chmod(0o755)
        return folder

    def write_config(self) -> Path:
        """The test config: the example, moved to free ports and this folder, plus a test service."""
        config = self.root / "hub_test_config.py"
        # Each user's servers write their runtime files (jpserver-*.json) here, not in the user's home:
        # the hubs of other tests (and of other checkouts on this machine) start servers for the same
        # OS users, and `swm` in a server's environment would otherwise find those servers' files too.
        # In :attr:`shared`: the users cannot enter pytest's own folders.
        runtime = self.shared / "runtime"
        for user in USERS:
            (runtime / user).mkdir(parents=True, exist_ok=True)
            shutil.chown(runtime / user, user)
            (runtime / user).chmod(0o700)
        config.write_text(
            f"""
c = get_config()  # noqa
load_subconfig({str(EXAMPLE / "jupyterhub_config.py")!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{self.port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
c.JupyterHub.last_activity_interval = 5
c.Spawner.environment = {{
    "PYTHONPATH": {str(REPO)!r},
    "JUPYTER_RUNTIME_DIR": lambda spawner: {str(runtime)!r} + "/" + spawner.user.name,
}}
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 90
swm = c.JupyterHub.services[0]
swm["url"] = "http://127.0.0.1:{self.swm_port}"
swm["command"] = swm["command"] + ["--SwmApp.poll_interval=0.5", "--SwmApp.synchronous=NORMAL"]
swm["environment"] = {{"PYTHONPATH": {str(REPO)!r}}}
service_config = "--config={self.write_service_config()}"
swm["command"] = [service_config if a.startswith("--config=") else a for a in swm["command"]]
c.JupyterHub.services.append({{"name": "swm-test", "api_token": {self.token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "swm-test",
    "scopes": ["admin:users", "admin:servers", "tokens", "read:services", "access:servers", "read:users"],
    "services": ["swm-test"],
}})
"""
        )
        return config

    def write_service_config(self) -> Path:
        """The swm service's config: the example's ``swm_service_config.py`` plus :attr:`service_config`."""
        config = self.root / "swm_service_test_config.py"
        config.write_text(
            "c = get_config()  # noqa\n"
            f"load_subconfig({str(EXAMPLE / 'swm_service_config.py')!r})\n" + self.service_config + "\n"
        )
        return config

    def job_folders(self) -> list[Path]:
        """The folders of every job in the service's store (read after the hub stopped)."""
        store = self.root / "state" / "swm" / "jobs.sqlite"
        if not store.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            return [Path(row[0]) for row in db.execute("SELECT folder FROM jobs WHERE folder != ''")]

    def start(self, timeout: float = 90) -> Hub:
        """Start the hub; return once the hub and the swm service answer."""
        config = self.write_config()
        env = dict(os.environ, SWM_HUB_DIR=str(self.root / "state"), PYTHONPATH=str(REPO))
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "jupyterhub"), "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
                start_new_session=True,
            )
        self.wait_for(lambda: self.call("GET", "/hub/api", token=None)[0] == 200, timeout, "the hub to answer")
        self.wait_service(timeout)
        return self

    def wait_service(self, timeout: float = 60) -> None:
        """Wait until the swm service answers through the proxy."""
        self.wait_for(
            lambda: self.call("GET", "/services/swm/swm/api/v1/sites", token=self.token)[0] in (200, 403),
            timeout,
            "the swm service to answer",
        )

    def wait_for(self, check: Any, timeout: float, what: str) -> None:
        """Poll ``check()`` until true; fail with the hub's log if it does not become true in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise HubError(f"the hub exited while waiting for {what}:\n{self.log_tail()}")
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise HubError(f"timed out after {timeout}s waiting for {what}:\n{self.log_tail()}")

    def log_tail(self, size: int = 6000) -> str:
        """The end of the hub's log (hub, proxy, services and servers write there)."""
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""

    def call(
        self, method: str, path: str, *, token: str | None, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        """``(status, JSON body or text)`` of a request through the hub's proxy."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, text = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text.decode(errors="replace")

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A hub API call (``/hub/api/...``) with the test service's admin token."""
        return self.call(method, f"/hub/api/{path.lstrip('/')}", token=self.token, body=body)

    def user_token(self, user: str, scopes: list[str] | None = None) -> str:
        """A new API token of ``user`` (with ``scopes``, or all the user's own)."""
        body: dict[str, Any] = {"note": "swm hub test"}
        if scopes is not None:
            body["scopes"] = scopes
        status, answer = self.admin("POST", f"users/{user}/tokens", body)
        if status != 201:
            raise HubError(f"could not make a token for {user}: {status} {answer}")
        return str(answer["token"])

    def start_server(self, user: str, timeout: float = 90) -> None:
        """Start ``user``'s single-user server and wait until it is ready."""
        status, answer = self.admin("POST", f"users/{user}/server")
        if status not in (201, 202, 400):  # 400: already running
            raise HubError(f"could not start {user}'s server: {status} {answer}:\n{self.log_tail()}")
        self.wait_for(lambda: self.server_state(user) == "ready", timeout, f"{user}'s server to be ready")

    def stop_server(self, user: str, timeout: float = 60) -> None:
        """Stop ``user``'s server through the hub API (as the idle culler does) and wait until it is gone."""
        status, answer = self.admin("DELETE", f"users/{user}/server")
        if status not in (202, 204):
            raise HubError(f"could not stop {user}'s server: {status} {answer}")
        self.wait_for(lambda: self.server_state(user) is None, timeout, f"{user}'s server to stop")

    def server_state(self, user: str) -> str | None:
        """``"ready"``, ``"pending"`` or None (no server) for ``user``'s default server."""
        status, model = self.admin("GET", f"users/{user}")
        if status != 200:
            raise HubError(f"no hub user {user}: {status} {model}")
        server = (model.get("servers") or {}).get("")
        if not server:
            return None
        return "ready" if server.get("ready") else "pending"

    def server_pid(self, user: str) -> int:
        """The pid of ``user``'s single-user server process (from the hub's user model)."""
        _, model = self.admin("GET", f"users/{user}")
        state = model["servers"][""].get("state") or {}
        return int(state["pid"])

    def service_pid(self) -> int:
        """The pid of the swm service process, as the hub knows it."""
        status, model = self.admin("GET", "services/swm")
        if status != 200 or not model.get("pid"):
            raise HubError(f"the hub does not say the swm service runs: {status} {model}")
        return int(model["pid"])

    def stop(self) -> None:
        """Stop the hub (its proxy, services and servers with it)."""
        if self.proc is None or self.proc.poll() is not None:
            self.stop_left_proxy()
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.stop_left_proxy()

    def stop_left_proxy(self) -> None:
        """Stop the proxy if the hub left it running (it does when it exits during its own start)."""
        pid_file = self.root / "state" / "jupyterhub-proxy.pid"
        try:
            pid = int(pid_file.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"configurable-http-proxy" in command and str(self.proxy_api_port).encode() in command:
            os.kill(pid, signal.SIGTERM)


@contextlib.contextmanager
def running_hub(
    users: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory, name: str = "hub", service_config: str = ""
) -> Iterator[Hub]:
    """Start a hub (``service_config``: lines added to the service's config), stop it after, keep its
    log in ``tests/.artifacts/<name>.log`` and remove its jobs' folders (in the users' homes)."""
    root = tmp_path_factory.mktemp(name)
    os.chmod(root, 0o755)
    running = Hub(root, service_config)
    try:
        yield running.start()
    finally:
        running.stop()
        if "shared" in vars(running):
            shutil.rmtree(running.shared, ignore_errors=True)
        kept = REPO / "tests" / ".artifacts" / f"{name}.log"
        kept.parent.mkdir(exist_ok=True)
        shutil.copyfile(running.log_path, kept)
        print(f"hub log: {kept}")
        for folder in running.job_folders():
            if folder.parent.parts[-2:] == (".swm", "jobs"):  # a folder of run_as_owner (the rest is in root)
                shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(hub_users: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A running hub with the swm service (one per test module)."""
    with running_hub(hub_users, tmp_path_factory) as running:
        yield running
