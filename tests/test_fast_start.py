"""Executor calls forked from a warm interpreter (the local supervisor's zygote) are indistinguishable
from spawned ones: real supervisors, zygotes, jobs, cgroups and signals; and any trouble of the
zygote falls back to spawning."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.states import JobState
from swm_jupyter.daemons import fast_start
from swm_jupyter.executor.executor import RUNNER_FILE
from swm_jupyter.gates.job_cgroup import JobCgroups

from .core_helpers import run, with_manager
from .test_local_run_as_owner import owners, python_for_owners  # noqa: F401 (fixtures)
from .test_run_as_owner import data_roots, os_users  # noqa: F401 (fixtures)

#: What the probe records of its own process: everything a job can see of how it was started.
PROBE_HEAD = r"""
import json, os, signal, sys
import cloudpickle, traceback, typing  # the runner's imports: a spawned runner has them too

def stream(s):
    raw = getattr(s.buffer, "raw", s.buffer)
    return [s.name, s.mode, s.encoding, s.errors, s.line_buffering, s.write_through, type(s.buffer).__name__,
            type(raw).__name__, s.fileno(), raw.name]

def parent():
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
        return handle.read().decode().replace("\0", " ")

with open("parent", "w") as handle:
    handle.write(parent())
with open("zygote", "w") as handle:
    handle.write(str(os.getppid()))
"""

PROBE_STATE = r"""
mask = os.umask(0o022); os.umask(mask)
main = sys.modules["__main__"]
state = {
    "argv": sys.argv, "orig_argv": sys.orig_argv, "path": sys.path, "flags": list(sys.flags),
    "executable": sys.executable, "prefix": sys.prefix, "env": dict(os.environ), "cwd": os.getcwd(),
    "fds": sorted(os.listdir("/proc/self/fd")),
    "targets": [os.readlink(f"/proc/self/fd/{fd}") for fd in (0, 1, 2)],
    "flags_fd": [os.get_inheritable(fd) for fd in (0, 1, 2)],
    "signals": {int(s): repr(signal.getsignal(s)) for s in signal.valid_signals() if s not in (9, 19)},
    "mask": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    "leader": [os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid()],
    "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()], "umask": mask,
    "stdio": [stream(s) for s in (sys.stdin, sys.stdout, sys.stderr)],
    "dunder": [sys.stdin is sys.__stdin__, sys.stdout is sys.__stdout__, sys.stderr is sys.__stderr__],
    "main": sorted(vars(main)), "main_file": main.__file__, "name": __name__,
    "loader": type(main.__loader__).__name__, "spec": main.__spec__,
    "modules": sorted(sys.modules), "threads": len(os.listdir("/proc/self/task")),
    "cgroup": open("/proc/self/cgroup").read(), "nice": os.nice(0),
    "limits": open("/proc/self/limits").read(),
}
print("to stdout"); print("to stderr", file=sys.stderr)
with open(sys.argv[1], "w") as handle:
    json.dump(state, handle)
"""


def _probe(folder: Path, body: str) -> Path:
    """A script named like the executor's runner (what the fast path starts) in its own folder."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / RUNNER_FILE
    script.write_text(PROBE_HEAD + body)
    return script


def _spec(script: Path, **fields: Any) -> dict[str, Any]:
    return {"command": [sys.executable, str(script), "state.json"], **fields}


async def _forked(wm: WorkloadManager, script: Path, site: str = "local", **fields: Any) -> Any:
    """Run ``script`` until a run of it is forked by the zygote (the first ones are spawned while
    the zygote starts); that run's final job."""
    for _ in range(40):
        job = await wm.wait((await wm.submit(_spec(script, site=site, **fields))).id, 60)
        if "python_zygote.py" in Path(job.folder, "parent").read_text():
            return job
        await asyncio.sleep(0.25)
    raise AssertionError("no run was forked by the warm interpreter")


SITES = {"local": {"gate": "local", "grace_period": 1.0}, "slow": {"gate": "local", "fast_python_start": False}}


def _normalised(job: Any) -> dict[str, Any]:
    text = Path(job.folder, "state.json").read_text().replace(job.id, "<id>")
    return dict(json.loads(text))


def test_a_forked_call_sees_what_a_spawned_one_sees(tmp_path: Path) -> None:
    script = _probe(tmp_path / "calls", PROBE_STATE)

    async def body(wm: WorkloadManager) -> None:
        fast = await _forked(wm, script, env={"MY_VAR": "job's own"})
        spawned = await wm.wait((await wm.submit(_spec(script, site="slow", env={"MY_VAR": "job's own"}))).id, 60)
        assert "local_supervisor" in Path(spawned.folder, "parent").read_text()
        assert fast.exit_code == spawned.exit_code == 0
        mine, theirs = _normalised(fast), _normalised(spawned)
        mine["env"].pop("SWM_SITE"), theirs["env"].pop("SWM_SITE")
        assert mine["env"]["MY_VAR"] == "job's own" and mine["cwd"] == fast.folder.replace(fast.id, "<id>")
        assert "cgroup" in mine and ("swm-job-<id>" in mine["cgroup"]) == (JobCgroups.open() is not None)
        for key in theirs:
            assert mine[key] == theirs[key], f"{key}: forked {mine[key]!r} != spawned {theirs[key]!r}"
        for job in (fast, spawned):
            assert Path(job.folder, "stdout").read_text() == "to stdout\n"
            assert Path(job.folder, "stderr").read_text() == "to stderr\n"

    run(with_manager(tmp_path / "data", body, sites=SITES), timeout=240)


ENDINGS = {
    "exit 3": "sys.exit(3)",
    "exit 300": "sys.exit(300)",
    "exit text": "sys.exit('bye now')",
    "raise": "raise ValueError('the function failed')",
    "os._exit": "os._exit(7)",
    "KILL itself": "os.kill(os.getpid(), signal.SIGKILL)",
    "KeyboardInterrupt": "raise KeyboardInterrupt",
    "atexit and a thread": (
        "import atexit, threading\natexit.register(lambda: print('atexit ran', flush=True))\n"
        "threading.Thread(target=lambda: (__import__('time').sleep(0.3), print('thread done'))).start()\n"
        "sys.stdout.write('unflushed')"
    ),
}


def test_exit_statuses_outputs_and_exceptions_are_the_spawned_ones(tmp_path: Path) -> None:
    scripts = {name: _probe(tmp_path / name.replace(" ", "-"), code) for name, code in ENDINGS.items()}

    async def body(wm: WorkloadManager) -> None:
        await _forked(wm, _probe(tmp_path / "warm", ""))
        for name, script in scripts.items():
            fast = await wm.wait((await wm.submit(_spec(script))).id, 60)
            spawned = await wm.wait((await wm.submit(_spec(script, site="slow"))).id, 60)
            assert "python_zygote.py" in Path(fast.folder, "parent").read_text(), name
            assert (fast.state, fast.exit_code, fast.signal) == (spawned.state, spawned.exit_code, spawned.signal), name
            for stream in ("stdout", "stderr"):
                assert Path(fast.folder, stream).read_text() == Path(spawned.folder, stream).read_text(), (name, stream)
        last = wm.get(fast.id)
        assert "atexit ran" in Path(last.folder, "stdout").read_text()

    run(with_manager(tmp_path / "data", body, sites=SITES), timeout=300)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cancel_and_walltime_end_a_forked_call_and_all_its_processes(tmp_path: Path) -> None:
    """Its process group, and a daemon that left its session and tree (through the job's cgroup)."""
    assert JobCgroups.open() is not None, "this test needs cgroup v2 that the test's user may write (CI runs as root)"
    script = _probe(
        tmp_path / "long",
        "import subprocess, time\n"
        "kid = subprocess.Popen(['sleep', '302'])\n"
        "open('kid', 'w').write(str(kid.pid))\n"
        "os.system(\"sh -c 'setsid sleep 301 & echo $! > daemon'\")\n"
        "time.sleep(300)\n",
    )

    async def started(wm: WorkloadManager, **fields: Any) -> tuple[Any, int, int]:
        for _ in range(40):
            job = await wm.submit(_spec(script, **fields))
            folder = Path(wm.get(job.id).folder)
            for _ in range(400):
                if (folder / "daemon").exists() and (folder / "daemon").read_text().strip():
                    break
                await asyncio.sleep(0.05)
            if "python_zygote.py" in (folder / "parent").read_text():
                return job, int((folder / "kid").read_text()), int((folder / "daemon").read_text())
            await wm.cancel(job.id)
            await wm.wait(job.id, 30)
        raise AssertionError("no run was forked by the warm interpreter")

    async def body(wm: WorkloadManager) -> None:
        job, kid, daemon = await started(wm)
        leader = int(wm.get(job.id).native_id or 0)
        assert _alive(leader) and _alive(kid) and _alive(daemon)
        await wm.cancel(job.id)
        ended = await wm.wait(job.id, 30)
        assert ended.state is JobState.CANCELED
        for _ in range(100):
            if not any(map(_alive, (leader, kid, daemon))):
                break
            await asyncio.sleep(0.05)
        assert not any(map(_alive, (leader, kid, daemon))), "a process of the canceled job survived"
        assert not Path(JobCgroups.open().folder(job.id)).exists() or await _gone(  # type: ignore[union-attr]
            Path(JobCgroups.open().folder(job.id))  # type: ignore[union-attr]
        )

        began = time.monotonic()
        job, kid, daemon = await started(wm, resources={"walltime": 3})
        ended = await wm.wait(job.id, 60)
        assert ended.state is JobState.ERROR and "walltime" in (ended.state_details or ""), ended.state_details
        assert time.monotonic() - began < 30
        for _ in range(100):
            if not any(map(_alive, (kid, daemon))):
                break
            await asyncio.sleep(0.05)
        assert not any(map(_alive, (kid, daemon))), "a process of the job killed for its walltime survived"

    run(with_manager(tmp_path / "data", body, sites=SITES), timeout=300)


async def _gone(path: Path) -> bool:
    for _ in range(100):
        if not path.exists():
            return True
        await asyncio.sleep(0.05)
    return False


def test_other_interpreters_and_environments_are_spawned(tmp_path: Path) -> None:
    starter = fast_start.FastStarter.__new__(fast_start.FastStarter)
    starter.python = sys.executable
    runner = f"x/{RUNNER_FILE}"
    assert starter.key([sys.executable, runner, "c"], {"PYTHONPATH": "p", "HOME": "/h", "SECRET": "s"}) == (
        sys.executable,
        (("HOME", "/h"), ("PYTHONPATH", "p")),
    )
    assert starter.key(["/other/python", runner, "c"], {}) is None  # a site's own 'python' option
    assert starter.key([sys.executable, "x/other.py", "c"], {}) is None
    assert starter.key([sys.executable, "-c", runner, "c"], {}) is None
    assert starter.key([sys.executable, runner, "c"], {"PYTHONINSPECT": "1"}) is None

    # A site with a 'python' option (another command line for the same interpreter) is spawned, always.
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    script = _probe(tmp_path / "calls", "")

    async def body(wm: WorkloadManager) -> None:
        await _forked(wm, script)  # the warm interpreter is there
        for _ in range(3):
            job = await wm.wait((await wm.submit({"command": [str(wrapper), str(script), "s"]})).id, 60)
            assert job.exit_code == 0 and "local_supervisor" in Path(job.folder, "parent").read_text()
        # A folder beside the runner with a module the zygote imported: a new interpreter would take that one.
        (tmp_path / "calls" / "json.py").write_text("")
        job = await wm.wait((await wm.submit(_spec(script))).id, 60)
        assert "local_supervisor" in Path(job.folder, "parent").read_text()

    run(with_manager(tmp_path / "data", body, sites=SITES), timeout=240)


def test_a_zygote_that_dies_or_cannot_start_falls_back_to_spawning(tmp_path: Path) -> None:
    script = _probe(tmp_path / "calls", "import time\ntime.sleep(float(os.environ.get('NAP', '0')))\n")
    # A sitecustomize that makes the warm interpreter (only it) fail at start.
    broken = tmp_path / "broken-site"
    broken.mkdir()
    (broken / "sitecustomize.py").write_text(
        "import os, sys\nif sys.argv and sys.argv[0].endswith('python_zygote.py'):\n    os._exit(1)\n"
    )

    async def body(wm: WorkloadManager) -> None:
        await _forked(wm, script)
        running = await wm.submit(_spec(script, env={"NAP": "3"}))
        folder = Path(wm.get(running.id).folder)
        for _ in range(200):
            if (folder / "parent").exists() and (folder / "parent").read_text():
                break
            await asyncio.sleep(0.05)
        assert "python_zygote.py" in (folder / "parent").read_text()
        zygote_pid = _parent_pid(int(wm.get(running.id).native_id or 0))
        os.kill(zygote_pid, signal.SIGKILL)
        lost = await wm.wait(running.id, 60)
        assert lost.state is JobState.ERROR and "exit status was lost" in (lost.state_details or "")
        after = await wm.wait((await wm.submit(_spec(script))).id, 60)
        assert after.exit_code == 0 and "local_supervisor" in Path(after.folder, "parent").read_text()

        env = {"PYTHONPATH": f"{broken}:{os.environ.get('PYTHONPATH', '')}"}
        for _ in range(4):
            job = await wm.wait((await wm.submit(_spec(script, env=env))).id, 60)
            assert job.exit_code == 0 and "local_supervisor" in Path(job.folder, "parent").read_text()
            await asyncio.sleep(0.5)
        log = Path(wm.gates["local"].supervisor_socket + ".log").read_text()  # type: ignore[attr-defined]
        assert log.count("went away") == 1, log  # logged once

    run(with_manager(tmp_path / "data", body, sites=SITES), timeout=240)


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(") ", 1)[1].split()[1])


@pytest.mark.parametrize("name", [RUNNER_FILE])
def test_the_runner_file_name_is_the_executors(name: str) -> None:
    assert fast_start.RUNNER_FILE == name


def _call_state(tag: str) -> tuple[str, str, str, str]:
    """What an executor call reports of its process (module-level: pickled by reference, like in a kernel)."""
    print(f"printed by {tag}", flush=True)
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
        parent = handle.read().decode().replace("\0", " ")
    return os.environ.get("MY_VAR", ""), os.getcwd(), parent, os.environ["SWM_JOB_ID"]


def _fails() -> None:
    raise KeyError("from the call")


def test_executor_calls_through_a_real_server(
    server_process: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Env, folder, outputs and exceptions of calls started from the warm interpreter; a site with a
    'python' option never uses it."""
    from swm_jupyter import Executor
    from swm_jupyter.client import Client

    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    sites = {"local": {"gate": "local", "cpus": 2}, "own": {"gate": "local", "cpus": 2, "python": str(wrapper)}}
    server = server_process(sites=sites).start()
    monkeypatch.chdir(server.root)
    client = Client(server.url, server.token)
    with Executor(site="local", env={"MY_VAR": "given"}, client=client) as ex:
        for _ in range(40):
            future = ex.submit(_call_state, "fast")
            var, cwd, parent, job_id = future.result(60)
            if "python_zygote.py" in parent:
                break
            time.sleep(0.25)
        assert "python_zygote.py" in parent, "no call was forked by the warm interpreter"
        data = client.job_data(job_id)
        assert (var, cwd, data["exit_code"]) == ("given", data["folder"], 0)
        assert Path(data["folder"], "stdout").read_text() == "printed by fast\n"
        with pytest.raises(KeyError, match="from the call"):
            ex.submit(_fails).result(60)
        assert list(ex.map(abs, range(-20, 0))) == list(range(20, 0, -1))
    with Executor(site="own", client=client) as ex:
        for _ in range(3):
            _, _, parent, _ = ex.submit(_call_state, "own").result(60)
            assert "local_supervisor" in parent


def test_a_forked_call_of_an_owner_runs_as_that_owner(owners: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    """With run_as_owner, the owner's supervisor (started through sudo) starts the owner's zygote."""
    from .test_run_as_owner import ALICE

    data = tmp_path / "data"
    calls = Path(tempfile.mkdtemp(prefix="swm-fast-owner-"))  # readable by the owner (the test's tmp is not)
    calls.chmod(0o755)
    script = calls / RUNNER_FILE
    script.write_text(
        PROBE_HEAD + "with open('ids', 'w') as handle:\n    handle.write(f'{os.getuid()} {os.geteuid()}')\n"
    )
    script.chmod(0o644)
    spec = {"command": [sys.executable, str(script), "x"]}

    async def body(wm: WorkloadManager) -> None:
        for _ in range(40):
            job = await wm.wait((await wm.submit(dict(spec), owner=ALICE)).id, 60)
            assert job.exit_code == 0, job.state_details
            if "python_zygote.py" in Path(job.folder, "parent").read_text():
                break
            await asyncio.sleep(0.25)
        assert "python_zygote.py" in Path(job.folder, "parent").read_text(), "no run was forked"
        uid = owners[ALICE].pw_uid
        assert Path(job.folder, "ids").read_text() == f"{uid} {uid}"
        assert Path(job.folder, "ids").stat().st_uid == uid

    try:
        run(with_manager(data, body, sites={"local": {"gate": "local", "run_as_owner": True}}), timeout=240)
    finally:
        shutil.rmtree(calls, ignore_errors=True)


def test_an_end_read_while_a_fork_is_answered_is_reported_at_once(tmp_path: Path) -> None:
    """A call that ends while the supervisor waits for the zygote to fork the next one is reported in
    that turn, not when the zygote next speaks (here: when the long next call ends, 5 s later)."""
    import socket
    import threading

    from swm_jupyter.core.jsoncodec import parse, to_bytes
    from swm_jupyter.daemons.local_supervisor import Supervisor

    quick = _probe(tmp_path / "quick", "")
    slow = _probe(tmp_path / "slow", "import time\ntime.sleep(5)\n")
    with tempfile.TemporaryDirectory(prefix="swm-sup-") as folder:
        supervisor = Supervisor(f"{folder}/s")
        supervisor.listen()
        threading.Thread(target=supervisor.run, daemon=True).start()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(f"{folder}/s")
        client.settimeout(30)
        buffer = b""
        news: list[tuple[float, dict[str, Any]]] = []

        def request(job_id: str, argv: list[str]) -> dict[str, Any]:
            job = tmp_path / "jobs" / job_id
            job.mkdir(parents=True)
            return {
                "op": "spawn",
                "id": job_id,
                "pool": "p",
                "capacity": 100,
                "cpus": 1,
                "argv": argv,
                "cwd": str(job),
                "env": dict(os.environ),
                "stdout": str(job / "stdout"),
                "stderr": str(job / "stderr"),
                "status_file": str(job / ".swm-status"),
            }

        def ended(job_id: str) -> float:
            nonlocal buffer
            while not any(m.get("exit") == job_id for _, m in news):
                data = client.recv(1 << 16)
                assert data, "the supervisor closed"
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                news.extend((time.monotonic(), parse(line)) for line in lines)
            return next(t for t, m in news if m.get("exit") == job_id)

        try:
            for attempt in range(40):  # until the zygote is ready and forks the quick call
                client.sendall(to_bytes(request(f"warm-{attempt}", [sys.executable, str(quick), "s"])) + b"\n")
                ended(f"warm-{attempt}")
                if "python_zygote.py" in (tmp_path / "jobs" / f"warm-{attempt}" / "parent").read_text():
                    break
                time.sleep(0.25)
            # The quick call, then 40 spawns that keep the supervisor busy while it ends, then the slow call.
            batch = [request("quick", [sys.executable, str(quick), "s"])]
            batch += [request(f"busy-{i}", ["true"]) for i in range(40)]
            batch += [request("slow", [sys.executable, str(slow), "s"])]
            began = time.monotonic()
            client.sendall(b"".join(to_bytes(r) + b"\n" for r in batch))
            assert ended("quick") - began < 3, "the quick call's end waited for the zygote's next message"
            assert ended("slow") - began > 4
            for job_id in ("quick", "slow"):
                assert "python_zygote.py" in (tmp_path / "jobs" / job_id / "parent").read_text()
        finally:
            client.close()


def test_a_zygote_whose_packages_changed_is_replaced(tmp_path: Path) -> None:
    """A folder of the zygote's sys.path that changes (a package installed) retires it: a new one forks."""
    lib = tmp_path / "lib"
    lib.mkdir()
    script = _probe(tmp_path / "calls", "")
    env = {"PYTHONPATH": f"{lib}:{os.environ.get('PYTHONPATH', '')}"}

    async def zygote_of(wm: WorkloadManager) -> int:
        job = await _forked(wm, script, env=env)
        return int(Path(job.folder, "zygote").read_text())

    async def body(wm: WorkloadManager) -> None:
        first = await zygote_of(wm)
        assert await zygote_of(wm) == first  # the same warm interpreter serves the next call
        (lib / "newpackage.py").write_text("")  # the folder changes: a new interpreter would see it
        second = await zygote_of(wm)
        assert second != first
        for _ in range(100):  # the retired one leaves once it has no call left
            if not _alive(first):
                break
            await asyncio.sleep(0.05)
        assert not _alive(first)

    run(with_manager(tmp_path / "data", body, sites=SITES), timeout=240)
