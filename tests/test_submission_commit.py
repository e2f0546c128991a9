"""Submissions are committed before they return: alone at once, concurrent ones in one transaction."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from swm_jupyter.core.manager import WorkloadManager

from .core_helpers import run, with_manager


def _stored(store_path: str, job_id: str) -> bool:
    """Whether another connection (another process, after a crash) would see the job."""
    db = sqlite3.connect(store_path)
    try:
        return db.execute("SELECT COUNT(*) FROM jobs WHERE id=?", (job_id,)).fetchone()[0] == 1
    finally:
        db.close()


def _count_transactions(wm: WorkloadManager) -> list[int]:
    """Record the number of jobs of each insert transaction of ``wm``'s store."""
    sizes: list[int] = []
    store = wm.store
    assert store is not None
    insert = store.insert_jobs

    def counting(jobs: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        jobs = list(jobs)
        sizes.append(len(jobs))
        return insert(jobs, *args, **kwargs)

    store.insert_jobs = counting  # type: ignore[method-assign]
    return sizes


def test_one_submission_is_committed_before_it_returns(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        sizes = _count_transactions(wm)
        for _ in range(3):
            job = await wm.submit({"command": ["true"], "hold": True})
            assert _stored(wm.store_path, job.id)
        assert sizes == [1, 1, 1]

    run(with_manager(tmp_path, body))


def test_concurrent_submissions_share_one_transaction(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        sizes = _count_transactions(wm)
        jobs = await asyncio.gather(*(wm.submit({"command": ["true"], "hold": True}) for _ in range(20)))
        assert all(_stored(wm.store_path, job.id) for job in jobs)
        assert sum(sizes) == 20 and len(sizes) < 20, f"expected shared transactions, got sizes {sizes}"

    run(with_manager(tmp_path, body))


def test_a_failed_commit_fails_every_submission_that_shared_it(tmp_path: Path) -> None:
    async def body(wm: WorkloadManager) -> None:
        store = wm.store
        assert store is not None
        insert = store.insert_jobs

        def broken(jobs: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            raise sqlite3.OperationalError("disk I/O error")

        store.insert_jobs = broken  # type: ignore[method-assign]
        results = await asyncio.gather(
            *(wm.submit({"command": ["true"], "hold": True}) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, sqlite3.OperationalError) for r in results)
        assert not wm.jobs, "nothing that was not committed is kept"
        store.insert_jobs = insert  # type: ignore[method-assign]
        job = await wm.submit({"command": ["true"], "hold": True})
        assert _stored(wm.store_path, job.id)

    run(with_manager(tmp_path, body))
