"""Full garbage collections held during bulk work, and long-lived objects frozen (``core/gc_pauses.py``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core import gc_pauses
from swm_jupyter.core.manager import WorkloadManager

from .core_helpers import run, with_manager


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    """Each test starts with collection on, nothing frozen, and the module enabled; and leaves it so."""
    gc.unfreeze()
    gc.enable()
    gc_pauses.enabled = True
    yield
    gc.unfreeze()
    gc.enable()
    gc_pauses.enabled = True


class Node:
    """An object the collector tracks."""


def test_bulk_work_holds_collections_and_freezes_what_it_made() -> None:
    with gc_pauses.bulk_work(keeps_objects=True):
        assert not gc.isenabled()
        made = [Node() for _ in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)


def test_work_that_keeps_nothing_freezes_nothing() -> None:
    with gc_pauses.bulk_work(keeps_objects=False):
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_overlapping_blocks_hold_collections_until_the_last_ends() -> None:
    outer = gc_pauses.bulk_work(keeps_objects=True)
    inner = gc_pauses.bulk_work(keeps_objects=False)
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # the submission ends first: the cancel still runs
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0
    inner.__exit__(None, None, None)
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0  # the submission's objects are frozen once all blocks are done


def test_an_error_inside_still_turns_collection_back_on() -> None:
    with pytest.raises(RuntimeError), gc_pauses.bulk_work(keeps_objects=True):
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_collection_off_before_stays_off() -> None:
    gc.disable()
    with gc_pauses.bulk_work(keeps_objects=False):
        pass
    assert not gc.isenabled()


def test_turned_off_by_configuration() -> None:
    gc_pauses.enabled = False
    with gc_pauses.bulk_work(keeps_objects=True):
        assert gc.isenabled()
    gc_pauses.freeze_startup_heap()
    assert gc.get_freeze_count() == 0


def test_startup_freeze() -> None:
    gc_pauses.freeze_startup_heap()
    assert gc.get_freeze_count() > 10_000  # the interpreter's and pytest's objects


def test_a_big_array_is_submitted_and_canceled_without_collections_and_its_tasks_frozen(tmp_path: Path) -> None:
    seen: list[bool] = []

    async def body(manager: WorkloadManager) -> None:
        real_insert = manager.store.insert_tasks

        def insert_tasks(batch: list[Any]) -> None:  # runs between the slices of the submission
            seen.append(gc.isenabled())
            real_insert(batch)

        manager.store.insert_tasks = insert_tasks  # type: ignore[method-assign]
        before = gc.get_freeze_count()
        parent = await manager.submit({"command": ["true"], "array": "0-2999", "hold": True})
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + 3000  # every task (and its history) frozen
        canceled = await manager.cancel(parent.id)
        assert gc.isenabled()
        assert canceled.id == parent.id

    run(with_manager(tmp_path, body))
    assert seen and not any(seen)
