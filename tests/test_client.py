"""The Python client against a real Jupyter server with the local site (sync, async, events, errors)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from swm_jupyter.client import AsyncClient, Client, ConflictError, JobNotFoundError, SwmError, build_spec
from swm_jupyter.client.events import events_url

from .notebook_fixtures import Server, swm_server  # noqa: F401 - fixture


@pytest.fixture
def client(swm_server: Server) -> Client:  # noqa: F811
    with Client(swm_server.url, swm_server.token) as c:
        yield c


def test_build_spec_merges_fields_and_resources() -> None:
    body = build_spec({"script": "echo", "resources": {"cpus": 2}}, site="local", mem="1G", walltime="10", name=None)
    assert body == {"script": "echo", "site": "local", "resources": {"cpus": 2, "memory": "1G", "walltime": "10"}}
    assert events_url("https://h:1/base/", 7) == "wss://h:1/base/swm/api/v1/events?last_event_id=7"


def test_submit_wait_logs_files_fetch(client: Client, tmp_path: Path) -> None:
    job = client.submit(script="#!/bin/bash\n#SWM name hello\necho hello; echo data > out.txt; echo oops >&2")
    assert job.name == "hello" and job.site == "local"
    assert job.id in client.session_jobs
    assert job.wait(timeout=30, progress=False) is job
    assert job.state == "finished" and job.exit_code == 0
    assert job.logs() == "hello\n"
    assert job.logs("stderr") == "oops\n"
    assert "out.txt" in {f["path"] for f in job.files()}
    assert job.fetch("out.txt") == b"data\n"
    saved = job.fetch("out.txt", to=tmp_path)
    assert Path(saved).read_text() == "data\n"
    assert "hello" in repr(job) and "finished" in job._repr_html_()
    listed = client.jobs(name="hello")
    assert job.id in {j["id"] for j in listed} and "hello" in repr(listed) and "<table" in listed._repr_html_()


def test_server_errors_carry_the_server_message(client: Client) -> None:
    with pytest.raises(SwmError) as bad:
        client.submit(script="echo", site="nowhere")
    assert bad.value.status == 400 and "nowhere" in bad.value.message
    with pytest.raises(SwmError, match="cpus"):
        client.submit(script="echo", cpus=100000)
    with pytest.raises(JobNotFoundError):
        client.job("no-such-job")
    done = client.submit(script="true")
    done.wait(30, progress=False)
    with pytest.raises(ConflictError):
        done.cancel()
    unreachable = Client("http://127.0.0.1:9", "x", timeout=2)
    with pytest.raises(SwmError, match="cannot reach"):
        unreachable.sites()


def test_cancel_hold_release_tail(client: Client) -> None:
    running = client.submit(script="echo start; sleep 30")
    deadline = time.monotonic() + 20
    while running.state != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    running.cancel()
    running.wait(timeout=30, progress=False)
    assert running.state == "canceled"
    held = client.submit(script="echo later", hold=True)
    assert held.refresh().state == "held"
    held.release()
    held.wait(timeout=30, progress=False)
    assert held.state == "finished"
    follow = client.submit(script="for i in 1 2 3; do echo line $i; sleep 0.3; done")
    seen: list[str] = []
    follow.tail(follow=True, write=seen.append, timeout=30)
    assert "".join(seen) == "line 1\nline 2\nline 3\n"


def test_events_stream_sees_state_changes_and_logs(client: Client) -> None:
    events = client.events()
    assert events.connected.wait(10), events.error
    messages: list[dict] = []
    got_final = threading.Event()

    def listen(message: dict) -> None:
        messages.append(message)
        if message.get("type") == "job" and message["job"]["state"] == "finished":
            got_final.set()

    events.add_listener(listen)
    job = client.submit(script="echo one; sleep 0.5; echo two")
    events.subscribe_logs([job.id])
    assert got_final.wait(30)
    time.sleep(1)
    states = [m["job"]["state"] for m in messages if m.get("type") == "job" and m["job"]["id"] == job.id]
    assert states[-1] == "finished" and "running" in states
    logs = "".join(
        m["data"] for m in messages if m.get("type") == "log" and m["job_id"] == job.id and m["stream"] == "stdout"
    )
    assert logs == "one\ntwo\n"
    # the handle follows the events with no request of its own
    assert job.data["state"] == "finished"
    events.remove_listener(listen)


def test_async_client(swm_server: Server) -> None:  # noqa: F811
    async def main() -> tuple[str, str, int]:
        async with AsyncClient(swm_server.url, swm_server.token) as client:
            job = await client.submit(script="echo async")
            await job.wait(timeout=30)
            sites = await client.sites()
            return job.state, await job.logs(), len(sites)

    state, logs, sites = asyncio.run(main())
    assert (state, logs, sites) == ("finished", "async\n", 1)


def test_find_server_from_environment(swm_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("SWM_URL", swm_server.url)
    monkeypatch.setenv("SWM_TOKEN", swm_server.token)
    with Client() as c:
        assert c.sites()[0]["name"] == "local"
    monkeypatch.delenv("SWM_URL")
    monkeypatch.delenv("SWM_TOKEN")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(swm_server.runtime_dir))
    with Client() as c:  # found through the server's runtime file, token included
        assert c.url == swm_server.url and c.token == swm_server.token
        assert c.resolve_input(swm_server.root / "sub" / "a.ipynb") == "sub/a.ipynb"
        with pytest.raises(SwmError, match="outside"):
            c.resolve_input("/etc/passwd")


def test_a_late_event_never_turns_a_finished_job_back(client: Client) -> None:
    """Events arrive on their own thread: one sent before the job ended may come after the handle saw it end."""
    job = client.submit(command=["true"], name="late-event").wait(60, progress=False)
    assert job.state == "finished" and job.data["changes"] >= 3  # queued, (waiting,) running, finished
    stale = {**job.data, "state": "running", "state_code": "R", "exit_code": None, "changes": job.data["changes"] - 1}
    client._merge(stale)  # what the events thread does with a late "running" event
    assert job.state == "finished" and job.exit_code == 0
    newer = {**job.data, "state": "queued", "state_code": "Q", "changes": job.data["changes"] + 1}
    client._merge(newer)  # a requeue: a newer account is taken
    assert job.data["state"] == "queued"
