"""The ssh gate against the real test sshd on 127.0.0.1 (jobs detached on the remote side)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import SiteUnavailable
from swm_jupyter.core.states import JobState
from swm_jupyter.gates.ssh import SshGate
from swm_jupyter.gates.ssh_transport import SshTransport

from .services_fixtures import apply, cut_ssh_sessions, make_job, poll_until_final, run

pytestmark = pytest.mark.ssh


def gate(ssh_options: dict[str, Any], tmp_path: Path, **traits: Any) -> SshGate:
    """An ssh gate for the test sshd whose remote folders live under ``tmp_path/remote``."""
    return SshGate(
        site_name="host", remote_workdir=str(tmp_path / "remote"), poll_interval=0.3, **{**ssh_options, **traits}
    )


def test_job_runs_detached_with_files_and_live_log(ssh_options: dict[str, Any], tmp_path: Path) -> None:
    async def body() -> None:
        g = gate(ssh_options, tmp_path)
        await g.setup()
        try:
            job = make_job(
                tmp_path / "local",
                {
                    "script": "cat in.txt > out.txt; echo first; sleep 2; echo second; echo err >&2; exit 6\n",
                    "env": {"GREETING": 'it\'s "quoted" $HOME'},
                    "output_files": ["out.txt"],
                },
            )
            ok = make_job(
                tmp_path / "local",
                {"command": ["sh", "-c", 'echo "$GREETING:$SWM_JOB_ID"'], "env": {"GREETING": "it's; $(rm -rf /) `x`"}},
            )
            (Path(job.folder) / "in.txt").write_text("input\n")
            apply(job, await g.submit(job))
            apply(ok, await g.submit(ok))
            assert job.gate_data["folder"] == str(tmp_path / "remote" / job.id)
            for _ in range(40):
                live = await g.read_output(job, "stdout")
                if live:
                    break
                await asyncio.sleep(0.1)
            assert live == b"first\n"
            assert await g.read_output(job, "stdout", offset=2) == b"rst\n"
            finals = await poll_until_final(g, [job, ok], 30)
            assert finals[job.id].state is JobState.FINISHED and finals[job.id].exit_code == 6
            assert finals[ok.id].exit_code == 0
            await g.stage_out(job)
            await g.stage_out(ok)
            folder = Path(job.folder)
            assert (folder / "out.txt").read_text() == "input\n"
            assert (folder / "stdout").read_text() == "first\nsecond\n"
            assert (folder / "stderr").read_text() == "err\n"
            assert (Path(ok.folder) / "stdout").read_text() == f"it's; $(rm -rf /) `x`:{ok.id}\n"
            info = await g.describe()
            assert info["healthy"] and info["limits"]["cpus"] >= 1
            assert "PRIVATE" not in repr(info)
        finally:
            await g.cleanup()

    run(body())


def test_cancel_kills_the_process_group(ssh_options: dict[str, Any], tmp_path: Path) -> None:
    async def body() -> None:
        g = gate(ssh_options, tmp_path, kill_grace=2)
        await g.setup()
        try:
            job = make_job(tmp_path / "local", {"command": ["sh", "-c", "sleep 300 & sleep 300 & wait"]})
            apply(job, await g.submit(job))
            statuses = await g.poll([job])
            assert statuses[job.id].state is JobState.RUNNING
            pgid = int(job.gate_data["pid"])
            await g.cancel(job)
            await g.cancel(job)  # idempotent
            finals = await poll_until_final(g, [job], 20)
            assert finals[job.id].state is JobState.CANCELED
            await asyncio.sleep(0.5)
            left = (
                await asyncio.to_thread(subprocess.run, ["pgrep", "-g", str(pgid)], capture_output=True, text=True)
            ).stdout.split()
            assert left == [], f"processes of the job survived: {left}"
        finally:
            await g.cleanup()

    run(body())


def test_connection_cut_and_gate_restart(services: dict[str, str], ssh_options: dict[str, Any], tmp_path: Path) -> None:
    async def body() -> None:
        g = gate(ssh_options, tmp_path)
        await g.setup()
        jobs = [make_job(tmp_path / "local", {"command": ["sh", "-c", f"sleep 6; exit {i}"]}) for i in range(4)]
        for job in jobs:
            apply(job, await g.submit(job))
        commands_before = g.transport.commands_run
        await g.poll(jobs)
        assert g.transport.commands_run - commands_before == 1, "one SSH command per poll for all jobs"
        assert cut_ssh_sessions(services) >= 1
        await asyncio.sleep(0.3)
        statuses = await g.poll(jobs)  # reconnects
        assert all(s.state is JobState.RUNNING for s in statuses.values())
        assert g.transport.connections_made >= 2
        await g.cleanup()  # the "server" goes away; the jobs do not
        await asyncio.sleep(6.5)
        fresh = gate(ssh_options, tmp_path)  # a new process knows only gate_data
        try:
            finals = await poll_until_final(fresh, jobs, 20)
        finally:
            await fresh.cleanup()
        assert [finals[j.id].exit_code for j in jobs] == [0, 1, 2, 3]

    run(body())


def test_host_keys_are_checked(ssh_options: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")

    async def body() -> None:
        strict = SshTransport(
            ssh_options["host"],
            port=ssh_options["port"],
            username=ssh_options["user"],
            key_files=[ssh_options["key_file"]],
            known_hosts=str(empty),
            use_agent=False,
        )
        with pytest.raises(SiteUnavailable, match="host key"):
            await strict.run(["true"])
        trusting = SshTransport(
            ssh_options["host"],
            port=ssh_options["port"],
            username=ssh_options["user"],
            key_files=[ssh_options["key_file"]],
            check_host_keys=False,
            use_agent=False,
        )
        result = await trusting.run(["printf", "%s|", "a b", "$HOME", "'"])
        assert result.stdout == "a b|$HOME|'|"
        await trusting.close()

    run(body())
    assert os.environ.get("SLURM_CONF")


def test_reset_run_removes_the_last_runs_record(ssh_options: dict[str, Any], tmp_path: Path) -> None:
    """Before a requeued job runs again, the remote record of its last run is gone."""

    async def body() -> None:
        g = gate(ssh_options, tmp_path)
        await g.setup()
        try:
            job = make_job(tmp_path / "local", {"command": ["sh", "-c", "exit 3"]})
            apply(job, await g.submit(job))
            finals = await poll_until_final(g, [job], 30)
            assert finals[job.id].exit_code == 3
            record = tmp_path / "remote" / job.id / ".swm-status"
            assert "exit 3" in record.read_text()
            await g.reset_run(job)
            assert not record.exists()
            assert (await g.poll([job]))[job.id].state is not JobState.FINISHED, "the old end is not read again"
        finally:
            await g.cleanup()

    run(body())
