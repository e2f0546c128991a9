"""The installed package: the server extension is enabled by pip alone, the gates are registered, and every
third-party module the package imports is a declared dependency."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points, packages_distributions
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
#: Subpackages that may also import what an optional extra installs (they are loaded only with it).
EXTRA_FOR = {"hub": "hub"}


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


def _names(requirements: list[str]) -> set[str]:
    """The normalized distribution names of requirement strings (``"PyYAML>=6"`` -> ``"pyyaml"``)."""
    found = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
        if match:
            found.add(re.sub(r"[-_.]+", "-", match.group(0)).lower())
    return found


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in ``path`` that are neither the standard library nor us."""
    tops = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return {top for top in tops if top not in sys.stdlib_module_names and top != "swm_jupyter"}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11 (tomllib)")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = _names(project["dependencies"])
    extras = {name: _names(reqs) for name, reqs in project.get("optional-dependencies", {}).items()}
    dists = packages_distributions()
    missing = []
    for path in sorted((ROOT / "swm_jupyter").rglob("*.py")):
        part = path.relative_to(ROOT / "swm_jupyter").parts[0]
        allowed = required | extras.get(EXTRA_FOR.get(part, ""), set())
        for top in sorted(_third_party_imports(path)):
            names = _names(dists.get(top, [top]))
            if not names & allowed:
                missing.append(f"{path.relative_to(ROOT)} imports {top} (distribution {'/'.join(sorted(names))})")
    assert not missing, "not declared in pyproject.toml [project] dependencies:\n" + "\n".join(missing)


def test_the_first_command_says_what_it_does_and_opens_a_working_copy(tmp_path: Path) -> None:
    """``.ci/lab.sh`` (the README's first command) prints its steps, passes its arguments to ``jupyter lab``
    and opens a copy of the examples, so that the demo never modifies tracked files."""
    work = tmp_path / "examples"
    env = {**os.environ, "SWM_NOTEBOOK_DIR": str(work), "SWM_VENV": str(Path(sys.prefix))}
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "lab.sh"), "--version"], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "== swm-jupyter: setting up" in out and "== pip install" in out, out[-2000:]
    assert f"== a working copy of the examples in {work}" in out
    assert re.search(r"^\d+\.\d+\.\d+$", out.strip().splitlines()[-1]), out[-500:]  # jupyter lab --version ran
    assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in (ROOT / "docs" / "examples").iterdir())
    (work / "demo.ipynb").write_text("changed by the user")
    again = subprocess.run(
        ["bash", str(ROOT / ".ci" / "lab.sh"), "--version"], capture_output=True, text=True, env=env, timeout=600
    )
    assert again.returncode == 0 and "working copy" not in again.stdout
    assert (work / "demo.ipynb").read_text() == "changed by the user", "the user's copy is kept"
