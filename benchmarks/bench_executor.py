"""Benchmark ``swm_jupyter.Executor.map`` against submitit, a ``python -c`` floor and ``ProcessPoolExecutor``.

Run (Slurm rows after ``tests/services/start.sh``; SLURM_CONF is read from its env file):

    python benchmarks/bench_executor.py [--calls 200] [--no-slurm]

Every contender computes ``lambda x: x * x`` over ``range(calls)``, end to end (from the call that
submits until the last value is in this process), in the same run:

- swm-jupyter ``Executor(site="local").map`` against a real ``jupyter server`` whose local site
  runs as many jobs at once as there are cores; its calls start from the local supervisor's warm
  interpreter (forked with cloudpickle imported, see docs/executor.md, "Warm start on the local
  site"), and the same site with ``fast_python_start`` off (a new interpreter per call) is
  measured beside it;
- the floor: ``calls`` ``python -c`` processes, as many at once as there are cores (one process
  per call, nothing else), and the same processes each importing cloudpickle (what any call
  pickled by value must at least cost: the executor's own floor);
- ``Executor.map`` with ``chunksize=10`` (20 tasks of 10 calls);
- ``concurrent.futures.ProcessPoolExecutor`` (cores workers, started in the timing);
- ``submitit.LocalExecutor`` (``map_array``);
- with Slurm: swm-jupyter ``Executor(site="cluster").map`` (one array job) and
  ``submitit.SlurmExecutor.map_array`` (one array job), both 1 CPU per call.

Prints the times and the ratios the issue sets goals for: local / floor (goal <= 1.5), Slurm /
submitit's Slurm (goal <= 1.0), and swm's per-call overhead against ProcessPoolExecutor.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_api  # noqa: E402

ENV_FILE = Path(os.environ.get("SWM_TEST_SERVICES_DIR", "/tmp/swm-test-services")) / "env"
TOKEN = bench_api.TOKEN


def square(x: int) -> int:
    """The trivial call (module-level, so that ProcessPoolExecutor can pickle it)."""
    return x * x


def cores() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def start_server(base: Path, sites: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A real ``jupyter server`` with swm_jupyter and ``sites``, run in its root; the process, its URL and its root."""
    root = base / "root"
    root.mkdir()
    extra = (f"--SwmApp.sites={sites!r}", "--SwmApp.poll_interval=0.5")
    proc, url = bench_api.start_server(base, base / "data", extra, cwd=root)
    return proc, url, root


def timed(label: str, run: Any, calls: int) -> float:
    """Run ``run()`` (which returns the values), check them, print and return the seconds it took."""
    t0 = time.monotonic()
    values = list(run())
    seconds = time.monotonic() - t0
    assert values == [x * x for x in range(calls)], f"{label}: wrong values"
    print(f"  {label:<44} {seconds:8.2f} s", flush=True)
    return seconds


def floor(calls: int, prefix: str = "") -> list[int]:
    """``calls`` ``python -c`` processes, as many at once as there are cores (``prefix``: code run first)."""
    out: list[int] = [0] * calls
    lock = threading.Lock()
    todo = iter(range(calls))

    def worker() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            done = subprocess.run([sys.executable, "-c", f"{prefix}print({i} * {i})"], capture_output=True, text=True)
            out[i] = int(done.stdout)

    threads = [threading.Thread(target=worker) for _ in range(cores())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def process_pool(calls: int) -> list[int]:
    """``ProcessPoolExecutor`` with one worker per core, started inside the timing."""
    with concurrent.futures.ProcessPoolExecutor(cores()) as pool:
        return list(pool.map(square, range(calls)))


def submitit_local(calls: int, folder: Path) -> list[int]:
    """``submitit.LocalExecutor.map_array``."""
    import submitit

    executor = submitit.LocalExecutor(folder=str(folder / "submitit-local"))
    executor.update_parameters(timeout_min=10)
    jobs = executor.map_array(lambda x: x * x, range(calls))
    return [job.result() for job in jobs]


def submitit_slurm(calls: int, folder: Path) -> list[int]:
    """``submitit.SlurmExecutor.map_array``: one array job, 1 CPU per task."""
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder / "submitit-slurm"), python=sys.executable)
    executor.update_parameters(cpus_per_task=1, time=10, ntasks_per_node=1)
    jobs = executor.map_array(lambda x: x * x, range(calls))
    return [job.result() for job in jobs]


def swm_map(url: str, root: Path, site: str, calls: int, chunksize: int = 1) -> list[int]:
    """``Executor(site=...).map`` from this process (its folder is the server's root, as a kernel's is)."""
    from swm_jupyter import Executor
    from swm_jupyter.client import Client

    os.chdir(root)
    with Executor(site=site, cpus=1, walltime="00:10:00", client=Client(url, TOKEN)) as executor:
        return list(executor.map(lambda x: x * x, range(calls), chunksize=chunksize))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per contender (default 200)")
    parser.add_argument("--no-slurm", action="store_true", help="skip the Slurm rows")
    parser.add_argument("--no-local", action="store_true", help="skip the local rows (the Slurm pair only)")
    args = parser.parse_args()
    calls, slurm, local = args.calls, not args.no_slurm, not args.no_local
    if slurm:
        for line in ENV_FILE.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "SLURM_CONF":
                os.environ["SLURM_CONF"] = value
    base = Path(tempfile.mkdtemp(prefix="bench-executor-"))
    sites: dict[str, Any] = {
        "local": {"gate": "local", "cpus": cores()},
        "local-spawn": {"gate": "local", "cpus": cores(), "fast_python_start": False},
    }
    if slurm:
        sites["cluster"] = {
            "gate": "slurm",
            "python": sys.executable,
            "poll_interval_min": 0.3,
            "poll_interval_max": 2.0,
        }
    proc, url, root = start_server(base, sites)
    print(f"{calls} calls of lambda x: x * x, {cores()} cores, Python {sys.version.split()[0]}")
    try:
        swm_map(url, root, "local", 4)  # warm: the server's first job, the client's imports
        results: dict[str, float] = {}
        if local:
            results["floor"] = timed(f"{calls} python -c at concurrency {cores()} (floor)", lambda: floor(calls), calls)
            results["floor_cloudpickle"] = timed(
                "the same, each importing cloudpickle", lambda: floor(calls, "import cloudpickle; "), calls
            )
            results["pool"] = timed(f"ProcessPoolExecutor({cores()})", lambda: process_pool(calls), calls)
            results["swm_local"] = timed(
                "swm-jupyter Executor.map, local site", lambda: swm_map(url, root, "local", calls), calls
            )
            results["swm_spawn"] = timed(
                "the same, fast_python_start off (spawned)", lambda: swm_map(url, root, "local-spawn", calls), calls
            )
            timed(
                "swm-jupyter Executor.map, local, chunksize=10",
                lambda: swm_map(url, root, "local", calls, chunksize=10),
                calls,
            )
            results["submitit_local"] = timed(
                "submitit LocalExecutor.map_array", lambda: submitit_local(calls, base), calls
            )
        if slurm:
            results["swm_slurm"] = timed(
                "swm-jupyter Executor.map, Slurm site", lambda: swm_map(url, root, "cluster", calls), calls
            )
            results["submitit_slurm"] = timed(
                "submitit SlurmExecutor.map_array", lambda: submitit_slurm(calls, base), calls
            )
        print()
        if local:
            print(f"local: swm / floor = {results['swm_local'] / results['floor']:.2f}x (goal <= 1.5x)")
            print(f"local: spawned (fast_python_start off) / floor = {results['swm_spawn'] / results['floor']:.2f}x")
            floor_cp = results["swm_local"] / results["floor_cloudpickle"]
            print(f"local: swm / the floor importing cloudpickle = {floor_cp:.2f}x")
            print(f"local: swm / submitit LocalExecutor = {results['swm_local'] / results['submitit_local']:.3f}x")
            overhead = (results["swm_local"] - results["pool"]) / calls * 1000
            print(f"local: swm per-call overhead over ProcessPoolExecutor = {overhead:.1f} ms per call")
        if slurm:
            ratio = results["swm_slurm"] / results["submitit_slurm"]
            print(f"slurm: swm / submitit SlurmExecutor = {ratio:.2f}x (goal <= 1.0x)")
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
