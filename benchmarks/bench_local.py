"""Local-site throughput and submission rate, as ratios against baselines measured in the same run.

Run: ``python benchmarks/bench_local.py [--jobs 1000]``. Prints one line per figure.

1. N jobs running ``true`` at concurrency = cores, first submit to last final state, against
   a plain ``asyncio.create_subprocess_exec`` pool (the floor) and psij-python's local executor;
   with the store and job folders in the Jupyter data dir (the default place), in the temp dir,
   and, where /dev/shm exists, in memory. The floor writes no files, so the cost of creating
   files and folders shows in the ratio: it is measured per place and printed too.
2. Submissions per second through the Python API, each job durable before the call returns.
3. A 10,000-task array accepted (stored) in one call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jupyter_core.paths import jupyter_data_dir

from swm_jupyter.core.manager import WorkloadManager

CORES = len(os.sched_getaffinity(0))
#: Microseconds above which creating a job folder and its three files counts as slow (tmpfs: ~60 µs).
SLOW_FOLDER_US = 400


async def floor(n: int) -> float:
    """The same n commands through a bare asyncio subprocess pool."""
    semaphore = asyncio.Semaphore(CORES)

    async def one() -> None:
        async with semaphore:
            proc = await asyncio.create_subprocess_exec("true")
            await proc.wait()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - start


async def floor_with_folders(n: int, place: Path) -> float:
    """The floor, plus what the issue asks of every job: a folder of its own with its stdout and
    stderr in files there, and a record of its pid, start, end and exit code (four creates a job)."""
    semaphore = asyncio.Semaphore(CORES)
    root = Path(tempfile.mkdtemp(prefix="swm-floor-", dir=place))  # removed with ``place`` at the end

    async def one(i: int) -> None:
        async with semaphore:
            folder = root / f"job-{i}"
            folder.mkdir()
            with open(folder / "stdout", "ab") as out, open(folder / "stderr", "ab") as err:
                record = os.open(folder / ".status", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                proc = await asyncio.create_subprocess_exec("true", stdout=out, stderr=err, cwd=folder)
                os.write(record, f"start {time.time():.3f} {proc.pid}\n".encode())
                rc = await proc.wait()
                os.write(record, f"exit {rc} {time.time():.3f}\n".encode())
                os.close(record)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - start


def psij(n: int, workdir: Path) -> float | None:
    """psij-python's local executor, at most CORES jobs at a time."""
    try:
        from psij import Job, JobExecutor, JobSpec
    except ImportError:
        return None
    executor = JobExecutor.get_instance("local")
    start = time.perf_counter()
    pending = list(range(n))
    running: list[Job] = []
    while pending or running:
        while pending and len(running) < CORES:
            pending.pop()
            job = Job(JobSpec(executable="true", directory=workdir))
            executor.submit(job)
            running.append(job)
        running[0].wait()
        running = [j for j in running if not j.status.final]
    return time.perf_counter() - start


def folder_cost_us(place: Path, n: int = 300) -> float:
    """Microseconds of wall time to create a job-like folder with three files, at ``place``."""
    root = Path(tempfile.mkdtemp(prefix="swm-probe-", dir=place))  # removed with ``place`` at the end
    start = time.perf_counter()
    for i in range(n):
        folder = root / f"job-{i}"
        folder.mkdir()
        for name in ("stdout", "stderr", ".swm-status"):
            os.close(os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    return (time.perf_counter() - start) / n * 1e6


async def swm_throughput(n: int, data: Path, synchronous: str) -> float:
    wm = WorkloadManager(data_dir=str(data), sites={"local": {"gate": "local"}}, synchronous=synchronous)
    await wm.start()
    try:
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        jobs = await wm.submit_many([{"command": ["true"]} for _ in range(n)])
        await asyncio.gather(*(wm.wait(j.id, timeout=600) for j in jobs))
        return time.perf_counter() - start
    finally:
        await wm.stop()


async def swm_submit_rate(n: int, data: Path, synchronous: str) -> tuple[float, float]:
    wm = WorkloadManager(data_dir=str(data), sites={"local": {"gate": "local"}}, synchronous=synchronous)
    await wm.start()
    try:
        start = time.perf_counter()
        for _ in range(n):
            await wm.submit({"command": ["true"], "hold": True})
        rate = n / (time.perf_counter() - start)
        start = time.perf_counter()
        await wm.submit({"command": ["true"], "array": "0-9999", "hold": True})
        array_seconds = time.perf_counter() - start
        return rate, array_seconds
    finally:
        wm._running = False
        await wm.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--submissions", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the floor and of swm-jupyter; medians shown")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="swm-bench-"))
    try:
        print(f"machine: {CORES} cores, python {sys.version.split()[0]}; {args.jobs} jobs running `true`")
        floors: list[float] = []
        # Store and job folders (stdout, stderr, .swm-status) where they go by default (the Jupyter
        # data dir), in the temp dir, and in memory: the cost of creating files differs by place.
        data_home = Path(jupyter_data_dir())
        data_home.mkdir(parents=True, exist_ok=True)
        places = {
            "the Jupyter data dir": Path(tempfile.mkdtemp(prefix="swm-bench-", dir=data_home)),
            "the temp dir": root,
        }
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            places["tmpfs"] = Path(tempfile.mkdtemp(prefix="swm-bench-", dir="/dev/shm"))
        slow_places = []
        for place, path in places.items():
            cost = folder_cost_us(path)
            print(f"creating a job folder with three files in {place} ({path.parent}): {cost:.0f} µs")
            if cost > SLOW_FOLDER_US:
                slow_places.append(place)
        if slow_places:
            print(
                f"note: creating files is slow in {', '.join(slow_places)} now. On ext4 without a journal "
                "the kernel skips, for each new file, every inode deleted in the last 60 to 360 s "
                "(recently_deleted() in fs/ext4/ialloc.c), so after many deletions (a test run, the end "
                "of a previous run of this script) each create costs up to a millisecond of CPU for a few "
                "minutes; the floor with job folders shows it. See benchmarks/README.md."
            )
        runs: dict[tuple[str, str], list[float]] = {
            (mode, place): [] for place in places for mode in ("NORMAL", "FULL")
        }
        folder_floors: dict[str, list[float]] = {place: [] for place in places}
        try:
            # Interleaved, and in a different order each time, so that a busy moment of the machine
            # (or of its disk) does not always hit the same contender. Nothing is deleted until the
            # end: on ext4 without a journal, creating files soon after many were deleted costs more.
            order = list(runs)
            for attempt in range(args.repeat):
                floors.append(asyncio.run(floor(args.jobs)))
                for place, path in places.items():
                    folder_floors[place].append(asyncio.run(floor_with_folders(args.jobs, path)))
                for mode, place in order[attempt % len(order) :] + order[: attempt % len(order)]:
                    data = places[place] / f"t-{mode}-{attempt}"
                    runs[mode, place].append(asyncio.run(swm_throughput(args.jobs, data, mode)))
        finally:
            for path in places.values():
                if path != root:
                    shutil.rmtree(path, ignore_errors=True)
        floor_s = statistics.median(floors)
        print(f"floor (asyncio subprocess pool): {floor_s:.2f} s = {args.jobs / floor_s:.0f} jobs/s (median)")
        for place in places:
            with_folders_s = statistics.median(folder_floors[place])
            print(
                f"floor with job folders in {place} (folder, stdout, stderr, status record): "
                f"{with_folders_s:.2f} s, {with_folders_s / floor_s:.2f}x the floor"
            )
            for mode in ("NORMAL", "FULL"):
                times = runs[mode, place]
                swm_s = statistics.median(times)
                print(
                    f"swm-jupyter local (store {mode}, data in {place}): {swm_s:.2f} s = "
                    f"{args.jobs / swm_s:.0f} jobs/s, {swm_s / floor_s:.2f}x the floor (target <= 1.5x), "
                    f"{swm_s / with_folders_s:.2f}x the floor with job folders (runs: "
                    + ", ".join(f"{t:.2f}" for t in times)
                    + ")"
                )
        psij_s = psij(args.jobs, root)
        if psij_s is None:
            print("psij-python: not installed (pip install psij-python)")
        else:
            print(
                f"psij-python local: {psij_s:.2f} s = {args.jobs / psij_s:.0f} jobs/s, "
                f"{psij_s / floor_s:.2f}x the floor"
            )
        for mode in ("FULL", "NORMAL"):
            rate, array_s = asyncio.run(swm_submit_rate(args.submissions, root / f"s-{mode}", mode))
            print(
                f"submissions ({mode}), durable before return: {rate:.0f} jobs/s (target >= 2000); "
                f"10,000-task array accepted in {array_s:.2f} s (target < 1 s)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
