"""Jobs under their owner's OS account (``run_as_owner``): accounts checked at submission, job folders
that belong to the owner (mode 0700), and Slurm commands run as the owner, against the real one-node
Slurm cluster of tests/services with real OS accounts made by the session fixture (needs root).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError

from swm_jupyter.core.accounts import OwnerAccounts
from swm_jupyter.core.errors import SiteUnavailable, ValidationError
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState
from swm_jupyter.core.store import JobQuery
from swm_jupyter.gates.slurm import SlurmGate
from swm_jupyter.gates.status_record import STATUS_FILE

from .conftest import body
from .core_helpers import run, running_manager
from .services_fixtures import make_job, scontrol_show_job

ALICE, BOB = "swmalice", "swmbob"
FAST = {"poll_interval_min": 0.5, "poll_interval_max": 2.0, "max_status_calls_per_minute": 0, "status_interval": 0.3}
OWNED_SITE = {"gate": "slurm", "run_as_owner": True, **FAST}


@pytest.fixture(scope="session")
def os_users() -> dict[str, pwd.struct_passwd]:
    """The accounts swmalice and swmbob (made with ``useradd -m`` if missing; needs root and sudo)."""
    if os.geteuid() != 0:
        reason = "run_as_owner tests need root (to create OS accounts and run jobs as them); CI runs as root"
        print(reason)
        pytest.skip(reason)
    assert shutil.which("sudo"), "sudo is not installed (.ci/setup.sh installs it)"
    for name in (ALICE, BOB):
        try:
            pwd.getpwnam(name)
        except KeyError:
            made = subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], capture_output=True, text=True)
            if made.returncode not in (0, 9):  # 9: made meanwhile by another test run
                pytest.fail(f"useradd {name} failed: {made.stderr}")
    return {name: pwd.getpwnam(name) for name in (ALICE, BOB)}


@pytest.fixture
def data_roots(os_users: dict[str, pwd.struct_passwd]) -> Iterator[dict[str, Path]]:
    """Each test account's data root (the default ``{home}/.swm/jobs``), removed with ``~/.swm`` after."""
    roots = {name: Path(entry.pw_dir) / ".swm" / "jobs" for name, entry in os_users.items()}
    yield roots
    for root in roots.values():
        shutil.rmtree(root.parent, ignore_errors=True)


def _slurmctld_log(services: dict[str, str], offset: int = 0) -> str:
    """slurmctld's log from byte ``offset`` (it records the uid of every hold and kill request)."""
    with open(Path(services["SWM_TEST_SERVICES_DIR"]) / "slurm" / "log" / "slurmctld.log", "rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


async def _wait_state(wm: WorkloadManager, job_id: str, state: JobState, timeout: float = 60) -> None:
    for _ in range(int(timeout * 10)):
        if wm.get(job_id).state is state:
            return
        await asyncio.sleep(0.1)
    job = wm.get(job_id)
    raise AssertionError(f"job {job_id} is {job.state.value} ({job.state_details}), not {state.value}")


# --- accounts and configuration (no cluster) ---------------------------------------------------------


def test_owner_accounts_build_commands_and_check_their_options(os_users: dict[str, pwd.struct_passwd]) -> None:
    accounts = OwnerAccounts(username_map={"alice@example.org": ALICE})
    alice = accounts.resolve("alice@example.org", "cluster")
    assert (alice.username, alice.uid) == (ALICE, os_users[ALICE].pw_uid)
    assert alice.data_root == os.path.join(os_users[ALICE].pw_dir, ".swm", "jobs")
    assert alice.anchor == os_users[ALICE].pw_dir
    assert accounts.command(alice, ["scancel", "7"], {"SLURM_CONF": "/x y"}) == [
        "sudo",
        "-n",
        "-u",
        ALICE,
        "SLURM_CONF=/x y",
        "scancel",
        "7",
    ]
    shared = OwnerAccounts(data_root="/srv/swm/{username}/jobs").resolve(ALICE)
    assert (shared.data_root, shared.anchor) == (f"/srv/swm/{ALICE}/jobs", "/srv/swm")
    for bad in ("/srv/swm/jobs", "relative/{username}", "{home}/{user}"):
        with pytest.raises(TraitError):
            OwnerAccounts(data_root=bad)
    with pytest.raises(TraitError):
        OwnerAccounts(exec_prefix=["sudo", "-n"])
    with pytest.raises(ValidationError, match="system account"):
        OwnerAccounts(min_uid=os_users[ALICE].pw_uid + 1).resolve(ALICE)


def test_owners_without_a_usable_account_are_refused_at_submission(
    services: dict[str, str], os_users: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    """No owner, an unknown account, root, a system account, a name sudo would read as an option:
    a clear 400 naming the owner field, and nothing stored."""

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"cluster": OWNED_SITE}) as wm:
            for owner, expected in (
                ("", "has no owner"),
                ("swm-nobody-here", "no OS account 'swm-nobody-here'"),
                ("root", "root or a system account"),
                ("daemon", "root or a system account"),
                ("nobody", "root or a system account"),
                ("-sroot", "not a valid account name"),
                ("#0", "not a valid account name"),
            ):
                with pytest.raises(ValidationError, match=expected) as caught:
                    await wm.submit({"site": "cluster", "command": ["true"]}, owner=owner)
                assert caught.value.errors[0]["field"] == "owner"
            assert wm.jobs == {}
            assert wm.store is not None and wm.store.query(JobQuery()).jobs == []

    run(body())


def test_run_as_owner_on_a_gate_that_cannot_is_a_clear_site_error(tmp_path: Path) -> None:
    sites = {"remote": {"gate": "ssh", "host": "localhost", "run_as_owner": True}}

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites=sites) as wm:
            with pytest.raises(SiteUnavailable, match="cannot run jobs under their owner's account"):
                await wm.submit({"site": "remote", "command": ["true"]}, owner=ALICE)

    run(body())


# --- jobs on the real Slurm cluster ------------------------------------------------------------------


@pytest.mark.slurm
def test_a_slurm_job_runs_as_its_owner_in_a_folder_only_they_can_read(
    services: dict[str, str], data_roots: dict[str, Path], os_users: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    alice = os_users[ALICE]

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"cluster": OWNED_SITE}) as wm:
            job = await wm.submit({"site": "cluster", "script": "id -un\necho alice-secret\n"}, owner=ALICE)
            assert Path(job.folder).parent == data_roots[ALICE]
            done = await wm.wait(job.id, 90)
            assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
            folder = Path(done.folder)
            assert (folder / "stdout").read_text() == f"{ALICE}\nalice-secret\n"
            for path in (data_roots[ALICE].parent, data_roots[ALICE], folder):
                info = path.lstat()
                assert (info.st_uid, info.st_gid) == (alice.pw_uid, alice.pw_gid), path
                assert stat.S_IMODE(info.st_mode) == 0o700, path
            for name in ("job.sh", "slurm-batch.sh", "stdout"):
                assert (folder / name).stat().st_uid == alice.pw_uid, name

            spy = await wm.submit(
                {"site": "cluster", "command": ["cat", str(folder / "stdout")]},
                owner=BOB,
            )
            seen = await wm.wait(spy.id, 90)
            assert seen.state is JobState.FINISHED and seen.exit_code != 0
            assert "alice-secret" not in (Path(seen.folder) / "stdout").read_text()
            assert "Permission denied" in (Path(seen.folder) / "stderr").read_text()
            assert Path(seen.folder).stat().st_uid == os_users[BOB].pw_uid

    run(body(), timeout=240)


@pytest.mark.slurm
def test_slurm_records_the_owner_who_alone_holds_and_cancels(
    services: dict[str, str], data_roots: dict[str, Path], os_users: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    uid = os_users[ALICE].pw_uid
    start = (Path(services["SWM_TEST_SERVICES_DIR"]) / "slurm" / "log" / "slurmctld.log").stat().st_size

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"cluster": OWNED_SITE}) as wm:
            first = await wm.submit({"site": "cluster", "command": ["sleep", "120"]}, owner=ALICE)
            second = await wm.submit({"site": "cluster", "command": ["true"], "depends_on": [first.id]}, owner=ALICE)
            await _wait_state(wm, first.id, JobState.RUNNING)
            slurm_id = wm.get(first.id).native_id or ""
            listed = subprocess.run(["squeue", "-h", "-u", ALICE, "-o", "%i"], capture_output=True, text=True)
            assert slurm_id in listed.stdout.split(), listed
            assert scontrol_show_job(slurm_id)["UserId"] == f"{ALICE}({uid})"

            await _wait_state(wm, second.id, JobState.WAITING)
            second_id = wm.get(second.id).native_id or ""
            held = await wm.hold(second.id)
            assert held.state is JobState.HELD and "site's queue" in held.state_details
            assert f"hold on JobId={second_id} by uid {uid}" in _slurmctld_log(services, start)

            canceled = await wm.cancel(first.id)
            await _wait_state(wm, first.id, JobState.CANCELED)
            assert canceled.id == first.id
            assert f"REQUEST_KILL_JOB JobId={slurm_id} uid {uid}" in _slurmctld_log(services, start)
            await wm.cancel(second.id)  # held in Slurm's queue: Slurm must cancel it too (as her)
            await _wait_state(wm, second.id, JobState.CANCELED)
            assert f"REQUEST_KILL_JOB JobId={second_id} uid {uid}" in _slurmctld_log(services, start)
            assert scontrol_show_job(second_id)["JobState"] == "CANCELLED"

    run(body(), timeout=240)


@pytest.mark.slurm
def test_a_link_in_the_owners_data_root_is_not_followed(
    services: dict[str, str], data_roots: dict[str, Path], os_users: dict[str, pwd.struct_passwd], tmp_path: Path
) -> None:
    """The owner points ~/.swm/jobs at a folder of someone else: the core, running as root, refuses it."""
    victim = tmp_path / "victim"
    victim.mkdir()
    root = data_roots[ALICE]
    root.parent.mkdir(exist_ok=True)
    os.chown(root.parent, os_users[ALICE].pw_uid, os_users[ALICE].pw_gid)
    root.symlink_to(victim)

    async def body() -> None:
        async with running_manager(tmp_path / "data", sites={"cluster": OWNED_SITE}) as wm:
            job = await wm.submit({"site": "cluster", "script": "echo hi\n"}, owner=ALICE)
            failed = await wm.wait(job.id, 60)
            assert failed.state is JobState.ERROR
            assert "symbolic link" in failed.state_details

    run(body())
    assert list(victim.iterdir()) == []


@pytest.fixture
def swm_sites(services: dict[str, str]) -> dict[str, Any]:
    """The test server's sites: one Slurm site that runs jobs as their owner."""
    return {"cluster": OWNED_SITE}


@pytest.mark.slurm
async def test_api_refuses_an_owner_without_an_account(api: Any, swm_started: WorkloadManager) -> None:
    response = await api("jobs", json_body={"site": "cluster", "command": ["true"]})
    assert response.code == 400
    answer = body(response)
    assert any(error["field"] == "owner" for error in answer["errors"]), answer
    assert "OS account" in answer["message"] or "no owner" in answer["message"], answer
    assert body(await api("jobs"))["jobs"] == []


@pytest.mark.slurm
def test_a_fifo_in_place_of_a_status_file_does_not_hang_the_poll(services: dict[str, str], tmp_path: Path) -> None:
    """A job's account may put anything in its folder: the gate, running as root, must not block on a FIFO."""
    job = make_job(tmp_path, {"command": ["true"]}, site="cluster")
    job.gate_data = {"slurm_id": "999999", "folder": job.folder, "shared": True}
    fifo = Path(job.folder) / STATUS_FILE
    os.mkfifo(fifo)

    async def body() -> None:
        gate = SlurmGate(site_name="cluster", **FAST)
        try:
            await asyncio.wait_for(gate.poll([job]), 20)
        finally:
            with contextlib.suppress(OSError):  # let a reader blocked on the FIFO go (the code before the fix)
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            await gate.cleanup()

    run(body())


@pytest.fixture
def shared_inputs() -> Iterator[Path]:
    """A folder of input files every account may reach (pytest's own tmp folders are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="swm-inputs-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slurm
def test_inputs_and_arrays_land_in_the_owners_folder_as_their_files(
    services: dict[str, str],
    data_roots: dict[str, Path],
    os_users: dict[str, pwd.struct_passwd],
    shared_inputs: Path,
    tmp_path: Path,
) -> None:
    alice = os_users[ALICE]
    (shared_inputs / "data").mkdir()
    (shared_inputs / "data" / "numbers.txt").write_text("1 2 3\n")
    (shared_inputs / "data" / "link").symlink_to("numbers.txt")
    (shared_inputs / "secret.txt").write_text("root only\n")
    (shared_inputs / "secret.txt").chmod(0o600)
    sites = {"cluster": OWNED_SITE}

    async def body() -> None:
        async with running_manager(tmp_path / "data", input_root=str(shared_inputs), sites=sites) as wm:
            job = await wm.submit(
                {"site": "cluster", "script": "cat data/numbers.txt data/link\n", "input_files": ["data"]},
                owner=ALICE,
            )
            done = await wm.wait(job.id, 90)
            assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
            folder = Path(done.folder)
            assert (folder / "stdout").read_text() == "1 2 3\n1 2 3\n"
            for name in ("data", "data/numbers.txt", "data/link"):
                assert (folder / name).lstat().st_uid == alice.pw_uid, name
            assert (folder / "data" / "link").is_symlink()

            refused = await wm.submit(
                {"site": "cluster", "command": ["cat", "secret.txt"], "input_files": ["secret.txt"]}, owner=ALICE
            )
            failed = await wm.wait(refused.id, 60)
            assert failed.state is JobState.ERROR and f"not readable by {ALICE}" in failed.state_details
            assert not (Path(failed.folder) / "secret.txt").exists()

            array = await wm.submit({"site": "cluster", "script": "id -un\n", "array": "0-1"}, owner=ALICE)
            await wm.wait(array.id, 90)
            tasks = wm.store.array_tasks(array.id)  # type: ignore[union-attr]
            assert len(tasks) == 2
            for task in tasks:
                assert task.state is JobState.FINISHED and task.exit_code == 0, task.state_details
                assert (Path(task.folder) / "stdout").read_text() == f"{ALICE}\n"
                assert Path(task.folder).stat().st_uid == alice.pw_uid
            parent = Path(wm.get(array.id).folder)
            for name in ("slurm-batch.sh", "slurm-array-tasks.tsv"):
                assert (parent / name).stat().st_uid == alice.pw_uid, name

    run(body(), timeout=240)
