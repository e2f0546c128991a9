"""A job's ``private_env``: the job's process gets it; no record, event, store file or job file holds it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import ValidationError
from swm_jupyter.core.gate_contract import Gate
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState

from .core_helpers import run, running_manager, with_manager

SECRET = "s3cr3t-value-that-must-stay-in-the-process"


class GateWithoutPrivateEnv(Gate):
    """A site that cannot keep private variables (every gate shipped can, so the test brings one)."""

    kind = "no-private-env"


def files_holding(root: Path, text: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``text``."""
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_private_env_reaches_the_process_only(tmp_path: Path) -> None:
    """The job sees the variable; its record, its events, the store and the job folder never hold the value."""

    async def body(wm: WorkloadManager) -> None:
        request: dict[str, Any] = {
            "command": ["sh", "-c", 'case "$HUB_TOKEN" in s3cr3t-*) echo present;; *) echo missing;; esac'],
            "env": {"PLAIN": "shown"},
            "private_env": {"HUB_TOKEN": SECRET},
        }
        job = await wm.submit(request)
        done = await wm.wait(job.id, timeout=60)
        assert done.state is JobState.FINISHED and done.exit_code == 0
        assert Path(done.folder, "stdout").read_text() == "present\n"
        assert SECRET not in json.dumps(done.to_dict()), "the value is in the job record"
        assert SECRET not in json.dumps(wm.events_after(0)), "the value is in an event"
        assert done.spec.env == {"PLAIN": "shown"}

    run(with_manager(tmp_path, body))
    assert files_holding(tmp_path, SECRET) == [], "the value is in a file of the data folder"


def test_private_env_is_checked_and_refused_where_a_site_cannot_keep_it(tmp_path: Path) -> None:
    """Bad names are a 400 naming the variable (never its value); a site without support refuses it."""

    async def body(wm: WorkloadManager) -> None:
        with pytest.raises(ValidationError) as bad:
            await wm.submit({"command": ["true"], "private_env": {"1BAD": SECRET}})
        assert bad.value.errors == [
            {"field": "private_env.1BAD", "message": "needs a valid variable name and a string value"}
        ]
        assert SECRET not in str(bad.value)
        with pytest.raises(ValidationError) as refused:
            await wm.submit({"command": ["true"], "site": "remote", "private_env": {"TOKEN": SECRET}})
        assert refused.value.errors[0]["field"] == "private_env", refused.value.errors
        assert "cannot pass private variables" in refused.value.errors[0]["message"]

    sites = {"local": {"gate": "local"}, "remote": {"gate": "tests.test_private_env:GateWithoutPrivateEnv"}}
    run(with_manager(tmp_path, body, sites=sites))


@pytest.mark.slurm
def test_private_env_on_slurm_reaches_the_job_and_leaves_no_file(services: dict[str, str], tmp_path: Path) -> None:
    """On the one-node Slurm: the job sees the variable; no file of the job folder holds it, run or canceled."""
    sites = {"cluster": {"gate": "slurm", "poll_interval_min": 0.5, "poll_interval_max": 2.0}}
    check = 'case "$HUB_TOKEN" in s3cr3t-*) echo present;; *) echo missing;; esac'

    async def body() -> None:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            secret = {"HUB_TOKEN": SECRET}
            ran = await wm.submit({"site": "cluster", "command": ["sh", "-c", check], "private_env": secret})
            done = await wm.wait(ran.id, 90)
            assert done.state is JobState.FINISHED and Path(done.folder, "stdout").read_text() == "present\n", done
            first = await wm.submit({"site": "cluster", "command": ["sleep", "300"]})
            pending = await wm.submit(
                {"site": "cluster", "command": ["true"], "private_env": secret, "depends_on": [first.id]}
            )
            for _ in range(100):  # handed to Slurm, pending there behind its dependency
                if wm.get(pending.id).native_id:
                    break
                await asyncio.sleep(0.2)
            assert files_holding(Path(wm.get(pending.id).folder), SECRET), "the pending job's private file"
            await wm.cancel(pending.id)
            await wm.cancel(first.id)
            await wm.wait(pending.id, 60)
            await wm.wait(first.id, 60)

    run(body(), timeout=180)
    assert files_holding(tmp_path, SECRET) == [], "the value is in a file"


@pytest.mark.ssh
def test_private_env_on_ssh_reaches_the_job_and_leaves_no_file(
    services: dict[str, str], ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    """Over the loopback sshd: the job sees the variable; no file here or in the remote folder holds it."""
    remote = tmp_path / "remote"
    sites = {"host": {"gate": "ssh", **ssh_options, "remote_workdir": str(remote), "poll_interval": 0.3}}
    check = 'case "$HUB_TOKEN" in s3cr3t-*) echo present;; *) echo missing;; esac'

    async def body() -> None:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            secret = {"HUB_TOKEN": SECRET}
            ran = await wm.submit({"site": "host", "command": ["sh", "-c", check], "private_env": secret})
            done = await wm.wait(ran.id, 90)
            assert done.state is JobState.FINISHED and Path(done.folder, "stdout").read_text() == "present\n", done
            assert json.dumps(done.to_dict()).find(SECRET) < 0
            long = await wm.submit({"site": "host", "command": ["sleep", "300"], "private_env": secret})
            for _ in range(100):
                if wm.get(long.id).native_id:
                    break
                await asyncio.sleep(0.2)
            await wm.cancel(long.id)
            await wm.wait(long.id, 60)

    run(body(), timeout=180)
    assert files_holding(tmp_path, SECRET) == [], "the value is in a file"
