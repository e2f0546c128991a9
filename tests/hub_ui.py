"""A real JupyterHub for the browser tests (``labextension/ui-tests/hub.config.ts``), started as the hub tests do.

``python -m tests.hub_ui start STATE.json`` starts the example hub through :class:`tests.hub_fixtures.Hub`
(real OS users ``alice``, ``bob`` and ``admin`` with a fresh random password for the hub's PAM login,
the swm service, the real ``LocalProcessSpawner``, configurable-http-proxy from the environment),
starts the three users' servers, submits a few jobs as each user through the service, and writes
what the browser test needs into ``STATE.json``; the hub keeps running after the command returns.
``python -m tests.hub_ui stop STATE.json`` stops it, keeps its log beside ``STATE.json`` and removes
the jobs' folders. Needs root, like the hub itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.hub_fixtures import BIN, EXAMPLE, REPO, USERS, Hub, HubError, grant_traverse

SERVICE_API = "/services/swm/swm/api/v1"

#: The jobs each user submits: ``(name, command, hold)``. The long ones run while the test looks.
JOBS: dict[str, list[tuple[str, list[str], bool]]] = {
    "alice": [
        ("alice-long", ["sleep", "300"], False),
        ("alice-quick", ["true"], False),
        ("alice-fails", ["bash", "-c", "exit 3"], False),
    ],
    "bob": [("bob-long", ["sleep", "300"], False), ("bob-held", ["true"], True)],
    "admin": [("admin-held", ["true"], True)],
}
#: JupyterLab settings of the users' servers: no news prompt over the pages under test.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"}}


class UiHub(Hub):
    """The test hub with what a browser needs: JupyterLab without its news prompt or update check,
    each user's lab settings and workspaces in folders of this hub's (not in their home)."""

    def write_config(self) -> Path:
        """The test config of :class:`Hub` plus the users' servers' JupyterLab options."""
        config = super().write_config()
        settings = self.root / "lab-settings"
        for user in USERS:
            for name, values in LAB_SETTINGS.items():
                path = settings / user / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(values))
            (self.root / "lab-workspaces" / user).mkdir(parents=True)
            for folder in (settings / user, self.root / "lab-workspaces" / user):
                subprocess.run(["chown", "-R", f"{user}:", str(folder)], check=True)
        with config.open("a") as out:
            out.write(
                'c.Spawner.args = ["--LabApp.news_url=", '
                '"--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", '
                '"--LabApp.expose_app_in_browser=True"]\n'
                f"c.Spawner.environment['JUPYTERLAB_SETTINGS_DIR'] = lambda s: {str(settings)!r} + '/' + s.user.name\n"
                "c.Spawner.environment['JUPYTERLAB_WORKSPACES_DIR'] = "
                f"lambda s: {str(self.root / 'lab-workspaces')!r} + '/' + s.user.name\n"
            )
        return config


def submit(hub: Hub, token: str, name: str, command: list[str], hold: bool) -> dict[str, Any]:
    """Submit one job to the service with a user's token; its summary."""
    status, job = hub.call(
        "POST", f"{SERVICE_API}/jobs", token=token, body={"name": name, "command": command, "hold": hold}
    )
    if status != 201:
        raise HubError(f"submitting {name}: {status} {job}")
    return dict(job)


def wait_state(hub: Hub, token: str, job_id: str, states: set[str], timeout: float = 60) -> None:
    """Wait until the job is in one of ``states``."""
    hub.wait_for(
        lambda: hub.call("GET", f"{SERVICE_API}/jobs/{job_id}", token=token)[1].get("state") in states,
        timeout,
        f"job {job_id} to be {'/'.join(sorted(states))}",
    )


def start(state_file: Path) -> dict[str, Any]:
    """Start the hub, the users' servers and their jobs; write and return the state the browser test reads."""
    if os.geteuid() != 0:
        raise SystemExit("the hub UI tests need root: the hub starts each user's server as that OS user")
    password = secrets.token_urlsafe(12)
    subprocess.run(
        ["bash", str(EXAMPLE / "create-users.sh")],
        check=True,
        capture_output=True,
        env=dict(os.environ, SWM_DEMO_PASSWORD=password),
    )
    grant_traverse([Path(os.path.realpath(sys.executable)), BIN, REPO], USERS)
    root = Path(tempfile.mkdtemp(prefix="swm-hub-ui-"))
    root.chmod(0o755)
    hub = UiHub(root)
    state: dict[str, Any] = {"root": str(root), "url": hub.url, "password": password, "users": list(USERS)}
    state["shared"] = str(hub.shared)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state))  # from here on, `stop` can clean up
    try:
        hub.start()
        assert hub.proc is not None
        # The swm admin's token: the test reads jobs' states with it, `stop` cancels the jobs with it.
        state.update(
            pid=hub.proc.pid,
            proxy_api_port=hub.proxy_api_port,
            admin_token=hub.user_token("admin"),
        )
        state["jobs"] = jobs = {}
        state_file.write_text(json.dumps(state))
        with ThreadPoolExecutor(len(USERS)) as pool:
            list(pool.map(hub.start_server, USERS))
        for user, specs in JOBS.items():
            token = hub.user_token(user)
            for name, command, hold in specs:
                job = submit(hub, token, name, command, hold)
                jobs[job["id"]] = {"name": name, "owner": job["owner"], "user": user}
                state_file.write_text(json.dumps(state))
                if name.endswith("-long"):
                    wait_state(hub, token, job["id"], {"running"})
                elif not hold:
                    wait_state(hub, token, job["id"], {"finished", "error"})
    except BaseException:
        stop(state_file)  # cancels the jobs, stops the hub, removes the folders
        hub.stop()  # and the hub's process group if it started before its pid was written down
        raise
    return state


def stop(state_file: Path) -> None:
    """Stop the hub of ``state_file`` (its proxy, service and servers with it), keep its log, remove its files."""
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    root = Path(state["root"])
    pid = int(state.get("pid") or 0)
    if pid and state.get("admin_token"):
        cancel_jobs(state)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    hub = Hub(root)
    hub.proxy_api_port = int(state.get("proxy_api_port") or 0)
    hub.stop_left_proxy()
    if hub.log_path.exists():
        shutil.copyfile(hub.log_path, state_file.with_suffix(".log"))
    for folder in hub.job_folders():
        if folder.parent.parts[-2:] == (".swm", "jobs"):  # run_as_owner folders, in the users' homes
            shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    if state.get("shared"):
        shutil.rmtree(state["shared"], ignore_errors=True)
    state_file.unlink()


def cancel_jobs(state: dict[str, Any], timeout: float = 20) -> None:
    """Cancel the test's jobs (they would outlive the hub: jobs do) and wait until they ended."""
    hub = Hub(Path(state["root"]))
    hub.url, token = state["url"], state["admin_token"]
    ids = list(state.get("jobs") or ())
    with contextlib.suppress(OSError):
        hub.call("POST", f"{SERVICE_API}/jobs/actions/cancel", token=token, body={"ids": ids})

    def ended(job_id: str) -> bool:
        status, job = hub.call("GET", f"{SERVICE_API}/jobs/{job_id}", token=token)
        return status != 200 or job.get("state") in ("finished", "error", "canceled")

    deadline = time.monotonic() + timeout
    while ids and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            ids = [i for i in ids if not ended(i)]
        time.sleep(0.3)


def _alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def main(argv: list[str]) -> int:
    """``start STATE.json`` or ``stop STATE.json``; prints the state (without the password) after a start."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.hub_ui start|stop STATE.json", file=sys.stderr)
        return 2
    state_file = Path(argv[1]).resolve()
    if argv[0] == "start":
        state = start(state_file)
        print(json.dumps({k: v for k, v in state.items() if k not in ("password", "admin_token")}))
    else:
        stop(state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
