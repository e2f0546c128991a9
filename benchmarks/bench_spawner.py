"""Benchmark SwmSpawner against batchspawner's SlurmSpawner: start request -> server answering through the proxy.

Run as root after ``tests/services/start.sh`` and ``jupyter-config/jupyterhub/create-users.sh``, with
batchspawner installed (the ``bench`` extra):

    python benchmarks/bench_spawner.py [--runs 5] [--idle 60]

Each spawner runs on its own real JupyterHub (the example config, tests/hub_fixtures.py) on the one-node
test Slurm: SwmSpawner on the swm service's ``local`` and ``cluster`` sites (both ``run_as_owner``, the
Slurm gate's default polling), batchspawner's ``SlurmSpawner`` with its defaults (sudo to the user,
``srun``, a status query every ``startup_poll_interval`` while starting and every ``poll_interval``
after). For each run: POST the start request through the hub's API, then ask the server's
``/api/status`` through the proxy every 0.1 s until it answers; then stop it. The Slurm status calls
(``squeue``, ``sacct``, ``scontrol show``) of each are counted by wrappers put before the real commands
(on the service's PATH; in batchspawner's query command): the most in any 60 s window during the starts
(and stops), and during ``--idle`` seconds with one server running. Prints one table (medians, ranges,
ratios); benchmarks/README.md keeps a run. ``swm-local-plain`` is the same local start with the spawner's
``fast_start`` and ``follow_events`` off (as before them), measured in the same run as the baseline of
``swm-local``.

``--many 20 [--on-slurm 8] [--watch 180]`` instead starts 20 servers of alice at once (8 on the one-node
Slurm, which has 8 cpus, the rest local), waits until all are ready, counts the Slurm status calls
while they run for ``--watch`` seconds, checks they still answer through the proxy, and stops them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hub_fixtures import BIN, USERS, Hub, grant_traverse  # noqa: E402
from tests.services_fixtures import start_services  # noqa: E402

#: Slurm commands whose calls are counted; the status queries among them.
COUNTED = ("squeue", "sacct", "scontrol", "sbatch", "scancel")
STATUS = ("squeue", "sacct", "scontrol show")
USER = "alice"


def write_wrappers(folder: Path, log: Path) -> None:
    """A wrapper per Slurm command in ``folder`` that appends ``<epoch> <command> <args>`` to ``log`` and runs it."""
    folder.mkdir(parents=True, exist_ok=True)
    log.touch()
    os.chmod(log, 0o666)
    for name in COUNTED:
        real = shutil.which(name, path="/usr/bin:/usr/local/bin:/usr/sbin")
        if real is None:
            raise SystemExit(f"{name} not found: install slurm-wlm and run tests/services/start.sh")
        wrapper = folder / name
        wrapper.write_text(f'#!/bin/sh\necho "$(date +%s.%N) {name} $*" >> {log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)


def status_call_times(log: Path, since: float, until: float) -> list[float]:
    """Times (epoch seconds) of the Slurm status calls logged between ``since`` and ``until``."""
    times = []
    for line in log.read_text().splitlines():
        stamp, _, call = line.partition(" ")
        if since <= float(stamp) <= until and call.startswith(STATUS):
            times.append(float(stamp))
    return sorted(times)


def busiest_minute(times: list[float]) -> int:
    """The most calls in any 60 s window (the whole phase if it is shorter)."""
    return max((sum(1 for t in times if start <= t < start + 60) for start in times), default=0)


class SwmHub(Hub):
    """The example hub with SwmSpawner; the swm service has ``local`` and ``cluster`` (both run_as_owner)."""

    def __init__(self, root: Path, slurm_conf: str, wrappers: Path) -> None:
        super().__init__(root)
        self.slurm_conf, self.wrappers = slurm_conf, wrappers

    def write_config(self) -> Path:
        """The hub config: the example's, SwmSpawner, the two sites, the counting wrappers first on PATH."""
        config = super().write_config()
        service_config = self.root / "swm_service_config.py"
        sites = {
            # cpus: idle servers; the local gate's default (this machine's 2 cores) would run only 2 at once
            "local": {"gate": "local", "run_as_owner": True, "cpus": 64},
            "cluster": {"gate": "slurm", "run_as_owner": True},
        }
        service_config.write_text(f"c = get_config()  # noqa\nc.SwmApp.sites = {sites!r}\n")
        path = f"{self.wrappers}:{BIN}:{os.environ.get('PATH', '')}"
        config.write_text(
            config.read_text()
            + f"""
swm["command"] = [w for w in swm["command"] if not w.startswith("--config=")] + ["--config={service_config}"]
swm["environment"].update({{"SLURM_CONF": {self.slurm_conf!r}, "PATH": {path!r}}})
c.JupyterHub.spawner_class = "swm"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 120

def plain_start(spawner):
    # the "swm-local-plain" case: the spawner as it was before fast_start and follow_events (the baseline)
    if spawner.name.startswith("swmlocalplain"):
        spawner.fast_start = False
        spawner.follow_events = False
        spawner.start_poll_interval = 0.5

c.Spawner.pre_spawn_hook = plain_start
"""
        )
        return config


class BatchHub(Hub):
    """The example hub with batchspawner's SlurmSpawner (its defaults; the query through the counting wrapper)."""

    def __init__(self, root: Path, slurm_conf: str, wrappers: Path) -> None:
        super().__init__(root)
        self.slurm_conf, self.wrappers = slurm_conf, wrappers

    def write_config(self) -> Path:
        """The hub config: the example's with batchspawner.SlurmSpawner."""
        config = super().write_config()
        config.write_text(
            config.read_text()
            + f"""
import os
os.environ["SLURM_CONF"] = {self.slurm_conf!r}
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.Spawner.ip = "127.0.0.1"
c.Spawner.env_keep = ["PATH", "PYTHONPATH", "SLURM_CONF", "LANG", "LC_ALL"]
c.Spawner.cmd = [{str(BIN / "jupyterhub-singleuser")!r}]
c.BatchSpawnerBase.batchspawner_singleuser_cmd = {str(BIN / "batchspawner-singleuser")!r}
c.SlurmSpawner.batch_query_cmd = "{self.wrappers}/squeue -h -j {{job_id}} -o '%T %B'"
c.SlurmSpawner.batch_submit_cmd = "{self.wrappers}/sbatch --parsable"
c.SlurmSpawner.batch_cancel_cmd = "{self.wrappers}/scancel {{job_id}}"
c.SlurmSpawner.req_partition = "debug"
"""
        )
        return config


def answers(hub: Hub, name: str, token: str) -> bool:
    """True once alice's server ``name`` answers /api/status through the hub's proxy."""
    status, body = hub.call("GET", f"/user/{USER}/{name}/api/status", token=token)
    return status == 200 and isinstance(body, dict) and "started" in body


def one_start(hub: Hub, name: str, token: str, options: dict[str, Any] | None, timeout: float = 180) -> float:
    """Seconds from the start request to the server answering through the proxy."""
    t0 = time.monotonic()
    status, answer = hub.admin("POST", f"users/{USER}/servers/{name}", options)
    if status not in (201, 202):
        raise SystemExit(f"could not start {name}: {status} {answer}\n{hub.log_tail()}")
    while time.monotonic() - t0 < timeout:
        try:
            if answers(hub, name, token):
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} did not answer within {timeout} s:\n{hub.log_tail()}")


def stop(hub: Hub, name: str) -> None:
    """Stop alice's server ``name`` and wait until the hub no longer has it."""
    hub.admin("DELETE", f"users/{USER}/servers/{name}")
    hub.wait_for(lambda: name not in (hub.admin("GET", f"users/{USER}")[1].get("servers") or {}), 120, f"{name} gone")


def measure(hub: Hub, label: str, options: dict[str, Any] | None, runs: int, idle: float, log: Path) -> dict[str, Any]:
    """``runs`` starts (and stops), then ``idle`` s with one server running; times and Slurm status calls."""
    token = hub.user_token(USER)
    times: list[float] = []
    phase = time.time()
    for i in range(runs):
        name = f"{label}{i}"
        times.append(one_start(hub, name, token, options))
        stop(hub, name)
        time.sleep(1.0)
    starting = status_call_times(log, phase, time.time())
    running: list[float] = []
    if idle:
        name = f"{label}idle"
        one_start(hub, name, token, options)
        since = time.time()
        time.sleep(idle)
        running = status_call_times(log, since, time.time())
        stop(hub, name)
    return {
        "label": label,
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "calls_starting": busiest_minute(starting),
        "calls_running": busiest_minute(running),
    }


def many_servers(hub: Hub, count: int, on_slurm: int, watch: float, log: Path) -> dict[str, Any]:
    """Start ``count`` servers of alice at once (``on_slurm`` of them on the Slurm site, the rest local), watch
    them run for ``watch`` seconds, and count the Slurm status calls meanwhile; then stop them."""
    token = hub.user_token(USER)
    names = [f"many{i}" for i in range(count)]
    t0 = time.monotonic()
    for index, name in enumerate(names):
        options = {"site": "cluster", "cpus": 1} if index < on_slurm else {"site": "local"}
        status, answer = hub.admin("POST", f"users/{USER}/servers/{name}", options)
        if status not in (201, 202):
            raise SystemExit(f"could not start {name}: {status} {answer}\n{hub.log_tail()}")

    def ready() -> int:
        servers = hub.admin("GET", f"users/{USER}")[1].get("servers") or {}
        return sum(1 for name in names if (servers.get(name) or {}).get("ready"))

    hub.wait_for(lambda: ready() == count, 360, f"{count} servers to be ready")
    all_ready = time.monotonic() - t0
    since = time.time()
    time.sleep(watch)
    calls = status_call_times(log, since, time.time())
    still = ready()
    answering = sum(1 for name in names if answers(hub, name, token))
    for name in names:
        hub.admin("DELETE", f"users/{USER}/servers/{name}")
    hub.wait_for(
        lambda: not set(names) & set(hub.admin("GET", f"users/{USER}")[1].get("servers") or {}), 300, "servers gone"
    )
    return {
        "count": count,
        "on_slurm": on_slurm,
        "all_ready_s": all_ready,
        "still_ready": still,
        "answering": answering,
        "calls": len(calls),
        "per_minute": len(calls) * 60 / watch,
        "busiest_minute": busiest_minute(calls),
    }


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="starts per spawner and site (default 5)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds one running server is watched (default 60)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated labels to run (swm-local, swm-slurm, batchspawner-slurm); default all",
    )
    parser.add_argument(
        "--many", type=int, default=0, help="instead: start this many servers at once and count Slurm status calls"
    )
    parser.add_argument("--on-slurm", type=int, default=8, help="with --many: how many of them on Slurm (default 8)")
    parser.add_argument(
        "--watch", type=float, default=180.0, help="with --many: seconds they are watched (default 180)"
    )
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    if os.geteuid() != 0:
        raise SystemExit("run as root: the hub starts servers as the demo users")
    services = start_services()
    grant_traverse([Path(os.path.realpath(sys.executable)), BIN, REPO], USERS)
    base = Path(tempfile.mkdtemp(prefix="bench-spawner-"))
    os.chmod(base, 0o755)
    wrappers, log = base / "bin", base / "slurm-calls.log"
    write_wrappers(wrappers, log)
    if args.many:
        root = base / "SwmHub"
        root.mkdir()
        os.chmod(root, 0o755)
        hub = SwmHub(root, services["SLURM_CONF"], wrappers)
        hub.start()
        try:
            row = many_servers(hub, args.many, args.on_slurm, args.watch, log)
        finally:
            hub.stop()
        print(
            f"\n{row['count']} SwmSpawner servers ({row['on_slurm']} on the one-node Slurm, the rest local) ready "
            f"after {row['all_ready_s']:.1f} s; after {args.watch:.0f} s {row['still_ready']} still ready, "
            f"{row['answering']} answering through the proxy.\nSlurm status calls (squeue, sacct, scontrol show) "
            f"while they ran: {row['calls']} in {args.watch:.0f} s = {row['per_minute']:.1f} a minute "
            f"(busiest minute: {row['busiest_minute']}); batchspawner would make {row['on_slurm']} x 2 = "
            f"{row['on_slurm'] * 2} (one squeue per server every 30 s). Logs: {base}"
        )
        return
    rows = []
    for hub_class, all_cases in (
        (
            SwmHub,
            [
                ("swm-local-plain", {"site": "local"}),
                ("swm-local", {"site": "local"}),
                ("swm-slurm", {"site": "cluster"}),
            ],
        ),
        (BatchHub, [("batchspawner-slurm", None)]),
    ):
        cases = [case for case in all_cases if not only or case[0] in only]
        if not cases:
            continue
        root = base / hub_class.__name__
        root.mkdir()
        os.chmod(root, 0o755)
        hub = hub_class(root, services["SLURM_CONF"], wrappers)
        hub.start()
        try:
            for label, options in cases:
                rows.append(measure(hub, label.replace("-", ""), options, args.runs, args.idle, log))
                rows[-1]["label"] = label
        finally:
            hub.stop()
    reference = next((r["median"] for r in rows if r["label"] == "batchspawner-slurm"), float("nan"))
    plain = next((r["median"] for r in rows if r["label"] == "swm-local-plain"), None)
    fast = next((r["median"] for r in rows if r["label"] == "swm-local"), None)
    if plain and fast:
        print(f"\nlocal: {fast:.2f} s with fast_start and follow_events, {plain:.2f} s without: {fast / plain:.2f}x")
    print(
        f"\n{'spawner / site':<22}{'median s':>10}{'range s':>14}{'x batchsp.':>12}{'st/min start':>14}"
        f"{'st/min run':>12}"
    )
    for row in rows:
        print(
            f"{row['label']:<22}{row['median']:>10.2f}{row['min']:>7.2f}-{row['max']:<6.2f}"
            f"{row['median'] / reference:>12.2f}{row['calls_starting']:>14d}{row['calls_running']:>12d}"
        )
    print(
        f"\n{args.runs} starts each; st/min: the most Slurm status calls (squeue, sacct, scontrol show) in any minute "
        f"while starting and stopping them, and with one server running for {args.idle:.0f} s. Logs: {base}"
    )


if __name__ == "__main__":
    main()
