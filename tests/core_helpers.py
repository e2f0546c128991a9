"""Helpers for tests of the headless core: make a manager on a temporary store and run coroutines."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.store import MIGRATIONS

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 120) -> T:
    """Run ``coro`` to completion on a fresh event loop, failing after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def store_before(path: Path, marker: str) -> tuple[sqlite3.Connection, int]:
    """A store file made by an older swm-jupyter: at the schema version just before the migration
    whose SQL holds ``marker``. Returns an open connection to it (autocommit) and that version."""
    version = next(v for v, steps in MIGRATIONS.items() if any(marker in step for step in steps))
    db = sqlite3.connect(path, isolation_level=None)
    for earlier in range(version):
        for statement in MIGRATIONS[earlier]:
            db.execute(statement)
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),))
    return db, version


def make_manager(data_dir: Path, **traits: Any) -> WorkloadManager:
    """A manager with one local site, its store and job folders in ``data_dir``."""
    traits.setdefault("sites", {"local": {"gate": "local"}})
    traits.setdefault("input_root", str(data_dir))
    return WorkloadManager(data_dir=str(data_dir), **traits)


@contextlib.asynccontextmanager
async def running_manager(data_dir: Path, **traits: Any) -> AsyncIterator[WorkloadManager]:
    """``async with running_manager(...) as wm``: a started manager (see :func:`make_manager`), always stopped."""
    manager = make_manager(data_dir, **traits)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()


async def with_manager(data_dir: Path, body: Callable[[WorkloadManager], Awaitable[T]], **traits: Any) -> T:
    """Start a manager, run ``body(manager)``, and always stop it."""
    async with running_manager(data_dir, **traits) as manager:
        return await body(manager)
