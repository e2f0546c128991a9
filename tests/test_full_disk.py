"""A full disk under the job store: submissions get 507 with the reason, nothing is lost, and once
space returns every change and event is written without a restart (and still there after one).

The data folder of a real Jupyter server is put on a 2 MB tmpfs that the test mounts (root only).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ServerProcess

JOBS = 3


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for this test (skipped, with the reason printed, where it cannot be)."""
    if os.geteuid() != 0:
        reason = "mounting a tmpfs needs root (CI runs as root)"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here: {done.stderr.decode().strip()}"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def call(server: ServerProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """``(status, JSON answer)`` of one API request; never raises on an HTTP error status."""
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(
        f"{server.url}/swm/api/v1/{path}",
        data=data,
        method=method,
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def fill(disk: Path) -> Path:
    """Write a file until the file system has no space left; return it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    os.close(fd)
    return filler


def wait_for(server: ServerProcess, job_id: str, states: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, job = call(server, "GET", f"jobs/{job_id}")
        assert status == 200, job
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} is {job['state']}, not {states}: {job['history']}"
        time.sleep(0.2)


async def stored_events(server: ServerProcess) -> list[dict[str, Any]]:
    """Every event the server has stored (its websocket's replay from the first one)."""
    url = f"{server.url.replace('http', 'ws')}/swm/api/v1/events?last_event_id=0"
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"token {server.token}"}) as session:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=10)
            newest = hello["last_event_id"]
            while not events or events[-1]["id"] < newest:
                message = await ws.receive_json(timeout=10)
                if message.get("type") == "job":
                    events.append(message)
    return events


def test_full_disk_answers_507_loses_nothing_and_catches_up_without_restart(tmp_path: Path, small_disk: Path) -> None:
    runs = tmp_path / "runs.log"
    runs.touch()
    go = tmp_path / "go"
    data_dir = small_disk / "swm"
    sites = {"local": {"gate": "local", "cpus": 8}}
    server = ServerProcess(tmp_path / "root", data_dir, sites=sites).start()
    try:
        ids = []
        for n in range(JOBS):
            script = f"echo {n} >> {runs}; while [ ! -e {go} ]; do sleep 0.1; done"
            status, job = call(server, "POST", "jobs", {"name": f"full-{n}", "command": ["sh", "-c", script]})
            assert status == 201, job
            ids.append(job["id"])
        for job_id in ids:
            wait_for(server, job_id, {"running"}, 60)

        filler = fill(small_disk)
        accepted: list[str] = []
        refused: dict[str, Any] | None = None
        for n in range(2000):  # the store's log may still have room for a few: use it up
            status, answer = call(server, "POST", "jobs", {"name": f"probe-{n}", "command": ["true"], "hold": True})
            if status == 201:
                accepted.append(answer["id"])
                continue
            assert status == 507, answer
            refused = answer
            break
        assert refused is not None, "the store never ran out of space"
        message = refused["message"]
        assert message.startswith("the job store cannot be written: no space left on "), message
        assert str(small_disk) in message and "free space, nothing was lost" in message, message
        assert "send it again" in message, message

        go.touch()  # the jobs end while nothing can be written
        time.sleep(3)
        status, page = call(server, "GET", "jobs?limit=1000")
        assert status == 200, page  # reads still work
        unwritten = [j["id"] for j in page["jobs"] if j["id"] in ids and j["state"] != "finished"]
        assert unwritten, "the jobs' ends were written although the disk is full: the test shows nothing"

        filler.unlink()  # space is back: everything catches up, no restart
        deadline = time.monotonic() + 20
        while True:
            status, page = call(server, "GET", "jobs?limit=1000")
            assert status == 200, page
            listed = {j["id"]: j for j in page["jobs"] if j["id"] in ids}
            if all(j["state"] == "finished" for j in listed.values()):
                break
            assert time.monotonic() < deadline, f"not caught up: {[j['state'] for j in listed.values()]}"
            time.sleep(0.2)
        for job_id in ids:
            status, job = call(server, "GET", f"jobs/{job_id}")
            assert job["state"] == "finished" and job["exit_code"] == 0, job
            assert [h["state"] for h in job["history"]][-2:] == ["running", "finished"], job["history"]
        events = asyncio.run(stored_events(server))
        for job_id in ids:
            seen = [e["job"]["state"] for e in events if e["job"]["id"] == job_id]
            assert seen[-1] == "finished" and "running" in seen, (job_id, seen)
        status, page = call(server, "GET", "jobs?name=probe-&limit=1000")
        assert status == 200 and sorted(j["id"] for j in page["jobs"]) == sorted(accepted), page
        status, job = call(server, "POST", "jobs", {"name": "after", "command": ["true"]})
        assert status == 201, job
        wait_for(server, job["id"], {"finished"}, 20)
    finally:
        server.stop()

    restarted = ServerProcess(tmp_path / "root", data_dir, sites=sites).start()
    try:
        time.sleep(2)  # a poll or two of the site after the restart
        for job_id in ids:
            status, job = call(restarted, "GET", f"jobs/{job_id}")
            assert status == 200 and job["state"] == "finished" and job["exit_code"] == 0, job
    finally:
        restarted.stop()
    counts = collections.Counter(int(line) for line in runs.read_text().split())
    assert counts == {n: 1 for n in range(JOBS)}, f"each job runs once: {counts}"
