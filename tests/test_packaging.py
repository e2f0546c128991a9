"""The installed package: the server extension is enabled by pip alone, and the gates are registered."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

BIN = Path(sys.executable).parent


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_server_extension_is_enabled_without_a_manual_step() -> None:
    out = subprocess.run(
        [str(BIN / "jupyter"), "server", "extension", "list"], capture_output=True, text=True, timeout=120
    )
    text = _plain(out.stdout + out.stderr)
    assert re.search(r"swm_jupyter\s+enabled", text), text
    assert re.search(r"swm_jupyter 0\.\d+\.\d+ OK", text), text


def test_gates_are_entry_points() -> None:
    names = {entry.name: entry.value for entry in entry_points(group="swm_jupyter.gates")}
    assert names["local"] == "swm_jupyter.gates.local:LocalGate"
    assert {"slurm", "ssh", "cloud"} <= set(names)


def test_swm_command_is_installed() -> None:
    out = subprocess.run([str(BIN / "swm"), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "submit" in out.stdout
