"""The gate contract: capabilities are declared on ``Gate`` with defaults (never probed by the core),
and a gate that implements only ``submit``, ``poll`` and ``cancel`` runs jobs with those defaults.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from pathlib import Path

from swm_jupyter.core.gate_contract import Gate, GateStatus
from swm_jupyter.core.model import Job
from swm_jupyter.core.states import JobState
from swm_jupyter.gates.local import LocalGate

from .core_helpers import run, with_manager

CORE = Path(__file__).resolve().parent.parent / "swm_jupyter" / "core"

#: Every capability a gate declares, with the base's default.
DEFAULTS = {
    "native_arrays": False,
    "native_dependencies": False,
    "idempotent_submit": False,
    "batch_submit": False,
    "stages_files": True,
    "collect_on_cancel": False,
    "supports_run_as_owner": False,
    "runs_as_owner": False,
    "private_env": False,
}


def test_capabilities_are_declared_on_the_base_with_defaults() -> None:
    assert {name: getattr(Gate, name) for name in DEFAULTS} == DEFAULTS
    gate = Gate()
    assert gate.next_poll_delay() is None and gate.slot_cpus is None and gate.python is None
    assert not hasattr(Gate, "stage_in"), "stage_in was never called by the core: not part of the contract"
    local = LocalGate(cpus=3, queue_ahead=0)
    assert (local.stages_files, local.batch_submit, local.slot_cpus) == (False, True, 3)
    assert local.next_poll_delay() == 1.0


def _probes(path: Path) -> list[str]:
    """``getattr``/``hasattr`` calls with a literal name and ``X.submit_many is (not) Gate.submit_many``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                found.append(f"{path.name}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Is | ast.IsNot) for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(isinstance(side, ast.Attribute) and side.attr in dir(Gate) for side in sides):
                found.append(f"{path.name}:{node.lineno} compares a Gate method by identity")
    return found


def test_the_core_never_probes_a_gate_for_a_capability() -> None:
    capabilities = {*DEFAULTS, "next_poll_delay", "slot_cpus", "stage_in", "stage_out", "submit_many", "python"}
    probes = [p for path in sorted(CORE.glob("*.py")) for p in _probes(path)]
    assert [p for p in probes if any(repr(c) in p for c in capabilities) or "identity" in p] == []


class MinimalGate(Gate):
    """A gate with only the three required methods: runs the command here, one process per job."""

    kind = "minimal"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        process = await asyncio.create_subprocess_exec(*job.spec.command, cwd=job.folder)
        self.processes[job.id] = process
        return GateStatus(JobState.RUNNING, native_id=str(process.pid), gate_data={"pid": process.pid})

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        out = {}
        for job in jobs:
            process = self.processes.get(job.id)
            if process is not None and process.returncode is not None:
                out[job.id] = GateStatus(JobState.FINISHED, exit_code=process.returncode)
        return out

    async def cancel(self, job: Job) -> None:
        process = self.processes.get(job.id)
        if process is not None and process.returncode is None:
            process.kill()


def test_a_gate_with_only_the_required_methods_runs_jobs(tmp_path: Path) -> None:
    async def body(wm: object) -> None:
        jobs = await wm.submit_many([{"command": ["sh", "-c", f"echo {i} > out; exit {i}"]} for i in range(3)])  # type: ignore[attr-defined]
        done = [await wm.wait(job.id, 30) for job in jobs]  # type: ignore[attr-defined]
        assert [(j.state, j.exit_code) for j in done] == [(JobState.FINISHED, i) for i in range(3)]
        # stages_files (the default): the end goes through T, outputs collected by the default stage_out
        assert all(JobState.TRANSFERRING in [h.state for h in j.history] for j in done)
        assert [(Path(j.folder) / "out").read_text() for j in done] == ["0\n", "1\n", "2\n"]

    sites = {"local": {"gate": "tests.test_gate_contract:MinimalGate"}}
    run(with_manager(tmp_path, body, sites=sites, poll_interval=0.2))
