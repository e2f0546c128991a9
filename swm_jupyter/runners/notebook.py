"""Run a notebook job headless: ``python -m swm_jupyter.runners.notebook job.json`` inside the job folder.

``job.json`` is ``{"notebook": "<file name in the job folder>", "parameters": {...}}``. The runner

1. reads the notebook next to ``job.json``;
2. injects the parameters (papermill's convention): a new code cell tagged ``injected-parameters``
   right after the first cell tagged ``parameters``, or at the top when no cell has that tag;
3. executes it with nbclient in the current folder (the job's working folder), saving the
   notebook after every cell so its progress can be watched; the kernel talks to the runner over
   UNIX sockets in a private temporary folder, not TCP ports: kernels started at the same moment
   by other jobs can then never take each other's ports (jupyter_client picks free TCP ports and
   releases them before the kernel binds them, so parallel starts can collide);
4. writes the executed notebook, with outputs, as ``<stem>.executed.ipynb`` next to the input
   (the submitted notebook is left untouched, so a job can be requeued and compared).

Exit codes: 0 when every cell ran; 1 when a cell raised (the executed notebook still holds every
output up to and including the error); 2 when the job could not start (bad ``job.json``, missing
notebook, unknown kernel). In both error cases the first line printed to stderr is one line such
as ``cell 3 raised ValueError: boom`` (the cell index counts the cells of the *submitted* notebook
from 0), and the same line is written to ``.swm-details`` next to ``job.json``, where gates read it
for the job's ``state_details``.

Only nbformat, nbclient and jupyter_client are needed on the site: the runner imports nothing else
from swm_jupyter, so a gate may run it on any Python with nbclient.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Tag of the cell after which parameters are injected (papermill's convention).
PARAMETERS_TAG = "parameters"
#: Tag of the cell the runner adds.
INJECTED_TAG = "injected-parameters"
#: Suffix of the executed notebook written beside the submitted one.
EXECUTED_SUFFIX = ".executed.ipynb"
#: Where the one-line account of a failure goes, relative to the folder of ``job.json``.
DETAILS_FILE = ".swm-details"


class RunnerError(Exception):
    """The job could not start: the message is the one line for ``.swm-details``."""


def executed_name(notebook: str) -> str:
    """The file name of the executed notebook for the submitted ``notebook`` (``a.ipynb`` -> ``a.executed.ipynb``)."""
    stem = notebook[: -len(".ipynb")] if notebook.endswith(".ipynb") else notebook
    return stem + EXECUTED_SUFFIX


def parameters_source(parameters: dict[str, Any]) -> str:
    """Python source assigning each parameter, one ``name = value`` line each (values as literals)."""
    lines = ["# Parameters injected by swm-jupyter"]
    for name, value in parameters.items():
        if not name.isidentifier():
            raise RunnerError(f"parameter name {name!r} is not a Python identifier")
        lines.append(f"{name} = {value!r}")
    return "\n".join(lines) + "\n"


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> int | None:
    """Insert the parameters cell into ``nb`` (in place) and return its index, or None if none given.

    The cell goes right after the first cell tagged ``parameters``, or first when no cell is.
    A previous ``injected-parameters`` cell (from an earlier run) is replaced.
    """
    import nbformat

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return None
    cell = nbformat.v4.new_code_cell(parameters_source(parameters))
    cell.metadata["tags"] = [INJECTED_TAG]
    index = 0
    for i, existing in enumerate(nb.cells):
        if PARAMETERS_TAG in existing.get("metadata", {}).get("tags", []):
            index = i + 1
            break
    nb.cells.insert(index, cell)
    return index


def _kernel_name(nb: Any) -> str:
    """The notebook's kernel if this host has it, else ``python3`` for Python notebooks."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    wanted = nb.metadata.get("kernelspec", {}).get("name") or "python3"
    try:
        KernelSpecManager().get_kernel_spec(wanted)
        return str(wanted)
    except NoSuchKernel:
        language = nb.metadata.get("kernelspec", {}).get("language") or nb.metadata.get("language_info", {}).get(
            "name", "python"
        )
        if language != "python":
            raise RunnerError(f"kernel {wanted!r} is not installed on this site") from None
        print(f"swm: kernel {wanted!r} is not installed here; running with python3", file=sys.stderr)
        return "python3"


def _one_line(text: str, limit: int = 300) -> str:
    first = " ".join(str(text).strip().split())
    return first if len(first) <= limit else first[: limit - 3] + "..."


def run(job_file: str | os.PathLike[str]) -> int:
    """Run the notebook job described by ``job_file``; return the process exit code (0, 1 or 2).

    Writes ``<stem>.executed.ipynb`` in the folder of ``job_file`` and, on failure, ``.swm-details``.
    """
    job_path = Path(job_file).resolve()
    folder = job_path.parent
    details_path = folder / DETAILS_FILE
    try:
        details_path.unlink()
    except OSError:
        pass

    def fail(line: str, code: int) -> int:
        print(line, file=sys.stderr)
        try:
            details_path.write_text(line + "\n")
        except OSError as exc:  # the line on stderr is still there
            print(f"swm: could not write {details_path}: {exc}", file=sys.stderr)
        return code

    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
        from traitlets.config import Config
    except ImportError as exc:
        return fail(f"notebook runner: this Python has no nbclient/nbformat ({exc})", 2)

    try:
        spec = json.loads(job_path.read_text())
        name = spec["notebook"]
        parameters = spec.get("parameters") or {}
        if not isinstance(name, str) or not isinstance(parameters, dict):
            raise RunnerError("job.json must hold a notebook name and a parameters object")
        if os.path.basename(name) != name:
            raise RunnerError(f"notebook {name!r} must be a file name in the job folder")
        source = folder / name
        nb = nbformat.read(source, as_version=4)
        injected = inject_parameters(nb, parameters)
        kernel = _kernel_name(nb)
    except RunnerError as exc:
        return fail(f"notebook runner: {exc}", 2)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return fail(f"notebook runner: cannot read the job ({type(exc).__name__}: {_one_line(str(exc))})", 2)
    except Exception as exc:  # nbformat's validation errors have no common base
        return fail(f"notebook runner: cannot read the notebook ({type(exc).__name__}: {_one_line(str(exc))})", 2)

    output = folder / executed_name(name)
    current = {"index": -1}
    last_save = {"time": 0.0}

    def save(force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last_save["time"] > 1.0:
            tmp = output.with_name(output.name + ".tmp")
            nbformat.write(nb, tmp)
            os.replace(tmp, output)
            last_save["time"] = now

    def on_cell_start(cell: Any, cell_index: int, **_: Any) -> None:
        current["index"] = cell_index

    def on_cell_executed(cell: Any, cell_index: int, **_: Any) -> None:
        save()

    def user_index(index: int) -> str:
        """Name cell ``index`` of the executed notebook as the user knows it (submitted notebook)."""
        if injected is None or index < injected:
            return f"cell {index}"
        if index == injected:
            return "the injected parameters cell"
        return f"cell {index - 1}"

    try:
        sockets = tempfile.mkdtemp(prefix="swm-kernel-")  # short: a UNIX socket path has a limit
    except OSError as exc:
        return fail(f"notebook runner: cannot make a folder for the kernel's sockets: {exc}", 2)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=None,
        resources={"metadata": {"path": os.getcwd()}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
        config=Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}}),
    )
    print(f"swm: running {name} with kernel {kernel}; output {output.name}", flush=True)
    try:
        # The kernel's own stderr (start-up warnings, crashes) goes to the job's stdout, so that the
        # first line of the runner's stderr is the account of a failure.
        client.execute(stderr=sys.stdout)
    except CellExecutionError as exc:
        save(force=True)
        return fail(f"{user_index(current['index'])} raised {exc.ename}: {_one_line(exc.evalue)}", 1)
    except CellTimeoutError as exc:
        save(force=True)
        return fail(f"{user_index(current['index'])} timed out: {_one_line(str(exc))}", 1)
    except DeadKernelError:
        save(force=True)
        return fail(f"{user_index(current['index'])}: the kernel died", 1)
    except Exception as exc:
        save(force=True)
        return fail(f"notebook runner: {type(exc).__name__}: {_one_line(str(exc))}", 2)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    save(force=True)
    print(f"swm: {name} ran to the end; executed notebook in {output.name}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m swm_jupyter.runners.notebook job.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m swm_jupyter.runners.notebook job.json", file=sys.stderr)
        return 2
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
