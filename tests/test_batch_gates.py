"""The batch gates (Slurm, SSH) with paths that have spaces and values that try to add sbatch
options, against the real test Slurm and sshd; and the one wrapper template they share."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import GateError
from swm_jupyter.core.states import JobState
from swm_jupyter.gates.batch import WRAPPER_TEMPLATE
from swm_jupyter.gates.slurm import SlurmGate
from swm_jupyter.gates.ssh import SshGate

from .core_helpers import running_manager
from .services_fixtures import apply, make_job, poll_until_final, run
from .test_slurm_gate import FAST


def _squeue_named(name: str) -> list[str]:
    """Slurm jobs (any state) called ``name``, as ``id|name|comment``."""
    listed = subprocess.run(
        ["squeue", "--states=all", "-h", "-n", name, "-o", "%i|%j|%k"], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


def test_slurm_and_ssh_render_one_template(tmp_path: Path) -> None:
    job = make_job(tmp_path, {"command": ["echo", "it's $HOME"]}, site="x")
    scripts = {
        "slurm": SlurmGate(site_name="c")._batch_script(job, [], folder=job.folder),
        "ssh": SshGate(site_name="s", host="example.invalid")._wrapper(job, job.folder),
    }
    fixed = [line for line in WRAPPER_TEMPLATE.splitlines() if "@" not in line]
    assert len(fixed) >= 8
    for gate, script in scripts.items():
        lines = script.splitlines()
        assert lines[0] == ("#!/bin/bash" if gate == "slurm" else "#!/bin/sh")
        positions = [lines.index(line) for line in fixed]  # each fixed line of the template, in order
        assert positions == sorted(positions), gate
        assert any(line.startswith("echo 'it'\"'\"'s $HOME'") for line in lines), gate


@pytest.mark.slurm
def test_a_data_dir_with_a_space_works_on_slurm(services: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "data dir"
    sites = {"cluster": {"gate": "slurm", **FAST}}

    async def body() -> None:
        async with running_manager(data, input_root=str(tmp_path), sites=sites) as wm:
            script = '#!/bin/bash\necho "in $PWD" > out.txt\necho hello from "$SWM_JOB_NAME"\n'
            job = await wm.submit({"site": "cluster", "script": script, "name": "spaced", "output_files": ["out.txt"]})
            array = await wm.submit(
                {"site": "cluster", "command": ["sh", "-c", "echo task $SWM_ARRAY_TASK_ID"], "array": "0-1"}
            )
            done = await wm.wait(job.id, 90)
            assert " " in done.folder and done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
            assert (Path(done.folder) / "stdout").read_text() == "hello from spaced\n"
            assert (Path(done.folder) / "out.txt").read_text() == f"in {done.folder}\n"
            parent = await wm.wait(array.id, 90)
            assert parent.state is JobState.FINISHED, parent.state_details
            tasks = sorted(wm.store.array_tasks(array.id), key=lambda t: t.array_index or 0)  # type: ignore[union-attr]
            assert [(Path(t.folder) / "stdout").read_text() for t in tasks] == ["task 0\n", "task 1\n"]

    run(body(), timeout=240)


@pytest.mark.slurm
def test_a_remote_workdir_with_a_space_works_on_slurm_over_ssh(
    services: dict[str, str], slurm_ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    async def body() -> None:
        gate = SlurmGate(
            site_name="cluster", remote_workdir=str(tmp_path / "cluster side"), **FAST, **slurm_ssh_options
        )
        await gate.setup()
        try:
            job = make_job(tmp_path / "local dir", {"script": "cat 'in put.txt' > out.txt; echo staged\n"})
            (Path(job.folder) / "in put.txt").write_text("data\n")
            apply(job, await gate.submit(job))
            assert " " in job.gate_data["folder"] and not job.gate_data["shared"]
            finals = await poll_until_final(gate, [job], 90)
            assert finals[job.id].exit_code == 0, finals[job.id].details
            await gate.stage_out(job)
            assert (Path(job.folder) / "out.txt").read_text() == "data\n"
            assert (Path(job.folder) / "stdout").read_text() == "staged\n"
        finally:
            await gate.cleanup()

    run(body(), timeout=180)


@pytest.mark.ssh
def test_a_remote_workdir_with_a_space_works_on_ssh(ssh_options: dict[str, Any], tmp_path: Path) -> None:
    async def body() -> None:
        gate = SshGate(site_name="host", remote_workdir=str(tmp_path / "remote dir"), poll_interval=0.3, **ssh_options)
        await gate.setup()
        try:
            job = make_job(tmp_path / "local dir", {"command": ["sh", "-c", 'cat "in put.txt"; pwd'], "workdir": None})
            (Path(job.folder) / "in put.txt").write_text("data\n")
            apply(job, await gate.submit(job))
            finals = await poll_until_final(gate, [job], 30)
            assert finals[job.id].exit_code == 0, finals[job.id].details
            await gate.stage_out(job)
            assert (Path(job.folder) / "stdout").read_text() == f"data\n{tmp_path / 'remote dir' / job.id}\n"
        finally:
            await gate.cleanup()

    run(body())


@pytest.mark.slurm
def test_a_value_cannot_add_an_sbatch_option(services: dict[str, str], tmp_path: Path) -> None:
    marker = f"pwned-{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        gate = SlurmGate(site_name="cluster", **FAST)
        await gate.setup()
        started = []
        try:
            # A value with a space is one value: the comment is all of it, the name stays ours.
            extra = make_job(
                tmp_path,
                {"command": ["true"], "name": "extra", "slurm": {"extra_args": [f"--comment=a --job-name={marker}"]}},
            )
            apply(extra, await gate.submit(extra))
            started.append(extra)
            [row] = [r for r in _squeue_all() if r.startswith(f"{extra.native_id}|")]
            assert row == f"{extra.native_id}|extra|a --job-name={marker}"
            # A partition with an option in it is a partition Slurm does not have: refused, nothing added.
            bad = make_job(tmp_path, {"command": ["true"], "slurm": {"partition": f"debug --job-name={marker}"}})
            with pytest.raises(GateError, match="Slurm refused the job"):
                await gate.submit(bad)
            # A newline in a variable stays in the variable (never an #SBATCH line of its own).
            value = f"v\n#SBATCH --job-name={marker}\n"
            env = make_job(
                tmp_path, {"command": ["sh", "-c", 'printf %s "$NOTE"'], "name": "env", "env": {"NOTE": value}}
            )
            apply(env, await gate.submit(env))
            started.append(env)
            finals = await poll_until_final(gate, [extra, env], 90)
            assert finals[env.id].exit_code == 0 and (Path(env.folder) / "stdout").read_text() == value
        finally:
            for job in started:
                await gate.cancel(job)
            await gate.cleanup()

    run(body(), timeout=180)
    assert _squeue_named(marker) == []


def _squeue_all() -> list[str]:
    listed = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%j|%k"], capture_output=True, text=True, check=True
    )
    return listed.stdout.splitlines()
