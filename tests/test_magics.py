"""The ``%swm`` magics: usage errors in an in-process shell, and every magic in a real kernel."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import get_ipython

from swm_jupyter.client import Client
from swm_jupyter.magics import USAGE, SwmMagics, parse_value

from .notebook_fixtures import Server, notebook, outputs_text, swm_server  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def shell() -> object:
    ip = get_ipython()
    ip.register_magics(SwmMagics(ip, client=Client("http://127.0.0.1:9", "unused", timeout=1)))
    return ip


@pytest.mark.parametrize(
    "line, cell, message",
    [
        ("", None, "needs a subcommand"),
        ("frobnicate", None, "unknown subcommand 'frobnicate'"),
        ("submit --cpus many x.sh", None, "invalid int value"),
        ("submit", None, "give a FILE"),
        ("submit missing-file.sh", None, "cannot read missing-file.sh"),
        ("submit --bogus", "echo", "unrecognized arguments"),
        ("submit x.sh", "echo hi", "the cell is the script"),
        ("submit", "   ", "the cell is empty"),
        ("jobs", "echo", "only 'submit' takes a cell"),
        ("notebook", None, "the following arguments are required: path"),
        ("notebook nb.ipynb -p x", None, "expected 2 arguments"),
        ("notebook missing.ipynb", None, "no notebook"),
        ("cancel", None, "required: ids"),
        ("logs", None, "required: id"),
        ("wait --timeout soon a", None, "invalid float value"),
        ("show 'unclosed", None, "No closing quotation"),
    ],
)
def test_usage_errors_name_the_problem_and_show_usage(shell: object, line: str, cell: str | None, message: str) -> None:
    with pytest.raises(UsageError) as err:
        if cell is None:
            shell.run_line_magic("swm", line)
        else:
            shell.run_cell_magic("swm", line, cell)
    assert message in str(err.value)
    assert USAGE in str(err.value)


def test_help_and_values(shell: object) -> None:
    doc = shell.find_line_magic("swm").__doc__
    assert "%swm notebook PATH" in doc and "%%swm submit" in doc
    assert parse_value("3") == 3 and parse_value("[1, 2]") == [1, 2] and parse_value("abc") == "abc"


MAGICS_NOTEBOOK = [
    "%load_ext swm_jupyter",
    "job = %swm submit hello.sh --name from-file --cpus 1\nprint(type(job).__name__, job.name)",
    "%%swm submit --name from-cell --walltime 60 --wait\n#SWM cpus 1\necho cell says hi",
    "cell_job = _\nprint(cell_job.state, cell_job.logs().strip())",
    "%swm wait {job.id}",
    "%swm logs {job.id}",
    "%swm jobs --state finished --site local",
    "%swm show {job.id}",
    "%swm sites",
    "long = %swm submit sleeper.sh\n%swm cancel {long.id}",
    "long.wait(30).state",
    "nbjob = %swm notebook param.ipynb -p n 5 -p word ok --wait\nprint(nbjob.state, nbjob.exit_code)",
    "print(nbjob.fetch('param.executed.ipynb').decode().count('n*2 = 10 ok'))",
    "%swm logs {cell_job.id} -f",
    "try:\n    %swm cancel {job.id}\nexcept Exception as e:\n    print(type(e).__name__, e)",
    "%%swm submit --hold\n#SWM frobnicate 1\necho odd",
]


def test_every_magic_in_a_real_kernel(swm_server: Server) -> None:  # noqa: F811
    (swm_server.root / "hello.sh").write_text("#!/bin/bash\necho hello from file\n")
    (swm_server.root / "sleeper.sh").write_text("sleep 60\n")
    import nbformat

    nbformat.write(
        notebook("n = 1\nword = 'x'", "print(f'n*2 = {n * 2} {word}')", tags={0: ["parameters"]}),
        swm_server.root / "param.ipynb",
    )
    nb = swm_server.run_notebook(notebook(*MAGICS_NOTEBOOK))
    out = [outputs_text(c) for c in nb.cells]
    assert out[1] == "Job from-file\n"
    assert "from-cell" in out[2] and "finished" in out[2]
    assert out[3] == "finished cell says hi\n"
    assert "from-file" in out[4] and "finished" in out[4]
    assert out[5] == "hello from file\n"
    assert "from-file" in out[6] and "finished" in out[6] and "ID" in out[6]
    html = [o for o in nb.cells[6].outputs if "text/html" in o.get("data", {})]
    assert html and "swm-jobs" in html[0]["data"]["text/html"]
    assert "from-file" in out[7]
    assert "local (default)" in out[8]
    assert "cancel:" in out[9]
    assert out[10].startswith("waiting for Job") and out[10].endswith("'canceled'")
    assert out[11].strip().endswith("finished 0")
    assert out[12] == "1\n"
    assert out[13] == "cell says hi\n"
    assert out[14].startswith("SwmError") and "409" in out[14]
    assert "warning: line 1: unknown directive 'frobnicate'" in out[15], out[15]
    # widget views are shown with a text and HTML fallback
    views = [o for o in nb.cells[7].outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views and "from-file" in views[0]["data"]["text/html"]
