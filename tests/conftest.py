"""Shared test fixtures: a Jupyter server with swm_jupyter enabled (pytest-jupyter) and real servers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# --- services fixtures (Slurm, sshd): owned by the services engineer -------------------------------
from tests.services_fixtures import *  # noqa: E402, F403

# ----------------------------------------------------------------------------------------------------

TOKEN = "swm-test-token-0123456789"


@pytest.fixture
def swm_data_dir(tmp_path: Path) -> Path:
    """A fresh folder for the job store and job folders."""
    path = tmp_path / "swm-data"
    path.mkdir()
    return path


@pytest.fixture
def swm_sites() -> dict[str, Any]:
    """The sites of the test server (override in a test module to change them)."""
    return {"local": {"gate": "local", "cpus": 4}}


@pytest.fixture
def jp_server_config(swm_data_dir: Path, swm_sites: dict[str, Any]) -> dict[str, Any]:
    """Enable the extension with a temporary data dir and a local site."""
    return {
        "ServerApp": {"jpserver_extensions": {"swm_jupyter": True}},
        "SwmApp": {
            "data_dir": str(swm_data_dir),
            "sites": swm_sites,
            "poll_interval": 0.5,
            "synchronous": "NORMAL",
        },
    }


@pytest.fixture
def swm_started(jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    """Run the extensions' start hook (pytest-jupyter does not) so the manager's loops run.

    Returns the running :class:`WorkloadManager`.
    """
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    app = jp_serverapp.web_app.settings["swm_app"]
    assert app.start_error is None, app.start_error
    return app.manager


@pytest.fixture
def api(jp_fetch: Any, swm_started: Any) -> Callable[..., Any]:
    """``await api("jobs", method="POST", json={...})``: jp_fetch under /swm/api/v1 that never raises on 4xx."""

    async def call(*parts: str, json_body: Any = None, raw: bool = False, **kwargs: Any) -> Any:
        if json_body is not None:
            kwargs["body"] = json.dumps(json_body)
            kwargs.setdefault("method", "POST")
            kwargs.setdefault("headers", {}).setdefault("Content-Type", "application/json")
        kwargs.setdefault("raise_error", False)
        if kwargs.get("method") in ("POST", "PUT", "PATCH") and "body" not in kwargs:
            kwargs["body"] = b""
        return await jp_fetch("swm", "api", "v1", *parts, **kwargs)

    return call


def body(response: Any) -> Any:
    """The JSON body of a response."""
    return json.loads(response.body)


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A real ``jupyter server`` subprocess with swm_jupyter, for crash, CLI, fuzz and benchmark runs."""

    def __init__(
        self,
        root: Path,
        data_dir: Path,
        *,
        sites: dict[str, Any] | None = None,
        extra: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.root = root
        self.data_dir = data_dir
        self.sites = sites or {"local": {"gate": "local", "cpus": 4}}
        self.extra = extra or []
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = TOKEN
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root.parent / f"server-{self.port}.log"

    def env(self) -> dict[str, str]:
        """An environment with private Jupyter folders (runtime files land in ``root/../runtime``)."""
        env = dict(os.environ)
        base = self.root.parent
        env.update(
            {
                "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
                "JUPYTER_CONFIG_DIR": str(base / "config"),
                "JUPYTER_DATA_DIR": str(base / "data"),
                "JUPYTER_PLATFORM_DIRS": "1",
            }
        )
        return env

    def start(self, timeout: float = 60) -> ServerProcess:
        """Start the server and wait until the swm API answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--allow-root",
            "--ServerApp.jpserver_extensions={'swm_jupyter': True, 'jupyterlab': False, 'jupyter_lsp': False}",
            f"--SwmApp.data_dir={self.data_dir}",
            f"--SwmApp.sites={json.dumps(self.sites)}",
            "--SwmApp.poll_interval=0.5",
            *self.extra,
        ]
        log = open(self.log_path, "ab")
        env = self.env()
        repo = str(Path(__file__).resolve().parent.parent)  # so that gates in tests/ can be named
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {self.log_path.read_text()[-3000:]}")
            try:
                request = urllib.request.Request(
                    f"{self.url}/swm/api/v1/sites", headers={"Authorization": f"token {self.token}"}
                )
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"jupyter server did not answer in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server (no cleanup at all)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Stop the server cleanly (SIGTERM), or kill it if it does not stop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """A factory of real ``jupyter server`` subprocesses, all stopped at the end of the test."""
    started: list[ServerProcess] = []

    def make(**kwargs: Any) -> ServerProcess:
        server = ServerProcess(tmp_path / "root", kwargs.pop("data_dir", tmp_path / "swm-data"), **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def _inert_gate() -> Any:
    from swm_jupyter.core.states import JobState
    from swm_jupyter.gates.base import GateStatus
    from swm_jupyter.gates.local import LocalGate

    class InertGate(LocalGate):
        """A local site that runs nothing: every job 'finishes' at once (for fuzzing the API)."""

        async def submit(self, job: Any, dependencies: Any = ()) -> GateStatus:
            now = time.time()
            return GateStatus(JobState.FINISHED, exit_code=0, start_time=now, end_time=now, native_id="0")

        async def poll(self, jobs: list[Any]) -> dict[str, GateStatus]:
            return {}

    return InertGate


def __getattr__(name: str) -> Any:
    """``tests.conftest:InertGate`` (built lazily so importing conftest stays light)."""
    if name == "InertGate":
        return _inert_gate()
    raise AttributeError(name)
