"""Start a console script (``jupyterhub-singleuser``) in this Python without its slowest needless import.

``python -m swm_jupyter.hub.fast_start jupyterhub-singleuser [args]`` runs the script's entry point
in-process after marking ``rfc3987_syntax`` as not installed. jsonschema imports it, when present, to
check the ``iri`` string format, and it builds some 35 Lark parsers at import: 1 - 3 s of the
single-user server's start on a busy 2-core machine, more than half of it (jupyter_server issue
#1559). No Jupyter schema uses that format (jsonschema then skips it, as when the package is
absent); kernels and terminals the server starts are separate processes, not affected.

:mod:`.server_job` uses it (``--fast-start``, ``SwmSpawner.fast_start``) only for a script of this
Python's own environment; any other command is run as it is.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib.metadata import entry_points
from typing import Any

#: Modules made unimportable in the server process (see the module docstring).
SKIPPED_MODULES = ("rfc3987_syntax",)


def entry_point(command: str) -> Any | None:
    """The console-script entry point of ``command`` if it is a script of this Python's environment, else None."""
    path = shutil.which(command)
    if path is None or os.path.dirname(os.path.abspath(path)) != os.path.dirname(os.path.abspath(sys.executable)):
        return None
    found = entry_points(group="console_scripts", name=os.path.basename(command))
    return next(iter(found), None)


def main() -> None:
    """Run ``argv[1:]``: in-process without :data:`SKIPPED_MODULES` if it is a script of this environment, else
    exec it as it is."""
    command = sys.argv[1:]
    if not command:
        raise SystemExit("usage: python -m swm_jupyter.hub.fast_start SCRIPT [ARGS...]")
    point = entry_point(command[0])
    if point is None:
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            print(f"swm spawner: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
            raise SystemExit(127) from None
    for name in SKIPPED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[assignment] - "import x" then raises ImportError
    sys.argv = [shutil.which(command[0]) or command[0], *command[1:]]
    raise SystemExit(point.load()())


if __name__ == "__main__":
    main()
