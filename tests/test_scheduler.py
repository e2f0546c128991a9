"""The pure scheduling decision: priority order, limits, throttles and dependencies."""

from __future__ import annotations

from swm_jupyter.core.model import Job, JobSpec
from swm_jupyter.core.scheduler import (
    DependencyInfo,
    SiteCapacity,
    aggregate_array_state,
    failed_dependencies,
    plan,
    priority_key,
)
from swm_jupyter.core.states import JobState


def job(seq: int, priority: int = 0, site: str = "local", cpus: int = 1, **extra: object) -> Job:
    spec = JobSpec.from_dict({"command": ["true"], "priority": priority, "resources": {"cpus": cpus}, **extra})
    return Job(id=f"j{seq}", spec=spec, site=site, seq=seq)


def no_deps(_: str) -> DependencyInfo | None:
    return None


def test_priority_then_submission_order() -> None:
    jobs = sorted([job(1), job(2, priority=5), job(3), job(4, priority=5)], key=priority_key)
    decision = plan(jobs, [], {"local": SiteCapacity(max_running=3)}, no_deps, lambda _: None)
    assert [j.id for j, _ in decision.start] == ["j2", "j4", "j1"]
    assert "j3" in decision.waiting


def test_cpus_are_counted_and_small_jobs_fill_gaps() -> None:
    running = job(0, cpus=3)
    running.state = JobState.RUNNING
    jobs = [job(1, cpus=2), job(2, cpus=1)]
    decision = plan(jobs, [running], {"local": SiteCapacity(cpus=4)}, no_deps, lambda _: None)
    assert [j.id for j, _ in decision.start] == ["j2"]
    assert decision.waiting["j1"] == "waiting for free cpus"


def test_sites_do_not_block_each_other() -> None:
    jobs = [job(1, site="a"), job(2, site="a"), job(3, site="b")]
    decision = plan(
        jobs, [], {"a": SiteCapacity(max_running=1), "b": SiteCapacity(max_running=1)}, no_deps, lambda _: None
    )
    assert [j.id for j, _ in decision.start] == ["j1", "j3"]


def test_array_throttle() -> None:
    tasks = []
    for i in range(5):
        task = job(10 + i)
        task.array_parent, task.array_index = "p", i
        tasks.append(task)
    tasks[0].state = JobState.RUNNING
    decision = plan(tasks[1:], tasks[:1], {"local": SiteCapacity()}, no_deps, lambda _: 2)
    assert [j.array_index for j, _ in decision.start] == [1]


def test_dependencies() -> None:
    infos = {
        "ok": DependencyInfo(JobState.FINISHED, 0, "local", "1"),
        "bad": DependencyInfo(JobState.FINISHED, 3, "local", "2"),
        "err": DependencyInfo(JobState.ERROR, None, "local", None),
        "run": DependencyInfo(JobState.RUNNING, None, "hpc", "77"),
    }
    jobs = [
        job(1, depends_on={"afterok": ["ok"]}),
        job(2, depends_on={"afterok": ["bad"]}),
        job(3, depends_on={"afterany": ["bad", "err"]}),
        job(4, depends_on={"afterok": ["run"]}),
        job(5, depends_on={"afterok": ["gone"]}),
        job(6, site="hpc", depends_on={"afterok": ["run"]}),
        job(7, depends_on={"afterok": ["err"]}),
    ]
    decision = plan(
        jobs, [], {"local": SiteCapacity(), "hpc": SiteCapacity(native_dependencies=True)}, infos.get, lambda _: None
    )
    assert [j.id for j, _ in failed_dependencies(jobs, infos.get)] == ["j2", "j5", "j7"]
    started = {j.id: native for j, native in decision.start}
    assert set(started) == {"j1", "j3", "j6"}
    assert started["j6"] == [("afterok", "77")]
    failed = dict((j.id, reason) for j, reason in decision.fail)
    assert "exit code 3" in failed["j2"] and "dependency never satisfied" in failed["j2"]
    assert "does not exist" in failed["j5"]
    assert "ended error" in failed["j7"]
    assert decision.waiting["j4"] == "waiting for dependencies"


def test_array_parent_state() -> None:
    Q, R, F, E, C, H = (
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.FINISHED,
        JobState.ERROR,
        JobState.CANCELED,
        JobState.HELD,
    )
    assert aggregate_array_state({Q: 3})[0] is Q
    assert aggregate_array_state({Q: 2, R: 1})[0] is R
    assert aggregate_array_state({Q: 2, F: 1})[0] is R
    assert aggregate_array_state({F: 3})[0] is F
    assert aggregate_array_state({F: 2, E: 1})[0] is E
    assert aggregate_array_state({F: 2, C: 1})[0] is C
    assert aggregate_array_state({H: 2})[0] is H
    assert aggregate_array_state({F: 2, C: 1})[1] == "1 canceled, 2 finished"


def test_a_full_site_ends_the_pass_early() -> None:
    """The pass reads the queue only until every site is full (it must not grow with the queue)."""
    seen: list[str] = []

    def queue() -> object:
        for i in range(10_000):
            item = job(i)
            seen.append(item.id)
            yield item

    decision = plan(queue(), [], {"local": SiteCapacity(max_running=2)}, no_deps, lambda _: None)  # type: ignore[arg-type]
    assert [j.id for j, _ in decision.start] == ["j0", "j1"]
    assert len(seen) <= 4
