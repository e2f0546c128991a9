"""A real ``jupyter server`` killed with SIGKILL during 500 concurrent submissions loses no job and runs none twice."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import ServerProcess

TOTAL = 500
CLIENTS = 16
KILL_AFTER = 200


async def submit_all(server: ServerProcess, runs: Path) -> tuple[dict[int, str], set[int]]:
    """Submit TOTAL jobs from CLIENTS concurrent clients; SIGKILL the server after KILL_AFTER answers.

    Returns the jobs acknowledged with 201 (index -> id) and the indices whose answer was lost.
    """
    acked: dict[int, str] = {}
    lost: set[int] = set()
    todo: asyncio.Queue[int] = asyncio.Queue()
    for n in range(TOTAL):
        todo.put_nowait(n)
    headers = {"Authorization": f"token {server.token}"}
    killed = asyncio.Event()

    async def client() -> None:
        async with aiohttp.ClientSession(headers=headers) as session:
            while not todo.empty():
                n = todo.get_nowait()
                spec = {"name": f"crash-{n}", "command": ["sh", "-c", f"echo {n} >> {runs}"]}
                try:
                    async with session.post(f"{server.url}/swm/api/v1/jobs", json=spec) as response:
                        if response.status == 201:
                            acked[n] = (await response.json())["id"]
                        else:
                            raise AssertionError(f"unexpected {response.status}: {await response.text()}")
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    lost.add(n)
                if len(acked) >= KILL_AFTER and not killed.is_set():
                    killed.set()
                    server.kill()

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    assert killed.is_set()
    return acked, lost


async def wait_all_final(server: ServerProcess, timeout: float = 90) -> dict[str, Any]:
    headers = {"Authorization": f"token {server.token}"}
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(f"{server.url}/swm/api/v1/jobs", params={"limit": "1"}) as response:
                page = await response.json()
            live = sum(page["counts"][s] for s in ("queued", "held", "waiting", "transferring", "running"))
            if live == 0:
                return page
            assert time.monotonic() < deadline, f"jobs still live after the restart: {page['counts']}"
            await asyncio.sleep(0.5)


async def fetch_all(server: ServerProcess) -> dict[str, dict[str, Any]]:
    headers = {"Authorization": f"token {server.token}"}
    jobs: dict[str, dict[str, Any]] = {}
    params = {"limit": "1000"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(f"{server.url}/swm/api/v1/jobs", params=params) as response:
                page = await response.json()
            jobs.update((j["id"], j) for j in page["jobs"])
            if not page["next_cursor"]:
                return jobs
            params = {"limit": "1000", "cursor": page["next_cursor"]}


def test_sigkill_during_submissions_loses_nothing_and_runs_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    runs.touch()
    sites = {"local": {"gate": "local", "cpus": 16}}
    data_dir = tmp_path / "swm-data"
    server = ServerProcess(tmp_path / "root", data_dir, sites=sites).start()
    try:
        acked, lost = asyncio.run(submit_all(server, runs))
        assert server.proc is not None and server.proc.returncode == -9
        assert len(acked) >= KILL_AFTER
        restarted = ServerProcess(tmp_path / "root", data_dir, sites=sites).start()
        try:
            asyncio.run(wait_all_final(restarted))
            stored = asyncio.run(fetch_all(restarted))
        finally:
            restarted.stop()
    finally:
        server.kill()

    counts = collections.Counter(int(line) for line in runs.read_text().split())
    for n, job_id in acked.items():
        assert job_id in stored, f"job {n} was acknowledged (201) but is not in the store after the restart"
        job = stored[job_id]
        assert job["state"] == "finished" and job["exit_code"] == 0, job
        assert counts[n] == 1, f"job {n} ran {counts[n]} times"
    for job in stored.values():
        n = int(job["name"].split("-")[1])
        assert counts[n] == 1, f"stored job {n} ran {counts[n]} times"
    assert all(c == 1 for c in counts.values()), "no job ran twice"
    unanswered = set(range(TOTAL)) - set(acked)
    assert lost <= unanswered
    print(f"acked {len(acked)}, answers lost {len(lost)}, stored {len(stored)}, runs {sum(counts.values())}")
