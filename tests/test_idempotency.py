"""``POST /jobs`` with an ``Idempotency-Key``: a retried submission makes its jobs once.

Through the API (same key twice, a different body, a bad key) and through the Python clients (sync
and async: one retry logic), whose first answer is lost on the way back by a real TCP relay (the job
is made, the client never hears).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.client import AsyncClient, Client
from tests.conftest import ServerProcess, body


async def test_same_key_twice_makes_one_job(api: Any) -> None:
    spec = {"name": "idem-one", "command": ["true"], "hold": True}
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k-1"}
    first = await api("jobs", method="POST", body=json.dumps(spec), headers=headers)
    again = await api("jobs", method="POST", body=json.dumps(spec, indent=1), headers=dict(headers))
    assert first.code == 201 and again.code == 201, (body(first), body(again))
    assert body(again)["id"] == body(first)["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    page = body(await api("jobs", params={"name": "idem-one"}))
    assert page["total"] == 1, page

    listed = [{"name": "idem-list", "command": ["true"], "hold": True}] * 2
    one = await api("jobs", json_body=listed, headers={"Idempotency-Key": "k-list"})
    two = await api("jobs", json_body=listed, headers={"Idempotency-Key": "k-list"})
    assert [j["id"] for j in body(one)["jobs"]] == [j["id"] for j in body(two)["jobs"]]
    assert body(await api("jobs", params={"name": "idem-list"}))["total"] == 2


async def test_same_key_other_body_is_refused_and_changes_nothing(api: Any) -> None:
    key = {"Idempotency-Key": "k-2"}
    first = await api("jobs", json_body={"name": "idem-a", "command": ["true"], "hold": True}, headers=dict(key))
    assert first.code == 201
    other = await api("jobs", json_body={"name": "idem-b", "command": ["true"], "hold": True}, headers=dict(key))
    assert other.code == 422, body(other)
    message = body(other)["message"]
    assert "Idempotency-Key 'k-2' was used for a different request" in message
    assert body(first)["id"] not in message, "the refusal names no job (keys are one namespace per server)"
    assert body(await api("jobs", params={"name": "idem-b"}))["total"] == 0


async def test_a_bad_key_is_400(api: Any) -> None:
    bad = await api("jobs", json_body={"command": ["true"]}, headers={"Idempotency-Key": "x" * 201})
    assert bad.code == 400 and "Idempotency-Key" in body(bad)["message"], body(bad)
    assert body(await api("jobs"))["total"] == 0


class LosingRelay:
    """A TCP relay to the server that loses the answer to the first request (the connection is cut)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lost = 0
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.port))
            lose = self.connections == 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, lose), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, lose: bool) -> None:
        try:
            while data := source.recv(65536):
                if lose:  # the server answered: cut the client off without the answer
                    self.lost += 1
                    break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "root", tmp_path / "swm-data").start()
    yield process
    process.stop()


def test_client_retries_a_lost_answer_and_makes_one_job(server: ServerProcess) -> None:
    relay = LosingRelay(server.port)
    try:
        with Client(relay.url, server.token) as client:
            job = client.submit(name="idem-retried", command=["true"], hold=True)
        assert relay.lost == 1 and relay.connections >= 2, "the first answer was lost and the client tried again"
        with Client(server.url, server.token) as client:
            listed = client.jobs(name="idem-retried")
        assert [j["id"] for j in listed] == [job.id], listed
    finally:
        relay.close()


def test_async_client_retries_a_lost_answer_and_makes_one_job(server: ServerProcess) -> None:
    relay = LosingRelay(server.port)

    async def submit() -> str:
        async with AsyncClient(relay.url, server.token) as client:
            job = await client.submit(name="idem-async", command=["true"], hold=True)
            return job.id

    try:
        job_id = asyncio.run(submit())
        assert relay.lost == 1 and relay.connections >= 2, "the first answer was lost and the client tried again"
        with Client(server.url, server.token) as client:
            listed = client.jobs(name="idem-async")
        assert [j["id"] for j in listed] == [job_id], listed
    finally:
        relay.close()
