"""The local site against another local user and against careless jobs: a socket folder or a
supervisor of another user is refused (and the site says why), the supervisor serves only its own
user, nothing is written through a symlink, jobs do not see the server's secrets, a cancel kills
every process of the job, exit codes and signals are told apart, a missing workdir is named."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import SiteUnavailable
from swm_jupyter.core.jsoncodec import to_bytes
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState
from swm_jupyter.daemons import local_supervisor
from swm_jupyter.daemons.local_supervisor import PROTOCOL, Supervisor
from swm_jupyter.gates.commands import run_command
from swm_jupyter.gates.job_cgroup import JobCgroups
from swm_jupyter.gates.local import LocalGate

from .conftest import TOKEN, ServerProcess
from .core_helpers import run, with_manager

#: Listens on a UNIX socket as another user and prints what reaches it, one JSON line per client.
_LISTENER = r"""
import json, os, socket, sys
path, make_folder = sys.argv[1], sys.argv[2] == "1"
if make_folder:
    os.mkdir(os.path.dirname(path), 0o777)
    os.chmod(os.path.dirname(path), 0o777)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
if os.getuid() == 0:
    os.setuid(int(sys.argv[3]))  # bound as root in root's folder, listening as another user
server.listen(8)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.settimeout(2)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except OSError:
        pass
    print(json.dumps({"received": data.decode(errors="replace")}), flush=True)
    conn.close()
"""


#: A Python that another user may run (the test's own may live in a folder only root can open).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or ""


def _need_root() -> int:
    """The uid of ``nobody``; fails (saying why) unless this test runs as root with a system python3, as CI does
    (a test that skips where it cannot run would pass unseen)."""
    assert os.geteuid() == 0, "needs root to act as another local user: run the tests as root, as CI does"
    assert SYSTEM_PYTHON, "needs a system python3 in /usr/bin or /bin to run code as another user"
    return pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def shared_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A world-writable sticky temp dir of this test alone (like /tmp), used as the gate's temp dir."""
    folder = Path(tempfile.mkdtemp(prefix="swm-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _listen_as(uid: int, path: str, *, make_folder: bool) -> subprocess.Popen[str]:
    """Start :data:`_LISTENER` as ``uid`` (root binds, then becomes ``uid``, when the folder is root's)."""
    as_root = not make_folder
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", _LISTENER, path, "1" if make_folder else "0", str(uid)],
        stdout=subprocess.PIPE,
        text=True,
        user=None if as_root else uid,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _heard(proc: subprocess.Popen[str]) -> list[str]:
    """Stop the listener (after a moment for a last client); what each client sent it."""
    time.sleep(1.0)
    proc.kill()
    out, _ = proc.communicate(timeout=10)
    return [json.loads(line)["received"] for line in out.splitlines() if line.strip()]


def _socket_name(data_dir: Path) -> str:
    store = str(data_dir / "jobs.sqlite")
    return f"{hashlib.sha1(store.encode()).hexdigest()[:16]}-v{PROTOCOL}.sock"


def test_a_socket_folder_made_by_another_user_is_refused(tmp_path: Path, shared_tmp: Path) -> None:
    nobody = _need_root()
    folder = shared_tmp / f"swm-local-{os.geteuid()}"
    data_dir = tmp_path / "data"
    attacker = _listen_as(nobody, str(folder / _socket_name(data_dir)), make_folder=True)
    try:

        async def body(wm: WorkloadManager) -> None:
            site = await wm.describe_site("local")
            assert site["healthy"] is False
            assert f"{folder} belongs to nobody (uid {nobody})" in site["health_message"], site
            with pytest.raises(SiteUnavailable, match="belongs to nobody"):
                await wm.submit({"command": ["true"]})

        run(with_manager(data_dir, body))
    finally:
        heard = _heard(attacker)
    assert heard == [], "the gate talked to a supervisor socket in another user's folder"


def test_a_supervisor_of_another_uid_is_never_spoken_to(tmp_path: Path) -> None:
    nobody = _need_root()
    folder = Path(tempfile.mkdtemp(prefix="swm-own-", dir="/tmp"))  # ours, mode 0700
    path = str(folder / "s")
    impostor = _listen_as(nobody, path, make_folder=False)
    try:

        async def body() -> None:
            gate = LocalGate(site_name="local", supervisor_socket=path)
            with pytest.raises(SiteUnavailable, match=f"served by uid {nobody}"):
                await gate.setup()
            await gate.cleanup()

        run(body())
    finally:
        heard = _heard(impostor)
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    assert heard == [""], "the gate must connect, see the peer's uid, and send nothing"


@pytest.fixture
def open_supervisor(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Start a real supervisor (in a thread) whose socket anyone could open; its socket's path."""
    monkeypatch.setattr(local_supervisor, "IDLE_SECONDS", 0.5)
    folders: list[str] = []
    threads: list[threading.Thread] = []

    def start(allowed: tuple[int, ...] = ()) -> str:
        folder = tempfile.mkdtemp(prefix="swm-sup-", dir="/tmp")
        os.chmod(folder, 0o711)  # others may pass through, not write
        folders.append(folder)
        supervisor = Supervisor(f"{folder}/s", allowed_uids=allowed)
        supervisor.listen()
        os.chmod(f"{folder}/s", 0o666)  # as if its permissions were wrong: only SO_PEERCRED keeps others out
        thread = threading.Thread(target=supervisor.run, daemon=True)
        thread.start()
        threads.append(thread)
        return f"{folder}/s"

    yield start
    for thread in threads:
        thread.join(timeout=30)
    for folder in folders:
        subprocess.run(["rm", "-rf", folder], check=False)


_CLIENT = r"""
import socket, sys
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(sys.argv[1])
client.sendall(sys.argv[2].encode() + b"\n")
client.settimeout(5)
data = b""
try:
    while b"\n" not in data and (chunk := client.recv(65536)):
        data += chunk
except OSError:
    pass
sys.stdout.write(data.decode())
"""


def _spawn_as(uid: int, path: str, marker: Path) -> str:
    """Ask the supervisor at ``path``, as ``uid``, to run ``touch marker``; its answer ("" if none)."""
    request = {
        "op": "spawn",
        "id": "evil",
        "pool": "p",
        "argv": ["touch", str(marker)],
        "cwd": "/",
        "env": {"PATH": os.defpath},
        "stdout": os.devnull,
        "stderr": os.devnull,
        "status_file": str(marker.parent / f"{marker.name}.status"),
    }
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", _CLIENT, path, to_bytes(request).decode()],
        capture_output=True,
        text=True,
        user=uid,
        timeout=30,
    )
    return result.stdout.strip()


def test_the_supervisor_serves_only_its_own_user(open_supervisor: Callable[..., str], tmp_path: Path) -> None:
    nobody = _need_root()
    marker = tmp_path / "ran"
    assert _spawn_as(nobody, open_supervisor(), marker) == "", "another user's request was answered"
    time.sleep(0.5)
    assert not marker.exists(), "another user's job was run"
    # The hook for a trusted service (a hub's): a uid allowed explicitly is served.
    # the first line is the answer; the job's exit report may follow it
    answer = json.loads(_spawn_as(nobody, open_supervisor(allowed=(nobody,)), marker).splitlines()[0])
    assert answer["reply"] == "evil" and "pid" in answer, answer
    for _ in range(100):
        if marker.exists():
            break
        time.sleep(0.05)
    assert marker.exists()


def test_the_supervisor_log_is_not_written_through_a_symlink(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="swm-own-", dir="/tmp"))
    target = tmp_path / "planted"
    (folder / "s.log").symlink_to(target)
    try:

        async def body() -> None:
            gate = LocalGate(site_name="local", supervisor_socket=str(folder / "s"))
            with pytest.raises(SiteUnavailable, match="log cannot be opened"):
                await gate.setup()
            await gate.cleanup()

        run(body())
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    assert not target.exists(), "the supervisor's log followed a symlink"


def test_job_output_is_not_written_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "planted"

    async def body(wm: WorkloadManager) -> None:
        script = f"rm -f stdout; ln -s {target} stdout; echo first\n"
        job = await wm.wait((await wm.submit({"script": script})).id, 30)
        assert job.state is JobState.FINISHED and not target.exists()
        await wm.requeue(job.id)
        again = await wm.wait(job.id, 30)
        assert again.state is JobState.ERROR, again.state_details
        assert "refused to write the job's output through a symlink" in again.state_details
        assert not target.exists(), "the job's output followed a symlink"

    run(with_manager(tmp_path / "data", body))


def _post(server: ServerProcess, path: str, payload: Any = None) -> Any:
    request = urllib.request.Request(
        f"{server.url}/swm/api/v1/{path}",
        data=json.dumps(payload).encode() if payload is not None else None,
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
        method="POST" if payload is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_jobs_do_not_see_the_servers_secrets(server_process: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = server_process()
    config = server.root.parent / "config"  # the server's JUPYTER_CONFIG_DIR
    config.mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.json").write_text(json.dumps({"SwmApp": {"secret_env": ["MY_*", "database_url"]}}))
    plain_env = server.env
    secrets = {
        "JUPYTER_TOKEN": TOKEN,
        "JPY_API_TOKEN": "jpy-secret",
        "JUPYTERHUB_API_TOKEN": "hub-secret",
        "JUPYTERHUB_OAUTH_ACCESS_TOKEN": "hub-secret-2",
        "MY_SERVICE_KEY": "mine",
        "DATABASE_URL": "postgres://u:p@db/x",
    }
    server.env = lambda: {**plain_env(), **secrets, "HARMLESS": "kept"}  # type: ignore[method-assign]
    server.start()
    job = _post(server, "jobs", {"command": ["env"], "env": {"OWN": "given"}})
    for _ in range(300):
        job = _post(server, f"jobs/{job['id']}")
        if job["state"] in ("finished", "error"):
            break
        time.sleep(0.1)
    assert job["state"] == "finished", job
    seen = dict(
        line.split("=", 1) for line in (server.data_dir / "jobs" / job["id"] / "stdout").read_text().splitlines()
    )
    assert not set(secrets) & set(seen), f"secrets reached the job: {sorted(set(secrets) & set(seen))}"
    assert seen["HARMLESS"] == "kept" and seen["OWN"] == "given" and seen["SWM_JOB_ID"] == job["id"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def _cancel_and_check(wm: WorkloadManager, job_id: str, pid: int) -> bool:
    """Cancel the job; True if process ``pid`` still runs 5 s after the job is canceled (it is then killed)."""
    await wm.cancel(job_id)
    assert (await wm.wait(job_id, 30)).state is JobState.CANCELED
    for _ in range(100):
        if not _alive(pid):
            return False
        await asyncio.sleep(0.05)
    os.kill(pid, 9)
    return True


def test_cancel_kills_a_child_that_started_its_own_session(tmp_path: Path) -> None:
    script = "setsid sh -c 'echo $$ > kid; exec sleep 300' &\nwait\n"

    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"script": script})
        kid = Path(wm.get(job.id).folder, "kid")
        for _ in range(200):
            if kid.exists() and kid.read_text().strip() and wm.get(job.id).state is JobState.RUNNING:
                break
            await asyncio.sleep(0.05)
        pid = int(kid.read_text())
        with open(f"/proc/{pid}/stat") as handle:
            session = int(handle.read().rsplit(") ", 1)[1].split()[3])
        assert session == pid != int(wm.get(job.id).native_id or 0), "the child must be in a session of its own"
        alive = await _cancel_and_check(wm, job.id, pid)
        assert not alive, "a child in its own session survived the cancel of its job"

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "grace_period": 1.0}}))


def test_cancel_kills_a_daemon_that_left_the_jobs_session_and_tree(tmp_path: Path) -> None:
    """A process whose parent is gone and that started its own session is found through the job's cgroup."""
    assert JobCgroups.open() is not None, "this test needs cgroup v2 that the test's user may write (CI runs as root)"
    script = "sh -c 'setsid sleep 301 & echo $! > daemon'\nsleep 300\n"

    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"script": script})
        daemon = Path(wm.get(job.id).folder, "daemon")
        for _ in range(200):
            if daemon.exists() and daemon.read_text().strip() and wm.get(job.id).state is JobState.RUNNING:
                break
            await asyncio.sleep(0.05)
        pid = int(daemon.read_text())
        leader = int(wm.get(job.id).native_id or 0)
        for _ in range(200):  # setsid runs, and its parent (the inner sh) exits, at once
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(") ", 1)[1].split()
            parent, session = int(fields[1]), int(fields[3])
            try:
                parent_is_inner_sh = Path(f"/proc/{parent}/cmdline").read_bytes().startswith(b"sh")
            except FileNotFoundError:
                parent_is_inner_sh = False
            if session == pid and parent != leader and not parent_is_inner_sh:
                break
            await asyncio.sleep(0.05)
        assert session == pid, "the daemon must be in a session of its own"
        assert parent != leader and not parent_is_inner_sh, "the daemon's parent must be gone"
        alive = await _cancel_and_check(wm, job.id, pid)
        assert not alive, "a daemon outside the job's session and process tree survived the cancel of its job"
        group = Path(JobCgroups.open().folder(job.id))  # type: ignore[union-attr]
        for _ in range(100):  # the supervisor removes it on its next turn after the last process is gone
            if not group.exists():
                break
            await asyncio.sleep(0.05)
        assert not group.exists(), "the job's cgroup is removed once empty"

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "grace_period": 1.0}}))


def test_exit_codes_and_signals_are_told_apart(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        high = await wm.submit({"command": ["sh", "-c", "exit 255"]})
        killed = await wm.submit({"command": ["sh", "-c", "kill -9 $$"]})
        high, killed = await wm.wait(high.id, 30), await wm.wait(killed.id, 30)
        assert (high.exit_code, high.signal) == (255, None)
        assert (killed.exit_code, killed.signal) == (137, 9)
        assert Path(killed.folder, ".swm-status").read_text().split("\n")[1].split()[:2] == ["signal", "9"]

    run(with_manager(tmp_path, body))


def test_a_missing_workdir_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-folder")

    async def body(wm: WorkloadManager) -> None:
        job = await wm.wait((await wm.submit({"command": ["true"], "workdir": missing})).id, 30)
        assert job.state is JobState.ERROR
        assert job.state_details == f"workdir {missing} does not exist"

    run(with_manager(tmp_path / "data", body))


def test_a_socket_owned_by_another_user_is_refused_by_the_supervisor(tmp_path: Path) -> None:
    """The supervisor itself will not listen in a folder others may write to."""
    folder = Path(tempfile.mkdtemp(prefix="swm-own-", dir="/tmp"))
    folder.chmod(0o777)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "swm_jupyter.daemons.local_supervisor", str(folder / "s")],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    assert result.returncode != 0 and "can be written by other users" in result.stderr
    assert "Traceback" not in result.stderr


def test_gate_commands_do_not_pass_on_the_servers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sbatch`` (run by the Slurm gate on this host) hands its own environment to the job."""
    monkeypatch.setenv("JUPYTER_TOKEN", TOKEN)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-secret")
    monkeypatch.setenv("HARMLESS", "kept")
    out = run(run_command(["env"], env={"GIVEN": "yes"})).stdout
    names = {line.split("=", 1)[0] for line in out.splitlines()}
    assert not names & {"JUPYTER_TOKEN", "JUPYTERHUB_API_TOKEN"}
    assert {"HARMLESS", "GIVEN"} <= names


def test_a_supervisor_that_cannot_leave_a_jobs_cgroup_stops_using_cgroups(tmp_path: Path) -> None:
    """The job still starts and is reported; no later cgroup KILL can reach the supervisor."""
    supervisor = Supervisor(str(tmp_path / "s"))
    assert supervisor.cgroups is not None, "this test needs cgroup v2 that the test's user may write (CI runs as root)"
    groups = supervisor.cgroups
    real_leave = groups.leave

    def leave_then_fail() -> None:
        real_leave()  # this test process really goes back; the supervisor is told it could not
        raise PermissionError(13, "Permission denied")

    groups.leave = leave_then_fail  # type: ignore[method-assign]
    supervisor.pools["p"] = local_supervisor.Pool(capacity=1)
    folder = tmp_path / "job"
    folder.mkdir()
    request = {
        "id": "cgroup-leave",
        "argv": ["true"],
        "env": {"PATH": os.defpath},
        "cwd": str(folder),
        "stdout": str(folder / "stdout"),
        "stderr": str(folder / "stderr"),
        "status_file": str(folder / ".swm-status"),
    }
    answer = supervisor._start(request, "p", 1)
    assert "pid" in answer, answer
    assert supervisor.cgroups is None
    os.waitpid(answer["pid"], 0)
    assert groups.remove("cgroup-leave")
