"""``swm_jupyter.Executor`` in real kernels and a real server: local, Slurm, SSH and (stand-in) cloud sites."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
import pytest
from nbclient import NotebookClient

from swm_jupyter.executor import Executor, ResultTooLarge, VersionMismatch
from swm_jupyter.executor.serialization import (
    RESULT_FILE,
    dump_call,
    load_result,
    mismatch_message,
    split_header,
)

from . import other_python
from .conftest import ServerProcess
from .notebook_fixtures import notebook, outputs_text
from .skyport_gate_standin import SkyPortGateStandin

RUNNER = Path(__file__).resolve().parent.parent / "swm_jupyter" / "executor" / "runner.py"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIswmEXECUTORtestPEM0123456789\n-----END PRIVATE KEY-----\n"


class Lab:
    """A running server with every kind of site, and a way to run notebooks in real kernels against it."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.root = server.root

    def run(self, *cells: str, timeout: int = 180) -> list[str]:
        """Run ``cells`` in a new kernel (in the server's root folder); returns each cell's text output."""
        nb = notebook(*cells)
        env = {**self.server.env(), "SWM_URL": self.server.url, "SWM_TOKEN": self.server.token}
        client = NotebookClient(
            nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(self.root)}}
        )
        client.execute(env=env)
        self.last = nb
        if os.environ.get("SWM_TEST_CELL_TIMES"):
            for cell in nb.cells:
                times = cell.metadata.get("execution", {})
                print(times.get("iopub.execute_input"), times.get("shell.execute_reply"), cell.source[:40])
        return [outputs_text(c) for c in nb.cells]

    def get(self, path: str, **params: Any) -> Any:
        """``GET /swm/api/v1/<path>`` as JSON."""
        response = httpx.get(
            f"{self.server.url}/swm/api/v1/{path}",
            params=params,
            headers={"Authorization": f"token {self.server.token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, services: dict[str, str]) -> Iterator[Lab]:
    """One real Jupyter server with the sites local, cluster (Slurm), host (SSH), cloud (stand-in) and oldpy."""
    ssh_options = {
        "host": services["SWM_TEST_SSH_HOST"],
        "port": int(services["SWM_TEST_SSH_PORT"]),
        "user": services["SWM_TEST_SSH_USER"],
        "key_file": services["SWM_TEST_SSH_KEY"],
        "known_hosts": services["SWM_TEST_KNOWN_HOSTS"],
        "use_agent": 0,  # not False: the command line reads the sites with ast.literal_eval, where JSON's false fails
    }
    base = tmp_path_factory.mktemp("executor")
    other = other_python.ensure()
    standin = SkyPortGateStandin(pem_data=PEM).start()
    python = sys.executable
    sites = {
        "local": {"gate": "local", "cpus": 4},
        "cluster": {
            "gate": "slurm",
            "python": python,
            "poll_interval_min": 0.3,
            "poll_interval_max": 1.0,
            "max_status_calls_per_minute": 0,
            "status_interval": 0.3,
        },
        "host": {
            "gate": "ssh",
            **ssh_options,
            "python": python,
            "remote_workdir": str(base / "ssh-jobs"),
            "poll_interval": 0.3,
            "max_running": 8,
        },
        "cloud": {
            "gate": "cloud",
            "url": standin.url,
            "cloud_kind": "azure",
            "pem_data": PEM,
            "default_flavor": "small",
            "default_image": "ubuntu-22.04",
            "ssh_port": ssh_options["port"],
            "ssh_user": ssh_options["user"],
            "ssh_key_file": ssh_options["key_file"],
            "known_hosts": ssh_options["known_hosts"],
            "use_agent": 0,
            "remote_workdir": str(base / "cloud-jobs"),
            "python": python,
            "poll_interval": 0.2,
            "idle_poll_interval": 0.5,
        },
        # A real other CPython (another minor version where the machine has one) with cloudpickle 2.2.1.
        "oldpy": {"gate": "local", "cpus": 2, "python": str(other.python)},
    }
    server = ServerProcess(base / "root", base / "data", sites=sites).start()
    try:
        yield Lab(server)
    finally:
        server.stop()
        standin.stop()


def site_cells(site: str, items: int) -> list[str]:
    """The cells every site must get right: notebook-defined code, map, exceptions, cancel, await, display."""
    return [
        f"from swm_jupyter import Executor\nimport time\nex = Executor(site={site!r}, walltime='00:10:00')",
        # a lambda, a closure, a function and a class defined in this notebook
        "def make_adder(k):\n    return lambda x: x + k\n"
        "def square(x):\n    return x * x\n"
        "class Acc:\n    def __init__(self, n):\n        self.n = n\n    def total(self):\n"
        "        return sum(range(self.n))\n"
        "fs = [ex.submit(lambda a, b=1: a * b, 6, b=7), ex.submit(make_adder(10), 5), ex.submit(square, 9),\n"
        "      ex.submit(Acc(5).total), ex.submit(lambda: Acc(3))]\n"
        "vals = [f.result(120) for f in fs]\n"
        "print(vals[:4], type(vals[4]).__name__, vals[4].n, type(fs[0]).__mro__[1].__module__)",
        f"n_before = len(ex.client.session_jobs)\nout = list(ex.map(lambda x: x * x, range({items}), timeout=240))\n"
        f"print(out == [x * x for x in range({items})], len(ex.client.session_jobs) - n_before, "
        "ex.client.session_jobs[-1])",
        "def boom(x):\n    raise KeyError(f'no {x}')\n"
        "try:\n    ex.submit(boom, 'key').result(120)\nexcept KeyError as e:\n"
        "    print(type(e).__name__, e, type(e.__cause__).__name__, 'in boom' in str(e.__cause__))",
        "slow = ex.submit(time.sleep, 120)\n"
        "print(slow.cancel(), slow.cancelled(), slow.job.wait(60, progress=False).state)",
        "await ex.submit(pow, 2, 10)",
        "shown = ex.submit(square, 3)\nshown.result(120)\nshown",
    ]


def check_site(lab: Lab, site: str, out: list[str], items: int) -> str:
    """Assert what :func:`site_cells` printed; returns the id of the map's array job."""
    assert out[1] == "[42, 15, 81, 10] Acc 3 concurrent.futures._base\n", out[1]
    same, new_jobs, parent = out[2].split()
    assert same == "True" and new_jobs == "1", out[2]  # one submission for the whole map
    tasks = lab.get("jobs", array_parent=parent, limit=1000)
    assert tasks["total"] == items and {t["site"] for t in tasks["jobs"]} == {site}
    assert out[3] == "KeyError 'no key' RemoteTraceback True\n", out[3]
    assert out[4] == "True True canceled\n", out[4]
    assert out[5] == "1024", out[5]
    shown = lab.last.cells[6].outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in shown and shown["text/plain"].startswith("<swm Future job")
    return parent


def test_local_site_and_option_errors(lab: Lab) -> None:
    cells = site_cells("local", 100)
    cells.append(
        "for bad in [dict(partition='gpu'), dict(slurm='gpu'), dict(max_result_bytes=0)]:\n"
        "    try:\n        Executor(**bad)\n    except TypeError as e:\n        print(e)"
    )
    cells.append(
        "from swm_jupyter.executor import ResultTooLarge\n"
        "try:\n    Executor(max_result_bytes=1000).submit(lambda: b'x' * 5000).result(60)\n"
        "except ResultTooLarge as e:\n    print(e)"
    )
    cells.append(  # 10 items in chunks of 3: one array of 4 tasks
        "print(list(ex.map(square, range(10), chunksize=3)), ex.client.session_jobs[-1])"
    )
    cells.append(  # the error of item 2 stops the loop; the tasks not done are canceled
        "try:\n    list(ex.map(lambda x: 1 // (x - 2), range(40)))\nexcept ZeroDivisionError as e:\n"
        "    print('ZeroDivisionError', ex.client.session_jobs[-1])"
    )
    cells.append(
        "ex2 = Executor(site='local')\nsleepers = [ex2.submit(time.sleep, 120) for _ in range(2)]\n"
        "ex2.shutdown(wait=True, cancel_futures=True)\nprint([f.cancelled() for f in sleepers])\n"
        "try:\n    ex2.submit(len, 'x')\nexcept RuntimeError as e:\n    print(e)"
    )
    cells.append("try:\n    Executor(site='nowhere').submit(len, 'x')\nexcept ValueError as e:\n    print(e)")
    cells.append(  # staging folders go once their jobs took their inputs or ended (canceled ones too)
        "import os\nend = time.monotonic() + 60\n"
        "while os.listdir('.swm-executor') and time.monotonic() < end:\n    time.sleep(0.1)\n"
        "print(os.listdir('.swm-executor'))"
    )
    out = lab.run(*cells)
    check_site(lab, "local", out, 100)
    values, parent = out[9].rsplit(" ", 1)
    assert values == str([x * x for x in range(10)]) and lab.get("jobs", array_parent=parent.strip())["total"] == 4
    kind, parent = out[10].split()
    assert kind == "ZeroDivisionError"
    tasks = lab.get("jobs", array_parent=parent, limit=100)["jobs"]
    assert {t["state"] for t in tasks} <= {"finished", "canceled", "queued", "waiting", "running"}
    assert any(t["state"] == "canceled" for t in tasks) or all(t["state"] == "finished" for t in tasks)
    assert out[11] == "[True, True]\ncannot schedule new futures after shutdown\n", out[11]
    errors = out[7].splitlines()
    assert errors[0].startswith("Executor() got unknown option 'partition'; known options are site, cpus, memory")
    assert "slurm" in errors[0] and "max_result_bytes" in errors[0]
    assert errors[1].startswith("Executor(slurm=...) must be a dict")
    assert errors[2] == "Executor(max_result_bytes=...) must be a positive number of bytes"
    assert "more than max_result_bytes=1,000" in out[8], out[8]
    assert out[12].startswith("no site 'nowhere'; configured sites: local, cluster, host, cloud, oldpy"), out[12]
    assert out[13] == "[]\n", out[13]


@pytest.mark.slurm
def test_slurm_site_map_is_one_sbatch_array(lab: Lab) -> None:
    out = lab.run(*site_cells("cluster", 100))
    parent = check_site(lab, "cluster", out, 100)
    tasks = lab.get("jobs", array_parent=parent, limit=1000)["jobs"]
    array_ids = {t["native_id"].split("_")[0] for t in tasks}
    assert len(array_ids) == 1, array_ids
    (array_id,) = array_ids
    # Slurm's side: one array job whose 100 tasks are 0..99
    shown = subprocess.run(["scontrol", "show", "job", "-o", array_id], capture_output=True, text=True, check=True)
    records = [dict(w.split("=", 1) for w in line.split() if "=" in w) for line in shown.stdout.splitlines()]
    assert records and {r["ArrayJobId"] for r in records} == {array_id}
    assert {int(r["ArrayTaskId"]) for r in records} <= set(range(100))  # tasks ended > MinJobAge ago are gone
    assert sorted(t["native_id"] for t in tasks) == sorted(f"{array_id}_{i}" for i in range(100))


@pytest.mark.ssh
def test_ssh_site(lab: Lab) -> None:
    check_site(lab, "host", lab.run(*site_cells("host", 100)), 100)


@pytest.mark.ssh
def test_cloud_site(lab: Lab) -> None:
    check_site(lab, "cloud", lab.run(*site_cells("cloud", 20)), 20)


def test_attach_after_a_kernel_restart(lab: Lab) -> None:
    first = lab.run(
        "from swm_jupyter import Executor\nex = Executor(site='local')\n"
        "f = ex.submit(lambda: {'answer': 42})\nit = ex.map(str, range(5))\n"
        "print(f.job_id, ex.client.session_jobs[-1])"
    )
    job_id, parent = first[0].split()
    # a new kernel: the first one is gone with its futures
    second = lab.run(
        "from swm_jupyter import Executor\nfrom swm_jupyter.client import Client\n"
        f"print(Executor.attach({job_id!r}).result(120), Client().job({job_id!r}).result(120))",
        f"print([f.result(120) for f in Executor.attach({parent!r})])",
        "try:\n    Executor.attach('no-such-job')\nexcept Exception as e:\n    print(type(e).__name__)",
    )
    assert second[0] == "{'answer': 42} {'answer': 42}\n", second[0]
    assert second[1] == "['0', '1', '2', '3', '4']\n", second[1]
    assert second[2] == "JobNotFoundError\n"


def kernel_versions() -> tuple[str, str]:
    """This interpreter's (and the kernels') Python major.minor and short cloudpickle version."""
    return other_python.this_version(), ".".join(cloudpickle.__version__.split(".")[:2])


def test_site_with_another_python_gives_the_mismatch_error(lab: Lab) -> None:
    """A real other CPython with a real cloudpickle 2.2.1 on the site: the runner refuses, nothing runs."""
    other = other_python.ensure()
    assert other.cloudpickle == "2.2.1" and other.cloudpickle != cloudpickle.__version__
    out = lab.run(
        "import os\nfrom swm_jupyter import Executor\nfrom swm_jupyter.executor import VersionMismatch\n"
        "ex = Executor(site='oldpy')\n"
        "try:\n    ex.submit(len, 'abc').result(120)\nexcept VersionMismatch as e:\n    print(e)",
        # notebook code that would leave a mark if it ran, one call and a map: each refused, none run
        "here = os.getcwd()\n"
        "def mark(x):\n    open(os.path.join(here, f'ran-{x}'), 'w').close()\n    return x\n"
        "f = ex.submit(mark, 'one')\nprint(type(f.exception(120)).__name__, f.job.refresh().state, "
        "f.job.data['exit_code'])\n"
        "try:\n    list(ex.map(mark, range(3), timeout=120))\nexcept VersionMismatch as e:\n"
        "    print('map', type(e).__name__)\n"
        "print(sorted(n for n in os.listdir('.') if n.startswith('ran-')))\n"
        "print(ex.client.log(f.job_id, 'stderr', 0)[0].strip())",
        # the kernel is fine afterwards: the same function runs on a site with the kernel's Python
        "print(Executor(site='local').submit(mark, 'local').result(120), os.path.exists('ran-local'))",
    )
    py, mine = kernel_versions()
    expected = f"site oldpy runs Python {other.version} with cloudpickle 2.2; this kernel runs {py} with {mine}."
    assert out[0].startswith(expected), out
    if not other.same_python:  # the machine has another CPython: the sentence names two Pythons
        assert other.version != py
    lines = out[1].splitlines()
    assert lines[:3] == ["VersionMismatch finished 3", "map VersionMismatch", "[]"], out[1]
    assert lines[3] == (
        f"swm executor: this site runs Python {other.version} with cloudpickle 2.2.1; "
        f"the kernel runs {py} with {cloudpickle.__version__}: nothing was run"
    ), out[1]
    assert out[2] == "local True\n", out[2]


def test_kernel_refuses_a_result_of_the_other_python_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result file written by the runner under the other CPython is refused here before unpickling."""
    other = other_python.ensure()
    # The other interpreter pickles a call for itself, and its runner runs it: a real result file of it.
    make_call = (
        "import json, sys, cloudpickle\n"
        "head = {'python': '%d.%d' % sys.version_info[:2], 'cloudpickle': cloudpickle.__version__}\n"
        "body = cloudpickle.dumps({'fn': pow, 'calls': [((2, 10), {})], 'chunked': False}, protocol=4)\n"
        "sys.stdout.buffer.write(json.dumps(head).encode() + b'\\n' + body)"
    )
    call = tmp_path / "call.pickle"
    call.write_bytes(subprocess.run([other.python, "-c", make_call], capture_output=True, check=True).stdout)
    ran = subprocess.run([other.python, str(RUNNER), str(call)], cwd=tmp_path, capture_output=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    data = (tmp_path / RESULT_FILE).read_bytes()
    head, body = split_header(data)
    assert (head["ok"], head["python"], head["cloudpickle"]) == (True, other.version, other.cloudpickle)
    assert pickle.loads(body) == 1024  # this kernel could read it: only the version check stops it

    def trap(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the result was unpickled")

    monkeypatch.setattr(cloudpickle, "loads", trap)
    monkeypatch.setattr(pickle, "loads", trap)
    with pytest.raises(VersionMismatch) as err:
        load_result(data, site_name="oldpy", max_result_bytes=1 << 20)
    py, mine = kernel_versions()
    expected = f"site oldpy runs Python {other.version} with cloudpickle 2.2; this kernel runs {py} with {mine}."
    assert str(err.value).startswith(expected), err.value


def test_cancel_after_the_canceled_event_already_completed_the_future(lab: Lab) -> None:
    """``cancel()`` whose job's ``canceled`` event completes the future (on the watcher's thread) before the
    server's answer to the cancel request returns: the usual order on a fast site, forced here."""
    out = lab.run(
        "import time\nfrom swm_jupyter import Executor\nex = Executor(site='local')\n"
        "slow = ex.submit(time.sleep, 120)\n"
        "real = ex.client.cancel\n"
        "def cancel_then_let_the_event_in(job_id):\n    answer = real(job_id)\n    end = time.monotonic() + 30\n"
        "    while not slow.cancelled() and time.monotonic() < end:\n        time.sleep(0.05)\n    return answer\n"
        "ex.client.cancel = cancel_then_let_the_event_in\n"
        "print(slow.cancel(), slow.cancelled(), slow.cancel())",
    )
    assert out[0] == "True True True\n", out


@pytest.mark.slurm
def test_a_kernel_outside_the_servers_root_sends_the_call_in_the_job_script(lab: Lab, tmp_path: Path) -> None:
    """A kernel whose folder the server cannot read (here: outside its root) sends each call inside the
    job's script, on the local site and through sbatch; nothing is staged in its folder."""
    outside = tmp_path / "outside-the-root"
    outside.mkdir()
    out = lab.run(
        f"import os\nos.chdir({str(outside)!r})\nfrom swm_jupyter import Executor\n"
        "here, hpc = Executor(site='local'), Executor(site='cluster', walltime='00:10:00')\n"
        "print(here.submit(lambda: 'far').result(120), list(here.map(abs, [-1, -2], timeout=120)), "
        "hpc.submit(pow, 3, 4).result(120))\n"
        "specs = [here.client.job_data(j)['spec'] for j in here.client.session_jobs]\n"
        "print([('swm_unpack' in s['script'], bool(s.get('input_files'))) for s in specs], os.listdir('.'))",
    )
    assert out[0] == "far [1, 2] 81\n" + str([(True, False)] * 3) + " []\n", out


@pytest.mark.ssh
@pytest.mark.parametrize("site", ["host", "cloud"])
def test_a_kernel_outside_the_servers_root_sends_the_call_in_the_script_to_remote_sites(
    lab: Lab, tmp_path: Path, site: str
) -> None:
    """The same on the SSH host and the cloud (stand-in) site: the script carries the call to the remote
    job folder, a map is one array job, an exception comes back with its remote traceback."""
    outside = tmp_path / "outside-the-root"
    outside.mkdir()
    out = lab.run(
        f"import os\nos.chdir({str(outside)!r})\nfrom swm_jupyter import Executor\n"
        f"ex = Executor(site={site!r}, walltime='00:10:00')\n"
        "def boom(x):\n    raise KeyError(f'no {x}')\n"
        "print(ex.submit(lambda: 'far').result(120), list(ex.map(lambda x: x * x, range(5), timeout=240)))\n"
        "try:\n    ex.submit(boom, 'key').result(120)\nexcept KeyError as e:\n"
        "    print(type(e).__name__, e, type(e.__cause__).__name__, 'in boom' in str(e.__cause__))\n"
        "specs = [ex.client.job_data(j)['spec'] for j in ex.client.session_jobs]\n"
        "print([('swm_unpack' in s['script'], bool(s.get('input_files'))) for s in specs], os.listdir('.'))\n"
        "print(ex.client.session_jobs[1])",
    )
    *lines, parent = out[0].splitlines()
    assert lines == [
        "far [0, 1, 4, 9, 16]",
        "KeyError 'no key' RemoteTraceback True",
        str([(True, False)] * 3) + " []",
    ], out
    tasks = lab.get("jobs", array_parent=parent, limit=100)
    assert tasks["total"] == 5 and {t["site"] for t in tasks["jobs"]} == {site}, tasks


# --- the runner and the result file, without a server -----------------------------------------------------


def run_runner(tmp_path: Path, header: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    call = tmp_path / "call.pickle"
    call.write_bytes(json.dumps(header).encode() + b"\n" + body)
    proc = subprocess.run([sys.executable, str(RUNNER), str(call)], cwd=tmp_path, capture_output=True, timeout=60)
    return proc.returncode, (tmp_path / RESULT_FILE).read_bytes()


def test_runner_refuses_another_python_before_unpickling(tmp_path: Path) -> None:
    # the body is not a pickle at all: the runner must not even try to read it
    code, result = run_runner(tmp_path, {"python": "3.9", "cloudpickle": "2.2.1"}, b"\x80\x05not a pickle")
    assert code == 3
    with pytest.raises(VersionMismatch) as err:
        load_result(result, site_name="hpc", max_result_bytes=1000)
    assert "site hpc runs Python" in str(err.value) and "this kernel runs" in str(err.value)


def test_kernel_refuses_a_result_of_another_python_before_unpickling() -> None:
    data = json.dumps({"python": "3.9", "cloudpickle": "2.2.0", "ok": True}).encode() + b"\n\x80\x05garbage"
    with pytest.raises(VersionMismatch) as err:
        load_result(data, site_name="hpc", max_result_bytes=1 << 20)
    mine = ".".join(cloudpickle.__version__.split(".")[:2])
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    expected = f"site hpc runs Python 3.9 with cloudpickle 2.2; this kernel runs {py} with {mine}."
    assert str(err.value).startswith(expected)
    assert mismatch_message("x", {"python": "3.11", "cloudpickle": None}, {"python": "3.11", "cloudpickle": "3.1.1"})


def test_runner_result_size_limit_and_exceptions(tmp_path: Path) -> None:
    header = {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "cloudpickle": cloudpickle.__version__}
    call = cloudpickle.dumps({"fn": lambda n: b"x" * n, "calls": [((5000,), {})], "chunked": False})
    code, result = run_runner(tmp_path, {**header, "max_result_bytes": 1000}, call)
    assert code == 3 and len(result) < 1000  # the big value never left the site
    with pytest.raises(ResultTooLarge):
        load_result(result, site_name="s", max_result_bytes=1000)
    call = cloudpickle.dumps({"fn": lambda: 1 / 0, "calls": [((), {})], "chunked": False})
    code, result = run_runner(tmp_path, header, call)
    outcome = load_result(result, site_name="s", max_result_bytes=1 << 20)
    assert code == 1 and isinstance(outcome.error, ZeroDivisionError) and "ZeroDivisionError" in outcome.traceback


def test_unknown_option_needs_no_server() -> None:
    with pytest.raises(TypeError, match="known options are site, cpus"):
        Executor(queue="x", client=object())
    assert os.path.basename(RUNNER) == "runner.py"


def test_result_file_goes_with_the_purged_record(server_process: Any) -> None:
    from swm_jupyter.client import Client, JobNotFoundError

    server = server_process(
        extra=["--WorkloadManager.job_retention_days=0.00004", "--WorkloadManager.retention_interval=0.3"]
    ).start()
    lab = Lab(server)
    out = lab.run(
        "import os, time\nfrom swm_jupyter import Executor\nf = Executor(site='local').submit(lambda: 'kept')\n"
        "value = f.result(60)\nfolder = f.job.refresh().data['folder']\n"
        "print(value, os.path.exists(os.path.join(folder, 'swm-result.pickle')), f.job_id, folder)",
    )
    value, existed, job_id, folder = out[0].split()
    assert (value, existed) == ("kept", "True")
    client = Client(server.url, server.token)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.job_data(job_id)
        except JobNotFoundError:
            break
        assert time.monotonic() < deadline, "the job was not purged"
        time.sleep(0.3)
    assert not Path(folder).exists()  # the result file went with the record
    with pytest.raises(JobNotFoundError):
        Executor.attach(job_id, client=client)


def test_inline_script_unpacks_the_call_and_runs_it(tmp_path: Path) -> None:
    """The script of an inline call writes the runner and the call into its folder and runs them."""
    from swm_jupyter.executor.inline import MAX_INLINE_CALL_BYTES, inline_script

    call = dump_call(lambda x: x + 1, [((1,), {}), ((41,), {})], chunked=False, max_result_bytes=1 << 20)
    script = inline_script(sys.executable, RUNNER.read_bytes(), "swm_runner.py", call, "swm-call.pickle")
    assert not any(line.upper().startswith("#SWM") for line in script.splitlines())  # no directive by accident
    (tmp_path / "job.sh").write_text(script)
    proc = subprocess.run(
        ["bash", "job.sh"], cwd=tmp_path, capture_output=True, env={**os.environ, "SWM_ARRAY_TASK_ID": "1"}
    )
    assert proc.returncode == 0, proc.stderr
    assert load_result((tmp_path / RESULT_FILE).read_bytes(), site_name="s", max_result_bytes=1 << 20).value == 42
    assert (tmp_path / "swm-call.pickle").read_bytes() == call
    with pytest.raises(ValueError, match="travels inside the job's script"):
        inline_script("python3", b"", "r.py", b"x" * (MAX_INLINE_CALL_BYTES + 1), "c.pickle")
