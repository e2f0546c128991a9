"""Notebook jobs: the runner on its own (parameters, failures, outputs) and through a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from swm_jupyter.client import Client
from swm_jupyter.runners.notebook import inject_parameters, parameters_source

from .notebook_fixtures import Server, notebook, swm_server  # noqa: F401 - fixture

PARAMS_NB = (
    "x = 1\nlabel = 'default'",
    "print('x*2 =', x * 2, 'label =', label)\nopen('result.txt', 'w').write(str(x * 2))",
)


def run_runner(folder: Path, nb: object, parameters: dict[str, object]) -> subprocess.CompletedProcess[str]:
    """Lay out a job folder as the core does and run the runner in it."""
    nbformat.write(nb, folder / "analysis.ipynb")
    (folder / "job.json").write_text(json.dumps({"notebook": "analysis.ipynb", "parameters": parameters}))
    return subprocess.run(
        [sys.executable, "-m", "swm_jupyter.runners.notebook", "job.json"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_inject_after_parameters_cell_or_at_top() -> None:
    nb = notebook("import os", "x = 1", "print(x)", tags={1: ["parameters"]})
    assert inject_parameters(nb, {"x": 5, "s": "a'b"}) == 2
    assert nb.cells[2].metadata["tags"] == ["injected-parameters"]
    assert "x = 5" in nb.cells[2].source and 's = "a\'b"' in nb.cells[2].source
    untagged = notebook("print(1)")
    assert inject_parameters(untagged, {"y": [1, 2]}) == 0
    assert untagged.cells[0].source.endswith("y = [1, 2]\n")
    # running it again replaces the injected cell instead of adding another
    assert inject_parameters(untagged, {"y": 3}) == 0
    assert len(untagged.cells) == 2
    with pytest.raises(Exception, match="not a Python identifier"):
        parameters_source({"bad name": 1})


def test_runner_injects_parameters_and_writes_executed_notebook(tmp_path: Path) -> None:
    result = run_runner(tmp_path, notebook(*PARAMS_NB, tags={0: ["parameters"]}), {"x": 21, "label": "run"})
    assert result.returncode == 0, result.stderr
    executed = nbformat.read(tmp_path / "analysis.executed.ipynb", as_version=4)
    assert executed.cells[1].metadata["tags"] == ["injected-parameters"]
    assert executed.cells[2].outputs[0]["text"] == "x*2 = 42 label = run\n"
    assert (tmp_path / "result.txt").read_text() == "42"
    assert not (tmp_path / ".swm-details").exists()
    # the submitted notebook is left as it was
    assert len(nbformat.read(tmp_path / "analysis.ipynb", as_version=4).cells) == 2


def test_runners_started_together_talk_to_their_kernels_over_private_unix_sockets(tmp_path: Path) -> None:
    """Kernels on TCP can take each other's ports when started at the same moment (jupyter_client
    picks free ports, then frees them for the kernel): each runner uses UNIX sockets of its own."""
    cell = (
        "import json, os, ipykernel.connect\n"
        "c = json.load(open(ipykernel.connect.get_connection_file()))\n"
        "print(c['transport'], os.path.dirname(c['ip']), os.path.exists(c['ip'] + '-' + str(c['shell_port'])))"
    )
    folders = [tmp_path / f"job{i}" for i in range(3)]
    runners = []
    for folder in folders:
        folder.mkdir()
        nbformat.write(notebook(cell), folder / "analysis.ipynb")
        (folder / "job.json").write_text(json.dumps({"notebook": "analysis.ipynb", "parameters": {}}))
        runners.append(
            subprocess.Popen(
                [sys.executable, "-m", "swm_jupyter.runners.notebook", "job.json"],
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    socket_folders = set()
    for folder, runner in zip(folders, runners, strict=True):
        _, stderr = runner.communicate(timeout=120)
        assert runner.returncode == 0, stderr
        executed = nbformat.read(folder / "analysis.executed.ipynb", as_version=4)
        transport, socket_folder, bound = executed.cells[0].outputs[0]["text"].split()
        assert (transport, bound) == ("ipc", "True")
        socket_folders.add(socket_folder)
        assert not Path(socket_folder).exists(), "the runner leaves no socket folder behind"
    assert len(socket_folders) == 3


def test_failing_notebook_exits_nonzero_and_names_the_cell(tmp_path: Path) -> None:
    nb = notebook(
        "fail = False",
        "print('before')",
        "if fail:\n    raise ValueError('boom')",
        "print('never')",
        tags={0: ["parameters"]},
    )
    result = run_runner(tmp_path, nb, {"fail": True})
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "cell 2 raised ValueError: boom"
    assert (tmp_path / ".swm-details").read_text().strip() == "cell 2 raised ValueError: boom"
    executed = nbformat.read(tmp_path / "analysis.executed.ipynb", as_version=4)
    assert executed.cells[2].outputs[0]["text"] == "before\n"
    assert executed.cells[3].outputs[-1]["ename"] == "ValueError"
    assert executed.cells[4].outputs == []


def test_runner_reports_a_missing_notebook(tmp_path: Path) -> None:
    (tmp_path / "job.json").write_text(json.dumps({"notebook": "nope.ipynb", "parameters": {}}))
    result = subprocess.run(
        [sys.executable, "-m", "swm_jupyter.runners.notebook", "job.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("notebook runner: cannot read the job")
    assert "nope.ipynb" in (tmp_path / ".swm-details").read_text()


def test_notebook_job_on_the_local_site(swm_server: Server) -> None:  # noqa: F811
    nbformat.write(notebook(*PARAMS_NB, tags={0: ["parameters"]}), swm_server.root / "params.ipynb")
    nbformat.write(notebook("raise RuntimeError('bad input')"), swm_server.root / "broken.ipynb")
    with Client(swm_server.url, swm_server.token) as client:
        good = client.submit(notebook="params.ipynb", parameters={"x": 4, "label": "srv"})
        bad = client.submit(notebook="broken.ipynb")
        good.wait(timeout=90, progress=False)
        bad.wait(timeout=90, progress=False)
        assert good.state == "finished" and good.exit_code == 0, (good.data, good.logs())
        paths = {f["path"] for f in good.files()}
        assert {"params.ipynb", "params.executed.ipynb", "result.txt"} <= paths
        executed = nbformat.reads(good.fetch("params.executed.ipynb").decode(), as_version=4)
        assert executed.cells[2].outputs[0]["text"] == "x*2 = 8 label = srv\n"
        assert bad.exit_code == 1, (bad.data, bad.logs())
        assert "cell 0 raised RuntimeError: bad input" in bad.state_details
