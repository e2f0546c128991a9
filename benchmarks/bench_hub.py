"""Sky Port on a JupyterHub (issue 15): the hub's swm service against one embedded server.

Run as root from a checkout with the ``test`` extra installed (the hub starts as root, as the
example does): ``python benchmarks/bench_hub.py [--requests 2000] [--events 200] [--jobs 100000]``.
It starts real hubs (the example config through ``tests/hub_fixtures.Hub``: configurable-http-proxy,
the swm service, the idle culler) and a real embedded ``jupyter server``, and prints, in one run:

- submissions/s of 20 hub users submitting concurrently (one client each, their own hub tokens)
  to the service, against 20 clients of one embedded server (target: ratio >= 0.8);
- event latency, from a stored change (the event's ``time``) to its arrival, on 100 websockets
  of the service (20 users x 5), each streaming only its user's jobs (target: p95 < 50 ms);
- ``GET /jobs`` (first page, with total and counts) of one user's own jobs with 100,000 jobs of
  100 users in the service's store, filled beforehand through the headless manager (target:
  p95 < 50 ms).

Every job is held (``"hold": true``), so the API, authentication and the store are measured, not
the sites: the service is given the embedded server's default site (a local site without
``run_as_owner``), and the hub the null authenticator, so the benchmark users need no OS accounts.
Hub users and their tokens are made through the hub's API, as the hub tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import websockets

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_api import TOKEN, percentile, start_server  # noqa: E402

from tests.hub_fixtures import Hub  # noqa: E402

USERS = 20
SOCKETS_PER_USER = 5
STORE_USERS = 100
HELD = {"command": ["true"], "hold": True}
#: The service's sites: the embedded server's default (held jobs only; no OS accounts needed).
SERVICE_CONFIG = 'c.SwmApp.sites = {"local": {"gate": "local"}}\n'
#: The embedded server stores as the hub fixture's service does.
EMBEDDED_ARGS = ("--SwmApp.synchronous=NORMAL",)


def user_names(count: int) -> list[str]:
    """``bench-user-000`` ... (hub users, owners of the jobs)."""
    return [f"bench-user-{i:03d}" for i in range(count)]


class BenchHub(Hub):
    """The example hub, with users who need no OS account (the benchmark users only call the API)."""

    def write_config(self) -> Path:
        """The test config of :class:`Hub`, with the null authenticator (no logins; users made through
        the API need no system account, unlike with the example's PAM authenticator)."""
        config = super().write_config()
        with open(config, "a") as handle:
            handle.write('c.JupyterHub.authenticator_class = "null"\n')
        return config


def start_hub(root: Path) -> Hub:
    """A running example hub in ``root`` whose service has the embedded server's default site."""
    root.mkdir(parents=True, exist_ok=True)
    return BenchHub(root, SERVICE_CONFIG).start(timeout=300)


def stop_hub(hub: Hub, name: str) -> None:
    """Stop the hub; keep its log (hub, proxy and service) in the temp dir."""
    hub.stop()
    kept = Path(tempfile.gettempdir()) / f"swm-bench-hub-{name}.log"
    shutil.copyfile(hub.log_path, kept)
    print(f"hub log: {kept}", file=sys.stderr)


def hub_tokens(hub: Hub, names: list[str]) -> dict[str, str]:
    """Make the hub users ``names`` and a token of each (all their own scopes), through the hub's API."""
    status, answer = hub.admin("POST", "users", {"usernames": names})
    if status != 201:
        raise RuntimeError(f"the hub did not make the users: {status} {answer}")
    return {name: hub.user_token(name) for name in names}


def service_api(hub: Hub) -> str:
    """The service's API, straight to its port (where users' servers in client mode send requests)."""
    return f"http://127.0.0.1:{hub.swm_port}/services/swm/swm/api/v1"


async def submit_rate(api: str, tokens: list[str], total: int) -> float:
    """Submissions/s of ``total`` held jobs by one concurrent client per token in ``tokens``."""
    remaining = total

    async def client(token: str, count: int | None) -> None:
        nonlocal remaining
        async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as session:
            while (remaining > 0) if count is None else count > 0:
                if count is None:
                    remaining -= 1
                else:
                    count -= 1
                async with session.post(f"{api}/jobs", json=HELD) as response:
                    body = await response.read()
                    if response.status != 201:
                        raise RuntimeError(f"POST /jobs answered {response.status}: {body[:300]!r}")

    await asyncio.gather(*(client(token, 3) for token in tokens))  # warm-up: connections, the hub's token cache
    start = time.perf_counter()
    await asyncio.gather(*(client(token, None) for token in tokens))
    return total / (time.perf_counter() - start)


async def event_latency(hub: Hub, tokens: dict[str, str], count: int) -> tuple[float, float, int, int]:
    """p50 and p95 ms from a stored change to its arrival on 5 websockets of each user; the number of
    arrivals, and the number of events of another user's job seen on a socket (must be 0)."""
    api = service_api(hub)
    ws_url = "ws" + api[4:] + "/events"
    latencies: list[float] = []
    foreign = 0
    expected: dict[str, set[str]] = {user: set() for user in tokens}
    seen: dict[tuple[str, int], set[str]] = {}
    produced = False
    complete = asyncio.Event()

    def check() -> None:
        if produced and all(expected[user] <= ids for (user, _), ids in seen.items()):
            complete.set()

    async def reader(user: str, index: int, socket: Any) -> None:
        nonlocal foreign
        got = seen.setdefault((user, index), set())
        async for text in socket:
            event = json.loads(text)
            if event.get("type") != "job":
                continue
            arrived = time.time()
            if event["job"]["owner"] != user:
                foreign += 1
            if event["job"]["id"] not in got:  # the first event of a job: its submission, stored then sent
                got.add(event["job"]["id"])
                latencies.append((arrived - event["time"]) * 1000)
                check()

    sockets = []
    readers = []
    for user, token in tokens.items():
        for index in range(SOCKETS_PER_USER):
            socket = await websockets.connect(ws_url, additional_headers={"Authorization": f"token {token}"})
            hello = json.loads(await socket.recv())
            assert hello["type"] == "hello", hello
            sockets.append(socket)
            readers.append(asyncio.create_task(reader(user, index, socket)))
    users = list(tokens)
    sessions = {user: aiohttp.ClientSession(headers={"Authorization": f"token {tokens[user]}"}) for user in users}
    try:
        for i in range(count):
            user = users[i % len(users)]
            async with sessions[user].post(f"{api}/jobs", json=HELD) as response:
                job = await response.json()
                expected[user].add(job["id"])
            await asyncio.sleep(0.02)
        produced = True
        check()
        try:
            await asyncio.wait_for(complete.wait(), 30)
        except TimeoutError:
            pass  # counted below
    finally:
        for session in sessions.values():
            await session.close()
        for socket in sockets:
            await socket.close()
        for task in readers:
            task.cancel()
    missing = sum(len(expected[user] - ids) for (user, _), ids in seen.items())
    if missing:
        raise RuntimeError(f"{missing} events never arrived on their owners' sockets")
    return statistics.median(latencies), percentile(latencies, 95), len(latencies), foreign


async def fill_store(data_dir: Path, owners: list[str], per_owner: int) -> None:
    """``per_owner`` held jobs of each owner, stored through the headless manager (1,000 a transaction)."""
    from swm_jupyter.core.manager import WorkloadManager

    manager = WorkloadManager(data_dir=str(data_dir), synchronous="NORMAL", sites={"local": {"gate": "local"}})
    await manager.start()
    try:
        for owner in owners:
            for start in range(0, per_owner, 1000):
                batch = [{**HELD, "name": f"{owner}-{i}"} for i in range(start, min(per_owner, start + 1000))]
                await manager.submit_many(batch, owner=owner)
    finally:
        await manager.stop()


async def own_jobs_latency(api: str, tokens: dict[str, str], samples: int, expected: int) -> tuple[float, float]:
    """p50 and p95 ms of ``GET /jobs`` (first page) by each user in ``tokens``, ``samples`` each."""
    times: list[float] = []
    for token in tokens.values():
        async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as session:
            for sample in range(samples + 2):
                start = time.perf_counter()
                async with session.get(f"{api}/jobs") as response:
                    page = await response.json()
                elapsed = (time.perf_counter() - start) * 1000
                if page["total"] != expected or {job["owner"] for job in page["jobs"]} != {page["jobs"][0]["owner"]}:
                    raise RuntimeError(f"GET /jobs gave {page['total']} jobs, not the user's {expected}")
                if sample >= 2:  # the first two: connection, the hub's token check
                    times.append(elapsed)
    return statistics.median(times), percentile(times, 95)


def main() -> None:
    """Run the three measurements and print them with their ratios to the targets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="submissions per measured round")
    parser.add_argument("--events", type=int, default=200, help="events (held submissions) for the latency")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the store for GET /jobs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_hub.py: run as root (the hub starts as root, as the example does)")
    base = Path(tempfile.mkdtemp(prefix="swm-bench-hub-"))
    base.chmod(0o755)
    try:
        # 1 and 2: an empty store; 20 users against one embedded server, two rounds each, alternating.
        hub = start_hub(base / "hub")
        server, url = start_server(base, base / "embedded", EMBEDDED_ARGS)
        try:
            tokens = hub_tokens(hub, user_names(USERS))
            embedded: list[float] = []
            service: list[float] = []
            proxied: list[float] = []
            for _ in range(2):
                embedded.append(asyncio.run(submit_rate(f"{url}/swm/api/v1", [TOKEN] * USERS, args.requests)))
                service.append(asyncio.run(submit_rate(service_api(hub), list(tokens.values()), args.requests)))
            proxied.append(
                asyncio.run(
                    submit_rate(f"{hub.url}/services/swm/swm/api/v1", list(tokens.values()), args.requests)
                )
            )
            p50_event, p95_event, arrivals, foreign = asyncio.run(event_latency(hub, tokens, args.events))
        finally:
            server.terminate()
            server.wait()
            stop_hub(hub, "submissions")

        # 3: 100,000 jobs of 100 users in the service's store before the hub starts.
        owners = user_names(STORE_USERS)
        per_owner = args.jobs // STORE_USERS
        start = time.perf_counter()
        store_dir = base / "big" / "state" / "swm"
        store_dir.mkdir(parents=True)
        asyncio.run(fill_store(store_dir, owners, per_owner))
        fill_seconds = time.perf_counter() - start
        start = time.perf_counter()
        hub = start_hub(base / "big")
        start_seconds = time.perf_counter() - start
        try:
            listers = hub_tokens(hub, owners[:: STORE_USERS // 5])  # 5 users, each with per_owner jobs
            p50_list, p95_list = asyncio.run(own_jobs_latency(service_api(hub), listers, 20, per_owner))
            p50_proxy, p95_proxy = asyncio.run(
                own_jobs_latency(f"{hub.url}/services/swm/swm/api/v1", listers, 20, per_owner)
            )
        finally:
            stop_hub(hub, "listing")
    finally:
        shutil.rmtree(base, ignore_errors=True)

    mean_embedded = statistics.mean(embedded)
    ratio = statistics.mean(service) / mean_embedded
    print(f"CPUs: {os.cpu_count()}  users: {USERS} (one client each)  submissions per round: {args.requests}")
    print(f"embedded server, 20 clients:     {' / '.join(f'{r:5.0f}' for r in embedded)} submissions/s")
    print(f"hub service, 20 users:           {' / '.join(f'{r:5.0f}' for r in service)} submissions/s")
    print(f"  ratio of the means: {ratio:.2f} (target >= 0.8)")
    print(f"hub service through the proxy:   {proxied[0]:5.0f} submissions/s  ({proxied[0] / mean_embedded:.2f})")
    print(
        f"event latency, {USERS * SOCKETS_PER_USER} sockets: p50 {p50_event:5.1f} ms  p95 {p95_event:5.1f} ms"
        f"  ({arrivals} arrivals, {foreign} of another user's jobs)  ratio to 50 ms {p95_event / 50:.2f} (target < 1)"
    )
    print(f"store: {per_owner * STORE_USERS} jobs of {STORE_USERS} users filled in {fill_seconds:.1f} s;"
          f" hub and service up in {start_seconds:.1f} s")
    print(
        f"GET /jobs, own {per_owner} jobs:     p50 {p50_list:5.1f} ms  p95 {p95_list:5.1f} ms"
        f"  ratio to 50 ms {p95_list / 50:.2f} (target < 1)"
    )
    print(f"  through the proxy:             p50 {p50_proxy:5.1f} ms  p95 {p95_proxy:5.1f} ms")


if __name__ == "__main__":
    main()
