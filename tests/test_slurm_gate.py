"""The slurm gate against the real one-node Slurm cluster of tests/services (and its sshd)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import GateError
from swm_jupyter.core.states import JobState
from swm_jupyter.core.store import JobStore
from swm_jupyter.gates.slurm import SlurmGate, compress_indices, parse_status_file, script_sbatch_options

from .core_helpers import running_manager
from .services_fixtures import (
    apply,
    cut_ssh_sessions,
    make_job,
    poll_until_final,
    run,
    scontrol_show_job,
    start_services,
)

pytestmark = pytest.mark.slurm

FAST = {"poll_interval_min": 0.5, "poll_interval_max": 2.0, "max_status_calls_per_minute": 0, "status_interval": 0.3}


def gate(**traits: Any) -> SlurmGate:
    """A slurm gate for the test cluster, polling fast."""
    return SlurmGate(site_name="cluster", **{**FAST, **traits})


# --- pure helpers (no cluster) ----------------------------------------------------------------------


def test_helpers_parse_what_slurm_and_the_wrapper_write() -> None:
    assert compress_indices([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    record = parse_status_file("start 10 42 node\nexit 3 12\n")
    assert record is not None and (record.start, record.end, record.exit_code) == (10.0, 12.0, 3)
    assert parse_status_file(None) is None
    opts = script_sbatch_options("#!/bin/bash\n#SBATCH -c 4 --mem=1G\n#SBATCH --time 10\necho hi\n#SBATCH -N 9\n")
    assert [(n, v) for n, v, _ in opts] == [("cpus-per-task", "4"), ("mem", "1G"), ("time", "10")]


def test_sky_port_storage_and_account_become_sbatch_options(tmp_path: Path) -> None:
    """``#SWM storage`` is Slurm's --tmp; an account that only names the site (its default Sky Port account,
    which routed the job here) is not charged as a Slurm account, a real one is."""

    def options(g: SlurmGate, spec: dict[str, Any]) -> dict[str, str]:
        return dict(g._request_options(make_job(tmp_path, spec), dependencies=()))

    plain = gate()
    assert options(plain, {"command": ["true"], "resources": {"storage": "2G"}})["tmp"] == "2048M"
    assert "account" not in options(plain, {"command": ["true"], "account": "cluster"})
    assert options(plain, {"command": ["true"], "account": "proj7"})["account"] == "proj7"
    charged = gate(account="cluster")  # a site whose configured Slurm account is named like it
    assert options(charged, {"command": ["true"], "account": "cluster"})["account"] == "cluster"


# --- against the cluster -----------------------------------------------------------------------------


def test_every_resource_option_reaches_slurm(services: dict[str, str], tmp_path: Path) -> None:
    subprocess.run(["scontrol", "delete", "ReservationName=swmres"], capture_output=True)
    subprocess.run(
        [
            "scontrol",
            "create",
            "reservation",
            "ReservationName=swmres",
            "StartTime=now+1day",
            "Duration=10",
            "Nodes=" + services["SWM_TEST_SLURM_NODE"],
            "Users=root",
            "Flags=IGNORE_JOBS",  # jobs of other tests on the node must not make the reservation fail
        ],
        check=True,
        capture_output=True,
    )

    async def body() -> None:
        g = gate(qos="normal", extra_args=["--hold", "--comment=site-extra"])
        await g.setup()
        job = make_job(
            tmp_path,
            {
                "name": "all options",
                "script": "#!/bin/bash\n#SBATCH --nice=5\necho hi\n",
                "resources": {"nodes": 1, "cpus": 2, "memory": "300M", "gpus": 1, "walltime": "00:07:00"},
                "slurm": {"partition": "other", "account": "acc1", "constraint": "fast", "reservation": "swmres"},
            },
        )
        parent = make_job(tmp_path, {"command": ["true"], "array": "0-5%2", "resources": {"cpus": 1}})
        try:
            apply(job, await g.submit(job))
            fields = scontrol_show_job(job.native_id or "")
            assert fields["NumNodes"] == "1"
            assert fields["CPUs/Task"] == "2"
            assert fields["MinMemoryNode"] == "300M"
            assert "gpu:1" in fields.get("TresPerNode", "")
            assert fields["TimeLimit"] == "00:07:00"
            assert fields["Partition"] == "other"
            assert fields["Account"] == "acc1"
            assert fields["Features"] == "fast"
            assert fields["Reservation"] == "swmres"
            assert fields["Comment"] == "site-extra"
            assert fields["Nice"] == "5"  # the script's own #SBATCH line is kept
            assert fields["Priority"] == "0"  # held by the site's extra --hold
            # A dependency with Slurm's own id, and an array with a throttle, in one sbatch.
            tasks = [make_job(tmp_path, {"command": ["true"]}, array_parent=parent.id, array_index=i) for i in range(6)]
            statuses = await g.submit_array(parent, tasks, [("afterok", job.native_id or "")])
            array_id = statuses[tasks[0].id].native_id.split("_")[0]  # type: ignore[union-attr]
            assert [statuses[t.id].native_id for t in tasks] == [f"{array_id}_{i}" for i in range(6)]
            afields = scontrol_show_job(f"{array_id}_0")
            assert afields["ArrayTaskThrottle"] == "2"
            assert afields["Dependency"].startswith(f"afterok:{job.native_id}")
            for t in tasks:
                apply(t, statuses[t.id])
            polled = await g.poll([job, *tasks])
            assert polled[job.id].state is JobState.WAITING and polled[job.id].details == "held"
            assert polled[tasks[0].id].details == "held"  # the site's --hold applies to every job
        finally:
            for j in [job, *[t for t in locals().get("tasks", [])]]:
                if j.native_id:
                    await g.cancel(j)
            await g.cleanup()

    try:
        run(body())
    finally:
        subprocess.run(["scontrol", "delete", "ReservationName=swmres"], capture_output=True)


def test_array_with_throttle_and_bounded_status_calls(services: dict[str, str], tmp_path: Path) -> None:
    async def body() -> None:
        g = gate()
        parent = make_job(
            tmp_path, {"script": "echo task $SWM_ARRAY_TASK_ID of $SWM_ARRAY_JOB_ID; sleep 2\n", "array": "0-5%2"}
        )
        tasks = []
        for i in range(6):
            task = make_job(tmp_path, {"script": parent.spec.script or ""}, array_parent=parent.id, array_index=i)
            tasks.append(task)
        statuses = await g.submit_array(parent, tasks)
        for t in tasks:
            apply(t, statuses[t.id])
        before = dict(g.command_counts)
        polls = 0
        orig_poll = g.poll

        async def counting_poll(jobs: Any) -> Any:
            nonlocal polls
            polls += 1
            start = dict(g.command_counts)
            result = await orig_poll(jobs)
            made = sum(g.command_counts.values()) - sum(start.values())
            assert made <= 2, "at most one squeue and one sacct per poll, whatever the number of jobs"
            return result

        g.poll = counting_poll  # type: ignore[method-assign]
        finals = await poll_until_final(g, tasks, 120)
        assert all(s.state is JobState.FINISHED and s.exit_code == 0 for s in finals.values())
        assert before.get("sbatch") == 1, "the whole array is one sbatch"
        spans = sorted((s.start_time or 0, s.end_time or 0) for s in finals.values())
        for start, _ in spans:
            running = sum(1 for s, e in spans if s <= start < e)
            assert running <= 2, f"the throttle %2 was not honoured: {spans}"
        for t in tasks:
            text = (Path(t.folder) / "stdout").read_text()
            assert text == f"task {t.array_index} of {parent.id}\n"
        assert polls > 0

    run(body())


def test_dependencies_hold_release_and_cancel(services: dict[str, str], tmp_path: Path) -> None:
    async def body() -> None:
        g = gate()
        first = make_job(tmp_path, {"command": ["sh", "-c", "sleep 3"]})
        failing = make_job(tmp_path, {"command": ["sh", "-c", "exit 4"]})
        apply(first, await g.submit(first))
        apply(failing, await g.submit(failing))
        after = make_job(tmp_path, {"command": ["sh", "-c", "echo after"]})
        apply(after, await g.submit(after, [("afterok", first.native_id or "")]))
        never = make_job(tmp_path, {"command": ["true"]})
        apply(never, await g.submit(never, [("afterok", failing.native_id or "")]))
        assert await g.hold(after)
        seen: dict[str, list[str]] = {}
        finals = await poll_until_final(g, [first, failing], 60, seen=seen)
        assert finals[failing.id].exit_code == 4
        status = await poll_until_details(g, after, "held")
        assert status.state is JobState.WAITING
        assert await g.release(after)
        done = await poll_until_final(g, [after], 60, seen=seen)
        assert done[after.id].state is JobState.FINISHED and done[after.id].exit_code == 0
        assert (Path(after.folder) / "stdout").read_text() == "after\n"
        status = await poll_until_details(g, never, "dependency never satisfied")
        assert status.state is JobState.WAITING
        await g.cancel(never)
        await g.cancel(never)  # idempotent
        canceled = await poll_until_final(g, [never], 60)
        assert canceled[never.id].state is JobState.CANCELED
        long = make_job(tmp_path, {"command": ["sleep", "300"]})
        apply(long, await g.submit(long))
        await poll_until_state(g, long, JobState.RUNNING)
        await g.cancel(long)
        canceled = await poll_until_final(g, [long], 60)
        assert canceled[long.id].state is JobState.CANCELED

    run(body())


async def poll_until_details(g: SlurmGate, job: Any, details: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = (await g.poll([job])).get(job.id)
        if status is not None and status.details == details:
            return status
        assert time.monotonic() < deadline, f"never saw {details!r}; last: {status}"
        await asyncio.sleep(0.5)


async def poll_until_state(g: SlurmGate, job: Any, state: JobState, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = (await g.poll([job])).get(job.id)
        if status is not None and status.state is state:
            return status
        assert time.monotonic() < deadline, f"never {state}; last: {status}"
        await asyncio.sleep(0.3)


def test_refused_job_and_script_conflicts(services: dict[str, str], tmp_path: Path) -> None:
    async def body() -> None:
        g = gate()
        huge = make_job(tmp_path, {"command": ["true"], "resources": {"cpus": 64}})
        with pytest.raises(GateError) as info:
            await g.submit(huge)
        message = info.value.message
        assert message.startswith("Slurm refused the job: sbatch: error: Batch job submission failed:")
        assert "More processors requested than permitted" in message or "node configuration" in message
        clash = make_job(
            tmp_path, {"script": "#!/bin/bash\n#SBATCH --cpus-per-task=4\necho hi\n", "resources": {"cpus": 2}}
        )
        errors = g.validate(clash)
        assert errors and "#SBATCH --cpus-per-task=4" in errors[0]["message"]
        with pytest.raises(GateError):
            await g.submit(clash)
        own = make_job(tmp_path, {"script": "#!/bin/bash\n#SBATCH --cpus-per-task=2\n#SBATCH -t 5\necho own\n"})
        assert g.validate(own) == []
        apply(own, await g.submit(own))
        fields = scontrol_show_job(own.native_id or "")
        assert fields["CPUs/Task"] == "2" and fields["TimeLimit"] == "00:05:00"
        finals = await poll_until_final(g, [own], 60)
        assert finals[own.id].exit_code == 0
        assert (Path(own.folder) / "stdout").read_text() == "own\n"

    run(body())


def test_slurm_over_ssh_shared_and_staged(
    services: dict[str, str], slurm_ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    async def body() -> None:
        shared = gate(**slurm_ssh_options)
        remote_root = tmp_path / "cluster-side"
        staged = gate(**slurm_ssh_options, remote_workdir=str(remote_root))
        await shared.setup()
        await staged.setup()
        try:
            a = make_job(tmp_path / "a", {"command": ["sh", "-c", "echo via-ssh; exit 2"]})
            b = make_job(
                tmp_path / "b",
                {
                    "script": "cat input.txt > output.txt; echo line1; sleep 3; echo line2\n",
                    "output_files": ["output.txt"],
                },
            )
            (Path(b.folder) / "input.txt").write_text("data in\n")
            apply(a, await shared.submit(a))
            apply(b, await staged.submit(b))
            assert b.gate_data["folder"] == str(remote_root / b.id) and not b.gate_data["shared"]
            await poll_until_state(staged, b, JobState.RUNNING)
            for _ in range(40):
                live = await staged.read_output(b, "stdout")
                if live:
                    break
                await asyncio.sleep(0.25)
            assert live.startswith(b"line1\n")
            assert not (Path(b.folder) / "output.txt").exists()
            finals = await poll_until_final(shared, [a], 60)
            assert finals[a.id].exit_code == 2 and (Path(a.folder) / "stdout").read_text() == "via-ssh\n"
            finals = await poll_until_final(staged, [b], 60)
            assert finals[b.id].exit_code == 0
            await staged.stage_out(b)
            assert (Path(b.folder) / "output.txt").read_text() == "data in\n"
            assert (Path(b.folder) / "stdout").read_text() == "line1\nline2\n"
            info = await staged.describe()
            assert info["healthy"] and info["limits"]["cpus"] >= 2
            assert "BEGIN" not in repr(info) and "id_ed25519" not in repr(info)
        finally:
            await shared.cleanup()
            await staged.cleanup()

    run(body())


def test_ssh_connection_cut_mid_run(
    services: dict[str, str], slurm_ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    async def body() -> None:
        g = gate(**slurm_ssh_options, remote_workdir=str(tmp_path / "remote"))
        await g.setup()
        try:
            jobs = [make_job(tmp_path, {"command": ["sh", "-c", f"sleep 5; exit {i}"]}) for i in range(3)]
            for job in jobs:
                apply(job, await g.submit(job))
            for job in jobs:
                await poll_until_state(g, job, JobState.RUNNING)
            assert cut_ssh_sessions(services) >= 1
            finals = await poll_until_final(g, jobs, 90)
            assert [finals[j.id].exit_code for j in jobs] == [0, 1, 2]
            assert all(finals[j.id].state is JobState.FINISHED for j in jobs)
            assert g.transport.connections_made >= 2, "the gate made a new connection"
        finally:
            await g.cleanup()

    run(body())


def test_controller_outage_and_walltime(services: dict[str, str], tmp_path: Path) -> None:
    """slurmctld stopped for 30 s while jobs run: none is marked failed, all end with the right codes."""

    async def body() -> None:
        g = gate()
        specs = [
            {"command": ["sh", "-c", "sleep 8; exit 0"]},
            {"command": ["sh", "-c", "sleep 12; exit 5"]},
            {"command": ["sh", "-c", "sleep 40; exit 7"]},
            {"command": ["sleep", "600"], "resources": {"walltime": "1m"}},
        ]
        jobs = [make_job(tmp_path, s) for s in specs]
        for job in jobs:
            apply(job, await g.submit(job))
        for job in jobs:
            await poll_until_state(g, job, JobState.RUNNING)
        pid = int(await asyncio.to_thread(Path(services["SWM_TEST_SLURMCTLD_PIDFILE"]).read_text))
        os.kill(pid, 15)
        outage_end = time.monotonic() + 30
        finals: dict[str, Any] = {}
        while time.monotonic() < outage_end:
            statuses = await g.poll([j for j in jobs if j.id not in finals])
            for job_id, status in statuses.items():
                assert status.state in (JobState.RUNNING, JobState.FINISHED), status
                if status.state.final:
                    finals[job_id] = status
            await asyncio.sleep(1)
        await asyncio.to_thread(start_services)
        rest = await poll_until_final(g, [j for j in jobs if j.id not in finals], 150)
        finals.update(rest)
        codes = [finals[j.id].exit_code for j in jobs]
        assert codes[:3] == [0, 5, 7]
        assert all(finals[j.id].state is JobState.FINISHED for j in jobs)
        assert finals[jobs[3].id].signal == 15 and codes[3] == 143

    run(body(), timeout=260)


def test_gate_restart_reconciles(services: dict[str, str], tmp_path: Path) -> None:
    async def body() -> None:
        first = gate()
        jobs = [make_job(tmp_path, {"command": ["sh", "-c", f"sleep {2 + i}; exit {i}"]}) for i in range(3)]
        for job in jobs:
            apply(job, await first.submit(job))
        await first.cleanup()
        await asyncio.sleep(3)
        second = gate()  # a new process: only job.gate_data and job.native_id are known
        finals = await poll_until_final(second, jobs, 60)
        assert [finals[j.id].exit_code for j in jobs] == [0, 1, 2]

    run(body())


def test_workload_manager_end_to_end_and_restart(services: dict[str, str], tmp_path: Path) -> None:
    sites = {"cluster": {"gate": "slurm", **FAST}}

    async def first() -> tuple[list[str], str]:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            quick = await wm.submit({"site": "cluster", "script": "#SWM cpus 2\necho quick\nexit 3\n"})
            done = await wm.wait(quick.id, 60)
            assert done.state is JobState.FINISHED and done.exit_code == 3
            assert (Path(done.folder) / "stdout").read_text() == "quick\n"
            arr = await wm.submit(
                {"site": "cluster", "command": ["sh", "-c", "sleep 4; exit $SWM_ARRAY_TASK_ID"], "array": "0-2%2"}
            )
            slow = await wm.submit(
                {
                    "site": "cluster",
                    "command": ["sh", "-c", "sleep 5; echo slow > out.txt"],
                    "output_files": ["out.txt"],
                }
            )
            dep = await wm.submit({"site": "cluster", "command": ["sh", "-c", "echo dep"], "depends_on": [slow.id]})
            for _ in range(100):
                if wm.get(slow.id).state is JobState.RUNNING:
                    break
                await asyncio.sleep(0.1)
            assert wm.get(slow.id).state is JobState.RUNNING
        return [slow.id, dep.id], arr.id  # the Slurm jobs keep running without the manager

    ids, array_id = run(first())
    time.sleep(2)

    async def second() -> None:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            slow, dep = [await wm.wait(i, 90) for i in ids]
            assert slow.state is JobState.FINISHED and slow.exit_code == 0
            assert (Path(slow.folder) / "out.txt").read_text() == "slow\n"
            assert dep.state is JobState.FINISHED and dep.exit_code == 0
            assert (Path(dep.folder) / "stdout").read_text() == "dep\n"
            parent = await wm.wait(array_id, 90)
            assert parent.state.final
            tasks = wm.store.array_tasks(array_id)  # type: ignore[union-attr]
            assert sorted((t.array_index, t.exit_code) for t in tasks) == [(0, 0), (1, 1), (2, 2)]

    run(second())


def test_a_job_whose_launch_a_crash_interrupted_is_found_by_its_comment(
    services: dict[str, str], tmp_path: Path
) -> None:
    """The server died after sbatch but before storing the Slurm id: the job is found, not run again."""

    async def body() -> None:
        first = gate()
        job = make_job(tmp_path, {"command": ["sh", "-c", "sleep 2; exit 5"]})
        status = await first.submit(job)
        await first.cleanup()
        slurm_id = status.native_id
        assert slurm_id and scontrol_show_job(slurm_id)["Comment"] == f"swm:{job.id}"
        job.native_id = None
        job.gate_data, job.launching = {}, True  # what the store holds after such a crash
        other = make_job(tmp_path, {"command": ["true"]})
        other.launching = True  # never reached Slurm
        second = gate()
        found = await second.poll([job, other])
        assert found[job.id].native_id == slurm_id
        assert other.id not in found, "a job Slurm never saw is left to be queued again"
        apply(job, found[job.id])
        finals = await poll_until_final(second, [job], 60)
        assert finals[job.id].exit_code == 5

    run(body())


def test_manager_holds_and_releases_a_job_waiting_in_slurm(services: dict[str, str], tmp_path: Path) -> None:
    sites = {"cluster": {"gate": "slurm", **FAST}}

    async def body() -> None:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            first = await wm.submit({"site": "cluster", "command": ["sleep", "4"]})
            second = await wm.submit({"site": "cluster", "command": ["true"], "depends_on": [first.id]})
            for _ in range(200):
                if wm.get(second.id).state is JobState.WAITING and wm.get(second.id).native_id:
                    break
                await asyncio.sleep(0.1)
            assert wm.get(second.id).state is JobState.WAITING, "handed to Slurm with a Slurm dependency"
            held = await wm.hold(second.id)
            assert held.state is JobState.HELD and "site's queue" in held.state_details
            slurm_id = held.native_id or ""
            assert scontrol_show_job(slurm_id)["Priority"] == "0", "held in Slurm itself"
            await asyncio.sleep(2)
            assert wm.get(second.id).state is JobState.HELD, "polling keeps it held"
            released = await wm.release(second.id)
            assert released.state is JobState.WAITING
            done = await wm.wait(second.id, 90)
            assert done.state is JobState.FINISHED and done.exit_code == 0

    run(body())


def test_an_array_whose_launch_a_crash_interrupted_is_found_and_runs_once(
    services: dict[str, str], tmp_path: Path
) -> None:
    """The server died after ``sbatch --array`` but before storing the tasks' Slurm ids: the
    restarted manager finds the array by its comment and tracks its tasks; nothing runs twice."""
    sites = {"cluster": {"gate": "slurm", **FAST}}
    runs = tmp_path / "runs"
    runs.mkdir()
    script = f"echo ran >> {runs}/$SWM_ARRAY_TASK_ID; sleep 3; exit 3\n"

    async def first() -> tuple[str, str]:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            parent = await wm.submit({"site": "cluster", "script": script, "array": "0-3%2"})
            for _ in range(200):
                tasks = wm._with_tasks(wm.get(parent.id))[1:]
                if tasks and all(t.native_id for t in tasks):
                    break
                await asyncio.sleep(0.1)
            array_id = (tasks[0].native_id or "").split("_")[0]
            assert array_id, "the array reached Slurm"
        return parent.id, array_id

    parent_id, array_id = run(first())
    # What the store holds after a crash right after sbatch: the parent marked as being launched,
    # its tasks without Slurm ids (still queued).
    store = JobStore(str(tmp_path / "data" / "jobs.sqlite"))
    try:
        parent = store.get(parent_id)
        parent.launching = True
        tasks = store.array_tasks(parent_id)
        for task in tasks:
            task.native_id = None
            task.gate_data = {}
            task.state = JobState.QUEUED
        store.update_jobs([parent, *tasks], events=False)
    finally:
        store.close()

    async def second() -> None:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            done = await wm.wait(parent_id, 120)
            assert done.state is JobState.FINISHED and done.exit_code == 3, done.state_details
            tasks = wm._with_tasks(done)[1:]
            assert all(t.exit_code == 3 for t in tasks)
            assert {(t.native_id or "").split("_")[0] for t in tasks} == {array_id}, "the same Slurm array"
            assert any("found in Slurm after a restart" in h.details for t in tasks for h in t.history)

    run(second())
    assert sorted(p.name for p in runs.iterdir()) == ["0", "1", "2", "3"]
    assert all(p.read_text() == "ran\n" for p in runs.iterdir()), "every task ran exactly once"


def test_a_requeued_job_is_not_taken_for_its_last_run(services: dict[str, str], tmp_path: Path) -> None:
    """The last run's status file must not end the new run while Slurm still has it pending."""
    sites = {"cluster": {"gate": "slurm", **FAST}}
    script = "if [ -f ran-once ]; then exit 0; fi; touch ran-once; exit 3\n"

    async def body() -> None:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            job = await wm.submit({"site": "cluster", "script": script})
            first = await wm.wait(job.id, 90)
            assert first.state is JobState.FINISHED and first.exit_code == 3
            await wm.requeue(job.id)
            again = await wm.wait(job.id, 90)
            assert again.state is JobState.FINISHED and again.exit_code == 0, again.state_details
            assert "".join(h.state.code for h in again.history).count("R") == 2, "it ran twice, seen running twice"

    run(body())


def test_a_scripts_own_output_files_and_folder_are_honoured(services: dict[str, str], tmp_path: Path) -> None:
    sites = {"cluster": {"gate": "slurm", **FAST}}
    work = tmp_path / "elsewhere"
    work.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(work, 0o777)
    script = (
        "#!/bin/bash\n"
        "#SBATCH --output=fails-%j-%x.log\n"
        "#SBATCH -e errs.log\n"
        "#SBATCH --job-name=mine\n"
        f"#SBATCH --chdir={work}\n"
        'echo "out $SWM_JOB_NAME $SLURM_JOB_NAME $PWD $SWM_WORKDIR"\necho err >&2\nexit 2\n'
    )
    in_folder = "#!/bin/bash\n#SBATCH -o fails.log\necho to the job folder\necho and its errors >&2\n"

    async def body() -> None:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            job = await wm.submit({"site": "cluster", "script": script})
            assert job.spec.name == "mine", "the script's --job-name names the job"
            kept = await wm.submit({"site": "cluster", "script": in_folder})
            job = await wm.wait(job.id, 90)
            kept = await wm.wait(kept.id, 90)
            assert job.state is JobState.FINISHED and job.exit_code == 2
            line = f"out mine mine {work} {work}\n"
            assert (work / f"fails-{job.native_id}-mine.log").read_text() == line, "where the script says"
            assert (work / "errs.log").read_text() == "err\n"
            assert await wm.read_output(job.id, "stdout") == line.encode(), "and the API reads the same output"
            assert await wm.read_output(job.id, "stderr") == b"err\n"
            assert kept.state is JobState.FINISHED and kept.exit_code == 0
            merged = (Path(kept.folder) / "fails.log").read_text()
            assert sorted(merged.splitlines()) == ["and its errors", "to the job folder"], "Slurm merges them"
            assert await wm.read_output(kept.id, "stdout") == b"to the job folder\n"
            assert await wm.read_output(kept.id, "stderr") == b"and its errors\n"
            assert "fails.log" in [f["path"] for f in wm.list_files(kept.id)]

    run(body())
