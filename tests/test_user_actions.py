"""User actions (cancel, hold, release, requeue): one table decides, illegal ones change nothing (409),
a site whose gate did not load answers 503, and the reconciler carries out what needs the site.

Real local jobs in every state through a headless manager; the real test Slurm for a release the
site refuses.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from traitlets import Unicode

from swm_jupyter.core.errors import InvalidTransition, SiteUnavailable
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.model import Job
from swm_jupyter.core.states import ACTIONS, TRANSITIONS, Action, JobState, check_action
from swm_jupyter.core.store import JobStore
from swm_jupyter.gates.local import LocalGate

from .core_helpers import run, running_manager

Q, H, W, T, R, F, E, C = (
    JobState.QUEUED,
    JobState.HELD,
    JobState.WAITING,
    JobState.TRANSFERRING,
    JobState.RUNNING,
    JobState.FINISHED,
    JobState.ERROR,
    JobState.CANCELED,
)


class SlowOutputGate(LocalGate):
    """The local gate, collecting outputs (state T) until the file ``outputs_ready`` exists: a site
    whose stage-out takes as long as the test needs."""

    stages_files = True
    outputs_ready = Unicode(help="Collecting outputs ends when this file exists.").tag(config=True)

    async def stage_out(self, job: Job) -> None:
        while not Path(self.outputs_ready).exists():  # noqa: ASYNC110 - a file another process makes
            await asyncio.sleep(0.05)


def test_every_action_of_the_table_is_an_allowed_transition() -> None:
    for action, moves in ACTIONS.items():
        for state in JobState:
            if state in moves:
                assert check_action(state, action) is moves[state]
                assert moves[state] in TRANSITIONS[state], (action, state)
            else:
                with pytest.raises(InvalidTransition):
                    check_action(state, action)


def _snapshot(wm: WorkloadManager, job_id: str) -> tuple[Any, ...]:
    job = wm.get(job_id)
    stored = wm._require_store().get(job_id)
    return (job.state, len(job.history), job.wanted, job.native_id, stored.state, len(stored.history), stored.wanted)


async def _until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def _jobs_in_every_state(wm: WorkloadManager, ready: Path) -> dict[JobState, dict[Action, str]]:
    """Four jobs (one per action) in each of the eight states, on real local sites."""
    long = {"command": ["sleep", "30"]}
    by_state: dict[JobState, list[str]] = {}
    finished = await wm.submit_many([{"command": ["true"], "site": "run"}] * 4)
    failing = await wm.submit({"command": ["false"], "site": "run"})
    errors = await wm.submit_many([{"command": ["true"], "site": "run", "depends_on": [failing.id]}] * 4)
    canceled = await wm.submit_many([{"command": ["true"], "hold": True, "site": "run"}] * 4)
    for job in canceled:
        await wm.cancel(job.id)
    by_state[F] = [(await wm.wait(j.id, 30)).id for j in finished]
    by_state[E] = [(await wm.wait(j.id, 30)).id for j in errors]
    by_state[C] = [j.id for j in canceled]
    by_state[H] = [j.id for j in await wm.submit_many([{"command": ["true"], "hold": True, "site": "run"}] * 4)]
    by_state[R] = [j.id for j in await wm.submit_many([{**long, "site": "run"}] * 4)]
    blocker = await wm.submit({**long, "site": "busy"})
    await _until(lambda: wm.get(blocker.id).state is R)
    by_state[W] = [j.id for j in await wm.submit_many([{**long, "site": "busy"}] * 4)]
    await _until(lambda: all(wm.get(i).state is W for i in by_state[W]))
    by_state[Q] = [j.id for j in await wm.submit_many([{**long, "site": "busy"}] * 4)]
    by_state[T] = [j.id for j in await wm.submit_many([{"command": ["true"], "site": "slow"}] * 4)]
    for state, ids in by_state.items():
        await _until(lambda ids=ids, state=state: all(wm.get(i).state is state for i in ids))
    await asyncio.sleep(0.5)  # nothing moves by itself any more
    for state, ids in by_state.items():
        assert all(wm.get(i).state is state for i in ids), (state, [wm.get(i).state for i in ids])
    return {state: dict(zip(Action, ids, strict=True)) for state, ids in by_state.items()}


def test_each_action_in_each_state_follows_the_one_table(tmp_path: Path) -> None:
    ready = tmp_path / "outputs-ready"
    sites = {
        "run": {"gate": "local", "cpus": 8},
        "busy": {"gate": "local", "cpus": 1, "queue_ahead": 4},
        "slow": {"gate": "tests.test_user_actions:SlowOutputGate", "cpus": 4, "outputs_ready": str(ready)},
    }

    async def main() -> None:
        async with running_manager(tmp_path / "data", sites=sites) as wm:
            jobs = await _jobs_in_every_state(wm, ready)
            try:
                # Q before W: a W job that leaves the site's queue lets a Q job take its place.
                for state in (Q, H, W, T, R, F, E, C):
                    for action, job_id in jobs[state].items():
                        await _check(wm, state, action, job_id)
            finally:
                ready.touch()
                for job in list(wm.jobs.values()):
                    if not job.state.final and not job.is_array_parent:
                        await wm.cancel(job.id)
                for job in list(wm.jobs.values()):
                    await wm.wait(job.id, 30)

    run(main(), timeout=240)


async def _check(wm: WorkloadManager, state: JobState, action: Action, job_id: str) -> None:
    before = _snapshot(wm, job_id)
    expected = ACTIONS[action].get(state)
    if expected is None:
        with pytest.raises(InvalidTransition):
            await getattr(wm, action.value)(job_id)
        assert _snapshot(wm, job_id) == before, f"{action.value} of a {state.value} job changed it"
        return
    await getattr(wm, action.value)(job_id)
    job = wm.get(job_id)
    if action is Action.CANCEL:
        job = await wm.wait(job_id, 30)
        assert job.state is C and job.history[-1].details == "canceled by the user", (state, job.to_dict())
    else:
        await _until(lambda: wm.get(job_id).wanted is None)
        steps = [(h.state, h.details) for h in job.history[before[1] :]]
        done = {Action.HOLD: "held", Action.RELEASE: "released", Action.REQUEUE: "requeued"}[action]
        assert steps and steps[0][0] is expected and steps[0][1].startswith(f"{done} by the user"), (state, steps)
    # The outcome reaches the store (changes that need not be durable at once are written in batches).
    await _until(lambda: wm._require_store().get(job_id).wanted is None, 5)
    assert len(wm._require_store().get(job_id).history) > before[1]


def test_a_site_whose_gate_did_not_load_answers_503_and_nothing_changes(tmp_path: Path) -> None:
    sites = {"local": {"gate": "local", "cpus": 2}}

    async def first() -> tuple[str, str]:
        async with running_manager(tmp_path, sites=sites) as wm:
            ended = await wm.wait((await wm.submit({"command": ["true"]})).id, 30)
            running = await wm.submit({"command": ["sleep", "4"]})
            await _until(lambda: wm.get(running.id).state is R)
            return ended.id, running.id

    ended, running = run(first())

    async def second() -> None:
        broken = {"local": {"gate": "no_such_module:NoGate"}}
        async with running_manager(tmp_path, sites=broken) as wm:
            for job_id, action in [(ended, "requeue"), (running, "requeue"), (running, "cancel"), (running, "hold")]:
                before = _snapshot(wm, job_id)
                if action == "hold":
                    with pytest.raises(InvalidTransition):  # the table refuses before the site is asked
                        await wm.hold(job_id)
                else:
                    with pytest.raises(SiteUnavailable) as refused:
                        await getattr(wm, action)(job_id)
                    assert refused.value.status == 503 and "no_such_module" in refused.value.message
                assert _snapshot(wm, job_id) == before

    run(second())
    store = JobStore(str(tmp_path / "jobs.sqlite"))
    try:
        assert store.get(ended).state is F and store.get(running).state is R and store.get(running).wanted is None
    finally:
        store.close()


@pytest.mark.slurm
def test_a_release_slurm_refuses_leaves_exactly_one_slurm_job(services: dict[str, str], tmp_path: Path) -> None:
    from .test_slurm_gate import FAST

    sites = {"cluster": {"gate": "slurm", **FAST}}
    name = f"refused-{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        async with running_manager(tmp_path / "data", input_root=str(tmp_path), sites=sites) as wm:
            first = await wm.submit({"site": "cluster", "command": ["sleep", "6"]})
            second = await wm.submit({"site": "cluster", "command": ["true"], "depends_on": [first.id], "name": name})
            await _until(lambda: wm.get(second.id).state is W and bool(wm.get(second.id).native_id), 60)
            held = await wm.hold(second.id)
            assert held.state is H and "site's queue" in held.state_details
            slurm_id = held.native_id or ""
            # Slurm no longer has it to release (canceled there), so `scontrol release` fails.
            subprocess.run(["scancel", slurm_id], check=True)
            released = await wm.release(second.id)
            assert released.native_id == slurm_id
            assert released.state is not Q, "a job Slurm still had must not be queued here again"
            await asyncio.sleep(5)  # polls and scheduling passes: any second sbatch would happen now
            assert wm.get(second.id).native_id == slurm_id
            await wm.wait(first.id, 60)

    run(body(), timeout=180)
    listed = subprocess.run(
        ["squeue", "--states=all", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, check=True
    )
    assert len(listed.stdout.split()) == 1, f"Slurm jobs named {name}: {listed.stdout.split()}"
