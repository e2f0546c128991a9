"""The local site with real processes: exit codes, cancel, walltime, dependencies, arrays, files."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from swm_jupyter.core.errors import InvalidTransition, JobNotFound, PathNotAllowed, ValidationError
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState

from .core_helpers import run, with_manager


def test_two_hundred_jobs_with_mixed_exit_codes(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        jobs = await wm.submit_many([{"command": ["sh", "-c", f"echo {i}; exit {i % 4}"]} for i in range(200)])
        done = await asyncio.gather(*(wm.wait(j.id, timeout=120) for j in jobs))
        for i, job in enumerate(done):
            assert job.state is JobState.FINISHED
            assert job.exit_code == i % 4
            assert Path(job.folder, "stdout").read_text() == f"{i}\n"
            # the whole job folder: its output and one status record (start with pid, then exit)
            assert sorted(os.listdir(job.folder)) == [".swm-status", "stderr", "stdout"]
            record = Path(job.folder, ".swm-status").read_text().split("\n")
            start, exit_line = record[0].split(), record[1].split()
            assert start[0] == "start" and start[2] == job.native_id and record[2:] == [""]
            assert exit_line[:2] == ["exit", str(i % 4)] and float(start[1]) <= float(exit_line[2])
            assert job.start_time and job.end_time and job.submit_time <= job.start_time <= job.end_time
            assert [h.state for h in job.history] == [
                JobState.QUEUED,
                JobState.WAITING,
                JobState.RUNNING,
                JobState.FINISHED,
            ]

    run(with_manager(tmp_path, body))


def test_environment_and_script_directives(tmp_path: Path) -> None:
    script = (
        "#!/bin/sh\n#SWM name env-check\n#SWM mem 64M\necho $SWM_JOB_ID $SWM_JOB_NAME $SWM_WORKDIR $GREETING\npwd\n"
    )

    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit_script(script, {"env": {"GREETING": "hi"}})
        job = await wm.wait(job.id, timeout=30)
        assert job.spec.name == "env-check" and job.spec.resources.memory_mb == 64
        first, cwd = Path(job.folder, "stdout").read_text().splitlines()
        assert first == f"{job.id} env-check {job.folder} hi"
        assert cwd == job.folder
        array = await wm.submit({"command": ["sh", "-c", "echo $SWM_ARRAY_TASK_ID"], "array": "3-5"})
        array = await wm.wait(array.id, timeout=30)
        assert array.state is JobState.FINISHED
        outputs = sorted(p.read_text() for p in Path(array.folder).glob("task-*/stdout"))
        assert outputs == ["3\n", "4\n", "5\n"]

    run(with_manager(tmp_path, body))


def test_cancel_kills_the_job_and_its_children(tmp_path: Path) -> None:
    script = "sleep 300 & echo $! > kids\nsleep 300 & echo $! >> kids\necho started\nwait\n"

    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"script": script})
        kids = Path(wm.get(job.id).folder, "kids")
        for _ in range(200):
            if kids.exists() and len(kids.read_text().split()) == 2:
                break
            await asyncio.sleep(0.05)
        pids = [int(p) for p in kids.read_text().split()]
        assert all(_alive(p) for p in pids)
        await wm.cancel(job.id)
        job = await wm.wait(job.id, timeout=30)
        assert job.state is JobState.CANCELED and job.state_details == "canceled by the user"
        for _ in range(100):
            if not any(_alive(p) for p in pids):
                break
            await asyncio.sleep(0.05)
        assert not any(_alive(p) for p in pids), "children of a canceled job must die with it"
        with pytest.raises(InvalidTransition):
            await wm.cancel(job.id)

    run(with_manager(tmp_path, body))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_walltime_is_enforced(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        started = time.monotonic()
        job = await wm.submit({"command": ["sleep", "60"], "resources": {"walltime": 1}})
        job = await wm.wait(job.id, timeout=30)
        assert time.monotonic() - started < 10
        assert job.state is JobState.ERROR
        assert "walltime" in job.state_details

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "grace_period": 1.0}}))


def test_dependency_chain_and_failed_dependency(tmp_path: Path) -> None:
    log = tmp_path / "order.log"

    def step(name: str, code: int = 0) -> dict[str, object]:
        return {"command": ["sh", "-c", f"sleep 0.2; echo {name} >> {log}; exit {code}"], "name": name}

    async def body(wm: WorkloadManager) -> None:
        a = await wm.submit(step("a"))
        b = await wm.submit({**step("b"), "depends_on": {"afterok": [a.id]}})
        c = await wm.submit({**step("c", 2), "depends_on": [b.id]})
        d = await wm.submit({**step("d"), "depends_on": {"afterok": [c.id]}})
        e = await wm.submit({**step("e"), "depends_on": {"afterany": [c.id]}})
        results = {j.spec.name: j for j in await asyncio.gather(*(wm.wait(x.id, 60) for x in (a, b, c, d, e)))}
        assert log.read_text().split() == ["a", "b", "c", "e"]
        assert results["c"].exit_code == 2
        assert results["d"].state is JobState.ERROR
        assert f"{c.id} ended finished with exit code 2" in results["d"].state_details
        assert results["e"].state is JobState.FINISHED
        with pytest.raises(ValidationError, match="no job 'missing'"):
            await wm.submit({**step("f"), "depends_on": ["missing"]})

    run(with_manager(tmp_path, body))


def test_array_throttle_is_never_exceeded(tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()
    command = [
        "sh",
        "-c",
        f"date +%s.%N > {times}/$SWM_ARRAY_TASK_ID.start; sleep 0.3; date +%s.%N > {times}/$SWM_ARRAY_TASK_ID.end",
    ]

    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"command": command, "array": "0-11%3"})
        job = await wm.wait(job.id, timeout=60)
        assert job.state is JobState.FINISHED and job.state_details == "12 finished"

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "cpus": 8}}))
    spans = [(float((times / f"{i}.start").read_text()), float((times / f"{i}.end").read_text())) for i in range(12)]
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 3, f"at most 3 tasks may run at once and 3 should have (saw {most})"


def test_site_limits_and_priorities(tmp_path: Path) -> None:
    order = tmp_path / "order"

    async def body(wm: WorkloadManager) -> None:
        blocker = await wm.submit({"command": ["sleep", "0.5"], "name": "blocker"})
        low = await wm.submit({"command": ["sh", "-c", f"echo low >> {order}"], "priority": 1})
        high = await wm.submit({"command": ["sh", "-c", f"echo high >> {order}"], "priority": 9})
        for job in (blocker, low, high):
            await wm.wait(job.id, 30)
        assert order.read_text().split() == ["high", "low"]
        with pytest.raises(ValidationError, match="cpus but site 'local' has"):
            await wm.submit({"command": ["true"], "resources": {"cpus": (os.cpu_count() or 1) + 1}})
        with pytest.raises(ValidationError, match="unknown site 'mars'"):
            await wm.submit({"command": ["true"], "site": "mars"})

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "max_running": 1}}))


def test_hold_release_requeue(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"command": ["sh", "-c", "echo run >> runs"], "hold": True})
        await asyncio.sleep(0.3)
        assert wm.get(job.id).state is JobState.HELD
        with pytest.raises(InvalidTransition):
            await wm.hold(job.id)
        await wm.release(job.id)
        job = await wm.wait(job.id, 30)
        assert job.state is JobState.FINISHED
        await wm.requeue(job.id)
        job = await wm.wait(job.id, 30)
        assert Path(job.folder, "runs").read_text() == "run\nrun\n"
        states = [h.state.code for h in job.history]
        assert "".join(states) == "HQWRFQWRF"
        queued = await wm.submit({"command": ["true"], "hold": True})
        await wm.cancel(queued.id)
        assert wm.get(queued.id).state is JobState.CANCELED

    run(with_manager(tmp_path, body))


def test_live_logs_from_an_offset(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"command": ["sh", "-c", "echo one; sleep 2; echo two >&2; echo three"]})
        seen = b""
        for _ in range(600):  # up to 30 s on a loaded machine; usually at once
            seen += await wm.read_output(job.id, "stdout", len(seen))
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen == b"one\n", "the first line must be readable while the job runs"
        for _ in range(100):  # the manager may read the file before it has read the start report
            if wm.get(job.id).state is JobState.RUNNING:
                break
            await asyncio.sleep(0.01)
        assert wm.get(job.id).state is JobState.RUNNING
        await wm.wait(job.id, 30)
        assert await wm.read_output(job.id, "stdout", len(seen)) == b"three\n"
        assert await wm.read_output(job.id, "stderr") == b"two\n"
        with pytest.raises(ValidationError):
            await wm.read_output(job.id, "../etc/passwd")

    run(with_manager(tmp_path, body))


def test_input_and_output_files_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("42\n")
    (tmp_path / "secret").write_text("no")
    os.symlink("/etc/hostname", tmp_path / "data" / "link")

    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit(
            {
                "command": ["sh", "-c", "mkdir -p out; cat data/in.txt > out/result; ln -s /etc/passwd leak"],
                "input_files": ["data/in.txt"],
                "output_files": ["out/result", "missing.txt"],
            }
        )
        job = await wm.wait(job.id, 30)
        assert job.state is JobState.FINISHED and "missing outputs: missing.txt" in job.state_details
        with await wm.open_file(job.id, "out/result") as handle:
            assert handle.read() == b"42\n"
        assert {f["path"] for f in wm.list_files(job.id)} >= {"out/result", "data/in.txt", "stdout", "stderr"}
        assert "leak" not in {f["path"] for f in wm.list_files(job.id)}
        assert Path(job.folder, ".swm-status").is_file(), "the gate's record is there, but never served"
        for bad in ["../jobs.sqlite", "/etc/passwd", "leak", "out/../../x", ".swm-status"]:
            with pytest.raises((PathNotAllowed, JobNotFound)) as caught:
                await wm.open_file(job.id, bad)
            assert caught.value.status in (400, 403, 404)
        for bad_input in ["../secret", "/etc/passwd", "data/link"]:
            with pytest.raises(ValidationError):
                await wm.submit({"command": ["true"], "input_files": [bad_input]})

    run(with_manager(tmp_path, body))


def test_a_job_whose_folder_cannot_be_prepared_fails_alone(tmp_path: Path) -> None:
    """Jobs released together are handed to the supervisor together; one that cannot be prepared
    (its input file went away after the submission) fails with the reason, the others run."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("1\n")

    async def body(wm: WorkloadManager) -> None:
        jobs = await wm.submit_many(
            [
                {"command": ["cat", "data/in.txt"], "input_files": ["data/in.txt"], "hold": True},
                {"command": ["sh", "-c", "exit 3"], "hold": True},
                {"command": ["true"], "hold": True},
            ]
        )
        (tmp_path / "data" / "in.txt").unlink()
        for job in jobs:
            await wm.release(job.id)
        gone, failing, fine = [await wm.wait(job.id, 30) for job in jobs]
        assert gone.state is JobState.ERROR and "'data/in.txt' no longer exists" in gone.state_details
        assert failing.state is JobState.FINISHED and failing.exit_code == 3
        assert fine.state is JobState.FINISHED and fine.exit_code == 0

    run(with_manager(tmp_path, body))


def test_jobs_do_not_belong_to_the_server_and_a_lost_supervisor_is_replaced(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"command": ["sleep", "30"]})
        for _ in range(100):
            if wm.get(job.id).state is JobState.RUNNING:
                break
            await asyncio.sleep(0.05)
        pid = int(wm.get(job.id).native_id or 0)
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(") ", 1)[1].split()
        parent, session = int(fields[1]), int(fields[3])
        assert parent != os.getpid() and session == pid, "a job runs in its own session, not as our child"
        os.kill(parent, 9)  # the supervisor dies: the job can no longer report its exit status
        os.killpg(pid, 9)
        lost = await wm.wait(job.id, 30)
        assert lost.state is JobState.ERROR and "without recording an exit status" in lost.state_details
        again = await wm.wait((await wm.submit({"command": ["sh", "-c", "exit 4"]})).id, 30)
        assert again.state is JobState.FINISHED and again.exit_code == 4

    run(with_manager(tmp_path, body))


def test_every_state_change_is_an_event_in_order(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        queue = wm.subscribe()
        job = await wm.submit({"command": ["true"]})
        await wm.wait(job.id, 30)
        await asyncio.sleep(0.2)
        seen = []
        while not queue.empty():
            event = queue.get_nowait()
            if event["job"]["id"] == job.id:
                seen.append((event["id"], event["job"]["state_code"]))
        assert [code for _, code in seen] == ["Q", "W", "R", "F"]
        assert [i for i, _ in seen] == sorted(i for i, _ in seen)
        replayed = [e["job"]["state_code"] for e in wm.events_after(0) if e["job"]["id"] == job.id]
        assert replayed == ["Q", "W", "R", "F"]

    run(with_manager(tmp_path, body))
