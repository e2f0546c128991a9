"""The demo notebooks of docs/examples (also Binder's) run in a real kernel against a real server."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .notebook_fixtures import Server, outputs_text, swm_server  # noqa: F401 - fixture

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def test_demo_notebook_runs_with_server_discovery(swm_server: Server) -> None:  # noqa: F811
    folder = swm_server.root / "docs" / "examples"
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True)
    nb = nbformat.read(folder / "demo.ipynb", as_version=4)
    # no SWM_URL: the kernel finds the server through its runtime file, as on Binder
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(folder)}}).execute(
        env=swm_server.kernel_env(configured=False)
    )
    out = [outputs_text(c) for c in nb.cells]
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert "local (default)" in out[2]
    assert out[5].startswith("finished 0 hello from local")
    assert "host.txt" in out[5]
    assert "step 3" in out[8]
    assert out[10].strip().endswith("finished 0")
    assert out[11].strip() == "hi there 91"
    assert "demo-hello" in out[12] and "demo-slow" in out[12]
    assert out[13].startswith("Timeline") and out[14].startswith("SubmitForm(")


def test_parameters_notebook_runs_with_defaults() -> None:
    nb = nbformat.read(EXAMPLES / "parameters.ipynb", as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    assert outputs_text(nb.cells[2]) == "hello 5\n"
