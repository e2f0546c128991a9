"""``Executor`` in a kernel of a hub user's server that runs as a swm job on a site whose file system the
swm service cannot see (the ssh site of the SwmSpawner hub of ``tests/test_spawner.py``).

The kernel is a real one, started in bob's server through the hub's proxy (REST, then its websocket).
Needs root (the hub starts servers as their users) and the test sshd and Slurm, as the spawner tests.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import websocket

from tests.hub_fixtures import hub_users as hub_users  # noqa: F401 - fixture
from tests.test_spawner import SERVICE_API, SpawnerHub, server_model, server_path, stop
from tests.test_spawner import hub as hub  # noqa: F401 - fixture
from tests.test_spawner import standin as standin  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(600)


def run_in_kernel(hub: SpawnerHub, prefix: str, token: str, code: str, timeout: float = 180) -> str:  # noqa: F811
    """Run ``code`` in a new kernel of the server at ``prefix`` (``/user/bob/x/``); its printed text and errors."""
    status, kernel = hub.call("POST", f"{prefix}api/kernels", token=token, body={"name": "python3"})
    assert status == 201, (status, kernel)
    url = f"ws://127.0.0.1:{hub.port}{prefix}api/kernels/{kernel['id']}/channels"
    conn = websocket.create_connection(url, header=[f"Authorization: token {token}"], timeout=timeout)
    msg_id = uuid.uuid4().hex
    try:
        conn.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
                }
            )
        )
        out: list[str] = []
        while True:
            message: dict[str, Any] = json.loads(conn.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                out.append(f"{content['ename']}: {content['evalue']}\n")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
    finally:
        conn.close()
        hub.call("DELETE", f"{prefix}api/kernels/{kernel['id']}", token=token)


def test_executor_in_a_server_on_a_site_the_service_cannot_see(hub: SpawnerHub) -> None:  # noqa: F811
    """bob's server runs on the ssh site, in a folder the service cannot read (it reads inputs from his
    home): the first call is refused on its input files and goes again inside its job script, as does
    every later one; ``submit``, ``map`` and an exception come back from bob's jobs on the local site."""
    bob = hub.user_token("bob")
    status, answer = hub.admin("POST", server_path("bob", "exec"), {"site": "host"})
    assert status in (201, 202), (status, answer)
    hub.wait_for(lambda: (server_model(hub, "bob", "exec") or {}).get("ready"), 120, "bob/exec")
    try:
        out = run_in_kernel(
            hub,
            "/user/bob/exec/",
            bob,
            "import os, getpass\nfrom swm_jupyter import Executor\nex = Executor(site='local')\n"
            "print(ex.submit(lambda x: (x * 2, getpass.getuser()), 21).result(120))\n"
            "print(list(ex.map(lambda x: x * x, range(4), timeout=120)))\n"
            "def boom():\n    raise KeyError('far')\n"
            "try:\n    ex.submit(boom).result(120)\nexcept KeyError as e:\n    print('KeyError', e)\n"
            "specs = [ex.client.job_data(j)['spec'] for j in ex.client.session_jobs]\n"
            "print(len(specs), [bool(s.get('input_files')) for s in specs], "
            "all('swm_unpack' in s['script'] for s in specs))\n"
            "print(os.listdir('.swm-executor') if os.path.isdir('.swm-executor') else [])",
        )
        status, listed = hub.call("GET", f"{SERVICE_API}/jobs?limit=1000", token=bob)
        assert status == 200, (status, listed)
    finally:
        stop(hub, "bob", "exec")
    calls = [j for j in listed["jobs"] if j["name"].startswith("py-") and not j.get("array_parent")]
    assert len(calls) == 3, calls  # the refused first try was not stored
    assert out.splitlines() == [
        "(42, 'bob')",  # bob's job, on the local site (run_as_owner), from a kernel on the ssh host
        "[0, 1, 4, 9]",
        "KeyError 'far'",
        "3 [False, False, False] True",  # each call inside its script; no staging folder left behind
        "[]",
    ], out
