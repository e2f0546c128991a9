"""Hostile and careless request input against a real in-process Jupyter server: always a 4xx that says
what to fix, never a 500 and never a change (issue 13: nested JSON, huge cursors, missing Content-Type)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from tests.conftest import body
from tests.test_skyport_compat import multipart


def cursor(text: str) -> str:
    """A cursor as the server encodes them (``kind:value``, URL-safe base64 without padding)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def post_raw(port: int, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST exactly these headers (HTTP clients add a Content-Type of their own): ``(status, JSON body)``.

    A Sky Port route answers a refused submission as Sky Port's core does (``200``, ``Error: <why>`` as
    text, the status in ``X-Swm-Status``): that comes back as ``(X-Swm-Status, {"message": <why>})``.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(data)}", "Connection: close"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = next(
        (line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"x-swm-status:")), None
    )
    if status is not None:
        text = payload.decode()
        assert int(head.split()[1]) == 200 and text.startswith("Error: "), answer
        return int(status), {"message": text.removeprefix("Error: ")}
    return int(head.split()[1]), json.loads(payload)


async def total_jobs(api: Any) -> int:
    """How many jobs the store has."""
    return int(body(await api("jobs"))["total"])


# -- JSON bodies and query arguments -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
@pytest.mark.parametrize("route", ["jobs", "jobs/actions/cancel", "jobs?dry_run=1"])
async def test_deeply_nested_json_is_400(api: Any, route: str, depth: int) -> None:
    nested = ("[" * depth + "]" * depth).encode()
    spec = b'{"command": ["true"], "slurm": {"x": ' + nested + b"}}"
    path, _, query = route.partition("?")
    params = dict([query.split("=")]) if query else None
    response = await api(path, method="POST", body=spec, params=params, headers={"Content-Type": "application/json"})
    assert response.code == 400, (response.code, response.body[:300])
    assert "nested deeper than 64 levels" in body(response)["message"]
    assert await total_jobs(api) == 0


async def test_nesting_a_job_spec_needs_is_accepted(api: Any) -> None:
    spec = {"command": ["true"], "hold": True, "slurm": {"x": [[[[[[[[1]]]]]]]]}}
    response = await api("jobs", json_body=spec)
    assert response.code == 201, response.body


@pytest.mark.parametrize(
    "value",
    ["s:" + "9" * 40, "o:" + "9" * 40, f"s:{1 << 63}", f"o:{1 << 64}", "s:" + "9" * 5000, "s:-1", "x:1"],
)
async def test_cursor_out_of_range_is_400(api: Any, value: str) -> None:
    response = await api("jobs", params={"cursor": cursor(value)})
    assert response.code == 400, (response.code, response.body[:300])
    assert body(response)["errors"] == [{"field": "cursor", "message": "use next_cursor as given"}]


async def test_cursor_at_the_largest_value_works(api: Any) -> None:
    response = await api("jobs", params={"cursor": cursor(f"s:{(1 << 63) - 1}")})
    assert response.code == 200, response.body


# -- Content-Type --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/x-www-form-urlencoded", b"command=true"),
        ("multipart", b""),
        ("text/html", b'{"command": ["true"]}'),
        ("application/json; charset=latin-1", b'{"command": ["true"]}'),
    ],
)
async def test_submission_without_a_readable_content_type_is_415(api: Any, content_type: str, data: bytes) -> None:
    if content_type == "multipart":
        data, content_type = multipart('{"command": ["true"]}')
    response = await api("jobs", method="POST", body=data, headers={"Content-Type": content_type})
    assert response.code == 415, (response.code, response.body)
    reply = body(response)
    assert "application/json" in reply["message"] and "text/x-shellscript" in reply["message"]
    assert reply["errors"][0]["field"] == "Content-Type"
    assert await total_jobs(api) == 0, "nothing was submitted"


async def test_submission_with_no_content_type_is_415(api: Any, jp_serverapp: Any, jp_http_port: int) -> None:
    token = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    base = jp_serverapp.base_url.rstrip("/")
    for route in (f"{base}/swm/api/v1/jobs", f"{base}/user/job"):
        status, reply = await post_raw(jp_http_port, route, b'{"command": ["true"]}', token)
        assert status == 415, (route, status, reply)
        assert "no Content-Type" in reply["message"]
    assert await total_jobs(api) == 0, "nothing was submitted"


async def test_bulk_action_without_json_content_type_is_415(api: Any) -> None:
    job = body(await api("jobs", json_body={"command": ["true"], "hold": True}))
    data = json.dumps({"ids": [job["id"]]}).encode()
    response = await api("jobs/actions/cancel", method="POST", body=data, headers={"Content-Type": "text/plain"})
    assert response.code == 415 and "application/json" in body(response)["message"]
    assert body(await api("jobs", job["id"]))["state"] == "held", "nothing changed"


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/json", b'{"command": ["true"], "hold": true}'),
        ("application/json; charset=utf-8", b'{"command": ["true"], "hold": true}'),
        ("Application/JSON; Charset=UTF-8", b'{"command": ["true"], "hold": true}'),
        ("text/x-shellscript", b"#SWM name raw\necho hi\n"),
        ("text/x-shellscript; charset=utf-8", b"#SWM name raw\necho hi\n"),
        ("text/plain", b"#SWM name raw\necho hi\n"),
    ],
)
async def test_documented_content_types_are_read(api: Any, content_type: str, data: bytes) -> None:
    response = await api("jobs", method="POST", body=data, headers={"Content-Type": content_type})
    assert response.code == 201, response.body


async def test_sky_port_submission_reads_forms_and_raw_scripts(jp_fetch: Any, swm_started: Any) -> None:
    async def post(data: bytes, headers: dict[str, str]) -> Any:
        return await jp_fetch("user", "job", method="POST", body=data, headers=headers, raise_error=False)

    response = await post(b"#SWM name nt\necho hi\n", {"Content-Type": "text/html"})
    assert response.code == 200 and response.headers["X-Swm-Status"] == "415", "refused as Sky Port's core does"
    assert response.body.startswith(b"Error: ") and b"multipart/form-data" in response.body
    assert body(await jp_fetch("swm", "api", "v1", "jobs"))["total"] == 0
    data, content_type = multipart("#SWM name form\necho hi\n", filename=None)  # what swmclient sends
    assert (await post(data, {"Content-Type": content_type})).code == 200
    assert (await post(b"echo raw\n", {"Content-Type": "application/octet-stream"})).code == 200


# -- job specs refused at submission, not at the end -------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"command": ["true"], "output_files": ["../escape.txt"]}, "output_files"),
        ({"command": ["true"], "output_files": ["/etc/passwd"]}, "output_files"),
        ({"command": ["true"], "workdir": "/tmp/a\u0000b"}, "workdir"),
        ({"command": ["true"], "env": {"MODE": "a\u0000b"}}, "env.MODE"),
        ({"command": ["echo", "a\u0000b"]}, "command.1"),
        ({"command": ["true"], "resources": {"walltime": 1.5}}, "resources.walltime"),
        ({"command": ["true"], "resources": {"walltime": 10**30}}, "resources.walltime"),
        ({"script": "#SWM output-files ../x\necho hi\n"}, "line 1"),
    ],
)
async def test_specs_that_would_fail_later_are_400_at_submission(api: Any, spec: dict[str, Any], field: str) -> None:
    for params in (None, {"dry_run": "1"}):
        response = await api("jobs", json_body=spec, params=params)
        assert response.code == 400, (response.code, response.body)
        assert field in {e["field"] for e in body(response)["errors"]}
    assert await total_jobs(api) == 0


async def test_walltime_maximum_is_named(api: Any) -> None:
    response = await api("jobs", json_body={"command": ["true"], "resources": {"walltime": 10**30}})
    assert "at most 31536000 seconds (365-00:00:00)" in body(response)["message"]
