"""Scheduling between users: FIFO or fair share, and per-user limits of running and queued jobs.

Real local jobs through a headless manager (times are the ones the local supervisor recorded), and
the REST answer of a refused submission from a real server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import LimitExceeded
from swm_jupyter.core.manager import WorkloadManager
from swm_jupyter.core.model import Job, JobSpec
from swm_jupyter.core.scheduler import SiteCapacity, UserPolicy, plan
from swm_jupyter.core.states import JobState
from swm_jupyter.core.store import JobQuery
from tests.conftest import body

from .core_helpers import run, running_manager

#: A local site of 2 cpus that hands a job over only when its cpus are free (the supervisor's own
#: queue would otherwise order the jobs handed to it by priority and submission).
TWO_CPUS = {"local": {"gate": "local", "cpus": 2, "queue_ahead": 0}}


def _sleep(seconds: float, name: str) -> dict[str, Any]:
    return {"command": ["sleep", str(seconds)], "name": name}


async def _flood(wm: WorkloadManager, per_user: int, seconds: float) -> list[Job]:
    """alice then bob each submit ``per_user`` jobs (in the same loop turn); wait until all end."""
    alice, bob = await asyncio.gather(
        wm.submit_many([_sleep(seconds, f"a{i}") for i in range(per_user)], owner="alice"),
        wm.submit_many([_sleep(seconds, f"b{i}") for i in range(per_user)], owner="bob"),
    )
    return [await wm.wait(job.id, timeout=60) for job in [*alice, *bob]]


def _start_order(jobs: list[Job]) -> list[str]:
    for job in jobs:
        assert job.state is JobState.FINISHED and job.start_time and job.end_time, job.to_dict()
    return [job.owner for job in sorted(jobs, key=lambda j: j.start_time or 0)]


def _most_at_once(jobs: list[Job]) -> int:
    edges = sorted([(j.start_time or 0, 1) for j in jobs] + [(j.end_time or 0, -1) for j in jobs])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_fair_share_interleaves_two_users_flooding_the_queue(tmp_path: Path) -> None:
    async def main() -> list[str]:
        async with running_manager(tmp_path, sites=TWO_CPUS, scheduling_policy="fairshare") as wm:
            return _start_order(await _flood(wm, 5, 0.4))

    order = run(main())
    # Every prefix of the start order is shared: neither user gets more than one job ahead
    # (plus one for a slot that frees while the other's job is being handed over).
    for k in range(1, len(order) + 1):
        prefix = order[:k]
        assert abs(prefix.count("alice") - prefix.count("bob")) <= 2, order
    # (start times taken on a loaded machine may swap two starts that came in the same turn)
    assert order[:2].count("bob") >= 1 and order[:6].count("bob") >= 2, order


def test_fair_share_remembers_past_usage_from_the_store(tmp_path: Path) -> None:
    """Usage is read from the store on start: a user who just ran a lot waits for one who did not."""
    one_cpu = {"local": {"gate": "local", "cpus": 1, "queue_ahead": 0}}

    async def main() -> list[str]:
        async with running_manager(tmp_path, sites=one_cpu) as wm:
            ran = await wm.submit(_sleep(0.5, "earlier"), owner="alice")
            await wm.wait(ran.id, timeout=30)
        async with running_manager(tmp_path, sites=one_cpu, scheduling_policy="fairshare") as wm:
            blocker = await wm.submit(_sleep(0.3, "blocker"), owner="carol")
            await _until(lambda: wm.get(blocker.id).state is JobState.RUNNING)
            first = await wm.submit(_sleep(0.1, "a"), owner="alice")
            second = await wm.submit(_sleep(0.1, "b"), owner="bob")
            jobs = [await wm.wait(job.id, timeout=30) for job in (first, second)]
        return _start_order(jobs)

    assert run(main()) == ["bob", "alice"]


@pytest.mark.parametrize(
    ("traits", "site_options", "limit"),
    [({"max_running_per_user": 2}, {}, 2), ({}, {"max_running_per_user": 1}, 1)],
    ids=["global", "per-site"],
)
def test_max_running_per_user_holds_and_other_users_are_not_blocked(
    tmp_path: Path, traits: dict[str, Any], site_options: dict[str, Any], limit: int
) -> None:
    sites = {"local": {"gate": "local", "cpus": 4, "queue_ahead": 0, **site_options}}

    async def main() -> tuple[list[Job], list[Job], str]:
        async with running_manager(tmp_path, sites=sites, **traits) as wm:
            alice = await wm.submit_many([_sleep(0.6, f"a{i}") for i in range(5)], owner="alice")
            await _until(lambda: sum(wm.get(j.id).state is JobState.RUNNING for j in alice) == limit)
            await asyncio.sleep(0.3)  # the scheduler had every chance to start more
            details = wm.get(alice[limit].id).state_details
            assert wm.get(alice[limit].id).state is JobState.QUEUED
            bob = await wm.submit_many([_sleep(0.3, f"b{i}") for i in range(2)], owner="bob")
            alice = [await wm.wait(j.id, timeout=60) for j in alice]
            bob = [await wm.wait(j.id, timeout=60) for j in bob]
            return alice, bob, details

    alice, bob, details = run(main())
    _start_order(alice + bob)
    assert _most_at_once(alice) == limit
    where = " on local" if site_options else ""
    assert details == f"waiting: alice already runs {limit} jobs{where} (max_running_per_user" + (
        " of the site)" if site_options else ")"
    )
    # bob's jobs ran beside alice's, before her last one started.
    last_of_alice = max(j.start_time or 0 for j in alice)
    assert all((j.start_time or 0) < last_of_alice for j in bob), (alice, bob)


def test_max_queued_per_user_refuses_the_next_with_the_limit_and_count(tmp_path: Path) -> None:
    sites = {"local": {"gate": "local", "cpus": 2}, "other": {"gate": "local", "cpus": 2, "max_queued_per_user": 1}}

    async def main() -> None:
        async with running_manager(tmp_path, sites=sites, max_queued_per_user=3) as wm:
            held = [{"command": ["true"], "hold": True}] * 3
            await wm.submit_many(held, owner="alice")
            with pytest.raises(LimitExceeded) as refused:
                await wm.submit({"command": ["true"], "hold": True}, owner="alice")
            assert refused.value.status == 429
            assert "alice has 3 jobs queued or held and max_queued_per_user is 3" in refused.value.message
            with pytest.raises(LimitExceeded):  # an array's tasks count one each
                await wm.submit({"command": ["true"], "array": "0-3", "hold": True}, owner="bob")
            await wm.submit({"command": ["true"], "hold": True, "site": "other"}, owner="bob")
            with pytest.raises(LimitExceeded) as refused:
                await wm.submit({"command": ["true"], "hold": True, "site": "other"}, owner="bob")
            assert "bob has 1 jobs queued or held on other and that site's max_queued_per_user is 1" in (
                refused.value.message
            )
            page = wm.list_jobs(JobQuery())
            assert sorted(j.owner for j in page.jobs) == ["alice", "alice", "alice", "bob"]
            # A job that leaves the queue makes room again.
            first = page.jobs[-1]
            await wm.cancel(first.id)
            await wm.submit({"command": ["true"], "hold": True}, owner="alice")

    run(main())


def test_max_queued_per_user_counts_concurrent_submissions_not_yet_committed(tmp_path: Path) -> None:
    """Submissions of one loop turn share a commit (API clients at once): those still being committed
    count as queued, so the fourth of four concurrent submissions is the one refused."""

    async def main() -> None:
        async with running_manager(tmp_path, max_queued_per_user=3) as wm:
            answers = await asyncio.gather(
                *(wm.submit({"command": ["true"], "hold": True}, owner="alice") for _ in range(4)),
                wm.submit({"command": ["true"], "hold": True}, owner="bob"),
                return_exceptions=True,
            )
            refused = [a for a in answers if isinstance(a, BaseException)]
            assert len(refused) == 1 and isinstance(refused[0], LimitExceeded), answers
            assert "alice has 3 jobs queued or held" in refused[0].message
            assert sorted(j.owner for j in wm.list_jobs(JobQuery()).jobs) == ["alice"] * 3 + ["bob"]

    run(main())


def test_bad_per_user_limits_of_a_site_make_it_unavailable(tmp_path: Path) -> None:
    sites = {"local": {"gate": "local"}, "bad": {"gate": "local", "max_running_per_user": -1}}

    async def main() -> None:
        async with running_manager(tmp_path, sites=sites) as wm:
            assert "max_running_per_user of site 'bad' must be a whole number >= 0" in wm.gate_errors["bad"]

    run(main())


def test_priority_wins_inside_a_users_jobs_and_fair_share_between_users() -> None:
    def job(seq: int, owner: str, priority: int = 0) -> Job:
        spec = JobSpec.from_dict({"command": ["true"], "priority": priority})
        return Job(id=f"{owner}{seq}", spec=spec, site="local", seq=seq, owner=owner)

    queues = {
        "alice": [job(2, "alice", priority=5), job(1, "alice"), job(3, "alice")],
        "bob": [job(4, "bob"), job(5, "bob")],
    }
    capacity = {"local": SiteCapacity(max_running=4)}

    def started(usage: dict[str, float]) -> list[str]:
        users = UserPolicy(fair_share=True, usage=usage)
        return [j.id for j, _ in plan(queues, [], capacity, lambda _: None, lambda _: None, users).start]

    # Equal usage: the user with fewer cpus active goes next, so they take turns.
    assert started({}) == ["alice2", "bob4", "alice1", "bob5"]
    # bob used less: his jobs go first; alice's in her own priority order.
    assert started({"alice": 100.0, "bob": 10.0}) == ["bob4", "bob5", "alice2", "alice1"]


# -- through the REST API ----------------------------------------------------------------------------


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    jp_server_config["SwmApp"]["max_queued_per_user"] = 1
    return jp_server_config


async def test_the_api_answers_429_with_the_limit(api: Any) -> None:
    # One request (so one owner, whatever the server names an anonymous token user) over the limit.
    refused = await api("jobs", json_body=[{"command": ["true"], "hold": True}] * 2)
    assert refused.code == 429, refused.body
    assert "has 0 jobs queued or held and max_queued_per_user is 1: 2 more cannot be accepted" in (
        body(refused)["message"]
    )
    assert body(await api("jobs"))["total"] == 0
    accepted = await api("jobs", json_body=[{"command": ["true"], "hold": True}])
    assert accepted.code == 201, accepted.body


async def _until(check: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)
