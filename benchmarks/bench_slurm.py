"""Benchmark the slurm gate against a plain sbatch loop, psij-python and submitit on the test cluster.

Run after ``tests/services/start.sh`` (SLURM_CONF is read from its env file):

    /work/venv/bin/python benchmarks/bench_slurm.py [--jobs 200] [--live-check]

Prints one table: time to submit all jobs, time until all are final, and ratios to the plain loop;
then the slurm gate's end-detection latency and its Slurm status calls per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swm_jupyter.core.model import Job, JobSpec, new_job_id
from swm_jupyter.gates.slurm import SlurmGate

ENV_FILE = Path(os.environ.get("SWM_TEST_SERVICES_DIR", "/tmp/swm-test-services")) / "env"


def _slurm_env() -> None:
    for line in ENV_FILE.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "SLURM_CONF":
            os.environ["SLURM_CONF"] = value


def _wait_gone(ids: list[str], timeout: float = 900) -> float:
    """Wait until Slurm lists none of ``ids`` as pending/running; return the time it took to see it."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        out = subprocess.run(
            ["squeue", "-h", "-t", "PD,R,CG,CF", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True
        ).stdout
        if not out.strip():
            return time.monotonic() - t0
        time.sleep(1.0)
    raise TimeoutError("jobs did not end")


def bench_plain(n: int, folder: Path) -> tuple[float, float]:
    """A plain ``sbatch --wrap`` loop, then squeue every second until all are gone."""
    t0 = time.monotonic()
    ids = []
    for i in range(n):
        out = subprocess.run(
            ["sbatch", "--parsable", f"--output={folder}/plain-{i}.out", "--wrap", "true"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ids.append(out.strip().split(";")[0])
    submit = time.monotonic() - t0
    _wait_gone(ids)
    return submit, time.monotonic() - t0


def _jobs(n: int, folder: Path, **fields: Any) -> list[Job]:
    jobs = []
    for _ in range(n):
        job_id = new_job_id()
        (folder / job_id).mkdir(parents=True)
        jobs.append(
            Job(
                id=job_id,
                spec=JobSpec.from_dict({"command": ["true"]}),
                site="cluster",
                folder=str(folder / job_id),
                **fields,
            )
        )
    return jobs


async def _until_final(gate: SlurmGate, jobs: list[Job], seen_at: dict[str, float], ended_at: dict[str, float]) -> None:
    live = list(jobs)
    while live:
        statuses = await gate.poll(live)
        now = time.time()
        for job in list(live):
            status = statuses.get(job.id)
            if status is not None and status.state.final:
                seen_at[job.id] = now
                ended_at[job.id] = status.end_time or now
                live.remove(job)
        if live:
            await asyncio.sleep(gate.next_poll_delay())


async def bench_swm(n: int, folder: Path, *, array: bool) -> dict[str, Any]:
    """The slurm gate with its defaults: separate submissions, or one array."""
    gate = SlurmGate(site_name="cluster")
    t0 = time.monotonic()
    if array:
        parent = Job(
            id=new_job_id(),
            spec=JobSpec.from_dict({"command": ["true"], "array": f"0-{n - 1}"}),
            site="cluster",
            folder=str(folder / "array"),
        )
        Path(parent.folder).mkdir(parents=True)  # noqa: ASYNC240 - setup, not timed
        jobs = []
        for i in range(n):
            job = _jobs(1, folder, array_parent=parent.id, array_index=i)[0]
            jobs.append(job)
        statuses = await gate.submit_array(parent, jobs)
        for job in jobs:
            job.native_id, job.gate_data = statuses[job.id].native_id, statuses[job.id].gate_data or {}
    else:
        jobs = _jobs(n, folder)
        # The manager launches ready jobs concurrently (one task each), as here.
        limit = asyncio.Semaphore(8)

        async def one(job: Job) -> None:
            async with limit:
                status = await gate.submit(job)
            job.native_id, job.gate_data = status.native_id, status.gate_data or {}

        await asyncio.gather(*(one(job) for job in jobs))
    submit = time.monotonic() - t0
    calls_before = sum(gate.command_counts[c] for c in ("squeue", "sacct"))
    t1 = time.monotonic()
    seen_at: dict[str, float] = {}
    ended_at: dict[str, float] = {}
    await _until_final(gate, jobs, seen_at, ended_at)
    total = time.monotonic() - t0
    calls = sum(gate.command_counts[c] for c in ("squeue", "sacct")) - calls_before
    latency = [seen_at[j] - ended_at[j] for j in seen_at]
    return {
        "submit": submit,
        "total": total,
        "latency_median": statistics.median(latency),
        "calls_per_minute": calls / max(1.0, (time.monotonic() - t1) / 60),
        "sbatch": gate.command_counts["sbatch"],
    }


def bench_psij(n: int, folder: Path) -> tuple[float, float]:
    """psij-python's Slurm executor: submit n jobs, wait for all."""
    import psij

    executor = psij.JobExecutor.get_instance("slurm")
    t0 = time.monotonic()
    jobs = []
    for _ in range(n):
        job = psij.Job(psij.JobSpec(executable="true", directory=folder))
        executor.submit(job)
        jobs.append(job)
    submit = time.monotonic() - t0
    for job in jobs:
        job.wait()
    return submit, time.monotonic() - t0


def bench_submitit(n: int, folder: Path) -> tuple[float, float]:
    """submitit's Slurm executor: n separate submissions of a trivial function, then all results."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder / "submitit"), cluster="slurm")
    executor.update_parameters(timeout_min=5, slurm_partition="debug")
    t0 = time.monotonic()
    jobs = [executor.submit(int, "1") for _ in range(n)]
    submit = time.monotonic() - t0
    for job in jobs:
        job.result()
    return submit, time.monotonic() - t0


async def live_check(live: int, seconds: float = 60) -> int:
    """Slurm status calls made in ``seconds`` by the gate while ``live`` held jobs are pending."""
    folder = Path(tempfile.mkdtemp(prefix="swm-bench-live-"))
    gate = SlurmGate(site_name="cluster", extra_args=["--hold"])
    parent = Job(
        id=new_job_id(),
        spec=JobSpec.from_dict({"command": ["true"], "array": f"0-{live - 1}"}),
        site="cluster",
        folder=str(folder / "array"),
    )
    Path(parent.folder).mkdir(parents=True)  # noqa: ASYNC240 - setup, not timed
    jobs = [_jobs(1, folder, array_parent=parent.id, array_index=i)[0] for i in range(live)]
    statuses = await gate.submit_array(parent, jobs)
    for job in jobs:
        job.native_id, job.gate_data = statuses[job.id].native_id, statuses[job.id].gate_data or {}
    before = sum(gate.command_counts[c] for c in ("squeue", "sacct"))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await gate.poll(jobs)
        await asyncio.sleep(gate.next_poll_delay())
    calls = sum(gate.command_counts[c] for c in ("squeue", "sacct")) - before
    subprocess.run(["scancel", str(jobs[0].native_id).split("_")[0]], check=False)  # noqa: ASYNC221
    return calls


def main() -> None:
    """Run every contender once and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--live-check", action="store_true", help="also count status calls with 10 and 500 live jobs")
    args = parser.parse_args()
    _slurm_env()
    n = args.jobs
    base = Path(tempfile.mkdtemp(prefix="swm-bench-slurm-"))
    rows: list[tuple[str, float, float]] = []
    (base / "plain").mkdir()
    plain = bench_plain(n, base / "plain")
    rows.append(("plain sbatch loop", *plain))
    swm = asyncio.run(bench_swm(n, base / "swm", array=False))
    rows.append(("swm slurm gate, separate jobs", swm["submit"], swm["total"]))
    swm_array = asyncio.run(bench_swm(n, base / "swm-array", array=True))
    rows.append((f"swm slurm gate, one array ({swm_array['sbatch']} sbatch)", swm_array["submit"], swm_array["total"]))
    (base / "psij").mkdir()
    rows.append(("psij-python slurm executor", *bench_psij(n, base / "psij")))
    (base / "submitit").mkdir()
    rows.append(("submitit slurm executor", *bench_submitit(n, base / "submitit")))
    print(f"\n{n} short jobs (`true`) on the one-node test cluster (8 slots), one run\n")
    print("| contender | submit all (s) | ratio | all final (s) | ratio |")
    print("|---|---|---|---|---|")
    for name, submit, total in rows:
        print(f"| {name} | {submit:.2f} | {submit / plain[0]:.2f}x | {total:.1f} | {total / plain[1]:.2f}x |")
    print(
        f"\nslurm gate: median end-detection latency {swm['latency_median']:.2f} s (separate jobs), "
        f"{swm_array['latency_median']:.2f} s (array); status calls/minute while draining: "
        f"{swm['calls_per_minute']:.1f} and {swm_array['calls_per_minute']:.1f}"
    )
    if args.live_check:
        for live in (10, 500):
            print(f"slurm gate with {live} live jobs: {asyncio.run(live_check(live))} status calls in 60 s")


if __name__ == "__main__":
    main()
