"""A real ``jupyter server`` SIGKILLed right at a due time and restarted after several more: every due
time is handled exactly once, and the ones that passed while it was down go by ``catch_up``."""

from __future__ import annotations

import collections
import json
import math
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess

EVERY = 2.0
MODES = ("none", "last", "all")


def call(server: ServerProcess, path: str, body: Any = None, method: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{server.url}/swm/api/v1/{path}",
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else None


def runs(server: ServerProcess, schedule_id: str) -> list[dict[str, Any]]:
    return call(server, f"schedules/{schedule_id}/runs?limit=1000")["runs"]


def test_sigkill_at_a_due_time_then_restart_each_catch_up_mode(tmp_path: Path) -> None:
    marks = tmp_path / "marks.log"
    marks.touch()
    data_dir = tmp_path / "swm-data"
    server = ServerProcess(tmp_path / "root", data_dir).start()
    anchor = math.ceil(time.time()) + 3.0  # after the three schedules are made, even on a busy machine
    job = {"command": ["sh", "-c", f'echo "$SWM_JOB_ID" >> {marks}']}
    try:
        ids = {
            mode: call(
                server,
                "schedules",
                {
                    "name": f"crash-{mode}",
                    "job": job,
                    "every": EVERY,
                    "start": anchor,
                    "catch_up": mode,
                    "max_concurrent": 10,
                },
            )["id"]
            for mode in MODES
        }
        # Let two due times run, then SIGKILL right at the third.
        kill_at = anchor + 2 * EVERY
        time.sleep(max(0.0, kill_at - time.time()))
        server.kill()
    finally:
        server.kill()
    time.sleep(3 * EVERY + 0.5)  # three or four due times pass with no server
    restart_begin = time.time()
    restarted = ServerProcess(tmp_path / "root", data_dir).start()
    ready = time.time()  # the restarted runner started before its API answered
    try:
        time.sleep(EVERY * 1.5)
        for schedule_id in ids.values():
            call(restarted, f"schedules/{schedule_id}/pause", {}, "POST")
        deadline = time.monotonic() + 60
        while True:
            found = {mode: runs(restarted, schedule_id) for mode, schedule_id in ids.items()}
            launched = [r for rs in found.values() for r in rs if r["status"] == "launched"]
            if all(r["state"] in ("finished", "error", "canceled") for r in launched):
                break
            assert time.monotonic() < deadline, launched
            time.sleep(0.5)
    finally:
        restarted.stop()

    counts = collections.Counter(marks.read_text().split())
    missed_by_mode: dict[str, int] = {}
    assert all(count == 1 for count in counts.values()), f"a run ran twice: {counts}"
    for mode, mode_runs in found.items():
        dues = sorted(r["due_time"] for r in mode_runs)
        assert len(dues) == len(set(dues)), f"{mode}: a due time was recorded twice"
        # every due time from the anchor on was handled, none left out, all on the grid
        assert dues == [anchor + i * EVERY for i in range(len(dues))], (mode, dues)
        for run in mode_runs:
            if run["status"] == "launched":
                assert counts[run["job_id"]] == 1, f"{mode}: run {run} did not run exactly once"
                assert run["state"] == "finished" and run["exit_code"] == 0
        before = [r for r in mode_runs if r["created"] < restart_begin]
        assert len(before) >= 2 and all(r["status"] == "launched" for r in before), (mode, before)
        # Runs the restarted server recorded, by due time: those due before it began to start passed
        # with no server (late); those due while it started may be either (it knows when its runner started).
        recorded = sorted((r for r in mode_runs if r["created"] >= restart_begin), key=lambda r: r["due_time"])
        late = [r["status"] for r in recorded if r["due_time"] < restart_begin]
        statuses = [r["status"] for r in recorded]
        assert len(late) >= 3, (mode, mode_runs)
        if mode == "all":
            assert set(statuses) == {"launched"}, statuses
        else:
            # missed ones first, then launched ones: never a run after a miss of a newer due time
            missed = statuses.count("missed")
            assert statuses == ["missed"] * missed + ["launched"] * (len(statuses) - missed), (mode, statuses)
            if mode == "none":
                assert set(late) == {"missed"}, late
            else:
                assert late[:-1] == ["missed"] * (len(late) - 1), late
        missed_by_mode[mode] = statuses.count("missed")
        # due times that came once the restarted server ran were all run, whatever the mode
        after = [r for r in mode_runs if r["due_time"] >= ready]
        assert after and all(r["status"] == "launched" for r in after), (mode, mode_runs)
    # The three schedules share their due times and the restarted runner's start: "none" missed every
    # due time that passed before it started, "last" ran the newest of them, "all" ran every one.
    assert missed_by_mode["none"] >= 3
    assert missed_by_mode["last"] == missed_by_mode["none"] - 1, missed_by_mode
    assert missed_by_mode["all"] == 0
