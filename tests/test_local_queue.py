"""The local supervisor's queue: jobs handed over ahead of free cpus wait in W, never overrun the
host, can be canceled or held there, and survive a restart of the server or of the supervisor."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path

from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState
from swm_jupyter.core.store import JobStore

from .core_helpers import make_manager, run, running_manager, with_manager


def _timed(times: Path, seconds: float) -> list[str]:
    """A command that records when it ran, and how often, in ``times``/<job id>."""
    return [
        "sh",
        "-c",
        f"echo start $(date +%s.%N) >> {times}/$SWM_JOB_ID; sleep {seconds}; "
        f"echo end $(date +%s.%N) >> {times}/$SWM_JOB_ID",
    ]


def _spans(times: Path) -> dict[str, tuple[float, float]]:
    spans = {}
    for path in times.iterdir():
        lines = path.read_text().split("\n")
        assert [line.split()[0] for line in lines if line] == ["start", "end"], f"{path.name} ran more than once"
        spans[path.name] = (float(lines[0].split()[1]), float(lines[1].split()[1]))
    return spans


def _most_at_once(spans: dict[str, tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def _as_if_its_launch_was_lost(data_dir: Path, job_id: str) -> Path:
    """Set the stored job back to queued, as if a crash had lost the record of its launch (its
    run is only in its folder, which is returned)."""
    store = JobStore(str(data_dir / "jobs.sqlite"))
    try:
        job = store.get(job_id)
        job.state, job.native_id, job.gate_data = JobState.QUEUED, None, {}
        job.start_time = job.end_time = job.exit_code = None
        job.history = job.history[:1]
        store.update_jobs([job], events=False)
        return Path(job.folder)
    finally:
        store.close()


async def _until(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def test_jobs_ahead_wait_in_the_site_queue_and_never_overrun_the_host(tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()

    async def body(wm: WorkloadManager) -> None:
        jobs = await wm.submit_many([{"command": _timed(times, 0.3), "name": f"j{i}"} for i in range(8)])
        # 2 cpus running and 2 cpus ahead: four jobs are on the site at once, two of them waiting.
        await _until(lambda: sum(wm.get(j.id).state is JobState.RUNNING for j in jobs) == 2)
        states = [wm.get(j.id).state for j in jobs]
        assert states.count(JobState.WAITING) == 2 and states.count(JobState.QUEUED) == 4, states
        done = await asyncio.gather(*(wm.wait(j.id, 60) for j in jobs))
        for job in done:
            assert job.state is JobState.FINISHED
            assert [h.state.code for h in job.history] == ["Q", "W", "R", "F"]
            assert job.submit_time <= (job.start_time or 0) <= (job.end_time or 0)

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "cpus": 2, "queue_ahead": 2}}))
    spans = _spans(times)
    assert len(spans) == 8
    assert _most_at_once(spans) == 2, "the host runs at most its 2 cpus of jobs, and used both"


def test_a_big_job_is_not_overtaken_and_cpus_are_counted(tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()

    async def body(wm: WorkloadManager) -> None:
        small = await wm.submit({"command": _timed(times, 0.4), "name": "small"})
        big = await wm.submit({"command": _timed(times, 0.2), "name": "big", "resources": {"cpus": 2}})
        later = await wm.submit({"command": _timed(times, 0.2), "name": "later"})
        for job in (small, big, later):
            assert (await wm.wait(job.id, 30)).state is JobState.FINISHED
        spans = _spans(times)
        assert spans[big.id][0] >= spans[small.id][1], "the 2-cpu job waits until both cpus are free"
        assert spans[later.id][0] >= spans[big.id][1], "a later 1-cpu job does not overtake the big one"

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "cpus": 2, "queue_ahead": 4}}))


def test_cancel_hold_and_release_in_the_site_queue(tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()

    async def body(wm: WorkloadManager) -> None:
        blocker = await wm.submit({"command": ["sleep", "1.5"], "name": "blocker"})
        waiting = await wm.submit({"command": _timed(times, 0), "name": "waiting"})
        held = await wm.submit({"command": _timed(times, 0), "name": "held"})
        await _until(lambda: wm.get(blocker.id).state is JobState.RUNNING)
        await _until(lambda: wm.get(held.id).state is JobState.WAITING)
        assert wm.get(waiting.id).state is JobState.WAITING
        await wm.cancel(waiting.id)
        await wm.hold(held.id)
        assert wm.get(held.id).state is JobState.HELD
        assert (await wm.wait(waiting.id, 10)).state is JobState.CANCELED
        assert (await wm.wait(blocker.id, 10)).state is JobState.FINISHED
        await asyncio.sleep(0.5)
        assert wm.get(held.id).state is JobState.HELD, "a held job does not start when cpus come free"
        assert not (times / held.id).exists()
        await wm.release(held.id)
        done = await wm.wait(held.id, 10)
        assert done.state is JobState.FINISHED
        assert [h.state.code for h in done.history] == ["Q", "W", "H", "W", "R", "F"]
        assert not (times / waiting.id).exists(), "a job canceled while it waited never ran"
        assert not Path(wm.get(waiting.id).folder, ".swm-status").exists()

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "cpus": 1, "queue_ahead": 2}}))


def test_jobs_waiting_in_the_site_queue_survive_a_server_restart(tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()
    sites = {"local": {"gate": "local", "cpus": 1, "queue_ahead": 3}}

    async def first() -> list[str]:
        wm = make_manager(tmp_path, sites=sites)
        await wm.start()
        jobs = await wm.submit_many([{"command": _timed(times, 0.5), "name": f"j{i}"} for i in range(5)])
        await _until(lambda: sum(wm.get(j.id).state is JobState.WAITING for j in jobs) == 3)
        await wm.stop()  # three jobs wait in the supervisor's queue, one runs, one is queued here
        return [j.id for j in jobs]

    ids = run(first())
    time.sleep(0.7)  # the supervisor starts the next job while no server runs

    async def second() -> None:
        async with running_manager(tmp_path, sites=sites) as wm:
            done = await asyncio.gather(*(wm.wait(i, 30) for i in ids))
        assert all(j.state is JobState.FINISHED and j.exit_code == 0 for j in done)

    run(second())
    spans = _spans(times)  # every job ran exactly once
    assert sorted(spans) == sorted(ids)
    assert _most_at_once(spans) == 1


def test_jobs_waiting_in_a_killed_supervisor_are_handed_to_the_next(tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()

    async def body(wm: WorkloadManager) -> None:
        first = await wm.submit({"command": ["sleep", "30"], "name": "first"})
        rest = await wm.submit_many([{"command": _timed(times, 0), "name": f"r{i}"} for i in range(2)])
        await _until(lambda: all(wm.get(j.id).state is JobState.WAITING for j in rest))
        await _until(lambda: wm.get(first.id).state is JobState.RUNNING)
        pid = int(wm.get(first.id).native_id or 0)
        with open(f"/proc/{pid}/stat") as handle:
            supervisor = int(handle.read().rsplit(") ", 1)[1].split()[1])
        os.kill(supervisor, 9)  # the queue in its memory is gone
        os.killpg(pid, 9)
        assert (await wm.wait(first.id, 30)).state is JobState.ERROR
        done = await asyncio.gather(*(wm.wait(j.id, 30) for j in rest))
        assert all(j.state is JobState.FINISHED for j in done), [j.state_details for j in done]
        assert sorted(_spans(times)) == sorted(j.id for j in rest)

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "cpus": 1, "queue_ahead": 2}}))


def test_requeue_of_a_running_job_runs_it_again_once(tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()
    command = ["sh", "-c", f"echo start >> {times}/$SWM_JOB_ID; sleep 1; echo end >> {times}/$SWM_JOB_ID"]

    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"command": command})
        await _until(lambda: wm.get(job.id).state is JobState.RUNNING)
        await asyncio.sleep(0.2)
        await wm.requeue(job.id)
        done = await wm.wait(job.id, 30)
        assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
        assert (times / job.id).read_text().split() == ["start", "start", "end"], "killed once, then ran to its end"
        assert "".join(h.state.code for h in done.history).endswith("QWRF")

    run(with_manager(tmp_path, body))


def test_the_site_queue_starts_higher_priority_first(tmp_path: Path) -> None:
    order = tmp_path / "order"

    async def body(wm: WorkloadManager) -> None:
        blocker = await wm.submit({"command": ["sleep", "0.8"], "name": "blocker"})
        await _until(lambda: wm.get(blocker.id).state is JobState.RUNNING)
        jobs = [
            await wm.submit({"command": ["sh", "-c", f"echo {name} >> {order}"], "name": name, "priority": prio})
            for name, prio in (("low1", 1), ("low2", 1), ("high", 9))
        ]
        await _until(lambda: all(wm.get(j.id).state is JobState.WAITING for j in jobs))
        for job in jobs:
            assert (await wm.wait(job.id, 30)).state is JobState.FINISHED
        assert order.read_text().split() == ["high", "low1", "low2"]

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "cpus": 1, "queue_ahead": 3}}))


def test_a_job_that_cannot_start_fails_alone(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        blocker = await wm.submit({"command": ["sleep", "0.5"]})
        bad = await wm.submit_many(
            [
                {"command": ["no-such-program-swm"]},
                {"command": ["/etc/hostname"]},  # not executable (a NUL byte is now refused at submission)
                {"command": ["true"], "workdir": "/nonexistent-swm"},
            ]
        )
        good = await wm.submit({"command": ["sh", "-c", "exit 4"]})
        reasons = [
            "could not start 'no-such-program-swm'",
            "could not start '/etc/hostname'",
            "workdir /nonexistent-swm does",
        ]
        for job, reason in zip(bad, reasons, strict=True):
            failed = await wm.wait(job.id, 30)
            assert failed.state is JobState.ERROR and reason in failed.state_details, failed.state_details
        assert (await wm.wait(blocker.id, 30)).state is JobState.FINISHED
        done = await wm.wait(good.id, 30)
        assert done.state is JobState.FINISHED and done.exit_code == 4, "the supervisor kept serving"

    run(with_manager(tmp_path, body, sites={"local": {"gate": "local", "cpus": 1, "queue_ahead": 4}}))


def test_a_job_that_ran_while_its_launch_was_not_recorded_is_not_run_again(tmp_path: Path) -> None:
    """A crash lost the record of a launch (the store still says queued) but the supervisor ran the
    job: the next manager finds its records, reports how it ended, and does not run it again."""
    times = tmp_path / "times"
    times.mkdir()
    sites = {"local": {"gate": "local", "cpus": 1}}

    async def first() -> str:
        async with running_manager(tmp_path, sites=sites) as wm:
            job = await wm.submit({"command": [*_timed(times, 0)[:2], _timed(times, 0)[2] + "; exit 5"]})
            assert (await wm.wait(job.id, 30)).exit_code == 5
            return job.id

    job_id = run(first())
    _as_if_its_launch_was_lost(tmp_path, job_id)

    async def second() -> None:
        async with running_manager(tmp_path, sites=sites) as wm:
            done = await wm.wait(job_id, 20)
            assert done.state is JobState.FINISHED and done.exit_code == 5

    run(second())
    assert list(_spans(times)) == [job_id], "it ran once"


def test_a_launch_cut_before_its_start_was_recorded_is_not_run_again(tmp_path: Path) -> None:
    """The supervisor creates a job's status record before it spawns the job: a record without a
    start line means the job may be running unrecorded, so it is failed with that reason, not run."""
    times = tmp_path / "times"
    times.mkdir()
    sites = {"local": {"gate": "local", "cpus": 1}}

    async def first() -> str:
        async with running_manager(tmp_path, sites=sites) as wm:
            job = await wm.submit({"command": _timed(times, 0)})
            assert (await wm.wait(job.id, 30)).state is JobState.FINISHED
            return job.id

    job_id = run(first())
    folder = _as_if_its_launch_was_lost(tmp_path, job_id)
    (folder / ".swm-status").write_text("")  # created, then the supervisor was killed

    async def second() -> None:
        async with running_manager(tmp_path, sites=sites) as wm:
            done = await wm.wait(job_id, 20)
            assert done.state is JobState.ERROR and "has no start: not run again" in done.state_details

    run(second())
    assert list(_spans(times)) == [job_id], "it ran once, in the first manager"


def test_after_an_upgrade_jobs_of_the_older_supervisor_are_read_not_run_again(tmp_path: Path) -> None:
    """A job started by an older swm-jupyter left ``.swm/pid`` and ``.swm/rc`` (protocols 1 and 2);
    the store lost its launch: it is reported with that exit code and not started again. While an
    older supervisor still serves the store, the site waits for it (it would start what it holds)."""
    times = tmp_path / "times"
    times.mkdir()
    sites = {"local": {"gate": "local", "cpus": 1}}

    async def first() -> tuple[str, str]:
        async with running_manager(tmp_path, sites=sites) as wm:
            job = await wm.submit({"command": _timed(times, 0)})
            done = await wm.wait(job.id, 30)
            assert done.state is JobState.FINISHED
            return job.id, wm.store_path

    job_id, store_path = run(first())
    folder = _as_if_its_launch_was_lost(tmp_path, job_id)
    # What the older supervisor left instead of .swm-status
    (folder / ".swm-status").unlink()
    (folder / ".swm").mkdir()
    (folder / ".swm" / "pid").write_text("12345\n")
    (folder / ".swm" / "rc").write_text("7\n")
    # An older supervisor of this store still answers on its socket.
    stem = hashlib.sha1(store_path.encode()).hexdigest()[:16]
    older = Path(tempfile.gettempdir()) / f"swm-local-{os.getuid()}" / f"{stem}-v2.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(older))
    listener.listen(8)

    async def second() -> None:
        async with running_manager(tmp_path, sites=sites) as wm:
            await _until(lambda: "older swm-jupyter" in wm.site_health.get("local", ""), 10)
            await asyncio.sleep(1.5)
            assert wm.get(job_id).state is JobState.QUEUED, "nothing is handed over while it runs"
            listener.close()
            older.unlink()
            done = await wm.wait(job_id, 30)
            assert done.state is JobState.FINISHED and done.exit_code == 7, done.state_details
            assert done.native_id == "12345"

    try:
        run(second())
    finally:
        listener.close()
        older.unlink(missing_ok=True)
    assert list(_spans(times)) == [job_id], "it ran once, in the first manager"
