"""The scheduling decision, as a pure function: which queued jobs start now, which fail.

No I/O and no clock: the manager gathers the inputs, calls :func:`plan`, and carries out the plan.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .model import Job
from .states import ACTIVE_STATES, JobState


@dataclass(frozen=True)
class SiteCapacity:
    """What one site allows: ``max_running`` jobs (0: no limit), ``cpus`` in total (None: no count)."""

    max_running: int = 0
    cpus: int | None = None
    native_dependencies: bool = False
    native_arrays: bool = False
    #: The most jobs of one user active (W, T, R) on this site at once; 0 means no limit.
    max_running_per_user: int = 0


@dataclass(frozen=True)
class UserPolicy:
    """How jobs of different users share the sites.

    ``fair_share``: between users, the one with the least ``usage`` (decayed cpu-seconds, running
    jobs included) goes first, then the one with the fewest cpus active; False: priority, then
    submission order, whoever the owner. ``max_running_per_user``: the most jobs of one user active
    on all sites together (0: no limit).
    """

    fair_share: bool = False
    usage: Mapping[str, float] = field(default_factory=dict)
    max_running_per_user: int = 0


@dataclass
class DependencyInfo:
    """What the scheduler needs to know of a job that another depends on."""

    state: JobState
    exit_code: int | None
    site: str
    native_id: str | None


@dataclass
class Plan:
    """The outcome of one scheduling pass."""

    start: list[tuple[Job, list[tuple[str, str]]]] = field(default_factory=list)
    fail: list[tuple[Job, str]] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)


def priority_key(job: Job) -> tuple[int, int, int, str]:
    """The order queued jobs are considered in: higher priority first, then submission order."""
    return (-job.spec.priority, job.seq, job.array_index or 0, job.id)


def plan(
    queued: Iterable[Job] | Mapping[str, Iterable[Job]],
    active: Iterable[Job],
    capacity: dict[str, SiteCapacity],
    lookup: Callable[[str], DependencyInfo | None],
    array_throttle: Callable[[str], int | None],
    users: UserPolicy | None = None,
) -> Plan:
    """Decide which of ``queued`` (state Q) start now.

    ``queued`` is one queue in :func:`priority_key` order, or one such queue per owner, merged as
    ``users`` says (:class:`UserPolicy`: fair share or priority order between users).

    - a job whose ``afterok`` dependency ended other than finished with exit 0, or whose dependency
      does not exist, fails with that reason; one waiting for a dependency stays queued;
    - for a site with :attr:`SiteCapacity.native_dependencies`, a job whose unfinished dependencies
      all run on that site is handed over with their native ids;
    - per-site ``max_running`` and ``cpus``, each array's throttle, and the per-user limits (of all
      sites and of each site) are never exceeded; a job that does not fit does not block smaller or
      later jobs, nor jobs of other sites or other users;
    - the pass stops as soon as every site is full, so its cost follows what can start, not the
      length of the queue (use :func:`failed_dependencies` for the jobs it did not reach).
    """
    users = users or UserPolicy()
    running_per_site: dict[str, int] = {}
    cpus_per_site: dict[str, int] = {}
    running_per_array: dict[str, int] = {}
    running_per_user: dict[str, int] = {}
    running_per_user_site: dict[tuple[str, str], int] = {}
    cpus_per_user: dict[str, int] = {}
    for job in active:
        if job.state in ACTIVE_STATES:
            running_per_site[job.site] = running_per_site.get(job.site, 0) + 1
            cpus_per_site[job.site] = cpus_per_site.get(job.site, 0) + job.spec.resources.cpus
            if job.array_parent:
                running_per_array[job.array_parent] = running_per_array.get(job.array_parent, 0) + 1
            _count_user(job, running_per_user, running_per_user_site, cpus_per_user)
    result = Plan()
    full: set[str] = set()
    throttled: set[str] = set()
    at_limit: set[str] = set()  # users who run their limit on all sites together
    if isinstance(queued, Mapping):
        queued = _merge(queued, users, cpus_per_user, at_limit)
    for job in queued:
        if capacity and len(full) >= len(capacity):
            break
        if job.site in full or (job.array_parent and job.array_parent in throttled):
            continue
        site = capacity.get(job.site, SiteCapacity())
        if job.state is not JobState.QUEUED or (job.is_array_parent and not site.native_arrays):
            continue
        ready, native, reason = _dependencies(job, site, lookup)
        if reason:
            result.fail.append((job, reason))
            continue
        if not ready:
            result.waiting[job.id] = "waiting for dependencies"
            continue
        why = _user_limit(job, site, users, running_per_user, running_per_user_site)
        if why:
            result.waiting[job.id] = why
            if users.max_running_per_user and running_per_user.get(job.owner, 0) >= users.max_running_per_user:
                at_limit.add(job.owner)
            continue
        if site.max_running and running_per_site.get(job.site, 0) >= site.max_running:
            result.waiting[job.id] = f"waiting: {job.site} runs its limit of {site.max_running} jobs"
            full.add(job.site)
            continue
        need = job.spec.resources.cpus
        used = cpus_per_site.get(job.site, 0)
        if site.cpus is not None and used + need > site.cpus:
            result.waiting[job.id] = "waiting for free cpus"
            if used >= site.cpus:
                full.add(job.site)
            continue
        if job.array_parent and not site.native_arrays:
            throttle = array_throttle(job.array_parent)
            if throttle is not None and running_per_array.get(job.array_parent, 0) >= throttle:
                result.waiting[job.id] = f"waiting: the array runs at most {throttle} tasks at once"
                throttled.add(job.array_parent)
                continue
            running_per_array[job.array_parent] = running_per_array.get(job.array_parent, 0) + 1
        running_per_site[job.site] = running_per_site.get(job.site, 0) + 1
        cpus_per_site[job.site] = cpus_per_site.get(job.site, 0) + need
        _count_user(job, running_per_user, running_per_user_site, cpus_per_user)
        result.start.append((job, native))
    return result


def _count_user(
    job: Job, running: dict[str, int], running_on_site: dict[tuple[str, str], int], cpus: dict[str, int]
) -> None:
    """Count ``job`` as active for its owner (all sites, its site, and cpus)."""
    running[job.owner] = running.get(job.owner, 0) + 1
    running_on_site[job.owner, job.site] = running_on_site.get((job.owner, job.site), 0) + 1
    cpus[job.owner] = cpus.get(job.owner, 0) + job.spec.resources.cpus


def _user_limit(
    job: Job,
    site: SiteCapacity,
    users: UserPolicy,
    running: dict[str, int],
    running_on_site: dict[tuple[str, str], int],
) -> str:
    """Why ``job`` must wait for its owner's other jobs (a per-user limit), or "" if it need not."""
    who = job.owner or "this user"
    count = running.get(job.owner, 0)
    if users.max_running_per_user and count >= users.max_running_per_user:
        return f"waiting: {who} already runs {count} jobs (max_running_per_user)"
    count = running_on_site.get((job.owner, job.site), 0)
    if site.max_running_per_user and count >= site.max_running_per_user:
        return f"waiting: {who} already runs {count} jobs on {job.site} (max_running_per_user of the site)"
    return ""


def _merge(
    queues: Mapping[str, Iterable[Job]], users: UserPolicy, cpus: dict[str, int], at_limit: set[str]
) -> Iterator[Job]:
    """The users' queues as one: by fair share between users (least usage, then fewest cpus active),
    or by :func:`priority_key` whoever the owner.

    ``cpus`` and ``at_limit`` are read each time a user's next job is due, so the jobs the pass
    starts count at once and a user who reached their limit is left out for the rest of the pass.
    """

    def order(owner: str, head: Job) -> tuple[object, ...]:
        if users.fair_share:
            return (users.usage.get(owner, 0.0), cpus.get(owner, 0), priority_key(head))
        return priority_key(head)

    heap: list[tuple[tuple[object, ...], str, Job, Iterator[Job]]] = []
    for owner, jobs in queues.items():
        rest = iter(jobs)
        head = next(rest, None)
        if head is not None:
            heap.append((order(owner, head), owner, head, rest))
    heapq.heapify(heap)
    while heap:
        _, owner, head, rest = heapq.heappop(heap)
        yield head
        if owner in at_limit:
            continue
        following = next(rest, None)
        if following is not None:
            heapq.heappush(heap, (order(owner, following), owner, following, rest))


def failed_dependencies(jobs: Iterable[Job], lookup: Callable[[str], DependencyInfo | None]) -> list[tuple[Job, str]]:
    """The queued jobs among ``jobs`` that can never start because a dependency failed, with why."""
    out = []
    for job in jobs:
        if job.state is JobState.QUEUED and job.spec.depends_on:
            _, _, reason = _dependencies(job, SiteCapacity(), lookup)
            if reason:
                out.append((job, reason))
    return out


def _dependencies(
    job: Job, site: SiteCapacity, lookup: Callable[[str], DependencyInfo | None]
) -> tuple[bool, list[tuple[str, str]], str]:
    """Return (ready, native pairs for the gate, failure reason)."""
    ready = True
    native: list[tuple[str, str]] = []
    for dep in job.spec.depends_on:
        info = lookup(dep.job_id)
        if info is None:
            return False, [], f"dependency {dep.job_id} does not exist"
        if info.state.final:
            if dep.kind == "afterok" and not (info.state is JobState.FINISHED and info.exit_code == 0):
                how = f"ended {info.state.value}"
                if info.exit_code is not None:
                    how += f" with exit code {info.exit_code}"
                return False, [], f"dependency never satisfied: {dep.job_id} {how}"
            continue
        if site.native_dependencies and info.site == job.site and info.native_id and info.state in ACTIVE_STATES:
            native.append((dep.kind, info.native_id))
            continue
        ready = False
    return ready, native, ""


def aggregate_array_state(counts: dict[JobState, int]) -> tuple[JobState, str]:
    """The state an array's parent shows, from how many of its tasks are in each state."""
    present = {s: n for s, n in counts.items() if n > 0}
    if not present:
        return JobState.QUEUED, ""
    summary = ", ".join(f"{n} {s.value}" for s, n in sorted(present.items(), key=lambda kv: kv[0].value))
    if all(s.final for s in present):
        if JobState.ERROR in present:
            return JobState.ERROR, summary
        if JobState.CANCELED in present:
            return JobState.CANCELED, summary
        return JobState.FINISHED, summary
    if any(s in ACTIVE_STATES or s.final for s in present):
        return JobState.RUNNING, summary
    if all(s is JobState.HELD for s in present):
        return JobState.HELD, summary
    return JobState.QUEUED, summary
