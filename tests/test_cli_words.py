"""#18's command line words against a real server: failed jobs, ``swm rm``, cancel's new state, sites, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.test_cli import as_json, swm


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the module."""
    base = tmp_path_factory.mktemp("cli-words")
    process = ServerProcess(base / "root", base / "swm-data", sites={"local": {"gate": "local", "cpus": 4}})
    process.start()
    yield process
    process.stop()


def test_failed_jobs_are_listed_and_shown_as_failed(server: ServerProcess) -> None:
    ok = as_json(swm(server, "submit", "--json", "--name", "words-ok", "--", "true"))
    bad = as_json(swm(server, "submit", "--json", "--name", "words-bad", "--", "sh", "-c", "exit 3"))
    assert swm(server, "wait", "-q", ok["id"]).returncode == 0
    assert swm(server, "wait", "-q", bad["id"]).returncode == 3
    failed = swm(server, "jobs", "--state", "failed", "--name", "words-")
    assert failed.returncode == 0, failed.stderr
    assert "words-bad" in failed.stdout and "words-ok" not in failed.stdout and "F failed" in failed.stdout
    listed = swm(server, "jobs", "--name", "words-").stdout
    assert "F failed" in listed and "F finished" in listed
    assert "state:     F failed" in swm(server, "show", bad["id"]).stdout
    assert as_json(swm(server, "jobs", "--json", "--state", "failed", "--name", "words-"))["total"] == 1


def test_rm_deletes_ended_jobs_and_refuses_the_others(server: ServerProcess) -> None:
    done = as_json(swm(server, "submit", "--json", "--", "true"))
    held = as_json(swm(server, "submit", "--json", "--hold", "--", "true"))
    assert swm(server, "wait", "-q", done["id"]).returncode == 0
    folder = Path(as_json(swm(server, "show", "--json", done["id"]))["folder"])
    assert folder.is_dir()
    removed = swm(server, "rm", done["id"], held["id"])
    assert removed.returncode == 1
    assert f"{done['id'][:8]}  deleted" in removed.stdout
    assert held["id"] in removed.stderr and "only a job that has ended can be deleted" in removed.stderr
    assert not folder.exists()
    assert swm(server, "show", done["id"]).returncode == 1
    assert as_json(swm(server, "show", "--json", held["id"]))["state"] == "held"
    swm(server, "cancel", held["id"])
    assert swm(server, "rm", held["id"]).returncode == 0


def test_cancel_prints_the_state_the_job_goes_to(server: ServerProcess) -> None:
    job = as_json(swm(server, "submit", "--json", "--", "sleep", "60"))
    for _ in range(100):
        if as_json(swm(server, "show", "--json", job["id"]))["state"] == "running":
            break
    canceled = swm(server, "cancel", job["id"])
    assert canceled.returncode == 0, canceled.stderr
    line = canceled.stdout.strip()
    assert line.startswith(f"{job['id'][:8]}  C canceled"), line
    assert swm(server, "wait", "-q", "--timeout", "30", job["id"]).returncode not in (0, 124)
    assert as_json(swm(server, "show", "--json", job["id"]))["state"] == "canceled"


def test_one_site_is_shown_as_tables(server: ServerProcess) -> None:
    shown = swm(server, "sites", "local")
    assert shown.returncode == 0, shown.stderr
    assert "name: local" in shown.stdout and "{" not in shown.stdout and "[" not in shown.stdout
    assert "limits: cpus 4" in shown.stdout


def test_a_refused_token_says_so_and_where_it_came_from(server: ServerProcess, tmp_path: Path) -> None:
    from_env = swm(server, "jobs", env={"SWM_TOKEN": "wrong"})
    assert from_env.returncode == 1 and from_env.stderr.count("\n") == 1
    assert "refused the token from SWM_TOKEN" in from_env.stderr, from_env.stderr
    from_option = swm(server, "jobs", "--token", "wrong")
    assert "refused the token from --token" in from_option.stderr, from_option.stderr
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    record = runtime / "jpserver-4242.json"
    record.write_text(json.dumps({"url": server.url + "/", "token": "wrong", "pid": os.getpid(), "root_dir": "/"}))
    environ = {k: v for k, v in os.environ.items() if k not in ("SWM_URL", "SWM_TOKEN")}
    environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    result = subprocess.run(
        [sys.executable, "-m", "swm_jupyter.cli", "jobs"], capture_output=True, text=True, env=environ, timeout=60
    )
    assert result.returncode == 1 and f"refused the token from the runtime file {record}" in result.stderr


def test_no_server_found_names_the_places_looked_at(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("SWM_URL", "SWM_TOKEN")}
    environ["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "empty")
    result = subprocess.run(
        [sys.executable, "-m", "swm_jupyter.cli", "jobs"], capture_output=True, text=True, env=environ, timeout=60
    )
    assert result.returncode == 3 and result.stderr.count("\n") == 1
    assert "SWM_URL" in result.stderr and str(tmp_path / "empty" / "jpserver-*.json") in result.stderr
