"""The cloud gate against a stand-in Sky Port gate whose partitions are the test sshd on 127.0.0.1.

Jobs really run over SSH; the stand-in follows the gate protocol (headers, wrapped lists, both
error styles, asynchronous deletion). Driven directly and end to end through ``WorkloadManager``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from swm_jupyter.core.errors import GateError, SiteUnavailable, ValidationError
from swm_jupyter.core.gate_contract import GateStatus
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.model import Job, JobSpec, new_job_id
from swm_jupyter.core.states import JobState
from swm_jupyter.core.store import JobStore
from swm_jupyter.gates.cloud import CloudGate
from swm_jupyter.gates.cloud_protocol import GateAnswerError

from .conftest import body
from .core_helpers import run
from .skyport_gate_standin import FLAVORS, SUBSCRIPTION, SkyPortGateStandin, base

pytestmark = pytest.mark.ssh

PEM = "-----BEGIN PRIVATE KEY-----\nMIIswmTESTpemDATAthatMUSTneverLEAK0123456789\n-----END PRIVATE KEY-----\n"
PEM_LINE = "MIIswmTESTpemDATAthatMUSTneverLEAK0123456789"
FAKE_RUNTIME = """#!/bin/sh
# A container runtime stand-in: 'info' works; 'run [options] IMAGE CMD...' runs CMD in the -w folder.
case "$1" in info) exit 0 ;; run) shift ;; *) exit 64 ;; esac
wd=.
while [ "$#" -gt 0 ]; do
  case "$1" in
    --rm) shift ;;
    --network|-v|--name) shift 2 ;;
    -w) wd="$2"; shift 2 ;;
    -e) shift 2 ;;
    --*) shift ;;
    *) break ;;
  esac
done
SWM_FAKE_IMAGE="$1"; export SWM_FAKE_IMAGE; shift
cd "$wd" || exit 99
exec "$@"
"""


@pytest.fixture(scope="module")
def standin() -> Iterator[SkyPortGateStandin]:
    """One stand-in gate for the module (checks pem_data on every request)."""
    gate = SkyPortGateStandin(pem_data=PEM).start()
    yield gate
    gate.stop()


@pytest.fixture
def gate_options(standin: SkyPortGateStandin, ssh_options: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Traits of a cloud gate for the stand-in whose VMs are the test sshd."""
    standin.reset()
    return {
        "url": standin.url,
        "cloud_kind": "azure",
        "pem_data": PEM,
        "request_timeout": 5.0,
        "retries": 1,
        "ssh_port": ssh_options["port"],
        "ssh_user": ssh_options["user"],
        "ssh_key_file": ssh_options["key_file"],
        "known_hosts": ssh_options["known_hosts"],
        "check_host_keys": True,
        "use_agent": False,
        "remote_workdir": str(tmp_path / "remote"),
        "poll_interval": 0.2,
        "idle_poll_interval": 0.5,
        "maintenance_interval": 0.3,
        "orphan_grace": 3600.0,
        "kill_grace": 1.0,
    }


def new_gate(options: dict[str, Any], **traits: Any) -> CloudGate:
    """A cloud gate made directly (no manager)."""
    return CloudGate(site_name="cloud", **{**options, **traits})


def make_job(base: Path, request: dict[str, Any]) -> Job:
    """A job with its folder prepared as the manager does it."""
    job_id = new_job_id()
    folder = base / job_id
    folder.mkdir(parents=True)
    job = Job(id=job_id, spec=JobSpec.from_dict(request), site="cloud", folder=str(folder))
    if job.spec.script is not None:
        (folder / "job.sh").write_text(job.spec.script)
    return job


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 30, what: str = "") -> None:
    """Wait until ``check()`` is true (polling every 0.05 s)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


class LogCapture(logging.Handler):
    """Collects every formatted log record (to check that no secret is logged)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted message and any traceback."""
        self.lines.append(self.format(record))


async def with_cloud_manager(
    data_dir: Path,
    options: dict[str, Any],
    body_: Callable[[WorkloadManager], Awaitable[Any]],
    *,
    ready: bool = True,
    **site: Any,
) -> Any:
    """Run ``body_(manager)`` with a manager whose one site ``cloud`` is the cloud gate (once it is set up)."""
    manager = WorkloadManager(
        data_dir=str(data_dir),
        input_root=str(data_dir / "inputs"),
        sites={"cloud": {"gate": "cloud", **options, **site}},
        poll_interval=0.2,
    )
    await manager.start()
    try:
        if ready:
            await until(lambda: "cloud" in manager._ready_sites, 20, "the cloud site's setup")
        return await body_(manager)
    finally:
        await manager.stop()


def creates(standin: SkyPortGateStandin) -> list[dict[str, str]]:
    """Headers of every POST /partitions the stand-in received."""
    return [h for m, p, h, _ in standin.requests if m == "POST" and p.endswith("/partitions")]


# -- catalogue, validation, cost -----------------------------------------------------------------------


def test_catalogue_validation_cost_and_protocol(standin: SkyPortGateStandin, gate_options: dict[str, Any]) -> None:
    async def main() -> None:
        gate = new_gate(gate_options, max_nodes=4)
        job = Job(id=new_job_id(), spec=JobSpec.from_dict({"command": ["true"], "flavor": "small"}), site="cloud")
        before = gate.validate(job)
        assert before and "not loaded yet" in before[0]["message"]
        await gate.setup()
        try:
            info = await gate.describe()
            assert info["healthy"], info["health_message"]
            assert [(f["name"], f["price_per_hour"], f["cpus"], f["mem"]) for f in info["flavors"]] == [
                (f["name"], f["price"], f["cpus"], f["mem"]) for f in FLAVORS
            ]
            assert {i["name"] for i in info["images"]} == {"ubuntu-22.04", "rocky-9"}
            assert PEM_LINE not in json.dumps(info)
            assert gate.validate(job) == []
            bad = Job(
                id=new_job_id(),
                spec=JobSpec.from_dict(
                    {"command": ["true"], "flavor": "huge", "cloud_image": "win95", "resources": {"nodes": 9}}
                ),
                site="cloud",
            )
            errors = {e["field"]: e["message"] for e in gate.validate(bad)}
            assert "small, large, gpu" in errors["flavor"] and "ubuntu-22.04, rocky-9" in errors["cloud_image"]
            assert "at most 4 nodes" in errors["resources.nodes"]
            # The cheapest flavor that fits is chosen when none is named.
            fits = Job(id=new_job_id(), spec=JobSpec.from_dict({"command": ["x"], "resources": {"cpus": 4}}), site="c")
            assert gate._pick(fits)[0]["name"] == "large"  # type: ignore[index]
            priced = Job(
                id=new_job_id(),
                spec=JobSpec.from_dict(
                    {"command": ["x"], "flavor": "large", "resources": {"nodes": 3, "walltime": "00:30:00"}}
                ),
                site="cloud",
            )
            assert gate.estimate_cost(priced) == pytest.approx(0.8 * 3 * 0.5)
            # Every request carried pem_data in its body (the stand-in refuses others) and
            # lower-case headers; the catalogue is not fetched again before its refresh is due.
            sent = [r for r in standin.requests if r[1].startswith("/azure/flavors")]
            assert sent and all(json.loads(r[3]) == {"pem_data": PEM} for r in sent)
        finally:
            await gate.cleanup()
        # 200 with error, and an HTTP error with detail, both refuse the setup with the gate's words.
        for style, words in (("error200", "refused the credentials"), ("http500", "HTTP 500")):
            standin.catalogue_error = style
            failing = new_gate(gate_options)
            with pytest.raises(GateAnswerError, match=words):
                await failing.setup()
            assert not (await failing.describe())["healthy"]
            await failing.cleanup()
        standin.catalogue_error = None
        wrong_pem = new_gate(gate_options, pem_data="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")
        with pytest.raises(GateAnswerError, match="HTTP 401"):
            await wrong_pem.setup()
        await wrong_pem.cleanup()

    run(main(), 60)


# -- jobs driven directly through the gate -------------------------------------------------------------


async def drive(gate: CloudGate, job: Job, timeout: float = 40) -> list[str]:
    """Submit and poll ``job`` to its end, then stage out and release as the manager does; return its history."""
    return await drive_on(gate, job, await gate.submit(job))


async def drive_on(gate: CloudGate, job: Job, status: GateStatus) -> list[str]:
    """Poll ``job`` from its first ``status`` to its end, then stage out and release; return its history."""
    seen: list[str] = []
    while True:
        if status.gate_data is not None:
            job.gate_data = dict(status.gate_data)
        job.state = status.state
        entry = f"{status.state.code}: {status.details}"
        if not seen or seen[-1] != entry:
            seen.append(entry)
        if status.state.final:
            job.exit_code = status.exit_code
            break
        await asyncio.sleep(0.1)
        got = (await gate.poll([job])).get(job.id)
        if got is not None:
            status = got
        if len(seen) > 200:
            raise AssertionError(seen)
    await gate.stage_out(job)
    await gate.release_resources(job)
    return seen


def test_multi_node_job_in_a_container(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    runtime = tmp_path / "fake-docker"
    runtime.write_text(FAKE_RUNTIME)
    runtime.chmod(0o755)

    async def main() -> None:
        gate = new_gate(gate_options, container_runtimes=["no-such-runtime", str(runtime)], username="swm")
        await gate.setup()
        try:
            job = make_job(
                tmp_path / "local",
                {
                    "script": 'echo "nodes=$SWM_NODES ips=$SWM_NODE_IPS image=$SWM_FAKE_IMAGE id=$SWM_JOB_ID"\n',
                    "resources": {"nodes": 3},
                    "flavor": "large",
                    "cloud_image": "rocky-9",
                    "container_image": "python:3.12",
                    "ports": [8888, 6006],
                },
            )
            seen = await drive(gate, job)
            assert job.state is JobState.FINISHED and job.exit_code == 0, seen
            out = (Path(job.folder) / "stdout").read_text()
            assert out == f"nodes=3 ips=10.0.0.4 10.0.0.5 10.0.0.6 image=python:3.12 id={job.id}\n"
            assert any("in python:3.12" in s for s in seen), seen
            headers = creates(standin)[-1]
            name = gate.partition_name(job)
            assert {k: headers[k] for k in ("partname", "flavorname", "osversion", "containerimage", "count")} == {
                "partname": name,
                "flavorname": "large",
                "osversion": "rocky-9",
                "containerimage": "python:3.12",
                "count": "2",
            }
            assert headers["ports"] == "8888,6006" and headers["jobid"] == job.id and headers["username"] == "swm"
            # The protocol's headers go out under lower-case names (the lookups above are exact).
            assert not any(k.lower() in ("partname", "count") and k != k.lower() for k in headers)
            # Without a working runtime the job runs directly and says so.
            plain = make_job(tmp_path / "local", {"command": ["sh", "-c", "echo direct"], "container_image": "x:1"})
            direct = new_gate_for(gate, container_runtimes=["no-such-runtime"])
            try:
                seen = await drive(direct, plain)
            finally:
                await direct.cleanup()
            assert (Path(plain.folder) / "stdout").read_text() == "direct\n"
            assert any("no container runtime on the VM" in s for s in seen), seen
        finally:
            await gate.cleanup()
        assert standin.wait_empty() == []

    def new_gate_for(gate: CloudGate, **traits: Any) -> CloudGate:
        other = new_gate(gate_options, **traits)
        other._flavors, other._images, other._catalogue_time, other._health = (
            gate._flavors,
            gate._images,
            gate._catalogue_time,
            "",
        )
        return other

    run(main(), 90)


def test_submit_twice_reuses_the_partition_and_errors_are_reported(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    async def main() -> None:
        standin.hold_creating = True
        gate = new_gate(gate_options)
        await gate.setup()
        try:
            job = make_job(tmp_path / "local", {"command": ["true"]})
            first = await gate.submit(job)
            assert first.state is JobState.WAITING and first.details.startswith("creating partition swm-")
            assert first.extra["cost"] == {"price_per_hour": 0.1, "flavor": "small"}
            fresh = new_gate(gate_options)  # a restarted server: nothing in memory
            await fresh.setup()
            again = await fresh.submit(job)
            assert again.native_id == first.native_id
            assert standin.creates[gate.partition_name(job)] == 1
            # The server stopped between the gate's answer and storing it: the job is only marked
            # as being launched; a poll finds its partition by name and tracks it.
            lost = Job(id=job.id, spec=job.spec, site="cloud", folder=job.folder, launching=True)
            restarted = new_gate(gate_options)
            adopted = (await restarted.poll([lost]))[job.id]
            await restarted.cleanup()
            assert adopted.native_id == first.native_id and adopted.state is JobState.WAITING
            unknown = make_job(tmp_path / "local", {"command": ["true"]})
            unknown.launching = True
            assert await fresh.poll([unknown]) == {}, "no partition: the manager queues the job again"
            # 200 with error and a failed partition: E, and the partition is deleted.
            standin.hold_creating = False
            standin.fail_create = "error200"
            broken = make_job(tmp_path / "local", {"command": ["true"]})
            refused = await fresh.submit(broken)
            assert refused.state is JobState.ERROR and "deployment failed (on demand)" in refused.details
            assert refused.gate_data and refused.gate_data.get("partition_id")
            broken.gate_data = dict(refused.gate_data)
            await fresh.release_resources(broken)
            await fresh.release_resources(broken)  # idempotent
            await fresh.release_resources(job)
            await fresh.cleanup()
            # An unknown flavor at submit time (the catalogue changed) is a GateError.
            odd = make_job(tmp_path / "local", {"command": ["true"], "flavor": "gone"})
            with pytest.raises(GateError, match="unknown flavor"):
                await gate.submit(odd)
        finally:
            await gate.cleanup()
        assert standin.wait_empty() == []

    run(main(), 60)


def test_orphans_are_swept_and_claimed_partitions_kept(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    async def main() -> None:
        orphan = standin.add_partition("swm-0rphan00")
        other = standin.add_partition("not-ours-1")
        standin.hold_creating = True
        gate = new_gate(gate_options, orphan_grace=0.5)
        await gate.setup()
        try:
            job = make_job(tmp_path / "local", {"command": ["true"]})
            status = await gate.submit(job)
            job.gate_data = dict(status.gate_data or {})
            await until(lambda: "swm-0rphan00" in map(base, gate.swept), 15, "the orphan sweep")
            names = {base(p["name"]): p["status"] for p in standin.live_partitions()}
            assert names.get("swm-0rphan00", "deleting") == "deleting"
            assert names[gate.partition_name(job)] == "creating", "a live job's partition is not an orphan"
            assert names["not-ours-1"] == "succeeded", "only partitions with the prefix are swept"
            await gate.release_resources(job)
        finally:
            await gate.cleanup()
        assert orphan["id"] != other["id"]
        with standin.lock:
            standin.partitions.pop(other["id"])

    run(main(), 60)


# -- end to end through the workload manager ------------------------------------------------------------


def test_full_job_with_inputs_outputs_cost_and_no_secrets(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "inputs" / "in").mkdir(parents=True)
    (data / "inputs" / "in" / "numbers.txt").write_text("1\n2\n3\n")
    capture = LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    old_level = root.level
    root.setLevel(logging.DEBUG)

    async def main(manager: WorkloadManager) -> None:
        manager.log.addHandler(capture)
        manager.log.setLevel(logging.DEBUG)
        events = manager.subscribe()
        script = (
            "#!/bin/sh\n"
            "echo start; awk '{s+=$1} END {print s}' in/numbers.txt > sum.txt; mkdir -p res; "
            "echo done > res/flag; sleep 1; echo err >&2; echo end\n"
        )
        job = await manager.submit(
            {
                "script": script,
                "input_files": ["in/numbers.txt"],
                "output_files": ["sum.txt", "res/flag"],
                "flavor": "large",
                "resources": {"walltime": "00:10:00"},
            }
        )
        assert job.cost["estimate"] == pytest.approx(0.8 * 10 / 60, rel=1e-4)
        live: list[bytes] = []

        async def running_with_log() -> bool:
            current = manager.get(job.id)
            if current.state is JobState.RUNNING:
                live.append(await manager.read_output(job.id, "stdout"))
            return bool(live and live[-1]) or current.state.final

        await until(running_with_log, 40, "a live log line")
        done = await manager.wait(job.id, 40)
        assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
        assert live[-1].startswith(b"start\n")
        folder = Path(done.folder)
        assert (folder / "sum.txt").read_text() == "6\n"
        assert (folder / "res" / "flag").read_text() == "done\n"
        assert (folder / "stdout").read_text() == "start\nend\n" and (folder / "stderr").read_text() == "err\n"
        codes = [(h.state.code, h.details) for h in done.history]
        steps = " | ".join(f"{c}: {d}" for c, d in codes)
        assert "creating partition swm-" in steps and "staging inputs" in steps and "running (partition" in steps
        assert [c for c, _ in codes][-1] == "F"
        assert done.cost["price_per_hour"] == 0.8 and done.cost["flavor"] == "large"
        assert done.cost["actual"] == pytest.approx(0.8 * (done.end_time - done.start_time) / 3600, abs=2e-6)
        assert 0 < done.cost["actual"] < done.cost["estimate"]
        assert await asyncio.to_thread(standin.wait_empty) == []
        sites = await manager.describe_sites()
        seen_events = []
        while not events.empty():
            seen_events.append(events.get_nowait())
        everything = json.dumps([sites, done.to_dict(), seen_events, done.gate_data], default=str)
        assert PEM_LINE not in everything and "BEGIN PRIVATE KEY" not in everything

    try:
        run(with_cloud_manager(data, gate_options, main), 90)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    logged = "\n".join(capture.lines)
    assert "creating partition swm-" in logged, "the gate logs what it does"
    assert PEM_LINE not in logged and "BEGIN PRIVATE KEY" not in logged


def test_creation_failure_and_cancel_while_creating_delete_the_partition(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)

    async def main(manager: WorkloadManager) -> None:
        standin.fail_create = "failed"
        failing = await manager.submit({"command": ["true"]})
        done = await manager.wait(failing.id, 30)
        assert done.state is JobState.ERROR and "is failed: quota exceeded (on demand)" in done.state_details
        assert await asyncio.to_thread(standin.wait_empty) == []
        standin.fail_create = None
        standin.hold_creating = True
        job = await manager.submit({"command": ["true"]})
        await until(lambda: manager.get(job.id).state_details.startswith("creating partition"), 20, "creating")
        assert [p["status"] for p in standin.live_partitions()] == ["creating"]
        await manager.cancel(job.id)
        done = await manager.wait(job.id, 20)
        assert done.state is JobState.CANCELED
        assert await asyncio.to_thread(standin.wait_empty) == []
        # A job that never leaves 'creating' is given up after create_timeout and its partition deleted.
        slow = await manager.submit({"command": ["true"]})
        done = await manager.wait(slow.id, 30)
        assert done.state is JobState.ERROR and "was not ready after 2 s" in done.state_details
        assert await asyncio.to_thread(standin.wait_empty) == []

    run(with_cloud_manager(data, gate_options, main, create_timeout=2.0), 90)


def test_server_restart_while_creating_reuses_the_partition(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)
    standin.hold_creating = True
    state: dict[str, Any] = {}

    async def first(manager: WorkloadManager) -> None:
        job = await manager.submit({"command": ["sh", "-c", "echo ran once"]})
        await until(lambda: manager.get(job.id).state_details.startswith("creating partition"), 20, "creating")
        state["id"] = job.id

    async def second(manager: WorkloadManager) -> None:
        standin.hold_creating = False
        with standin.lock:
            for part in standin.partitions.values():
                part["_hold"] = False
        done = await manager.wait(state["id"], 40)
        assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
        assert (Path(done.folder) / "stdout").read_text() == "ran once\n"

    run(with_cloud_manager(data, gate_options, first), 60)
    run(with_cloud_manager(data, gate_options, second), 60)
    assert sum(standin.creates[n] for n in standin.creates if n.startswith("swm-" + state["id"][:8])) == 1
    assert standin.wait_empty() == []


def test_gate_down_site_unhealthy_jobs_wait_then_run(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)
    standin.down()

    async def main(manager: WorkloadManager) -> None:
        async def reported() -> bool:
            return (await manager.describe_sites())[0]["health_message"] != "starting"

        await until(reported, 20, "the failed setup to be reported")
        site = (await manager.describe_sites())[0]
        assert site["healthy"] is False and "does not answer" in site["health_message"], site
        with pytest.raises(ValidationError, match="not loaded yet"):
            await manager.submit({"command": ["true"], "flavor": "large"})
        job = await manager.submit({"command": ["sh", "-c", "echo after the outage"]})
        await asyncio.sleep(1.5)
        assert manager.get(job.id).state is JobState.QUEUED, "jobs wait while the gate is down"
        await asyncio.to_thread(standin.up)
        done = await manager.wait(job.id, 40)
        assert done.state is JobState.FINISHED, done.state_details
        assert (Path(done.folder) / "stdout").read_text() == "after the outage\n"
        site = (await manager.describe_sites())[0]
        assert site["healthy"] is True and site["flavors"], site
        assert await asyncio.to_thread(standin.wait_empty) == []

    try:
        run(
            with_cloud_manager(
                data, gate_options, main, ready=False, default_flavor="small", default_image="ubuntu-22.04"
            ),
            90,
        )
    finally:
        standin.up()


def test_gate_unreachable_during_submission_the_job_waits(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    async def main() -> None:
        gate = new_gate(gate_options)
        await gate.setup()
        try:
            await asyncio.to_thread(standin.down)
            job = make_job(tmp_path / "local", {"command": ["sh", "-c", "echo later"]})
            status = await gate.submit(job)
            assert status.state is JobState.WAITING and "waiting for the cloud gate" in status.details
            job.gate_data = dict(status.gate_data or {})
            polled = (await gate.poll([job]))[job.id]
            assert polled.state is JobState.WAITING and "does not answer" in polled.details
            assert not (await gate.describe())["healthy"]
            await asyncio.to_thread(standin.up)
            job.gate_data = dict(polled.gate_data or {})
            seen: list[str] = []
            while job.state is not JobState.FINISHED:
                got = (await gate.poll([job])).get(job.id)
                if got is not None:
                    job.state, job.gate_data = got.state, dict(got.gate_data or {})
                    seen.append(got.details)
                    assert got.state is not JobState.ERROR, seen
                await asyncio.sleep(0.1)
            await gate.stage_out(job)
            await gate.release_resources(job)
            assert (Path(job.folder) / "stdout").read_text() == "later\n"
        finally:
            standin.up()
            await gate.cleanup()

    run(main(), 60)


def test_misconfigured_site_is_reported(tmp_path: Path) -> None:
    async def main() -> None:
        gate = CloudGate(site_name="nowhere")
        with pytest.raises(SiteUnavailable, match="no gate url"):
            await gate.setup()
        info = await gate.describe()
        assert info["healthy"] is False

    run(main(), 10)


# -- the real gate's ways (issue 17 section 3) ----------------------------------------------------------


def requests_to(standin: SkyPortGateStandin, method: str, after: int = 0) -> list[str]:
    """Paths of the stand-in's requests with ``method`` to partitions, from request number ``after`` on."""
    return [p for m, p, _, _ in standin.requests[after:] if m == method and "/partitions" in p]


def public_key_of(key_file: str) -> str:
    """The ``type base64`` of a private key's public half (what ssh_pub_key must carry)."""
    return " ".join(asyncssh.read_private_key(key_file).export_public_key().decode().split()[:2])


def test_azure_lifecycle_tracks_the_partition_by_id_despite_the_suffix(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    """The Azure gate lists and answers ``<partname>-resource-group``; the job is polled by the id the
    create answer gave (a resource path with slashes), runs, and its partition is deleted by that id."""
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)
    first_request = len(standin.requests)

    async def main(manager: WorkloadManager) -> None:
        job = await manager.submit({"command": ["sh", "-c", "echo on azure"]})
        done = await manager.wait(job.id, 40)
        assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
        assert (Path(done.folder) / "stdout").read_text() == "on azure\n"
        name = "swm-" + job.id.replace("-", "")[:8]
        ident = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}-resource-group"
        assert done.native_id == ident and done.gate_data["partition_id"] == ident
        gets = requests_to(standin, "GET", first_request)
        assert f"/azure/partitions/{ident}" in gets, gets  # partitions//subscriptions/...: by id
        assert requests_to(standin, "DELETE", first_request) == [f"/azure/partitions/{ident}"]
        assert await asyncio.to_thread(standin.wait_empty) == []

    run(with_cloud_manager(data, gate_options, main), 90)


def test_openstack_lifecycle_sends_the_image_as_vmimage(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    """OpenStack's route reads the image from ``vmimage``: the job's image goes as both headers."""
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)

    async def main(manager: WorkloadManager) -> None:
        job = await manager.submit({"command": ["sh", "-c", "echo on openstack"], "cloud_image": "rocky-9"})
        done = await manager.wait(job.id, 40)
        assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
        assert (Path(done.folder) / "stdout").read_text() == "on openstack\n"
        sent = creates(standin)[-1]
        assert sent["vmimage"] == sent["osversion"] == "rocky-9"
        assert sent["tenantname"] == "p1" and sent["username"] == "os-user" and sent["password"] == "os-pw"
        carried = [h for m, p, h, _ in standin.requests if p.startswith("/openstack/")]
        assert carried and all(h.get("username") == "os-user" for h in carried)
        assert requests_to(standin, "DELETE")[-1] == f"/openstack/partitions/{done.native_id}"
        assert await asyncio.to_thread(standin.wait_empty) == []

    options = {
        **gate_options,
        "cloud_kind": "openstack",
        "headers": {"tenantname": "p1"},
        "request_headers": {"username": "os-user", "password": "os-pw"},
    }
    run(with_cloud_manager(data, options, main), 90)


def test_every_header_is_sent_and_a_create_answer_without_id_fails_at_once(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    """A job with no ports, container image or location still sends those headers (empty), and
    ``runtime`` with the site's public key; the gate's ``{"partition": {}}`` (what it answers when a
    header is missing) is an error at submission, in the gate's words, not a wait for the timeout."""

    async def main() -> None:
        gate = new_gate(gate_options, create_timeout=60.0)
        await gate.setup()
        try:
            job = make_job(tmp_path / "local", {"command": ["true"]})
            first = await gate.submit(job)
            assert first.state is JobState.WAITING and first.native_id, first
            sent = creates(standin)[-1]
            for header in ("ports", "containerimage", "location", "runtime", "username", "vmimage", "osversion"):
                assert header in sent, f"header {header} is not sent"
            assert sent["ports"] == sent["containerimage"] == sent["location"] == ""
            assert sent["runtime"] == "ssh_pub_key=" + public_key_of(ssh_options["key_file"])
            part = next(p for p in standin.partitions.values() if p["name"].startswith(gate.partition_name(job)))
            assert part["_runtime"] == {"ssh_pub_key": public_key_of(ssh_options["key_file"])}
            job.gate_data = dict(first.gate_data or {})
            await gate.release_resources(job)
            # The create answer names no id: E at once, with what the gate said; nothing is left.
            standin.fail_create = "no_id"
            lost = make_job(tmp_path / "local", {"command": ["true"]})
            refused = await gate.submit(lost)
            assert refused.state is JobState.ERROR, refused
            assert "no id in its answer" in refused.details and '"partition": {"name": "swm-' in refused.details
            lost.gate_data = dict(refused.gate_data or {})
            await gate.release_resources(lost)
            # The credentials go with every request; a gate that echoes them shows none of them.
            standin.fail_create = "error200"
            echoed = make_job(tmp_path / "local", {"command": ["true"]})
            answer = await gate.submit(echoed)
            assert answer.state is JobState.ERROR and "deployment failed (on demand)" in answer.details
            assert "pw-0123456789" not in answer.details and "app-0123456789" not in answer.details
            assert "create_stack(" in answer.details and "***" in answer.details
            echoed.gate_data = dict(answer.gate_data or {})
            await gate.release_resources(echoed)
        finally:
            await gate.cleanup()
        carried = [h for m, p, h, _ in standin.requests[first_request:] if p.startswith("/azure/")]
        assert carried and all(h.get("appid") == "app-0123456789" for h in carried)
        assert standin.wait_empty() == []

    first_request = len(standin.requests)
    gate_options = {
        **gate_options,
        "request_headers": {"appid": "app-0123456789", "subscriptionid": SUBSCRIPTION},
        "headers": {"password": "pw-0123456789"},
    }
    run(main(), 60)


def test_a_failed_lookup_is_asked_again_and_makes_one_partition(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    """The gate fails the lookup before creation (HTTP 500): nothing was made, so the job waits
    and the start sequence asks again; one partition is made and the job runs."""

    async def main() -> None:
        gate = new_gate(gate_options)
        await gate.setup()
        try:
            standin.lookup_errors = 2
            job = make_job(tmp_path / "local", {"command": ["sh", "-c", "echo after a 500"]})
            status = await gate.submit(job)
            assert status.state is JobState.WAITING and "HTTP 500" in status.details, status
            seen = await drive_on(gate, job, status)
            assert job.state is JobState.FINISHED and job.exit_code == 0, seen
            assert (Path(job.folder) / "stdout").read_text() == "after a 500\n"
            assert standin.creates[gate.partition_name(job)] == 1
        finally:
            await gate.cleanup()
        assert standin.wait_empty() == []

    run(main(), 60)


def test_orphan_sweep_beside_a_live_azure_job_leaves_it_alone(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    """The sweep runs while a job runs on a partition listed as ``swm-...-resource-group``, and
    while a held job (never given to the gate) has a partition of its name: it deletes the orphan,
    never those two; the held job's partition goes once that job is final."""
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)

    def name_of(job_id: str) -> str:
        return "swm-" + job_id.replace("-", "")[:8]

    async def main(manager: WorkloadManager) -> None:
        gate = manager.gates["cloud"]
        assert isinstance(gate, CloudGate)
        job = await manager.submit({"command": ["sh", "-c", "sleep 3; echo survived"]})
        held = await manager.submit({"command": ["true"], "hold": True})
        kept = await asyncio.to_thread(standin.add_partition, name_of(held.id))
        await until(lambda: manager.get(job.id).state is JobState.RUNNING, 30, "the job to run")
        orphan = await asyncio.to_thread(standin.add_partition, "swm-0rphan01")
        assert orphan["name"] == "swm-0rphan01-resource-group"
        await until(lambda: orphan["name"] in gate.swept, 15, "the orphan sweep")
        done = await manager.wait(job.id, 40)
        assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
        assert (Path(done.folder) / "stdout").read_text() == "survived\n"
        assert not [n for n in gate.swept if base(n) in (name_of(job.id), name_of(held.id))], gate.swept
        assert kept["id"] in {p["id"] for p in standin.live_partitions()}
        await manager.cancel(held.id)
        assert (await manager.wait(held.id, 20)).state is JobState.CANCELED
        await until(lambda: kept["name"] in gate.swept, 15, "the sweep of a final job's partition")
        assert await asyncio.to_thread(standin.wait_empty) == []

    run(with_cloud_manager(data, gate_options, main, orphan_grace=0.2), 90)


def test_a_canceled_running_job_has_its_folder_collected_before_the_partition_goes(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    """Canceling a running job stops it on the master, brings its folder back (what it saved is
    not lost with the VM), then deletes the partition; the job is C."""
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)

    async def main(manager: WorkloadManager) -> None:
        job = await manager.submit({"command": ["sh", "-c", "echo saved > notes.txt; echo started; sleep 300"]})

        async def saved() -> bool:
            current = manager.get(job.id)
            return current.state is JobState.RUNNING and bool(await manager.read_output(job.id, "stdout"))

        await until(saved, 40, "the job to run and save its file")
        await manager.cancel(job.id)
        done = await manager.wait(job.id, 40)
        assert done.state is JobState.CANCELED, done.state_details
        assert (Path(done.folder) / "notes.txt").read_text() == "saved\n"
        assert "collecting outputs" in " | ".join(h.details for h in done.history)
        assert await asyncio.to_thread(standin.wait_empty) == []

    run(with_cloud_manager(data, gate_options, main, kill_grace=0.5), 90)


def test_restart_between_start_steps_resumes_at_the_stored_step(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    """The first server stops while the job waits for SSH on its partition (step ``connect``,
    stored with the partition's id; a stop is no failure and no user's cancel); the next resumes
    at that step: no second partition, and the job runs once."""
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)
    with socket.socket() as closed:  # a port where no sshd answers
        closed.bind(("127.0.0.1", 0))
        no_ssh = closed.getsockname()[1]
    state: dict[str, Any] = {}

    async def first(manager: WorkloadManager) -> None:
        job = await manager.submit({"command": ["sh", "-c", "echo ran once >> ../../runs; echo ran"]})
        await until(lambda: "waiting for SSH" in manager.get(job.id).state_details, 30, "the connect step")
        state["id"] = job.id

    run(with_cloud_manager(data, gate_options, first, ssh_port=no_ssh), 60)
    store = JobStore(str(data / "jobs.sqlite"))
    try:
        stored = store.get(state["id"])
    finally:
        store.close()
    assert stored.state is JobState.TRANSFERRING, stored.state_details
    assert stored.gate_data["step"] == "connect" and stored.gate_data["partition_id"], stored.gate_data
    assert "error" not in stored.gate_data and "canceled" not in stored.state_details

    async def second(manager: WorkloadManager) -> None:
        done = await manager.wait(state["id"], 40)
        assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
        assert (Path(done.folder) / "stdout").read_text() == "ran\n"
        assert done.native_id == stored.gate_data["partition_id"]

    run(with_cloud_manager(data, gate_options, second), 60)
    assert standin.creates["swm-" + state["id"].replace("-", "")[:8]] == 1
    assert (tmp_path / "runs").read_text() == "ran once\n"
    assert standin.wait_empty() == []


def test_a_cancellation_is_never_swallowed(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    """Stopping a job's start sequence while the caller is itself canceled: the caller's
    cancellation goes on up; the gate's cleanup stops the sequence without failing the job."""

    async def main() -> None:
        standin.hold_creating = True
        gate = new_gate(gate_options)
        await gate.setup()
        try:
            job = make_job(tmp_path / "local", {"command": ["true"]})
            job.gate_data = dict((await gate.submit(job)).gate_data or {})
            assert not gate._starts[job.id].done()
            outer = asyncio.create_task(gate._stop_start_task(job))
            await asyncio.sleep(0)  # it has asked the sequence to stop and waits for it
            outer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await outer
            assert outer.cancelled()
            # A server stop (cleanup) ends the sequence; the job is neither failed nor canceled.
            restarted = new_gate(gate_options)
            await restarted.setup()
            polled = (await restarted.poll([job]))[job.id]
            assert polled.state is JobState.WAITING and not restarted._starts[job.id].done()
            await restarted.cleanup()
            record = restarted._record(job)
            assert record["step"] == "wait" and "error" not in record, record
            await gate.release_resources(job)
        finally:
            await gate.cleanup()
        assert standin.wait_empty() == []

    run(main(), 60)


def test_a_step_cancelled_by_its_own_operation_fails_the_start(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    """A CancelledError that no one asked for (a library's operation cancelled itself) fails the
    start with a reason; it neither kills the sequence silently nor counts as the user's cancel."""

    async def main() -> None:
        gate = new_gate(gate_options)
        await gate.setup()

        async def cancels_itself(job: Job, record: dict[str, Any]) -> str:
            raise asyncio.CancelledError

        gate._step_wait = cancels_itself  # type: ignore[method-assign]
        try:
            job = make_job(tmp_path / "local", {"command": ["true"]})
            job.gate_data = dict((await gate.submit(job)).gate_data or {})
            await until(lambda: gate._record(job).get("step") == "failed", 10, "the start to fail")
            polled = (await gate.poll([job]))[job.id]
            assert polled.state is JobState.ERROR and "step wait was cancelled" in polled.details, polled
            await gate.release_resources(job)
        finally:
            await gate.cleanup()
        assert standin.wait_empty() == []

    run(main(), 60)


def test_private_env_reaches_the_cloud_job_and_is_kept_nowhere(
    standin: SkyPortGateStandin, gate_options: dict[str, Any], tmp_path: Path
) -> None:
    """``private_env`` goes over SSH to the job's process on the master: the job sees it; no file
    here or on the master, no stored record, event or log line holds it."""
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)
    secret = "s3cr3t-cloud-value-for-the-process-only"
    check = 'case "$HUB_TOKEN" in s3cr3t-*) echo present;; *) echo missing;; esac'
    capture = LogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    old_level = root.level
    root.setLevel(logging.DEBUG)

    async def main(manager: WorkloadManager) -> None:
        events = manager.subscribe()
        job = await manager.submit({"command": ["sh", "-c", check], "private_env": {"HUB_TOKEN": secret}})
        done = await manager.wait(job.id, 40)
        assert done.state is JobState.FINISHED and done.exit_code == 0, done.state_details
        assert (Path(done.folder) / "stdout").read_text() == "present\n"
        seen = []
        while not events.empty():
            seen.append(events.get_nowait())
        assert secret not in json.dumps([done.to_dict(), done.gate_data, seen], default=str)
        assert await asyncio.to_thread(standin.wait_empty) == []

    try:
        run(with_cloud_manager(data, gate_options, main), 90)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    held = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert held == [], "the value is in a file (store, job folder or the master's folder)"
    assert secret not in "\n".join(capture.lines)
    assert not list((tmp_path / "remote").rglob(".swm-private-env"))
    assert any((tmp_path / "remote").rglob("stdout")), "the job ran in the master's folder"


# -- the REST API of a real Jupyter server -------------------------------------------------------------


@pytest.fixture
def swm_sites(standin: SkyPortGateStandin, ssh_options: dict[str, Any]) -> dict[str, Any]:
    """A cloud site on the stand-in (for the REST test below)."""
    standin.reset()
    return {"cloud": {"gate": "cloud", "url": standin.url, "pem_data": PEM, "request_timeout": 5.0, "retries": 1}}


async def test_rest_sites_show_flavors_and_dry_run_gives_the_estimate(api: Any, swm_started: Any) -> None:
    for _ in range(100):
        if "cloud" in swm_started._ready_sites:
            break
        await asyncio.sleep(0.05)
    response = await api("sites")
    assert response.code == 200
    text = response.body.decode()
    assert PEM_LINE not in text and "BEGIN PRIVATE KEY" not in text
    site = next(s for s in body(response)["sites"] if s["name"] == "cloud")
    assert site["kind"] == "cloud" and site["healthy"] is True, site
    prices = {f["name"]: (f["price"], f["price_per_hour"]) for f in site["flavors"]}
    assert prices == {"small": (0.1, 0.1), "large": (0.8, 0.8), "gpu": (3.2, 3.2)}
    spec = {"command": ["true"], "flavor": "gpu", "resources": {"nodes": 2, "walltime": "01:30:00"}}
    response = await api("jobs", json_body=spec, params={"dry_run": "1"})
    assert response.code == 200, response.body
    assert body(response)["cost_estimate"] == pytest.approx(3.2 * 2 * 1.5)
    response = await api("jobs", json_body={**spec, "flavor": "huge"}, params={"dry_run": "1"})
    assert response.code == 400
    assert "unknown flavor 'huge'; flavors: small, large, gpu" in response.body.decode()


# -- last: nothing is left behind --------------------------------------------------------------------------


def test_zz_the_standin_holds_no_partition_at_the_end(standin: SkyPortGateStandin) -> None:
    assert standin.wait_empty() == [], "every partition made by the tests was deleted"
    assert sum(standin.creates.values()) >= 8
