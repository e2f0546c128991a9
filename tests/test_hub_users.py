"""The example hub runs each user's jobs under their own OS account, and shares its sites fairly.

One hub for the module (``tests/hub_fixtures.py``): the example config as it is (its local site has
``run_as_owner``, fair share between users, per-user limits), plus, in the service's config, a
second site on the one-node Slurm of ``tests/services`` with ``run_as_owner``, 4 cpus on the local
site and ``max_running_per_user = 3``. Real OS users alice and bob (made by the example's
``create-users.sh``), real single-user servers, real sudo, real Slurm. Needs root (CI runs as root).
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub_fixtures import Hub, hub_users, running_hub  # noqa: F401 - hub_users is a fixture
from tests.test_hub import SERVICE_API, submit, user_api, wait_final

pytestmark = pytest.mark.timeout(300)

#: The per-user limits (running, queued or held) and the local site's cpus the service is given here.
LIMIT, QUEUED, CPUS = 3, 8, 4


@pytest.fixture(scope="module")
def users_hub(
    hub_users: tuple[str, ...],  # noqa: F811
    services: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hub]:
    """The example hub, its service given a Slurm site with run_as_owner and a per-user limit."""
    fast = {"poll_interval_min": 0.5, "poll_interval_max": 2.0, "max_status_calls_per_minute": 0}
    cluster = {"gate": "slurm", "run_as_owner": True, "env": {"SLURM_CONF": services["SLURM_CONF"]}, **fast}
    service_config = f"""
sites = dict(c.SwmApp.sites)
assert sites["local"]["run_as_owner"] is True, sites  # the example's own local site
sites["local"] = {{**sites["local"], "cpus": {CPUS}}}
sites["cluster"] = {cluster!r}
c.SwmApp.sites = sites
c.SwmApp.max_running_per_user = {LIMIT}
c.SwmApp.max_queued_per_user = {QUEUED}
"""
    with running_hub(hub_users, tmp_path_factory, "hub-users", service_config) as hub:
        yield hub


def log(hub: Hub, base: str, token: str, job_id: str, stream: str = "stdout") -> str:
    """A job's output (``stream``) through the API at ``base``."""
    status, text = hub.call("GET", f"{base}/jobs/{job_id}/log?stream={stream}", token=token)
    assert status == 200, (status, text)
    return text if isinstance(text, str) else str(text)  # "0\n" would come back as JSON


def test_jobs_run_under_their_owners_accounts_in_folders_only_they_can_read(users_hub: Hub) -> None:
    """alice's job, submitted through her own server, prints ``id -un`` -> alice in a 0700 folder of
    hers; bob's job, trying to read it, runs as bob and is refused by the OS."""
    hub = users_hub
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    hub.start_server("alice")
    mine = user_api("alice")
    job = submit(hub, mine, alice, {"name": "whoami", "script": 'id -un\necho "$HOME"\necho alice-secret > secret\n'})
    assert job["site"] == "local" and job["owner"] == "alice", job
    done = wait_final(hub, alice, [job["id"]])[job["id"]]
    assert done["state"] == "finished" and done["exit_code"] == 0, done
    account = pwd.getpwnam("alice")
    assert log(hub, mine, alice, job["id"]) == f"alice\n{account.pw_dir}\n"

    folder = Path(done["folder"])
    assert folder.parent == Path(account.pw_dir) / ".swm" / "jobs", folder
    for path in (folder, folder / "secret", folder / "stdout"):
        assert path.lstat().st_uid == account.pw_uid, path
    assert stat.S_IMODE(folder.lstat().st_mode) == 0o700

    spy = submit(hub, SERVICE_API, bob, {"name": "spy", "script": f"id -un\ncat {folder}/secret\nls {folder}\n"})
    seen = wait_final(hub, bob, [spy["id"]])[spy["id"]]
    assert seen["state"] == "finished" and seen["exit_code"] != 0, seen
    assert log(hub, SERVICE_API, bob, spy["id"]) == "bob\n"
    errors = log(hub, SERVICE_API, bob, spy["id"], "stderr")
    assert "Permission denied" in errors and "alice-secret" not in errors, errors
    assert Path(seen["folder"]).lstat().st_uid == pwd.getpwnam("bob").pw_uid


def test_a_slurm_job_is_the_owners_in_slurm(users_hub: Hub, services: dict[str, str]) -> None:
    """Submitted through alice's server to the Slurm site: Slurm runs it as alice, ``squeue -u alice``
    lists it while it runs; canceled through her server, Slurm cancels it."""
    hub = users_hub
    alice = hub.user_token("alice")
    hub.start_server("alice")
    mine = user_api("alice")
    job = submit(hub, mine, alice, {"name": "on-slurm", "site": "cluster", "script": "id -un\nsleep 120\n"})
    running: dict[str, Any] = {}

    def is_running() -> bool:
        status, answer = hub.call("GET", f"{mine}/jobs/{job['id']}", token=alice)
        assert status == 200 and answer["state"] not in ("finished", "error", "canceled"), answer
        running.update(answer)
        return answer["state"] == "running" and log(hub, mine, alice, job["id"]) == "alice\n"

    hub.wait_for(is_running, 90, "the Slurm job to run and print its user")
    slurm_id = running["native_id"]
    env = dict(os.environ, SLURM_CONF=services["SLURM_CONF"])
    listed = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%i %u"], capture_output=True, text=True, env=env)
    assert f"{slurm_id} alice" in listed.stdout.splitlines(), listed

    status, answer = hub.call("POST", f"{mine}/jobs/{job['id']}/cancel", token=alice)
    assert status in (200, 202), (status, answer)
    ended = wait_final(hub, alice, [job["id"]], timeout=60)[job["id"]]
    assert ended["state"] == "canceled", ended

    def gone() -> bool:
        left = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%i"], capture_output=True, text=True, env=env)
        return slurm_id not in left.stdout.split()

    hub.wait_for(gone, 30, "Slurm to cancel the job")


def _at_once(spans: list[tuple[float, float]], before: float = float("inf")) -> int:
    """The most of ``spans`` (start, end) that overlap at one moment earlier than ``before``."""
    edges = sorted([(start, 1) for start, _ in spans if start < before] + [(end, -1) for _, end in spans])
    count = most = 0
    for when, step in edges:
        count += step
        if when < before:
            most = max(most, count)
    return most


def test_two_users_flooding_the_service_share_the_site_within_their_limits(users_hub: Hub) -> None:
    """alice fills her share (3 running, the 4th cpu left free, her others held back by the limit),
    then bob floods too: fair share gives bob the cpus alice frees until he runs as many as his limit,
    while alice still has jobs waiting (first come, first served would keep giving them to alice).
    From the jobs' recorded times: never more than the limit of one user, nor the site's cpus, at once."""
    hub = users_hub
    tokens = {user: hub.user_token(user) for user in ("alice", "bob")}
    count, seconds = 6, 3

    def flood(user: str) -> list[str]:
        specs = [{"name": f"{user}-{i}", "command": ["sleep", str(seconds)]} for i in range(count)]
        status, answer = hub.call("POST", f"{SERVICE_API}/jobs", token=tokens[user], body=specs)
        assert status == 201, (status, answer)
        return [job["id"] for job in answer["jobs"]]

    def states(user: str, ids: list[str]) -> list[dict[str, Any]]:
        status, page = hub.call("GET", f"{SERVICE_API}/jobs?limit=100", token=tokens[user])
        assert status == 200, page
        by_id = {job["id"]: job for job in page["jobs"]}
        return [by_id[job_id] for job_id in ids]

    alices = flood("alice")
    hub.wait_for(
        lambda: [job["state"] for job in states("alice", alices)].count("running") == LIMIT, 30, "alice's 3 jobs to run"
    )
    waiting = [job for job in states("alice", alices) if job["state"] == "queued"]
    assert len(waiting) == count - LIMIT, waiting
    assert waiting[0]["state_details"] == f"waiting: alice already runs {LIMIT} jobs (max_running_per_user)"
    bobs = flood("bob")
    ended = wait_final(hub, tokens["alice"], alices, timeout=90) | wait_final(hub, tokens["bob"], bobs, timeout=90)
    assert {job["state"] for job in ended.values()} == {"finished"}, ended
    spans = {
        user: [(ended[i]["start_time"], ended[i]["end_time"]) for i in ids]
        for user, ids in (("alice", alices), ("bob", bobs))
    }
    assert _at_once(spans["alice"]) == _at_once(spans["bob"]) == LIMIT, spans
    assert _at_once(spans["alice"] + spans["bob"]) <= CPUS, spans
    last_start_of_alice = max(start for start, _ in spans["alice"])
    assert _at_once(spans["bob"], before=last_start_of_alice) == LIMIT, spans
    order = [user for _, user in sorted((s, u) for u, sp in spans.items() for s, _ in sp)]
    assert order[:LIMIT] == ["alice"] * LIMIT, order


def _put_as(user: str, relative: str, data: bytes, mode: int) -> Path:
    """Write ``data`` to ``relative`` in ``user``'s home, as their file (folders made for them)."""
    account = pwd.getpwnam(user)
    path = Path(account.pw_dir) / relative
    for folder in reversed([p for p in path.relative_to(account.pw_dir).parents if str(p) != "."]):
        made = Path(account.pw_dir) / folder
        made.mkdir(exist_ok=True)
        os.chown(made, account.pw_uid, account.pw_gid)
    path.write_bytes(data)
    os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(mode)
    return path


def test_inputs_come_from_the_owners_home_read_as_the_owner(users_hub: Hub) -> None:
    """alice, from her own server, submits a notebook job and a job with input_files, both with paths relative
    to her home: they run with her files. bob naming alice's files (absolute, ``../alice/...``, through a link
    in his own home) or the service's own files is refused with a 400 naming the path, and nothing is stored."""
    import nbformat

    from tests.notebook_fixtures import notebook, outputs_text

    hub = users_hub
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    home = Path(pwd.getpwnam("alice").pw_dir)
    secret = _put_as("alice", "swm-in/private.txt", b"alices-data\n", 0o600)
    nb = notebook("print(open('swm-in/private.txt').read().strip(), n * 2)", tags={})
    _put_as("alice", "swm-in/double.ipynb", nbformat.writes(nb).encode(), 0o600)
    hub.start_server("alice")
    mine = user_api("alice")
    files = submit(
        hub,
        mine,
        alice,
        {"name": "in", "script": "cat swm-in/private.txt\n", "input_files": ["swm-in/private.txt"]},
    )
    book = submit(
        hub,
        mine,
        alice,
        {"notebook": "swm-in/double.ipynb", "parameters": {"n": 21}, "input_files": ["swm-in/private.txt"]},
    )
    where = submit(hub, mine, alice, {"name": "where", "script": "pwd\n", "workdir": "swm-in"})
    assert where["spec"]["workdir"] == str(home / "swm-in"), where["spec"]
    ended = wait_final(hub, alice, [files["id"], book["id"], where["id"]], timeout=120)
    assert log(hub, mine, alice, where["id"]) == f"{home / 'swm-in'}\n"
    assert ended[files["id"]]["state"] == "finished" and ended[files["id"]]["exit_code"] == 0, ended[files["id"]]
    assert log(hub, mine, alice, files["id"]) == "alices-data\n"
    assert ended[book["id"]]["exit_code"] == 0, log(hub, mine, alice, book["id"], "stderr")
    status, raw = hub.call("GET", f"{mine}/jobs/{book['id']}/files/double.executed.ipynb", token=alice)
    assert status == 200, (status, raw)
    executed = nbformat.reads(raw if isinstance(raw, str) else json.dumps(raw), as_version=4)
    assert "alices-data 42" in outputs_text(executed.cells[-1]), executed.cells[-1]

    # bob: alice's file is not his to stage, however he names it; nor the service's files; nothing is stored
    bobs_home = Path(pwd.getpwnam("bob").pw_dir)
    link = bobs_home / "alices-file"
    link.unlink(missing_ok=True)
    link.symlink_to(secret)
    os.lchown(link, pwd.getpwnam("bob").pw_uid, pwd.getpwnam("bob").pw_gid)
    _put_as("bob", "mine.txt", b"bob\n", 0o644)
    status, page = hub.call("GET", f"{SERVICE_API}/jobs?limit=500", token=bob)
    assert status == 200, page
    before = {job["id"] for job in page["jobs"]}
    service_store = hub.root / "state" / "swm" / "jobs.sqlite"
    for path, why in [
        (str(secret), ("must be a relative path", "is outside your folder")),
        (f"../{home.name}/swm-in/private.txt", ("must be a relative path", "leaves your folder")),
        ("alices-file", ("symbolic link",)),
        (str(service_store), ("must be a relative path", "is outside your folder")),
        ("does-not-exist.txt", ("does not exist",)),
    ]:
        for field, spec in [
            ("input_files", {"script": "cat private.txt\n", "input_files": [path]}),
            ("notebook", {"notebook": path}),
        ]:
            status, answer = hub.call("POST", f"{SERVICE_API}/jobs", token=bob, body=spec)
            assert status == 400, (path, status, answer)
            assert any(w in answer["message"] for w in why), (path, answer)
            assert field in {e["field"] for e in answer["errors"]}, (path, answer)
            assert "alices-data" not in json.dumps(answer)
    status, answer = hub.call(
        "POST", f"{SERVICE_API}/jobs", token=bob, body={"script": "pwd\n", "workdir": f"../{home.name}"}
    )
    assert status == 400 and "workdir" in {e["field"] for e in answer["errors"]}, answer
    # files in bob's own home that bob may not read (the service's, root's) are not his to stage either: by mode,
    # and by an ACL entry that refuses him where the mode bits alone would let him read
    root_only = bobs_home / "root-only.txt"
    root_only.write_text("root\n")
    root_only.chmod(0o600)
    not_for_bob = bobs_home / "not-for-bob.txt"
    not_for_bob.write_text("root\n")
    not_for_bob.chmod(0o644)
    subprocess.run(["setfacl", "-m", "u:bob:---", str(not_for_bob)], check=True)
    for path in ("root-only.txt", "not-for-bob.txt"):
        status, answer = hub.call(
            "POST", f"{SERVICE_API}/jobs", token=bob, body={"command": ["true"], "input_files": [path]}
        )
        assert status == 400 and f"{path!r} is not readable by bob" in answer["message"], answer
    # and his own file is his to stage: the checks refuse only what bob may not read
    mine_ok = submit(hub, SERVICE_API, bob, {"script": "cat mine.txt\n", "input_files": ["mine.txt"]})
    assert wait_final(hub, bob, [mine_ok["id"]])[mine_ok["id"]]["exit_code"] == 0
    status, page = hub.call("GET", f"{SERVICE_API}/jobs?limit=500", token=bob)
    assert {job["id"] for job in page["jobs"]} - before == {mine_ok["id"]}, page


def test_max_queued_per_user_refuses_one_user_not_the_other(users_hub: Hub) -> None:
    """Through the service, bob may hold at most 8 jobs queued or held: a batch of 9 is refused whole with the
    limit and his count, 8 are accepted, the 9th refused; alice, meanwhile, still submits."""
    hub = users_hub
    bob, alice = hub.user_token("bob"), hub.user_token("alice")
    held = [{"name": f"held-{i}", "command": ["true"], "hold": True} for i in range(QUEUED + 1)]
    status, answer = hub.call("POST", f"{SERVICE_API}/jobs", token=bob, body=held)
    assert status == 429, (status, answer)
    assert f"bob has 0 jobs queued or held and max_queued_per_user is {QUEUED}" in answer["message"], answer
    status, page = hub.call("GET", f"{SERVICE_API}/jobs?state=held", token=bob)
    assert status == 200 and page["jobs"] == [], page
    status, answer = hub.call("POST", f"{SERVICE_API}/jobs", token=bob, body=held[:QUEUED])
    assert status == 201, (status, answer)
    ids = [job["id"] for job in answer["jobs"]]
    try:
        status, answer = hub.call("POST", f"{SERVICE_API}/jobs", token=bob, body=held[QUEUED])
        assert status == 429 and f"bob has {QUEUED} jobs queued or held" in answer["message"], (status, answer)
        other = submit(hub, SERVICE_API, alice, {"name": "alice-still", "command": ["true"]})
        assert wait_final(hub, alice, [other["id"]])[other["id"]]["state"] == "finished"
    finally:
        status, answer = hub.call("POST", f"{SERVICE_API}/jobs/actions/cancel", token=bob, body={"ids": ids})
        assert status == 200 and sorted(answer["done"]) == sorted(ids), answer
