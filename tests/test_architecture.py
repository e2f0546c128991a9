"""The import rules between the core and its gates, checked on the source (ast), not by convention.

- ``swm_jupyter.core`` imports no ``swm_jupyter.gates`` module (nor the daemons and runners that
  gates start): it reaches gates only through ``core.gate_registry``, by entry-point name.
- a gate imports from ``swm_jupyter`` only other gate modules, the programs gates start
  (``daemons``, ``runners``) and the public names of the core modules in ``core.GATE_API``.
- neither imports Jupyter's server side (tornado, jupyter_server): both run headless.
"""

from __future__ import annotations

import ast
from pathlib import Path

from swm_jupyter.core import GATE_API

PACKAGE = Path(__file__).resolve().parent.parent / "swm_jupyter"
SERVER_SIDE = ("tornado", "jupyter_server", "jupyterhub")
#: Files in gates/ that are not gates: the old home of the registry, kept as a re-export.
NOT_GATES = {"registry.py"}


def imports_of(path: Path, root: Path) -> list[tuple[int, str, list[str]]]:
    """``(line, absolute module, imported names)`` for every import in ``path`` (a file of the
    package folder ``root``), nested ones too."""
    package = ".".join(("swm_jupyter", *path.relative_to(root).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, module]) if module else ".".join(base)
            names = [alias.name for alias in node.names]
            if module in ("swm_jupyter", "swm_jupyter.core", "swm_jupyter.gates"):
                # "from swm_jupyter.core import store" imports the module swm_jupyter.core.store
                found.extend((node.lineno, f"{module}.{name}", []) for name in names)
            else:
                found.append((node.lineno, module, names))
    return found


def violations_core(root: Path = PACKAGE) -> list[str]:
    """Imports in ``core`` that reach a gate (or a program a gate starts) or the server side."""
    bad = []
    for path in sorted((root / "core").glob("*.py")):
        for line, module, _ in imports_of(path, root):
            if module.startswith(("swm_jupyter.gates", "swm_jupyter.daemons", "swm_jupyter.runners")):
                bad.append(f"{path.name}:{line} imports {module}")
            if module.split(".")[0] in SERVER_SIDE:
                bad.append(f"{path.name}:{line} imports {module} (the core runs headless)")
    return bad


def violations_gates(root: Path = PACKAGE) -> list[str]:
    """Imports in ``gates`` of anything but gate modules, daemons/runners and the core's public names."""
    bad = []
    for path in sorted((root / "gates").glob("*.py")):
        if path.name in NOT_GATES:
            continue
        for line, module, names in imports_of(path, root):
            if module.split(".")[0] in SERVER_SIDE:
                bad.append(f"{path.name}:{line} imports {module} (gates run headless)")
            if not module.startswith("swm_jupyter"):
                continue
            parts = module.split(".")
            if len(parts) > 1 and parts[1] in ("gates", "daemons", "runners"):
                continue
            if parts[:2] != ["swm_jupyter", "core"] or len(parts) < 3:
                bad.append(f"{path.name}:{line} imports {module} (not the core)")
            elif parts[2] not in GATE_API:
                bad.append(f"{path.name}:{line} imports {module} (a core module that is not in core.GATE_API)")
            else:
                bad.extend(
                    f"{path.name}:{line} imports {module}.{name} (private)" for name in names if name.startswith("_")
                )
    return bad


def test_core_imports_no_gate() -> None:
    assert violations_core() == []


def test_gates_import_only_the_core_public_names() -> None:
    assert violations_gates() == []


def test_every_gate_api_module_exists() -> None:
    missing = [name for name in GATE_API if not (PACKAGE / "core" / f"{name}.py").exists()]
    assert missing == []


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    """The checker itself finds each kind of violation (a checker that sees nothing proves nothing)."""
    (tmp_path / "core").mkdir()
    (tmp_path / "gates").mkdir()
    (tmp_path / "core" / "a.py").write_text(
        "from ..gates.base import Gate\ndef f():\n    from swm_jupyter.gates import slurm\nimport tornado.web\n"
    )
    (tmp_path / "gates" / "g.py").write_text(
        "from ..core.store import Store\n"
        "from ..core.model import _private\n"
        "from ..handlers import base\n"
        "from ..core.model import Job\n"
        "from .commands import run_command\n"
        "from ..daemons.local_supervisor import PROTOCOL\n"
    )
    assert sorted(violations_core(tmp_path)) == [
        "a.py:1 imports swm_jupyter.gates.base",
        "a.py:3 imports swm_jupyter.gates.slurm",
        "a.py:4 imports tornado.web (the core runs headless)",
    ]
    assert sorted(violations_gates(tmp_path)) == [
        "g.py:1 imports swm_jupyter.core.store (a core module that is not in core.GATE_API)",
        "g.py:2 imports swm_jupyter.core.model._private (private)",
        "g.py:3 imports swm_jupyter.handlers (not the core)",
    ]


def test_old_homes_still_work() -> None:
    """The supervisor and the notebook runner moved; their old import paths and ``-m`` names still work
    (a sudoers rule or a site's script may name them)."""
    import subprocess
    import sys

    from swm_jupyter.core.gate_registry import load_gate_class
    from swm_jupyter.daemons import local_supervisor
    from swm_jupyter.gates import local_supervisor as old_supervisor
    from swm_jupyter.gates.registry import load_gate_class as old_load
    from swm_jupyter.notebook_runner import run as old_run
    from swm_jupyter.runners.notebook import run

    assert old_supervisor is local_supervisor
    assert old_run is run
    assert old_load is load_gate_class
    for module, code in (("swm_jupyter.gates.local_supervisor", 0), ("swm_jupyter.daemons.local_supervisor", 0)):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert result.returncode == code and "SOCKET" in result.stdout.upper(), result
    for module in ("swm_jupyter.notebook_runner", "swm_jupyter.runners.notebook"):
        result = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True)
        assert result.returncode == 2 and "usage: python -m swm_jupyter.runners.notebook job.json" in result.stderr
