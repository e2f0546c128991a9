"""``swm schedule ...`` and ``%swm schedule ...`` against a real ``jupyter server`` subprocess."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError

from swm_jupyter.client import Client
from swm_jupyter.magics import SwmMagics
from tests.conftest import ServerProcess
from tests.test_cli import as_json, swm


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the module."""
    base = tmp_path_factory.mktemp("schedcli")
    process = ServerProcess(base / "root", base / "swm-data", sites={"local": {"gate": "local", "cpus": 4}})
    process.start()
    yield process
    process.stop()


def test_schedule_commands(server: ServerProcess) -> None:
    made = as_json(
        swm(
            server, "schedule", "add", "--json", "--every", "1h", "-n", "hourly", "--keep-last", "3", "--", "echo", "hi"
        )
    )
    assert made["name"] == "hourly" and made["every"] == "1h" and made["keep_last"] == 3
    assert made["job"]["command"] == ["echo", "hi"]
    listed = swm(server, "schedule", "list")
    assert listed.returncode == 0 and made["id"][:8] in listed.stdout and "every 1h" in listed.stdout
    assert [s["id"] for s in as_json(swm(server, "schedule", "list", "--json"))] == [made["id"]]

    ran = swm(server, "schedule", "run", made["id"][:8])
    assert ran.returncode == 0, ran.stderr
    job_id = ran.stdout.strip()
    deadline = time.monotonic() + 30
    while True:
        shown = as_json(swm(server, "schedule", "show", made["id"], "--json"))
        if shown["runs"] and shown["runs"][0]["state"] == "finished":
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.3)
    assert shown["runs"][0]["job_id"] == job_id and shown["runs"][0]["manual"] is True
    text = swm(server, "schedule", "show", made["id"]).stdout
    assert "every 1h" in text and "launched (manual)" in text and "finished" in text

    assert "paused" in swm(server, "schedule", "pause", made["id"]).stdout
    assert as_json(swm(server, "schedule", "show", made["id"], "--json"))["paused"] is True
    assert "resumed" in swm(server, "schedule", "resume", made["id"]).stdout
    again = swm(server, "schedule", "resume", made["id"])
    assert again.returncode == 1 and "not paused" in again.stderr

    cron = as_json(
        swm(server, "schedule", "add", "--json", "--cron", "0 9 * * 1-5", "--tz", "Europe/Berlin", "--", "true")
    )
    assert cron["cron"] == "0 9 * * 1-5" and cron["timezone"] == "Europe/Berlin"
    gone = swm(server, "schedule", "rm", made["id"], cron["id"])
    assert gone.returncode == 0
    assert as_json(swm(server, "schedule", "list", "--json")) == []


def test_schedule_command_errors(server: ServerProcess, monkeypatch: Any) -> None:
    result = swm(server, "schedule", "add", "--", "true")
    assert result.returncode == 2 and "--every" in result.stderr
    result = swm(server, "schedule", "add", "--every", "soon", "--", "true")
    assert result.returncode == 1 and "every" in result.stderr and "Traceback" not in result.stderr
    result = swm(server, "schedule", "add", "--every", "1h")
    assert result.returncode == 2 and "say what to run" in result.stderr
    result = swm(server, "schedule", "show", "nope-nope")
    assert result.returncode == 1 and "no schedule" in result.stderr
    result = swm(server, "schedule")
    assert result.returncode == 2
    result = swm(
        server,
        "schedule",
        "add",
        "--every",
        "1h",
        "--webhook",
        "http://x.example/h",
        "--webhook-token-env",
        "SWM_TEST_UNSET_VAR",
        "--",
        "true",
    )
    assert result.returncode == 2 and "is not set" in result.stderr
    result = swm(
        server,
        "schedule",
        "add",
        "--json",
        "--every",
        "1h",
        "--webhook",
        "http://x.example/h",
        "--webhook-token-env",
        "HOOK_TOKEN",
        "--",
        "true",
        env={"HOOK_TOKEN": "cli-secret-token"},
    )
    made = as_json(result)
    assert "cli-secret-token" not in result.stdout and made["webhook"]["token"] == "***"
    swm(server, "schedule", "rm", made["id"])
    assert as_json(swm(server, "schedule", "list", "--json")) == []


def test_schedule_magics(server: ServerProcess, capsys: Any) -> None:
    # The magics object itself (no IPython shell: the test session's one global shell is test_magics.py's).
    magics = SwmMagics(None, client=Client(server.url, server.token))

    class Shell:
        """Calls the magic as IPython would."""

        @staticmethod
        def run_line_magic(_name: str, line: str) -> Any:
            return magics.swm(line)

        @staticmethod
        def run_cell_magic(_name: str, line: str, cell: str) -> Any:
            return magics.swm(line, cell)

    shell = Shell()
    shell.run_cell_magic("swm", "schedule add --every 2h --name from-cell --keep-last 2", "echo from the cell\n")
    out = capsys.readouterr().out
    assert "added: from-cell, every 2h" in out
    schedule_id = out.split()[1]
    shell.run_line_magic("swm", "schedule list")
    assert "from-cell" in capsys.readouterr().out
    shell.run_line_magic("swm", f"schedule pause {schedule_id}")
    assert "paused" in capsys.readouterr().out
    shell.run_line_magic("swm", f"schedule run {schedule_id}")
    assert "run launched: job" in capsys.readouterr().out
    shell.run_line_magic("swm", f"schedule show {schedule_id}")
    shown = capsys.readouterr().out
    assert "from-cell" in shown and "PAUSED" in shown and "launched (manual)" in shown
    with pytest.raises(UsageError, match="say when it runs"):
        shell.run_cell_magic("swm", "schedule add", "echo")
    with pytest.raises(UsageError, match="needs a schedule id"):
        shell.run_line_magic("swm", "schedule pause")
    with pytest.raises(UsageError, match="only 'add' takes a cell"):
        shell.run_cell_magic("swm", "schedule list", "echo")
    shell.run_line_magic("swm", f"schedule rm {schedule_id}")
    assert "deleted" in capsys.readouterr().out
    client = Client(server.url, server.token)
    assert client.schedules.list() == []
    made = client.schedules.create({"job": {"command": ["true"]}, "every": "1d", "name": "from-python"})
    assert client.schedules.show(made["id"][:6])["name"] == "from-python"
    client.schedules.delete(made["id"])
    assert json.loads(json.dumps(client.schedules.list())) == []
