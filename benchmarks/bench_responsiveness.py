"""Responsiveness benchmark: GET /api/status latency while a 100,000-task array is submitted, listed and canceled.

Run: ``python benchmarks/bench_responsiveness.py [--tasks 100000] [--runs 3]`` (with ``pip install -e .[bench]``).
Starts a real ``jupyter server`` subprocess with swm_jupyter in a temporary folder. In each run it
measures, in this order: the baseline (GET /api/status asked every 20 ms for 3 s, no other load),
then the same polling while a held array of ``--tasks`` tasks is submitted (POST /jobs), while its
tasks are listed (GET /jobs?array_parent=...), and while it is canceled (DELETE /jobs/{id}). Prints
p50, p99 and max of each against the baseline's p50 and p99, the time each request took, and
whether the target (p99 under 100 ms during the submission) was met.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import TOKEN, percentile, start_server  # noqa: E402

#: The target of issue 13: GET /api/status p99 while a 100,000-task array is submitted.
TARGET_P99_MS = 100.0
#: Seconds between two status requests of the poller.
POLL_EVERY = 0.02


async def poll_status(session: aiohttp.ClientSession, url: str, until: asyncio.Future[Any] | float) -> list[float]:
    """Milliseconds each GET /api/status took, asked every :data:`POLL_EVERY` s until ``until`` is done
    (a future) or for ``until`` seconds (a number)."""
    latencies: list[float] = []
    deadline = time.monotonic() + until if isinstance(until, float) else None
    while (deadline is None and not until.done()) or (deadline is not None and time.monotonic() < deadline):  # type: ignore[union-attr]
        started = time.perf_counter()
        async with session.get(f"{url}/api/status") as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(POLL_EVERY)
    return latencies


async def under_load(session: aiohttp.ClientSession, url: str, work: Awaitable[Any]) -> tuple[list[float], float, Any]:
    """Poll the status while ``work`` runs: the latencies, the seconds ``work`` took, and its result."""
    started = time.monotonic()
    task = asyncio.ensure_future(work)
    latencies = await poll_status(session, url, task)
    return latencies, time.monotonic() - started, task.result()


def line(name: str, latencies: list[float], baseline: list[float], seconds: float | None = None) -> str:
    """One row of the results: p50, p99, max, and p50 and p99 as ratios of the baseline's."""
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    b50, b99 = percentile(baseline, 50), percentile(baseline, 99)
    took = f"{seconds:6.2f} s" if seconds is not None else "       -"
    return (
        f"{name:<28} {took} {len(latencies):6d} {p50:8.1f} {p99:8.1f} {max(latencies):8.1f}"
        f"   {p50 / b50:6.2f}x {p99 / b99:6.2f}x"
    )


async def one_run(url: str, tasks: int) -> tuple[list[str], float]:
    """One baseline and the three loads; the printed rows and the p99 during the submission."""
    api = f"{url}/swm/api/v1"
    async with aiohttp.ClientSession(headers={"Authorization": f"token {TOKEN}"}) as session:
        await poll_status(session, url, 0.5)  # warm up
        baseline = await poll_status(session, url, 3.0)

        async def submit() -> str:
            body = {"command": ["true"], "array": f"0-{tasks - 1}", "hold": True}
            async with session.post(f"{api}/jobs", json=body) as response:
                assert response.status == 201, await response.text()
                return str((await response.json())["id"])

        async def listing(parent: str) -> int:
            async with session.get(f"{api}/jobs", params={"array_parent": parent, "limit": "100"}) as response:
                return int((await response.json())["total"])

        async def cancel(parent: str) -> None:
            async with session.delete(f"{api}/jobs/{parent}") as response:
                assert response.status == 202, await response.text()

        submitting, submit_s, parent = await under_load(session, url, submit())
        listed, list_s, total = await under_load(session, url, listing(parent))
        assert total == tasks, total
        canceling, cancel_s, _ = await under_load(session, url, cancel(parent))
        rows = [
            line("no load (baseline)", baseline, baseline),
            line(f"submitting {tasks:,} tasks", submitting, baseline, submit_s),
            line("listing them", listed, baseline, list_s),
            line("canceling them", canceling, baseline, cancel_s),
        ]
        return rows, percentile(submitting, 99)


def main() -> None:
    """Start a server, run the measurements ``--runs`` times, print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--gc-freeze",
        choices=("on", "off", "both"),
        default="both",
        help="SwmApp.gc_freeze of the server; 'both' starts one server of each and interleaves their runs",
    )
    args = parser.parse_args()
    modes = ("off", "on") if args.gc_freeze == "both" else (args.gc_freeze,)
    base = Path(tempfile.mkdtemp(prefix="swm-bench-resp-"))
    servers: dict[str, tuple[Any, str]] = {}
    try:
        for mode in modes:
            folder = base / mode
            folder.mkdir()
            servers[mode] = start_server(folder, folder / "data", (f"--SwmApp.gc_freeze={mode == 'on'}",))
        print("GET /api/status, milliseconds; ratios are p50 / p99 to the baseline's of the same run")
        print(f"{'during':<28} {'took':>8} {'polls':>6} {'p50':>8} {'p99':>8} {'max':>8}   {'p50x':>7} {'p99x':>7}")
        worst = dict.fromkeys(modes, 0.0)
        for run in range(1, args.runs + 1):
            for mode in modes:
                print(f"run {run}, gc_freeze {mode}")
                rows, p99 = asyncio.run(one_run(servers[mode][1], args.tasks))
                worst[mode] = max(worst[mode], p99)
                for row in rows:
                    print("  " + row)
        for mode in modes:
            verdict = "met" if worst[mode] < TARGET_P99_MS else "MISSED"
            print(
                f"gc_freeze {mode}: target p99 < {TARGET_P99_MS:.0f} ms while submitting, "
                f"worst run {worst[mode]:.1f} ms: {verdict}"
            )
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
