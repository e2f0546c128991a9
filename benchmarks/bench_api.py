"""REST/websocket API benchmark: submissions/s against /api/status, GET /jobs at 100k jobs, event latency.

Run: ``python benchmarks/bench_api.py [--jobs 100000] [--requests 2000]``. Starts real ``jupyter server``
subprocesses in a temporary folder and prints the figures and their ratios to the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import websockets

TOKEN = "bench-token"
CLIENTS = 16


def free_port() -> int:
    """A free TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    base: Path, data_dir: Path, extra_args: tuple[str, ...] = (), cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a jupyter server with swm_jupyter on ``data_dir`` (and ``extra_args``, in ``cwd``); return the process
    and its URL. Its Jupyter root is ``base / "root"``."""
    port = free_port()
    root = base / "root"
    root.mkdir(exist_ok=True)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(base / "runtime"), JUPYTER_CONFIG_DIR=str(base / "config"))
    cmd = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--log-level=WARN",
        "--ServerApp.jpserver_extensions={'swm_jupyter': True, 'jupyterlab': False, 'jupyter_lsp': False}",
        f"--SwmApp.data_dir={data_dir}",
        *extra_args,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(base / "server.log", "ab"), cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            request = urllib.request.Request(f"{url}/swm/api/v1/sites", headers={"Authorization": f"token {TOKEN}"})
            with urllib.request.urlopen(request, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not start: {(base / 'server.log').read_text()[-2000:]}")


async def rate(url: str, total: int, method: str, body: Any = None) -> float:
    """Requests per second with CLIENTS concurrent clients."""
    remaining = total
    headers = {"Authorization": f"token {TOKEN}"}

    async def client() -> None:
        nonlocal remaining
        async with aiohttp.ClientSession(headers=headers) as session:
            while remaining > 0:
                remaining -= 1
                async with session.request(method, url, json=body) as response:
                    await response.read()
                    assert response.status < 300, response.status

    await rate_warmup(url, method, body, headers)
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return total / (time.perf_counter() - start)


async def rate_warmup(url: str, method: str, body: Any, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(20):
            async with session.request(method, url, json=body) as response:
                await response.read()


async def list_latency(base_url: str, samples: int = 30, **params: str) -> tuple[float, float, int]:
    """Median and p95 milliseconds of GET /jobs (first page), and the total it reports."""
    times = []
    total = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"token {TOKEN}"}) as session:
        for _ in range(samples + 3):
            start = time.perf_counter()
            async with session.get(f"{base_url}/swm/api/v1/jobs", params=params) as response:
                page = await response.json()
            times.append((time.perf_counter() - start) * 1000)
            total = page["total"]
    times = times[3:]
    return statistics.median(times), percentile(times, 95), total


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


async def event_latency(base_url: str, count: int = 200) -> tuple[float, float]:
    """p50 and p95 milliseconds from a stored state change to its arrival on a websocket client."""
    ws_url = "ws" + base_url[4:] + "/swm/api/v1/events"
    latencies: list[float] = []
    async with websockets.connect(ws_url, additional_headers={"Authorization": f"token {TOKEN}"}) as ws:
        json.loads(await ws.recv())
        async with aiohttp.ClientSession(headers={"Authorization": f"token {TOKEN}"}) as session:

            async def produce() -> None:
                for _ in range(count):
                    async with session.post(f"{base_url}/swm/api/v1/jobs", json={"command": ["true"], "hold": True}):
                        pass
                    await asyncio.sleep(0.01)

            producer = asyncio.create_task(produce())
            while len(latencies) < count:
                event = json.loads(await ws.recv())
                if event.get("type") == "job":
                    latencies.append((time.time() - event["time"]) * 1000)
            await producer
    return statistics.median(latencies), percentile(latencies, 95)


async def fill_store(data_dir: Path, jobs: int) -> None:
    """Put ``jobs`` held jobs into a store with the headless manager (in batches of 1000)."""
    from swm_jupyter.core.manager import WorkloadManager

    manager = WorkloadManager(data_dir=str(data_dir), synchronous="NORMAL")
    await manager.start()
    try:
        for start in range(0, jobs, 1000):
            batch = [{"command": ["true"], "hold": True, "name": f"bench-{i}"} for i in range(start, start + 1000)]
            await manager.submit_many(batch)
    finally:
        await manager.stop()


def main() -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--listing-only", action="store_true", help="only the GET /jobs measurements")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ceiling = submits = p50_event = p95_event = float("nan")
        if not args.listing_only:
            proc, url = start_server(base, base / "data-rate")
            try:
                ceiling = asyncio.run(rate(f"{url}/api/status", args.requests, "GET"))
                submits = asyncio.run(
                    rate(f"{url}/swm/api/v1/jobs", args.requests, "POST", {"command": ["true"], "hold": True})
                )
                p50_event, p95_event = asyncio.run(event_latency(url))
            finally:
                proc.terminate()
                proc.wait()
        start = time.perf_counter()
        asyncio.run(fill_store(base / "data-big", args.jobs))
        fill_seconds = time.perf_counter() - start
        proc, url = start_server(base, base / "data-big")
        try:
            first = asyncio.run(list_latency(url))
            filtered = asyncio.run(list_latency(url, state="held", name="bench-99", top_level="true"))
            # The jobs table's column sorts (first page, top-level jobs).
            by_name = asyncio.run(list_latency(url, sort="-name", top_level="true"))
            by_state = asyncio.run(list_latency(url, sort="state", top_level="true"))
        finally:
            proc.terminate()
            proc.wait()
    print(f"CPUs: {os.cpu_count()}  clients: {CLIENTS}  requests: {args.requests}")
    print(f"GET /api/status (ceiling):    {ceiling:8.0f} req/s")
    print(f"POST /swm/api/v1/jobs:        {submits:8.0f} submissions/s   ratio {submits / ceiling:.2f} (target >= 0.5)")
    print(f"store filled with {args.jobs} jobs in {fill_seconds:.1f} s")
    print(
        f"GET /jobs first page:         p50 {first[0]:6.1f} ms  p95 {first[1]:6.1f} ms  total {first[2]}"
        f"   ratio to 50 ms {first[1] / 50:.2f} (target < 1)"
    )
    print(
        f"GET /jobs filtered page:      p50 {filtered[0]:6.1f} ms  p95 {filtered[1]:6.1f} ms  total {filtered[2]}"
        f"   ratio to 50 ms {filtered[1] / 50:.2f} (target < 1), to the first page {filtered[1] / first[1]:.2f}"
    )
    for label, figures in (("sort=-name", by_name), ("sort=state", by_state)):
        print(
            f"GET /jobs {label + ' page:':19} p50 {figures[0]:6.1f} ms  p95 {figures[1]:6.1f} ms"
            f"   ratio to the first page {figures[1] / first[1]:.2f}"
        )
    print(
        f"event latency:                p50 {p50_event:6.1f} ms  p95 {p95_event:6.1f} ms"
        f"   ratio to 50 ms {p95_event / 50:.2f} (target < 1)"
    )


if __name__ == "__main__":
    main()
