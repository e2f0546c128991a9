"""A real ``jupyter server`` with the swm extension and the local site, and real kernels run with nbclient."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

JUPYTER = str(Path(sys.executable).with_name("jupyter"))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server: its URL, token, folders, and the environment kernels should get."""

    url: str
    token: str
    root: Path
    data_dir: Path
    runtime_dir: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    def kernel_env(self, *, configured: bool = True) -> dict[str, str]:
        """The environment of a kernel: with ``SWM_URL``/``SWM_TOKEN``, or only the runtime dir (discovery)."""
        env = dict(self.env)
        env.pop("SWM_URL", None)
        env.pop("SWM_TOKEN", None)
        if configured:
            env["SWM_URL"] = self.url
            env["SWM_TOKEN"] = self.token
        return env

    def run_notebook(self, nb: Any, *, configured: bool = True, timeout: int = 120) -> Any:
        """Execute ``nb`` in a real kernel whose folder is the server's root; returns the executed notebook."""
        client = NotebookClient(
            nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(self.root)}}
        )
        client.execute(env=self.kernel_env(configured=configured))
        return nb


@pytest.fixture(scope="session")
def swm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real ``jupyter server`` for the session (local site, temp root, data and runtime folders)."""
    base = tmp_path_factory.mktemp("swm-server")
    root, data, runtime = base / "root", base / "data", base / "runtime"
    for folder in (root, data, runtime):
        folder.mkdir()
    port = free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ)
    env["JUPYTER_RUNTIME_DIR"] = str(runtime)
    env.pop("SWM_URL", None)
    env.pop("SWM_TOKEN", None)
    log = open(base / "server.log", "wb")
    proc = subprocess.Popen(
        [
            JUPYTER,
            "server",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--SwmApp.data_dir={data}",
            "--ServerApp.port_retries=0",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    server = Server(url=url, token=token, root=root, data_dir=data, runtime_dir=runtime, proc=proc, env=env)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError("jupyter server exited:\n" + (base / "server.log").read_text()[-3000:])
        try:
            if httpx.get(f"{url}/swm/api/v1/sites", headers={"Authorization": f"token {token}"}).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("jupyter server did not answer:\n" + (base / "server.log").read_text()[-3000:])
        time.sleep(0.3)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(runtime, ignore_errors=True)


def notebook(*cells: str, tags: dict[int, list[str]] | None = None) -> Any:
    """A v4 notebook with these code cells (``tags``: cell index -> tags)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    for index, cell_tags in (tags or {}).items():
        nb.cells[index].metadata["tags"] = cell_tags
    return nb


def outputs_text(cell: Any) -> str:
    """All the text a cell printed or returned (stream, text/plain, errors)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "".join(parts)
