"""The ``swm`` command line against a real ``jupyter server`` subprocess: every command, --json, exit codes."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.client import Client, ServerNotFound, SwmError
from tests.conftest import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the module."""
    base = tmp_path_factory.mktemp("cli")
    process = ServerProcess(base / "root", base / "swm-data", sites={"local": {"gate": "local", "cpus": 4}})
    process.start()
    yield process
    process.stop()


def swm(
    server: ServerProcess | None,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``swm ARGS`` (as ``python -m swm_jupyter.cli``) and return the finished process."""
    environ = dict(server.env() if server else os.environ)
    if server is not None:
        environ.update({"SWM_URL": server.url, "SWM_TOKEN": server.token})
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "swm_jupyter.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd or (server.root if server else None),
        timeout=60,
        input=stdin,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_submit_command_and_wait_returns_its_exit_code(server: ServerProcess) -> None:
    job = as_json(swm(server, "submit", "--json", "--name", "three", "--", "sh", "-c", "echo out; exit 3"))
    assert job["name"] == "three" and job["spec"]["command"] == ["sh", "-c", "echo out; exit 3"]
    waited = swm(server, "wait", job["id"])
    assert waited.returncode == 3, waited.stderr
    assert "F failed" in waited.stdout, "a non-zero exit is shown as failed (#18)"
    ok = swm(server, "submit", "--wait", "--", "true")
    assert ok.returncode == 0, ok.stderr
    assert swm(server, "wait", "--json", job["id"][:8]).returncode == 3


def test_submit_script_file_logs_and_show(server: ServerProcess) -> None:
    script = server.root / "hello.sh"
    script.write_text("#!/bin/sh\n#SWM cpus 1\necho hello from swm\necho warn >&2\n")
    submitted = swm(server, "submit", str(script))
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert swm(server, "wait", "-q", job_id).returncode == 0
    assert swm(server, "logs", job_id).stdout == "hello from swm\n"
    assert swm(server, "logs", "--stderr", job_id).stdout == "warn\n"
    shown = swm(server, "show", job_id)
    assert shown.returncode == 0 and "name:      hello" in shown.stdout and "F finished" in shown.stdout
    data = as_json(swm(server, "show", "--json", job_id))
    assert data["id"] == job_id and data["history"][-1]["code"] == "F"
    from_stdin = swm(server, "submit", "--json", "-", stdin="#SWM name piped\necho piped\n")
    assert as_json(from_stdin)["name"] == "piped"


def test_submit_prints_the_warnings_of_ignored_directives(server: ServerProcess) -> None:
    script = server.root / "odd.sh"
    script.write_text("#!/bin/sh\n#SWM frobnicate 3\necho odd\n")
    for extra in ((), ("--dry-run",)):
        submitted = swm(server, "submit", *extra, str(script))
        assert submitted.returncode == 0, submitted.stderr
        assert submitted.stderr.startswith("warning: line 2: unknown directive 'frobnicate'"), submitted.stderr
    job_id = swm(server, "submit", "--hold", str(script)).stdout.strip()
    assert as_json(swm(server, "show", "--json", job_id))["warnings"][0].startswith("line 2: unknown directive")


def test_logs_follow_until_the_job_ends(server: ServerProcess) -> None:
    job = as_json(swm(server, "submit", "--json", "--", "sh", "-c", "echo a; sleep 1; echo b"))
    followed = swm(server, "logs", "-f", job["id"])
    assert followed.returncode == 0 and followed.stdout == "a\nb\n"


def test_jobs_table_and_json(server: ServerProcess) -> None:
    swm(server, "submit", "--hold", "--name", "listed-one", "--", "true")
    table = swm(server, "jobs", "--name", "listed")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "SITE", "STATE"]
    assert "listed-one" in table.stdout and "H held" in table.stdout and "of 1 jobs" in lines[-1]
    page = as_json(swm(server, "jobs", "--json", "--state", "H"))
    assert page["total"] >= 1 and all(j["state"] == "held" for j in page["jobs"])


def test_actions_and_their_exit_codes(server: ServerProcess) -> None:
    job = as_json(swm(server, "submit", "--json", "--hold", "--", "true"))
    assert swm(server, "hold", job["id"]).returncode == 1, "already held: 409"
    released = swm(server, "release", job["id"])
    assert released.returncode == 0 and job["id"][:8] in released.stdout
    assert swm(server, "wait", "-q", job["id"]).returncode == 0
    refused = swm(server, "cancel", job["id"])
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "already ended" in refused.stderr
    requeued = as_json(swm(server, "requeue", "--json", job["id"]))
    assert requeued["done"][0]["id"] == job["id"] and not requeued["failed"]
    assert swm(server, "wait", "-q", job["id"]).returncode == 0
    other = as_json(swm(server, "submit", "--json", "--hold", "--", "true"))
    canceled = swm(server, "cancel", other["id"], "no-such-job")
    assert canceled.returncode == 1 and "C canceled" in canceled.stdout and "no-such-job" in canceled.stderr


def test_wait_timeout_is_124(server: ServerProcess) -> None:
    job = as_json(swm(server, "submit", "--json", "--hold", "--", "true"))
    result = swm(server, "wait", "--timeout", "0.5", job["id"])
    assert result.returncode == 124 and "still held" in result.stderr
    swm(server, "cancel", job["id"])
    assert swm(server, "wait", "-q", job["id"]).returncode == 1, "a canceled job did not succeed"


def test_sites(server: ServerProcess) -> None:
    table = swm(server, "sites")
    assert table.returncode == 0 and "local *" in table.stdout and "yes" in table.stdout
    data = as_json(swm(server, "sites", "--json"))
    assert data["default"] == "local"
    one = as_json(swm(server, "sites", "--json", "local"))
    assert one["name"] == "local"
    missing = swm(server, "sites", "mars")
    assert missing.returncode == 1 and "mars" in missing.stderr


def test_notebook_dry_run_and_validation_errors(server: ServerProcess) -> None:
    notebook = server.root / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    dry = swm(server, "submit", "--dry-run", str(notebook), "-p", "alpha=0.5", "-p", "label=x")
    assert dry.returncode == 0, dry.stderr
    assert "would submit" in dry.stdout
    bad = swm(server, "submit", "--cpus", "0", "--", "true")
    assert bad.returncode == 1 and "resources.cpus" in bad.stderr and bad.stderr.count("\n") == 1
    assert as_json(swm(server, "jobs", "--json", "--name", "nb"))["total"] == 0


@pytest.mark.parametrize(
    "args",
    [
        ("submit",),
        ("frobnicate",),
        ("jobs", "--limit", "ten"),
        ("show",),
        ("logs", "x", "--", "y"),
        ("submit", "-p", "a=1", "--", "true"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(server: ServerProcess, args: tuple[str, ...]) -> None:
    result = swm(server, *args)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_unreachable_server_is_one_line_and_exit_3(tmp_path: Path) -> None:
    env = {"SWM_URL": "http://127.0.0.1:9", "SWM_TOKEN": "x", "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    result = swm(None, "jobs", env=env, cwd=tmp_path)
    assert result.returncode == 3 and result.stderr.count("\n") == 1 and "cannot reach" in result.stderr
    environ = {k: v for k, v in os.environ.items() if k not in ("SWM_URL", "SWM_TOKEN")}
    environ["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "empty")
    nothing = subprocess.run(
        [sys.executable, "-m", "swm_jupyter.cli", "jobs"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
    )
    assert nothing.returncode == 3 and "no running Jupyter server" in nothing.stderr


@pytest.mark.parametrize("url", ["not-a-url", "localhost:8888", "ftp://example.org/", "http://[bad", "http://h:99999/"])
def test_a_server_url_that_is_not_one_is_one_line_and_exit_3(tmp_path: Path, url: str) -> None:
    env = {"SWM_URL": url, "SWM_TOKEN": "x", "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    result = swm(None, "jobs", env=env, cwd=tmp_path)
    assert result.returncode == 3, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"SWM_URL {url!r} is not" in result.stderr and "http://127.0.0.1:8888/" in result.stderr
    given = swm(None, "jobs", "--url", url, env={"JUPYTER_RUNTIME_DIR": str(tmp_path)}, cwd=tmp_path)
    assert given.returncode == 3 and given.stderr.count("\n") == 1 and "is not" in given.stderr, given.stderr


@pytest.mark.parametrize("path", ["/wrong/base", "/api"])
def test_a_wrong_path_is_one_line_not_the_html_page(server: ServerProcess, path: str) -> None:
    result = swm(server, "jobs", env={"SWM_URL": server.url + path})
    assert result.returncode == 3, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "<" not in result.stderr, result.stderr
    assert "not the swm API" in result.stderr and "HTTP 404 with text/html" in result.stderr


def test_finds_the_server_from_runtime_files(server: ServerProcess) -> None:
    environ = {k: v for k, v in server.env().items() if k not in ("SWM_URL", "SWM_TOKEN")}
    result = subprocess.run(
        [sys.executable, "-m", "swm_jupyter.cli", "sites", "--json"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=server.root,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["default"] == "local"


FIND_AND_LIST_MODULES = """
import sys
from swm_jupyter.cli import main
status = main(["sites", "--json"])
print("MODULES", [m for m in sys.modules if m.split(".")[0] in ("jupyter_server", "httpx")], file=sys.stderr)
sys.exit(status)
"""


def test_finding_the_server_reads_runtime_files_without_jupyter_server(server: ServerProcess, tmp_path: Path) -> None:
    """The CLI finds the server from its runtime file alone: a file of a server that is gone (newer) and a
    garbled one are passed over, and neither ``jupyter_server`` (seconds to import) nor httpx is loaded."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (real,) = (server.root.parent / "runtime").glob("jpserver-*.json")
    shutil.copy(real, runtime / real.name)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    info = json.loads(real.read_text()) | {"pid": gone.pid, "url": "http://127.0.0.1:9/", "root_dir": str(tmp_path)}
    (runtime / f"jpserver-{gone.pid}.json").write_text(json.dumps(info))
    (runtime / "jpserver-1.json").write_text('{"url": "http://127.0')
    environ = {k: v for k, v in server.env().items() if k not in ("SWM_URL", "SWM_TOKEN")}
    environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    result = subprocess.run(
        [sys.executable, "-c", FIND_AND_LIST_MODULES],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["default"] == "local"
    assert "MODULES []" in result.stderr, result.stderr


class NotTheApi(http.server.BaseHTTPRequestHandler):
    """A web server that answers every request with an HTML 404 page, and counts them."""

    requests: list[str] = []

    def do_POST(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body>no such page</body></html>")

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_a_submission_answered_by_another_web_server_is_one_clear_error_sent_once(tmp_path: Path) -> None:
    """Only a lost answer (or 502/503/504) is worth sending again; an HTML page means a wrong URL, said at once
    in one line, by the CLI and the Python client alike (one HTTP stack, one error type)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotTheApi)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        result = swm(None, "submit", "--", "true", env={"SWM_URL": url, "JUPYTER_RUNTIME_DIR": str(tmp_path)})
        assert result.returncode == 3 and "not the swm API" in result.stderr, result.stderr
        assert NotTheApi.requests == ["/swm/api/v1/jobs"], NotTheApi.requests
        with Client(url, "x", timeout=5) as client, pytest.raises(ServerNotFound) as refused:
            client.submit(command=["true"])
        assert isinstance(refused.value, SwmError) and refused.value.status == 404
        assert "HTTP 404 with text/html, not the swm API" in str(refused.value) and "<" not in str(refused.value)
        assert NotTheApi.requests == ["/swm/api/v1/jobs"] * 2, NotTheApi.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("swm")
    assert script.exists()
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "submit" in result.stdout
