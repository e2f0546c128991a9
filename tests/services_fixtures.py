"""Session fixtures for the real test services (munged, slurmctld, slurmd, sshd) and gate test helpers.

Wire into ``tests/conftest.py`` with ``from tests.services_fixtures import *``. The ``services``
fixture runs ``tests/services/start.sh`` once per session (failing, not skipping, when the
services cannot start) and ``stop.sh`` at the end (set ``SWM_TEST_KEEP_SERVICES=1`` to keep them).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from swm_jupyter.core.model import Job, JobSpec, new_job_id
from swm_jupyter.gates.base import Gate, GateStatus

T = TypeVar("T")

SERVICES_DIR = Path(__file__).parent / "services"


def _read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            env[key.strip()] = value.strip()
    return env


def start_services() -> dict[str, str]:
    """Run start.sh (idempotent) and return the variables of its env file; pytest.fail if it fails."""
    base = Path(os.environ.get("SWM_TEST_SERVICES_DIR", "/tmp/swm-test-services"))
    proc = subprocess.run(["bash", str(SERVICES_DIR / "start.sh")], capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        pytest.fail(f"the test services did not start (tests/services/start.sh):\n{proc.stdout}\n{proc.stderr}")
    env = _read_env(base / "env")
    os.environ["SLURM_CONF"] = env["SLURM_CONF"]
    return env


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    """Start Slurm and sshd for the session; yields the env file's variables (SLURM_CONF, SSH port...)."""
    env = start_services()
    yield env
    if os.environ.get("SWM_TEST_KEEP_SERVICES") != "1":
        subprocess.run(["bash", str(SERVICES_DIR / "stop.sh")], capture_output=True, text=True, timeout=120)


@pytest.fixture
def slurm_site(services: dict[str, str]) -> dict[str, Any]:
    """Options of a local ``slurm`` site for the test cluster (as given in ``sites``)."""
    return {"gate": "slurm", "poll_interval_min": 1.0, "poll_interval_max": 3.0, "max_status_calls_per_minute": 0}


@pytest.fixture
def ssh_options(services: dict[str, str]) -> dict[str, Any]:
    """Connection options of the test sshd (127.0.0.1), as traits of the ``ssh`` gate."""
    return {
        "host": services["SWM_TEST_SSH_HOST"],
        "port": int(services["SWM_TEST_SSH_PORT"]),
        "user": services["SWM_TEST_SSH_USER"],
        "key_file": services["SWM_TEST_SSH_KEY"],
        "known_hosts": services["SWM_TEST_KNOWN_HOSTS"],
        "use_agent": False,
    }


@pytest.fixture
def slurm_ssh_options(services: dict[str, str]) -> dict[str, Any]:
    """Traits of a ``slurm`` gate that reaches the test cluster through the login node 127.0.0.1."""
    return {
        "ssh_host": services["SWM_TEST_SSH_HOST"],
        "ssh_port": int(services["SWM_TEST_SSH_PORT"]),
        "ssh_user": services["SWM_TEST_SSH_USER"],
        "ssh_key_file": services["SWM_TEST_SSH_KEY"],
        "known_hosts": services["SWM_TEST_KNOWN_HOSTS"],
        "use_agent": False,
        "env": {"SLURM_CONF": services["SLURM_CONF"]},
    }


# --- helpers (plain functions) ------------------------------------------------------------------


def run(coro: Awaitable[T], timeout: float = 180) -> T:
    """Run ``coro`` on a fresh event loop, failing after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def make_job(base: Path, request: dict[str, Any], *, site: str = "site", **fields: Any) -> Job:
    """A job with its folder made under ``base`` (and job.sh written), as the manager prepares it."""
    job_id = new_job_id()
    folder = base / job_id
    folder.mkdir(parents=True)
    job = Job(id=job_id, spec=JobSpec.from_dict(request), site=site, folder=str(folder), **fields)
    if job.spec.script is not None:
        (folder / "job.sh").write_text(job.spec.script)
    return job


def apply(job: Job, status: GateStatus) -> None:
    """Fold a gate status into ``job`` the way the manager does (native id, gate data, state)."""
    if status.native_id:
        job.native_id = status.native_id
    if status.gate_data is not None:
        job.gate_data = dict(status.gate_data)
    job.state = status.state
    job.state_details = status.details
    if status.state.final:
        job.exit_code = status.exit_code
        job.signal = status.signal


async def poll_until_final(
    gate: Gate,
    jobs: list[Job],
    timeout: float,
    *,
    seen: dict[str, list[str]] | None = None,
    interval: float | None = None,
) -> dict[str, GateStatus]:
    """Poll ``gate`` until every job is final (as a manager would); return the final statuses.

    ``seen`` collects each job's ``"<state>: <details>"`` history. Raises AssertionError on timeout.
    """
    finals: dict[str, GateStatus] = {}
    deadline = time.monotonic() + timeout
    while True:
        live = [j for j in jobs if j.id not in finals]
        if not live:
            return finals
        statuses = await gate.poll(live)
        for job in live:
            status = statuses.get(job.id)
            if status is None:
                continue
            apply(job, status)
            if seen is not None:
                entry = f"{status.state.value}: {status.details}"
                if not seen.setdefault(job.id, []) or seen[job.id][-1] != entry:
                    seen[job.id].append(entry)
            if status.state.final:
                finals[job.id] = status
        if time.monotonic() > deadline:
            raise AssertionError(
                f"jobs not final after {timeout} s: {[(j.id, j.state, j.state_details) for j in live]}"
            )
        delay = interval if interval is not None else gate.next_poll_delay()
        await asyncio.sleep(delay if delay is not None else 1.0)


def sshd_session_pids(services: dict[str, str]) -> list[int]:
    """Pids of the test sshd's per-connection children (killing them cuts every SSH session)."""
    master = Path(services["SWM_TEST_SSHD_PIDFILE"]).read_text().strip()
    proc = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split()]


def cut_ssh_sessions(services: dict[str, str]) -> int:
    """Kill the test sshd's session processes (not the listening sshd); return how many."""
    pids = sshd_session_pids(services)
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    return len(pids)


def scontrol_show_job(slurm_id: str) -> dict[str, str]:
    """``scontrol show job -o`` of one job as a dict of its ``Key=Value`` fields."""
    out = subprocess.run(["scontrol", "show", "job", "-o", slurm_id], capture_output=True, text=True, check=True)
    fields: dict[str, str] = {}
    for word in out.stdout.split():
        key, sep, value = word.partition("=")
        if sep:
            fields.setdefault(key, value)
    return fields


__all__ = [
    "apply",
    "cut_ssh_sessions",
    "make_job",
    "poll_until_final",
    "run",
    "scontrol_show_job",
    "services",
    "slurm_site",
    "slurm_ssh_options",
    "ssh_options",
    "sshd_session_pids",
    "start_services",
]
