"""Reads and writes of a job's files never follow a link out of its folder (issue 13, "logs follow
symlinks"): the log endpoint, the websocket log stream, the files endpoint, the Sky Port
``/user/job/{id}/stdout`` and output collection, each against a job that ran
``rm stdout; ln -s /etc/passwd stdout``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.core.errors import PathNotAllowed
from swm_jupyter.core.job_files import (
    UnsafeJobFile,
    create_job_file,
    job_output_exists,
    open_job_file,
    read_job_file,
)
from swm_jupyter.core.states import JobState
from swm_jupyter.gates.ssh import SshGate
from tests.conftest import body

from .services_fixtures import apply, make_job, poll_until_final, run

MARKER = "TOP-SECRET-outside-the-job-folder"
PASSWD_LINE = "root:x:0:0"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside every job folder that a job will try to make the server read."""
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text(MARKER + "\n")
    return path


def planting_script(secret: Path, *, wait_for: Path | None = None) -> str:
    """A job that replaces its stdout and stderr by links to files outside, and links its outputs out."""
    lines = [
        "echo visible-before",
        "rm -f stdout stderr",
        "ln -s /etc/passwd stdout",
        f"ln -s {secret} stderr",
        f"ln -s {secret} result.txt",
        "mkdir -p sub && ln -s /etc sub/etc",
        "mkfifo pipe",
    ]
    if wait_for is not None:  # stay running until the test has looked at the live log
        lines.append(f"i=0; while [ ! -e {wait_for} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done")
    return "\n".join(lines) + "\n"


async def job_state(api: Any, job_id: str, wanted: set[str], timeout: float = 30) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until the job's state is one of ``wanted``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        job = body(await api("jobs", job_id))
        if job["state"] in wanted:
            return job
        assert loop.time() < deadline, f"job {job_id} is {job['state']}, not {wanted}: {job['state_details']}"
        await asyncio.sleep(0.1)


def assert_nothing_leaked(text: str | bytes) -> None:
    """Neither the outside file nor /etc/passwd came back."""
    text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    assert MARKER not in text and PASSWD_LINE not in text, text[:500]


async def test_every_reader_refuses_links_out_of_the_job_folder(
    api: Any, jp_fetch: Any, jp_ws_fetch: Any, outside: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    job = body(
        await api(
            "jobs",
            json_body={"script": planting_script(outside, wait_for=go), "output_files": ["result.txt"]},
        )
    )
    job_id = job["id"]
    # The link is planted first (the job then waits): the live readers (the gate's) refuse it.
    folder = Path(body(await api("jobs", job_id))["folder"])
    for _ in range(300):
        if (folder / "pipe").exists():
            break
        await asyncio.sleep(0.1)
    assert (await job_state(api, job_id, {"running"}))["state"] == "running"
    for stream in ("stdout", "stderr"):
        live = await api("jobs", job_id, "log", params={"stream": stream})
        assert live.code == 403, (live.code, live.body[:200])
        assert_nothing_leaked(live.body)
        assert "symbolic link" in body(live)["message"]
    go.write_text("")
    final = await job_state(api, job_id, {"finished", "error"})
    assert final["state"] == "finished", final["state_details"]
    assert "missing outputs: result.txt" in final["state_details"], "a link is not an output"

    # 1. GET /jobs/{id}/log (the job ended: the manager reads the folder).
    for stream in ("stdout", "stderr"):
        response = await api("jobs", job_id, "log", params={"stream": stream})
        assert response.code == 403, response.code
        assert_nothing_leaked(response.body)

    # 2. The websocket's subscribe_logs: an error message, nothing of the files, the socket kept.
    ws = await jp_ws_fetch("swm", "api", "v1", "events")
    messages = [json.loads(await asyncio.wait_for(ws.read_message(), 10))]
    ws.write_message(json.dumps({"subscribe_logs": [job_id]}))
    while not any(m.get("type") == "error" for m in messages):
        messages.append(json.loads(await asyncio.wait_for(ws.read_message(), 10)))
    assert_nothing_leaked(json.dumps(messages))
    error = next(m for m in messages if m.get("type") == "error")
    assert error["job_id"] == job_id and "symbolic link" in error["message"]
    ws.write_message(json.dumps({"subscribe_logs": ["no-such-job"]}))
    assert json.loads(await asyncio.wait_for(ws.read_message(), 10))["type"] == "error"  # still open
    ws.close()

    # 3. The files endpoint: links are neither listed nor served, at any depth.
    listed = {f["path"] for f in body(await api("jobs", job_id, "files"))["files"]}
    assert not listed & {"stdout", "stderr", "result.txt", "sub/etc", "pipe"}, listed
    for path in ("stdout", "stderr", "result.txt", "sub/etc/passwd", "pipe"):
        response = await api("jobs", job_id, "files", *path.split("/"))
        assert response.code in (403, 404), (path, response.code)
        assert_nothing_leaked(response.body)

    # 4. The Sky Port compat API's /user/job/{id}/stdout and /stderr.
    for stream in ("stdout", "stderr"):
        response = await jp_fetch("user", "job", job_id, stream, raise_error=False)
        assert response.code == 403, (stream, response.code)
        assert_nothing_leaked(response.body)


def test_output_collection_never_follows_a_link(ssh_options: dict[str, Any], tmp_path: Path, outside: Path) -> None:
    """Over SSH: links the job left on the remote side are not copied (nor read live), and a link
    found on the local side is replaced, never written through.
    """
    victim = tmp_path / "outside" / "victim.txt"
    victim.write_text("unchanged\n")

    async def body_() -> None:
        gate = SshGate(site_name="host", remote_workdir=str(tmp_path / "remote"), poll_interval=0.3, **ssh_options)
        await gate.setup()
        try:
            script = planting_script(outside) + "mkdir -p out; echo produced > out/real.txt; echo mine > victim.txt\n"
            job = make_job(tmp_path / "local", {"script": script, "output_files": ["result.txt", "out/real.txt"]})
            os.symlink(outside, Path(job.folder) / "input-link")  # not sent to the site either
            apply(job, await gate.submit(job))
            os.symlink(victim, Path(job.folder) / "victim.txt")  # planted where the output is copied to
            finals = await poll_until_final(gate, [job], 30)
            assert finals[job.id].state is JobState.FINISHED
            with pytest.raises(UnsafeJobFile):  # the live reader (SFTP) refuses the link too
                await gate.read_output(job, "stdout")
            await gate.stage_out(job)
            local = Path(job.folder)
            assert victim.read_text() == "unchanged\n", "the planted local link was written through"
            assert (local / "victim.txt").read_text() == "mine\n" and not (local / "victim.txt").is_symlink()
            assert (local / "out" / "real.txt").read_text() == "produced\n"
            for name in ("stdout", "stderr", "result.txt", "sub/etc", "pipe"):
                assert not os.path.lexists(local / name), name
            for path in local.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    assert_nothing_leaked(path.read_bytes())
            assert not job_output_exists(job.folder, "result.txt")
            assert job_output_exists(job.folder, "out/real.txt")
        finally:
            await gate.cleanup()

    run(body_())


def test_the_safe_open_helper(tmp_path: Path, outside: Path) -> None:
    """The helper itself: links at any depth, FIFOs, ``..`` and absolute paths are refused."""
    folder = tmp_path / "job"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "ok.txt").write_text("fine")
    os.symlink(outside, folder / "link")
    os.symlink(outside.parent, folder / "dirlink")
    os.symlink("ok.txt", folder / "sub" / "inner")  # a link even inside the folder is not followed
    os.mkfifo(folder / "fifo")
    assert read_job_file(folder, "sub/ok.txt", 1, 2) == b"in"
    assert read_job_file(folder, "missing") == b""
    for path in ("link", "dirlink/secret.txt", "sub/inner", "fifo"):
        with pytest.raises(UnsafeJobFile):
            open_job_file(folder, path)
    with pytest.raises(UnsafeJobFile):  # a link on the way of a write is refused
        create_job_file(folder, "dirlink/secret.txt")
    with create_job_file(folder, "link") as handle:  # a link in the file's place is replaced
        handle.write(b"replaced")
    assert (folder / "link").read_text() == "replaced" and not (folder / "link").is_symlink()
    for path in ("../outside/secret.txt", "/etc/passwd", "sub/../../x", ""):
        with pytest.raises(PathNotAllowed):
            open_job_file(folder, path)
    assert outside.read_text() == MARKER + "\n"
    with create_job_file(folder, "new/deep/file.txt") as handle:
        handle.write(b"written")
    assert (folder / "new" / "deep" / "file.txt").read_text() == "written"
