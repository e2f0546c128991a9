"""Cancellation is never swallowed: stopping a helper task does not eat the caller's own cancellation
(``core.tasks.stop_task``, the local gate's cleanup), and a launch that a gate's own operation
cancelled is a failed launch, not a job "canceled by the user".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from swm_jupyter.core.gate_contract import GateStatus
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.model import Job
from swm_jupyter.core.states import JobState
from swm_jupyter.core.tasks import being_cancelled, stop_task

from .core_helpers import run, running_manager
from .test_gate_contract import MinimalGate


async def _slow_to_stop(stopped: asyncio.Event) -> None:
    """A task that takes a moment to end once cancelled (it cleans up first)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)
        stopped.set()
        raise


def test_stop_task_ends_the_task_and_returns_its_failure() -> None:
    async def main() -> None:
        stopped = asyncio.Event()
        task = asyncio.create_task(_slow_to_stop(stopped))
        await asyncio.sleep(0)
        assert await stop_task(task) is None and task.cancelled() and stopped.is_set()
        assert await stop_task(None) is None and await stop_task(task) is None

        async def fails() -> None:
            raise ValueError("boom")

        failed = asyncio.create_task(fails())
        await asyncio.sleep(0)
        assert isinstance(await stop_task(failed), ValueError)

    run(main())


def test_stop_task_raises_the_callers_own_cancellation() -> None:
    async def main() -> None:
        stopped = asyncio.Event()
        child = asyncio.create_task(_slow_to_stop(stopped))
        went_on = []

        async def caller() -> None:
            await stop_task(child)
            went_on.append(being_cancelled())  # must not be reached: the caller was cancelled

        outer = asyncio.create_task(caller())
        await asyncio.sleep(0.05)  # the caller waits for the child, which is still cleaning up
        outer.cancel()
        await asyncio.wait({outer})
        assert outer.cancelled() and went_on == []
        await asyncio.wait_for(stopped.wait(), 5)

    run(main())


def test_a_cancelled_cleanup_of_the_local_gate_stays_cancelled(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_manager(tmp_path / "data") as wm:
            job = await wm.submit({"command": ["true"]})
            await wm.wait(job.id, 30)
            gate = wm.gates["local"]
            assert any(link.reader_task is not None for link in gate._links.values())  # type: ignore[attr-defined]
            cleanup = asyncio.create_task(gate.cleanup())
            await asyncio.sleep(0)  # it now waits for the supervisor reader it stopped
            cleanup.cancel()
            await asyncio.wait({cleanup})
            assert cleanup.cancelled(), "the cancellation of the cleanup was swallowed"

    run(main())


class CancellingGate(MinimalGate):
    """A gate whose own submission is cancelled (e.g. a library's request cancelled under it)."""

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        raise asyncio.CancelledError


def test_a_launch_the_gate_cancelled_is_not_canceled_by_the_user(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        job = await wm.submit({"command": ["true"]})
        done = await wm.wait(job.id, 30)
        assert done.state is JobState.ERROR, (done.state, done.state_details)
        assert "interrupted" in done.state_details and "by the user" not in done.state_details
        assert not done.launching and wm._running  # the manager goes on

    async def main() -> None:
        async with running_manager(
            tmp_path / "data", sites={"local": {"gate": "tests.test_cancellation:CancellingGate"}}
        ) as wm:
            await body(wm)
            user = await wm.submit({"command": ["true"], "hold": True})
            await wm.cancel(user.id)
            assert (await wm.wait(user.id, 30)).state is JobState.CANCELED

    run(main())
