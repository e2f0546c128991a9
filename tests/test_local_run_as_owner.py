"""The local site with ``run_as_owner``: each owner's jobs are started by a supervisor running as that
owner (started through ``sudo -n -u``), in the owner's job folder; another owner's job cannot read
it; cancel kills the job; a restarted server follows a running job to its end; the site's cpus are
one pool for all owners. Real OS accounts (made by the fixture of test_run_as_owner), real sudo,
real supervisors; needs root (CI runs as root).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from traitlets.config import Config

import swm_jupyter
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState
from swm_jupyter.gates.local_owners import default_owners_folder
from swm_jupyter.gates.process_tree import process_info

from .core_helpers import run, running_manager
from .notebook_fixtures import notebook, outputs_text
from .test_run_as_owner import ALICE, BOB, data_roots, os_users  # noqa: F401 (fixtures)

OWNED_LOCAL = {"gate": "local", "run_as_owner": True, "grace_period": 1.0}


def _grant_search(user: str, path: str) -> None:
    """Let ``user`` pass through every folder on the way to ``path``: an ACL (printed) on each that
    refuses it, from the top down (a folder below one that refuses is not judged before that one)."""
    parts = Path(path).parent.parts
    for depth in range(2, len(parts) + 1):
        folder = str(Path(*parts[:depth]))
        if subprocess.run(["sudo", "-n", "-u", user, "test", "-x", folder], capture_output=True).returncode == 0:
            continue
        if not shutil.which("setfacl"):
            pytest.fail(f"{user} cannot pass through {folder} to run {sys.executable}; install acl (setfacl)")
        print(f"granting {user} search permission on {folder} (setfacl -m u:{user}:x)")
        subprocess.run(["setfacl", "-m", f"u:{user}:x", folder], check=True)


@pytest.fixture(scope="session")
def python_for_owners(os_users: dict[str, pwd.struct_passwd]) -> None:  # noqa: F811
    """The test accounts can run this Python and import swm_jupyter, as their supervisors must.

    A checkout and its venv are world-readable; an interpreter under a private folder (pyenv in
    /root, as on some machines) is not: the accounts are then given search (x) permission on the
    folders in the way, with an ACL (printed), as docs/jupyterhub.md tells operators to do.
    """
    package = os.path.dirname(os.path.abspath(swm_jupyter.__file__))
    paths = [os.path.realpath(sys.executable), sys.executable, package]
    env = [f"PYTHONPATH={os.environ['PYTHONPATH']}"] if os.environ.get("PYTHONPATH") else []
    probe = [*env, sys.executable, "-c", "import swm_jupyter.daemons.local_supervisor"]
    for user in (ALICE, BOB):
        if subprocess.run(["sudo", "-n", "-u", user, *probe], capture_output=True).returncode == 0:
            continue
        for path in paths:
            _grant_search(user, path)
        tried = subprocess.run(["sudo", "-n", "-u", user, *probe], capture_output=True, text=True)
        assert tried.returncode == 0, f"{user} cannot import swm_jupyter with {sys.executable}: {tried.stderr}"


@pytest.fixture
def owners(
    os_users: dict[str, pwd.struct_passwd],  # noqa: F811
    data_roots: dict[str, Path],  # noqa: F811
    python_for_owners: None,
) -> dict[str, pwd.struct_passwd]:
    """The accounts swmalice and swmbob, able to run their supervisors, their job folders removed after."""
    return os_users


async def _wait_state(wm: WorkloadManager, job_id: str, state: JobState, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while wm.get(job_id).state is not state:
        job = wm.get(job_id)
        assert time.monotonic() < deadline, f"job {job_id} is {job.state.value} ({job.state_details}), not {state}"
        assert not job.state.final, f"job {job_id} ended {job.state.value}: {job.state_details}"
        await asyncio.sleep(0.05)


def _uid_of(pid: int) -> int | None:
    info = process_info(pid)
    return info.uid if info is not None and not info.zombie else None


def test_a_local_job_runs_as_its_owner_in_a_folder_only_they_can_read(
    owners: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    alice, bob = owners[ALICE], owners[BOB]
    script = 'id -un\necho "$HOME $USER $LOGNAME"\npwd\necho alice-secret > secret.txt\n'

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"local": OWNED_LOCAL}) as wm:
            job = await wm.submit({"site": "local", "script": script}, owner=ALICE)
            assert Path(job.folder).parent == Path(alice.pw_dir) / ".swm" / "jobs"
            done = await wm.wait(job.id, 60)
            assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
            folder = Path(done.folder)
            out = (folder / "stdout").read_text()
            assert out == f"{ALICE}\n{alice.pw_dir} {ALICE} {ALICE}\n{folder}\n", out
            for path in (folder, folder / "stdout", folder / "secret.txt", folder / ".swm-status"):
                assert path.lstat().st_uid == alice.pw_uid, path
            assert stat.S_IMODE(folder.lstat().st_mode) == 0o700

            # Alice's supervisor listens in a folder of hers (0700) inside the service's (0711).
            owners_folder = Path(default_owners_folder())
            assert (owners_folder.lstat().st_uid, stat.S_IMODE(owners_folder.lstat().st_mode)) == (os.geteuid(), 0o711)
            mine = owners_folder / str(alice.pw_uid)
            assert (mine.lstat().st_uid, stat.S_IMODE(mine.lstat().st_mode)) == (alice.pw_uid, 0o700)
            assert any(p.is_socket() and p.owner() == ALICE for p in mine.iterdir())

            spy = await wm.submit(
                {"site": "local", "script": f"id -un\ncat {folder}/secret.txt\nls {folder}\n"}, owner=BOB
            )
            seen = await wm.wait(spy.id, 60)
            assert seen.state is JobState.FINISHED and seen.exit_code != 0, seen.state_details
            spied = Path(seen.folder)
            assert (spied / "stdout").read_text() == f"{BOB}\n"
            assert "Permission denied" in (spied / "stderr").read_text()
            assert spied.lstat().st_uid == bob.pw_uid

    run(body(), timeout=120)


def test_cancel_kills_every_process_of_the_owners_running_job(
    owners: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    uid = owners[ALICE].pw_uid
    script = "echo $$ > pids\nsleep 300 &\necho $! >> pids\nwait\n"

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"local": OWNED_LOCAL}) as wm:
            job = await wm.submit({"site": "local", "script": script}, owner=ALICE)
            await _wait_state(wm, job.id, JobState.RUNNING)
            pids_file = Path(job.folder) / "pids"
            for _ in range(100):
                if len(pids_file.read_text().split() if pids_file.exists() else []) == 2:
                    break
                await asyncio.sleep(0.05)
            pids = [int(p) for p in pids_file.read_text().split()]
            assert [_uid_of(pid) for pid in pids] == [uid, uid]
            await wm.cancel(job.id)
            await _wait_state(wm, job.id, JobState.CANCELED, timeout=10)
            for _ in range(60):
                if all(_uid_of(pid) is None for pid in pids):
                    break
                await asyncio.sleep(0.05)
            assert [_uid_of(pid) for pid in pids] == [None, None]

    run(body(), timeout=120)


def test_a_restarted_server_follows_the_owners_running_job_to_its_end(
    owners: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    state: dict[str, Any] = {}

    async def first() -> None:
        async with running_manager(data, sites={"local": OWNED_LOCAL}) as wm:
            job = await wm.submit({"site": "local", "script": "sleep 3\nid -un\nexit 3\n"}, owner=ALICE)
            await _wait_state(wm, job.id, JobState.RUNNING)
            state["id"], state["pid"] = job.id, int(wm.get(job.id).native_id or 0)
            assert _uid_of(state["pid"]) == owners[ALICE].pw_uid

    async def second() -> None:
        async with running_manager(data, sites={"local": OWNED_LOCAL}) as wm:
            done = await wm.wait(state["id"], 30)
            assert done.state is JobState.FINISHED and done.exit_code == 3, done.state_details
            assert (Path(done.folder) / "stdout").read_text() == f"{ALICE}\n"

    run(first(), timeout=60)
    assert _uid_of(state["pid"]) is not None, "the job ended with the server"
    run(second(), timeout=60)


def test_the_sites_cpus_are_one_pool_for_all_owners(owners: dict[str, pwd.struct_passwd], tmp_path: Path) -> None:
    """One cpu: alice's and bob's one-cpu jobs run one after the other, never together."""
    site = {**OWNED_LOCAL, "cpus": 1}

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"local": site}) as wm:
            jobs = [
                await wm.submit({"site": "local", "command": ["sleep", "1.5"]}, owner=owner)
                for owner in (ALICE, BOB, ALICE, BOB)
            ]
            done = [await wm.wait(job.id, 60) for job in jobs]
            assert all(job.state is JobState.FINISHED and job.exit_code == 0 for job in done)
            spans = sorted((job.start_time or 0.0, job.end_time or 0.0) for job in done)
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end, spans

        async with running_manager(tmp_path / "other", sites={"local": {**site, "queue_ahead": 2}}) as wm:
            with pytest.raises(Exception, match="queue_ahead must be 0 with run_as_owner"):
                await wm.submit({"site": "local", "command": ["true"]}, owner=ALICE)

    run(body(), timeout=120)


def test_a_link_to_another_supervisor_in_the_owners_socket_folder_is_refused(
    owners: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    """Alice replaces her supervisor's socket with a link to the service's own supervisor (running as
    root): the gate sees the peer is not alice and sends it nothing; her job fails saying why, and
    runs as no one."""
    alice = owners[ALICE]
    sites = {"own": {"gate": "local"}, "local": OWNED_LOCAL}

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites=sites) as wm:
            warm = await wm.submit({"site": "own", "command": ["true"]}, owner=ALICE)
            assert (await wm.wait(warm.id, 30)).state is JobState.FINISHED  # the root supervisor listens
            gate: Any = wm.gates["local"]
            account = gate.owner_account(warm)
            link = gate._link(account)
            folder = Path(link.socket_path).parent
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, alice.pw_uid, alice.pw_gid)
            os.chmod(folder, 0o700)
            Path(link.socket_path).unlink(missing_ok=True)
            os.symlink(wm.gates["own"].supervisor_socket, link.socket_path)
            os.lchown(link.socket_path, alice.pw_uid, alice.pw_gid)

            job = await wm.submit({"site": "local", "command": ["touch", str(tmp_path / "ran")]}, owner=ALICE)
            failed = await wm.wait(job.id, 30)
            assert failed.state is JobState.ERROR
            assert f"served by uid 0, not by {ALICE}'s (uid {alice.pw_uid})" in failed.state_details
            assert not (tmp_path / "ran").exists()
            os.unlink(link.socket_path)

            # The site stays up for the others.
            other = await wm.submit({"site": "local", "command": ["id", "-un"]}, owner=BOB)
            assert (await wm.wait(other.id, 30)).state is JobState.FINISHED

    run(body(), timeout=120)


def test_a_supervisor_that_cannot_start_is_named_with_its_last_words(
    owners: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    config = Config({"OwnerAccounts": {"exec_prefix": ["sudo", "-n", "-u", "{username}", "/nonexistent/swm-prefix"]}})

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"local": OWNED_LOCAL}, config=config) as wm:
            job = await wm.submit({"site": "local", "command": ["true"]}, owner=ALICE)
            failed = await wm.wait(job.id, 30)
            assert failed.state is JobState.ERROR
            assert failed.state_details.startswith(f"the local supervisor of {ALICE} did not start (exit 1)")
            assert "/nonexistent/swm-prefix" in failed.state_details, failed.state_details

    run(body(), timeout=60)


def test_walltime_and_hold_release_act_on_the_owners_jobs(owners: dict[str, pwd.struct_passwd], tmp_path: Path) -> None:
    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"local": OWNED_LOCAL}) as wm:
            long = await wm.submit(
                {"site": "local", "command": ["sleep", "60"], "resources": {"walltime": 1}}, owner=BOB
            )
            held = await wm.submit({"site": "local", "command": ["id", "-un"], "hold": True}, owner=ALICE)
            await _wait_state(wm, long.id, JobState.RUNNING)
            pid = int(wm.get(long.id).native_id or 0)
            assert _uid_of(pid) == owners[BOB].pw_uid
            killed = await wm.wait(long.id, 20)
            assert killed.state is JobState.ERROR and "walltime" in killed.state_details, killed.state_details
            assert _uid_of(pid) is None

            assert wm.get(held.id).state is JobState.HELD
            await wm.release(held.id)
            done = await wm.wait(held.id, 20)
            assert done.state is JobState.FINISHED, done.state_details
            assert (Path(done.folder) / "stdout").read_text() == f"{ALICE}\n"

    run(body(), timeout=60)


def test_a_notebook_job_runs_as_its_owner(owners: dict[str, pwd.struct_passwd], tmp_path: Path) -> None:
    """The notebook runner and its kernel run as alice, with her HOME (they need the server's Python and
    swm_jupyter, and a runtime folder of hers)."""
    inputs = Path(tempfile.mkdtemp(prefix="swm-owner-inputs-"))  # readable by alice, unlike tmp_path
    try:
        inputs.chmod(0o755)
        nb = notebook("import getpass, os\nprint(getpass.getuser(), os.environ['HOME'])")
        nbformat.write(nb, inputs / "who.ipynb")
        (inputs / "who.ipynb").chmod(0o644)

        async def body() -> None:
            async with running_manager(tmp_path / "data", sites={"local": OWNED_LOCAL}, input_root=str(inputs)) as wm:
                job = await wm.submit({"site": "local", "notebook": "who.ipynb"}, owner=ALICE)
                done = await wm.wait(job.id, 90)
                log = (Path(done.folder) / "stdout").read_text() + (Path(done.folder) / "stderr").read_text()
                assert done.state is JobState.FINISHED and done.exit_code == 0, f"{done.state_details}\n{log}"
                executed = nbformat.read(Path(done.folder) / "who.executed.ipynb", as_version=4)
                assert outputs_text(executed.cells[0]).strip() == f"{ALICE} {owners[ALICE].pw_dir}"

        run(body(), timeout=120)
    finally:
        shutil.rmtree(inputs, ignore_errors=True)
