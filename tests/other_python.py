"""Another CPython with an older cloudpickle, for the executor's version-mismatch tests.

:func:`ensure` makes (once) a virtual environment ``swm-other-python`` inside the environment that
runs the tests (``sys.prefix``), from a CPython of another minor version than this one, found on
``PATH`` as ``python3.N`` or through pyenv, with ``cloudpickle`` 2.2.1 from PyPI. On a machine with
no other CPython it is made from this Python, and only cloudpickle differs. ``.ci/setup.sh`` runs
this file (``python tests/other_python.py``); the tests call :func:`ensure` too, which returns at
once when the environment is there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The cloudpickle of the other environment: older than any the kernel's environment installs.
OLD_CLOUDPICKLE = "2.2.1"
#: Name of the environment's folder inside ``sys.prefix``.
FOLDER = "swm-other-python"
#: Python minor versions cloudpickle 2.2.1 installs on (3.7 to 3.11 are the ones it was made for).
MINORS = range(7, 14)
_PROBE = (
    "import platform, sys\n"
    "try:\n    import cloudpickle; cp = cloudpickle.__version__\nexcept ImportError:\n    cp = '-'\n"
    "print(platform.python_implementation(), '%d.%d' % sys.version_info[:2], cp)"
)


@dataclass(frozen=True)
class OtherPython:
    """The environment: its interpreter, its Python (major.minor) and its cloudpickle version."""

    python: Path
    version: str
    cloudpickle: str

    @property
    def same_python(self) -> bool:
        """True when no other CPython was found: the environment runs this Python (another cloudpickle)."""
        return self.version == this_version()


def this_version() -> str:
    """``"3.11"``: this interpreter's major.minor."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def location() -> Path:
    """Where the environment is: a folder inside the environment that runs this file."""
    return Path(sys.prefix) / FOLDER


def probe(python: str | Path) -> tuple[str, str, str] | None:
    """``(implementation, "3.10", cloudpickle version or "-")`` of an interpreter; None if it does not run."""
    try:
        proc = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = proc.stdout.split()
    return (words[0], words[1], words[2]) if proc.returncode == 0 and len(words) == 3 else None


def _order(minor: int) -> tuple[int, int]:
    """Older minors first, nearest first (cloudpickle 2.2.1 predates the newer ones)."""
    here = sys.version_info[1]
    return (minor > here, abs(minor - here))


def candidates() -> Iterator[str]:
    """Interpreters of other minor versions: ``python3.N`` on PATH, then pyenv's versions."""
    here = sys.version_info[1]
    minors = sorted((m for m in MINORS if m != here), key=_order)
    for minor in minors:
        found = shutil.which(f"python3.{minor}")
        if found:
            yield found
    if not shutil.which("pyenv"):
        return
    try:
        listed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return
    versions = {}
    for name in listed.stdout.split():
        match = re.fullmatch(r"3\.(\d+)\.\d+", name)  # CPython releases only (no pypy, no -dev)
        if match and int(match[1]) in minors:
            versions.setdefault(int(match[1]), name)
    for minor in sorted(versions, key=_order):
        prefix = subprocess.run(["pyenv", "prefix", versions[minor]], capture_output=True, text=True, timeout=60)
        if prefix.returncode == 0 and prefix.stdout.strip():
            yield str(Path(prefix.stdout.strip()) / "bin" / "python3")


def _make(base: str, target: Path) -> None:
    """A new environment in ``target`` from the interpreter ``base``, with the old cloudpickle."""
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([base, "-m", "venv", str(target)], check=True, capture_output=True, timeout=300)
    subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         f"cloudpickle=={OLD_CLOUDPICKLE}"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip


def ensure() -> OtherPython:
    """The environment, made first if it is not there (a few seconds; needs PyPI). Raises RuntimeError."""
    target = location()
    python = target / "bin" / "python"
    seen = probe(python) if python.exists() else None
    if seen and seen[2] == OLD_CLOUDPICKLE:
        return OtherPython(python, seen[1], seen[2])
    problems = []
    for base in [*candidates(), sys.executable]:  # this Python last: only cloudpickle differs then
        found = probe(base)
        if not found or found[0] != "CPython":
            continue
        if base != sys.executable and found[1] == this_version():
            continue  # e.g. a python3.N shim of pyenv that runs this version
        try:
            _make(base, target)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            problems.append(f"{base}: {exc} {stderr.decode(errors='replace')[-500:]}")
            continue
        seen = probe(python)
        if seen and seen[2] == OLD_CLOUDPICKLE:
            return OtherPython(python, seen[1], seen[2])
        problems.append(f"{base}: cloudpickle {OLD_CLOUDPICKLE} does not import there")
    shutil.rmtree(target, ignore_errors=True)
    raise RuntimeError(f"cannot make {target} with cloudpickle {OLD_CLOUDPICKLE}: " + "; ".join(problems))


if __name__ == "__main__":
    other = ensure()
    kind = "this Python, another cloudpickle" if other.same_python else "another Python"
    print(f"{os.path.relpath(other.python)}: Python {other.version}, cloudpickle {other.cloudpickle} ({kind})")
