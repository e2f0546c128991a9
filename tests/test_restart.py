"""Jobs outlive the manager: a clean restart mid-run, and a SIGKILL while it accepts submissions."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState
from swm_jupyter.core.store import JobQuery, JobStore

from .core_helpers import make_manager, run, running_manager


def _marking(runs: Path, seconds: float, code: int) -> list[str]:
    return ["sh", "-c", f"sleep {seconds}; echo ran >> {runs}/$SWM_JOB_ID; exit {code}"]


def test_restart_mid_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    sites = {"local": {"gate": "local", "cpus": 16, "max_running": 4}}

    async def first() -> list[str]:
        wm = make_manager(tmp_path, sites=sites)
        await wm.start()
        quick = [await wm.submit({"command": _marking(runs, 0.8, i), "name": f"quick{i}"}) for i in range(3)]
        slow = await wm.submit({"command": _marking(runs, 3.5, 7), "name": "slow"})
        queued = [await wm.submit({"command": _marking(runs, 0.1, 10 + i), "name": f"later{i}"}) for i in range(3)]
        for _ in range(100):
            if all(wm.get(j.id).state is JobState.RUNNING for j in [*quick, slow]):
                break
            await asyncio.sleep(0.05)
        assert all(wm.get(j.id).state is JobState.QUEUED for j in queued)
        await wm.stop()  # the jobs keep running without the manager
        return [j.id for j in [*quick, slow, *queued]]

    ids = run(first())
    time.sleep(1.5)  # the quick jobs end while no manager runs

    async def second() -> None:
        async with running_manager(tmp_path, sites=sites) as wm:
            jobs = await asyncio.gather(*(wm.wait(i, 30) for i in ids))
        codes = {j.spec.name: j.exit_code for j in jobs}
        assert codes == {"quick0": 0, "quick1": 1, "quick2": 2, "slow": 7, "later0": 10, "later1": 11, "later2": 12}
        assert all(j.state is JobState.FINISHED for j in jobs)
        slow = next(j for j in jobs if j.spec.name == "slow")
        assert slow.end_time is not None and slow.start_time is not None and slow.end_time - slow.start_time >= 3.0

    run(second())
    for job_id in ids:
        assert (runs / job_id).read_text() == "ran\n", "every job ran exactly once"


SUBMITTER = textwrap.dedent(
    """
    import asyncio, sys
    from swm_jupyter.core.manager import WorkloadManager

    async def main():
        wm = WorkloadManager(data_dir=sys.argv[1], input_root=sys.argv[1],
                             sites={"local": {"gate": "local", "cpus": 2}})
        await wm.start()
        i = 0
        while True:
            job = await wm.submit({"command": ["sh", "-c", f"echo $SWM_JOB_ID >> {sys.argv[2]}"], "name": f"n{i}"})
            print(job.id, flush=True)
            i += 1
            if i % 10 == 0:
                await asyncio.sleep(0)

    asyncio.run(main())
    """
)


def test_sigkill_while_accepting_submissions(tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", SUBMITTER, str(data), str(runs)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    acknowledged: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    for line in proc.stdout:  # what was printed before the kill is acknowledged too
        acknowledged.append(line.strip())
    proc.wait(10)
    assert len(acknowledged) >= 300

    async def recover() -> tuple[list[str], int]:
        wm = WorkloadManager(data_dir=str(data), input_root=str(data), sites={"local": {"gate": "local"}})
        await wm.start()
        try:
            jobs = await asyncio.gather(*(wm.wait(i, 120) for i in acknowledged))
            assert all(j.state is JobState.FINISHED and j.exit_code == 0 for j in jobs)
            for _ in range(600):
                if not wm.jobs:
                    break
                await asyncio.sleep(0.1)
            assert not wm.jobs, "every stored job ends"
            page = wm.list_jobs(JobQuery(limit=1))
            return [j.id for j in jobs], page.total
        finally:
            await wm.stop()

    ids, total = run(recover(), timeout=200)
    assert ids == acknowledged
    lines = runs.read_text().split()
    assert len(lines) == len(set(lines)) == total, "every stored job ran exactly once"
    assert set(acknowledged) <= set(lines)
    store = JobStore(data / "jobs.sqlite")
    try:
        assert store.query(JobQuery(states=(JobState.FINISHED,), limit=1)).total == total
    finally:
        store.close()
