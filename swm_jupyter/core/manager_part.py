"""The base of the manager's parts that live in their own modules (arrays, launching, reconcile).

Those mixins use the state and methods of :class:`~swm_jupyter.core.manager.WorkloadManager` and
of each other. :class:`ManagerPart` declares them once, for type checkers and readers; at run time
it is an empty class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    import logging

    from .gate_contract import Gate, GateStatus
    from .model import Job
    from .states import Action, JobState
    from .store import JobStore
    from .user_inputs import Reader
    from .wakeup import Wakeup


class ManagerPart:
    """Base of the manager's mixins: what they rely on, provided by the manager (typing only)."""

    if TYPE_CHECKING:
        jobs: dict[str, Job]
        gates: dict[str, Gate]
        log: logging.Logger
        input_root: str
        user_root: str
        poll_interval: float
        site_health: dict[str, str]
        _wake: Wakeup
        _site_wake: dict[str, Wakeup]
        _ready_sites: set[str]
        _launching: set[str]
        _running: bool
        gate_errors: dict[str, str]
        _carrying: dict[str, asyncio.Task[None]]
        _active: dict[str, Job]
        _held_on_site: dict[str, Job]
        _dirty_parents: set[str]
        _array_counts: dict[str, dict[JobState, int]]
        _array_worst: dict[str, int]

        def _set_state(
            self, job: Job, state: JobState, details: str = "", *, record: bool = False, at: float | None = None
        ) -> None: ...
        def _mark(self, job: Job) -> None: ...
        def _index(self, job: Job) -> None: ...
        def _flush(self, *, retry_now: bool = False) -> bool: ...
        def _spawn(self, coro: Any) -> None: ...
        def _require_store(self) -> JobStore: ...
        def owner_root(self, owner: str, gate: Gate) -> tuple[str, Reader]: ...
        def _schedule_once(self) -> None: ...
        def _apply_status(self, job: Job, status: GateStatus) -> None: ...
        def _refresh_parent(self, job: Job) -> None: ...
        def _with_tasks(self, job: Job) -> list[Job]: ...
        def _at_once(self, job: Job, action: Action) -> bool: ...
        def _do_at_once(self, job: Job, action: Action) -> None: ...
        def _carry_out(self, job: Job) -> asyncio.Task[None]: ...
        def _restart_parent(self, task: Job) -> None: ...
        @staticmethod
        def _reset_for_run(job: Job) -> None: ...
