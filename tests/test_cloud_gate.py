"""The cloud gate against a stand-in Sky Port gate whose partitions are the test sshd on 127.0.0.1.

Jobs really run over SSH; the stand-in follows the gate protocol (headers, wrapped lists, both
error styles, asynchronous deletion). Driven directly and end to end through ``WorkloadManager``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import GateError, SiteUnavailable, ValidationError
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.model import Job, JobSpec, new_job_id
from swm_jupyter.core.states import JobState
from swm_jupyter.gates.cloud import CloudGate
from swm_jupyter.gates.cloud_protocol import GateAnswerError

from .conftest import body
from .core_helpers import run
from .skyport_gate_standin import FLAVORS, SkyPortGateStandin

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
    seen: list[str] = []
    status = await gate.submit(job)
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
            await until(lambda: "swm-0rphan00" in gate.swept, 15, "the orphan sweep")
            names = {p["name"]: p["status"] for p in standin.live_partitions()}
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
