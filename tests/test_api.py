"""The REST API under /swm/api/v1 against a real in-process Jupyter server (pytest-jupyter)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from swm_jupyter.core.store import JobStore
from swm_jupyter.handlers import _ID as JOB_ID_PATTERN
from swm_jupyter.handlers import default_handlers
from swm_jupyter.handlers.sites import openapi_document
from tests.conftest import body


@pytest.fixture
def swm_sites() -> dict[str, Any]:
    """A working local site, and one whose gate cannot be loaded (answers 503)."""
    return {
        "local": {"gate": "local", "cpus": 4},
        "broken": {"gate": "no_such_module.NoGate", "password": "hunter2-site-secret"},
    }


async def wait_final(manager: Any, job_id: str, timeout: float = 20) -> Any:
    """Wait until the job is final (through the manager)."""
    return await manager.wait(job_id, timeout=timeout)


async def submit(api: Any, spec: dict[str, Any]) -> dict[str, Any]:
    response = await api("jobs", json_body=spec)
    assert response.code == 201, response.body
    return body(response)


# -- submission --------------------------------------------------------------------------------------


async def test_submit_json_created_with_location_and_runs(api: Any, swm_started: Any) -> None:
    response = await api("jobs", json_body={"command": ["sh", "-c", "echo hello; echo oops >&2"], "name": "hi"})
    assert response.code == 201
    job = body(response)
    assert job["name"] == "hi" and job["state"] in ("queued", "waiting", "running")
    assert job["state_code"] in "QWR"
    assert response.headers["Location"].endswith(f"/swm/api/v1/jobs/{job['id']}")
    assert job["owner"], "the owner is the authenticated user's name"
    assert {"spec", "history", "folder"} <= set(job)
    done = await wait_final(swm_started, job["id"])
    assert done.exit_code == 0
    shown = body(await api("jobs", job["id"]))
    assert shown["state"] == "finished" and shown["exit_code"] == 0
    assert next(h["code"] for h in shown["history"]) == "Q" and shown["history"][-1]["code"] == "F"


async def test_submit_raw_script_reads_swm_lines_and_query_overrides(api: Any) -> None:
    script = "#!/bin/sh\n#SWM name from-directive\n#SWM cpus 2\n#SWM priority 5\necho script\n"
    response = await api(
        "jobs",
        method="POST",
        body=script,
        headers={"Content-Type": "text/x-shellscript"},
        params={"name": "from-query"},
    )
    assert response.code == 201, response.body
    job = body(response)
    assert job["name"] == "from-query"
    assert job["priority"] == 5 and job["spec"]["resources"]["cpus"] == 2
    assert "Location" in response.headers


async def test_submit_script_in_json(api: Any) -> None:
    job = await submit(api, {"script": "#SWM name js\n#SWM priority 1\necho hi\n", "priority": 3, "hold": True})
    assert job["name"] == "js" and job["priority"] == 3 and job["state"] == "held"


async def test_bad_directive_names_the_line(api: Any) -> None:
    response = await api("jobs", json_body={"script": "#SWM cpus bogus\necho\n"})
    assert response.code == 400
    data = body(response)
    assert "bogus" in data["message"] and data["errors"][0]["field"] == "line 1"
    unknown = await api("jobs", json_body={"script": "#SWM bogus 1\necho\n", "hold": True})
    assert unknown.code == 201, "an unknown directive is ignored with a warning (SwmApp.strict_directives refuses it)"
    assert body(unknown)["warnings"][0].startswith("line 1: unknown directive 'bogus'")


async def test_submit_list_is_one_transaction(api: Any) -> None:
    before = body(await api("jobs"))["total"]
    bad = [{"command": ["true"], "hold": True}, {"command": "not-a-list", "resources": {"cpus": 0}}]
    response = await api("jobs", json_body=bad)
    assert response.code == 400
    fields = {e["field"] for e in body(response)["errors"]}
    assert {"1.command", "1.resources.cpus"} <= fields
    assert body(await api("jobs"))["total"] == before, "nothing stored when one job is bad"
    response = await api("jobs", json_body=[{"command": ["true"], "hold": True, "name": f"m{i}"} for i in range(3)])
    assert response.code == 201
    jobs = body(response)["jobs"]
    assert [j["name"] for j in jobs] == ["m0", "m1", "m2"]
    assert body(await api("jobs"))["total"] == before + 3


async def test_submit_notebook_with_parameters(api: Any, jp_root_dir: Path) -> None:
    notebook = jp_root_dir / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    job = await submit(api, {"notebook": "analysis.ipynb", "parameters": {"alpha": 0.5}, "hold": True})
    assert job["spec"]["notebook"] == "analysis.ipynb" and job["spec"]["parameters"] == {"alpha": 0.5}
    response = await api("jobs", json_body={"notebook": "missing.ipynb"})
    assert response.code == 400 and "missing.ipynb" in body(response)["message"]
    response = await api("jobs", json_body={"notebook": "../outside.ipynb"})
    assert response.code == 400


async def test_dry_run_stores_nothing(api: Any) -> None:
    response = await api("jobs", json_body={"command": ["true"], "array": "0-9"}, params={"dry_run": "1"})
    assert response.code == 200
    data = body(response)
    assert "id" not in data["job"] and data["tasks"] == 10 and "cost_estimate" in data
    assert body(await api("jobs"))["total"] == 0


async def test_validation_lists_every_bad_field(api: Any) -> None:
    response = await api(
        "jobs", json_body={"command": "echo", "resources": {"cpus": 0, "walltime": "soon"}, "bogus": 1, "priority": "x"}
    )
    assert response.code == 400
    data = body(response)
    fields = {e["field"] for e in data["errors"]}
    assert {"command", "resources.cpus", "resources.walltime", "bogus", "priority"} <= fields
    assert all(e["message"] for e in data["errors"])
    assert "Traceback" not in response.body.decode()


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"[1, 2", "application/json"),
        (b'"a string"', "application/json"),
        (b"[]", "application/json"),
        (b"\xff\xfe", "text/x-shellscript"),
        (b'{"command": ["true"], "priority": 1e999}', "application/json"),
        (b'{"command": ["\\ud800"]}', "application/json"),
    ],
)
async def test_malformed_bodies_are_400(api: Any, payload: bytes, content_type: str) -> None:
    response = await api("jobs", method="POST", body=payload, headers={"Content-Type": content_type})
    assert response.code == 400
    data = body(response)
    assert data["message"] and isinstance(data["errors"], list)


async def test_unknown_site_is_400_and_unavailable_site_is_503(api: Any) -> None:
    response = await api("jobs", json_body={"command": ["true"], "site": "mars"})
    assert response.code == 400 and body(response)["errors"][0]["field"] == "site"
    response = await api("jobs", json_body={"command": ["true"], "site": "broken"})
    assert response.code == 503
    assert "failed to load" in body(response)["message"]


async def test_oversized_body_is_413(api: Any, jp_serverapp: Any) -> None:
    app = jp_serverapp.web_app.settings["swm_app"]
    assert app.max_body_bytes == 16 * 1024 * 1024, "the default limit is 16 MiB"
    app.max_body_bytes = 2000
    script = "echo hi\n" + "#" * 3000
    response = await api("jobs", method="POST", body=script, headers={"Content-Type": "text/x-shellscript"})
    assert response.code == 413
    assert "max_body_bytes" in body(response)["message"]
    response = await api("jobs", json_body={"script": script})
    assert response.code == 413
    response = await api("jobs", json_body={"command": ["true"], "hold": True})
    assert response.code == 201


# -- reads, filters, pagination -------------------------------------------------------------------------


async def test_unknown_job_site_and_route_are_404(api: Any) -> None:
    for parts in (("jobs", "nope"), ("jobs", "nope", "log"), ("jobs", "nope", "files"), ("sites", "mars"), ("bogus",)):
        response = await api(*parts)
        assert response.code == 404, parts
        assert body(response)["message"]
    for action in ("hold", "release", "requeue", "cancel"):
        response = await api("jobs", "nope", action, method="POST")
        assert response.code == 404
    assert (await api("jobs", "nope", method="DELETE")).code == 404


async def test_job_prefix_lookup(api: Any) -> None:
    job = await submit(api, {"command": ["true"], "hold": True})
    assert body(await api("jobs", job["id"][:8]))["id"] == job["id"]


async def test_list_filters_sorting_and_counts(api: Any) -> None:
    await api(
        "jobs", json_body=[{"command": ["true"], "hold": True, "name": f"alpha-{i}", "priority": i} for i in range(3)]
    )
    await api("jobs", json_body=[{"command": ["true"], "hold": True, "name": f"beta-{i}"} for i in range(2)])
    cutoff = time.time()
    await asyncio.sleep(0.01)
    late = await submit(api, {"command": ["true"], "hold": True, "name": "gamma"})
    await api("jobs", late["id"], "cancel", method="POST")

    page = body(await api("jobs"))
    assert page["total"] == 6 and page["counts"]["held"] == 5 and page["counts"]["canceled"] == 1
    assert page["jobs"][0]["name"] == "gamma", "newest first by default"
    assert set(page["jobs"][0]) >= {"id", "state", "state_code", "submit_time"} and "spec" not in page["jobs"][0]

    assert body(await api("jobs", params={"name": "alpha"}))["total"] == 3
    assert body(await api("jobs", params={"state": "C"}))["total"] == 1
    assert body(await api("jobs", params={"state": "held,canceled"}))["total"] == 6
    assert body(await api("jobs", params={"site": "local"}))["total"] == 6
    assert body(await api("jobs", params={"site": "other"}))["total"] == 0
    assert [j["name"] for j in body(await api("jobs", params={"since": str(cutoff)}))["jobs"]] == ["gamma"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(cutoff + 2))  # whole seconds
    assert body(await api("jobs", params={"since": iso}))["total"] == 0
    by_priority = body(await api("jobs", params={"sort": "priority", "name": "alpha"}))["jobs"]
    assert [j["name"] for j in by_priority] == ["alpha-2", "alpha-1", "alpha-0"]
    by_name = body(await api("jobs", params={"sort": "name"}))["jobs"]
    assert [j["name"] for j in by_name][:2] == ["alpha-0", "alpha-1"]
    oldest = body(await api("jobs", params={"sort": "submit_time"}))["jobs"]
    assert oldest[-1]["name"] == "gamma"


async def test_pagination_by_cursor_and_offset(api: Any) -> None:
    await api("jobs", json_body=[{"command": ["true"], "hold": True, "name": f"p{i:02d}"} for i in range(25)])
    seen: list[str] = []
    params: dict[str, str] = {"limit": "10"}
    while True:
        page = body(await api("jobs", params=params))
        assert page["total"] == 25
        seen.extend(j["name"] for j in page["jobs"])
        if not page["next_cursor"]:
            break
        params = {"limit": "10", "cursor": page["next_cursor"]}
    assert seen == [f"p{i:02d}" for i in reversed(range(25))]
    page = body(await api("jobs", params={"limit": "5", "offset": "20"}))
    assert [j["name"] for j in page["jobs"]] == ["p04", "p03", "p02", "p01", "p00"]
    assert page["next_cursor"] is None
    first = body(await api("jobs", params={"limit": "10", "sort": "name"}))
    second = body(await api("jobs", params={"limit": "10", "sort": "name", "cursor": first["next_cursor"]}))
    assert next(j["name"] for j in second["jobs"]) == "p10"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "sleeping"}, "state"),
        ({"sort": "color"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"top_level": "maybe"}, "top_level"),
    ],
)
async def test_bad_list_parameters_are_400(api: Any, params: dict[str, str], field: str) -> None:
    response = await api("jobs", params=params)
    assert response.code == 400
    assert field in {e["field"] for e in body(response)["errors"]}


async def test_array_jobs_and_top_level(api: Any) -> None:
    parent = await submit(api, {"command": ["true"], "array": "0-3", "hold": True, "name": "arr"})
    everything = body(await api("jobs"))
    assert everything["total"] == 5
    top = body(await api("jobs", params={"top_level": "true"}))
    assert [j["id"] for j in top["jobs"]] == [parent["id"]]
    tasks = body(await api("jobs", params={"array_parent": parent["id"], "sort": "submit_time"}))
    assert [j["array_index"] for j in tasks["jobs"]] == [0, 1, 2, 3]


# -- actions ----------------------------------------------------------------------------------------------


async def test_cancel_is_202_then_409(api: Any) -> None:
    job = await submit(api, {"command": ["true"], "hold": True})
    response = await api("jobs", job["id"], method="DELETE")
    assert response.code == 202 and body(response)["state"] == "canceled"
    response = await api("jobs", job["id"], method="DELETE")
    assert response.code == 409 and "already ended" in body(response)["message"]


async def test_cancel_running_job(api: Any, swm_started: Any) -> None:
    job = await submit(api, {"command": ["sleep", "30"]})
    for _ in range(100):
        if body(await api("jobs", job["id"]))["state"] == "running":
            break
        await asyncio.sleep(0.05)
    response = await api("jobs", job["id"], method="DELETE")
    assert response.code == 202
    done = await wait_final(swm_started, job["id"])
    assert done.state.value == "canceled"


async def test_hold_release_requeue_and_illegal_transitions(api: Any, swm_started: Any) -> None:
    job = await submit(api, {"command": ["true"], "hold": True})
    assert (await api("jobs", job["id"], "hold", method="POST")).code == 409
    response = await api("jobs", job["id"], "release", method="POST")
    assert response.code == 200 and body(response)["state"] in ("queued", "waiting", "running", "finished")
    assert (await api("jobs", job["id"], "release", method="POST")).code == 409
    await wait_final(swm_started, job["id"])
    assert (await api("jobs", job["id"], "cancel", method="POST")).code == 409
    assert (await api("jobs", job["id"], "hold", method="POST")).code == 409
    response = await api("jobs", job["id"], "requeue", method="POST")
    assert response.code == 200 and body(response)["state"] in ("queued", "waiting", "running", "finished")
    again = await wait_final(swm_started, job["id"])
    assert again.exit_code == 0
    codes = [h["code"] for h in body(await api("jobs", job["id"]))["history"]]
    assert codes.count("F") == 2 and "H" in codes
    held = await submit(api, {"command": ["true"]})
    response = await api("jobs", held["id"], "hold", method="POST")
    assert response.code in (200, 409)


async def test_bulk_actions_by_ids_and_filter(api: Any) -> None:
    jobs = body(
        await api("jobs", json_body=[{"command": ["true"], "hold": True, "name": f"bulk-{i}"} for i in range(4)])
    )["jobs"]
    other = await submit(api, {"command": ["true"], "hold": True, "name": "keep"})
    ids = [j["id"] for j in jobs[:2]]
    response = await api("jobs", "actions", "cancel", json_body={"ids": [*ids, "nope"]})
    assert response.code == 200
    data = body(response)
    assert data["done"] == ids and data["failed"][0]["id"] == "nope" and data["failed"][0]["message"]
    response = await api("jobs", "actions", "cancel", json_body={"filter": {"name": "bulk", "state": "held"}})
    assert sorted(body(response)["done"]) == sorted(j["id"] for j in jobs[2:])
    assert body(await api("jobs", other["id"]))["state"] == "held"
    response = await api("jobs", "actions", "requeue", json_body={"filter": {"state": ["canceled"]}})
    assert len(body(response)["done"]) == 4
    for bad in (
        {},
        {"ids": "x"},
        {"ids": ["\ud800"]},
        {"ids": [], "filter": {}},
        {"filter": {"color": "red"}},
        {"filter": {"state": "zz"}},
        {"filter": {"state": True}},
        {"filter": {"state": [1]}},
        {"filter": {"name": True}},
        {"filter": {"owner": "\u008d\udb1f"}},
        {"filter": {"since": "~n"}},
        {"filter": {"since": False}},
    ):
        response = await api("jobs", "actions", "hold", json_body=bad)
        assert response.code == 400, bad
    assert (await api("jobs", "actions", "explode", json_body={"ids": []})).code == 404
    assert (await api("jobs", "actions", "log", json_body={"ids": []})).code == 404
    assert (await api("jobs", "actions")).code == 404


# -- logs and files -----------------------------------------------------------------------------------------


async def test_log_from_offsets(api: Any, swm_started: Any) -> None:
    job = await submit(api, {"command": ["sh", "-c", "printf 'line one\\nline two\\n'; printf err >&2"]})
    await wait_final(swm_started, job["id"])
    response = await api("jobs", job["id"], "log")
    assert response.code == 200 and response.body == b"line one\nline two\n"
    assert response.headers["X-Log-Offset"] == str(len(b"line one\nline two\n"))
    assert response.headers["X-Job-State"] == "finished"
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers["Content-Type"]
    response = await api("jobs", job["id"], "log", params={"offset": "9", "limit": "4"})
    assert response.body == b"line" and response.headers["X-Log-Offset"] == "13"
    response = await api("jobs", job["id"], "log", params={"offset": "1000"})
    assert response.body == b"" and response.headers["X-Log-Offset"] == "1000"
    assert (await api("jobs", job["id"], "log", params={"stream": "stderr"})).body == b"err"
    for params in ({"stream": "stdin"}, {"offset": "-5"}, {"limit": "0"}, {"offset": "x"}):
        response = await api("jobs", job["id"], "log", params=params)
        assert response.code == 400, params


async def test_live_log_tail(api: Any, swm_started: Any) -> None:
    job = await submit(api, {"command": ["sh", "-c", "echo first; sleep 1; echo second"]})
    offset, text = 0, b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = await api("jobs", job["id"], "log", params={"offset": str(offset)})
        text += response.body
        offset = int(response.headers["X-Log-Offset"])
        if response.headers["X-Job-State"] == "finished" and b"second" in text:
            break
        await asyncio.sleep(0.1)
    assert text == b"first\nsecond\n"


async def test_files_list_and_download(api: Any, swm_started: Any) -> None:
    job = await submit(
        api, {"command": ["sh", "-c", "mkdir -p out; echo 42 > out/result.txt; echo '<script>x</script>' > page.html"]}
    )
    await wait_final(swm_started, job["id"])
    files = body(await api("jobs", job["id"], "files"))["files"]
    paths = {f["path"] for f in files}
    assert {"out/result.txt", "page.html", "stdout"} <= paths
    assert not any(p.startswith(".swm") for p in paths)
    assert all(isinstance(f["size"], int) and f["mtime"] > 0 for f in files)
    response = await api("jobs", job["id"], "files", "out/result.txt")
    assert response.code == 200 and response.body == b"42\n"
    assert response.headers["Content-Type"].startswith("text/plain")
    html = await api("jobs", job["id"], "files", "page.html")
    assert "html" not in html.headers["Content-Type"], "never served as runnable html"
    assert html.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in html.headers["Content-Security-Policy"]
    assert (await api("jobs", job["id"], "files", "nothing.txt")).code == 404
    assert (await api("jobs", job["id"], "files", ".swm-status")).code == 404


async def test_path_traversal_is_refused(api: Any, swm_started: Any, tmp_path: Path, jp_fetch: Any) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("top secret")
    job = await submit(api, {"command": ["true"]})
    done = await wait_final(swm_started, job["id"])
    folder = Path(done.folder)
    os.symlink(secret, folder / "link-out")
    os.symlink("/etc", folder / "dir-out")
    (folder / "inside.txt").write_text("fine")
    os.symlink(folder / "inside.txt", folder / "link-in")
    attempts = [
        "../outside-secret.txt",
        "../../outside-secret.txt",
        "%2e%2e/%2e%2e/outside-secret.txt",
        "..%2F..%2Foutside-secret.txt",
        str(secret),
        "%2F" + str(secret).lstrip("/"),
        "link-out",
        "dir-out/passwd",
        "out/../../../outside-secret.txt",
        "%00",
        ".swm-status",
    ]
    for attempt in attempts:
        url = f"/a%40b/swm/api/v1/jobs/{job['id']}/files/{attempt}"
        try:
            response = await jp_fetch(url, raise_error=False)
        except HTTPClientError as exc:  # pragma: no cover - fetch raised anyway
            response = exc.response
        assert response.code in (400, 403, 404), (attempt, response.code)
        assert b"top secret" not in response.body and b"root:" not in response.body
    listing = body(await api("jobs", job["id"], "files"))["files"]
    assert {"inside.txt"} <= {f["path"] for f in listing}
    assert not {"link-out", "dir-out", "link-in"} & {f["path"] for f in listing}
    assert (await api("jobs", job["id"], "files", "inside.txt")).body == b"fine"
    assert (await api("jobs", job["id"], "files", "link-in")).code == 403, "no link is followed, even inside"


# -- sites, the document ------------------------------------------------------------------------------------


async def test_sites(api: Any) -> None:
    for _ in range(100):  # the site's gate is set up in the background after the start hook
        data = body(await api("sites"))
        if data["sites"][0]["healthy"]:
            break
        await asyncio.sleep(0.05)
    assert data["default"] == "local"
    sites = {s["name"]: s for s in data["sites"]}
    assert sites["local"]["healthy"] is True and sites["local"]["kind"] == "local"
    assert sites["local"]["limits"]["cpus"] == 4
    assert sites["broken"]["healthy"] is False and sites["broken"]["health_message"]
    one = body(await api("sites", "local"))
    assert one["name"] == "local" and isinstance(one["flavors"], list) and isinstance(one["images"], list)
    assert "hunter2-site-secret" not in json.dumps(data)


async def test_openapi_document_matches_handlers(api: Any) -> None:
    response = await api("openapi.json")
    assert response.code == 200
    served = body(response)
    assert served["paths"] == openapi_document()["paths"]
    assert served["servers"][0]["url"].endswith("/swm/api/v1")
    yaml_response = await api("openapi.yaml")
    assert yaml_response.code == 200 and b"openapi:" in yaml_response.body
    documented = set()
    for path, item in served["paths"].items():
        for method in item:
            documented.add((method.upper(), re.sub(r"\{[^}]+\}", "X", path)))
    # Every verb of every handler is documented, and every documented operation has a handler.
    from swm_jupyter.handlers.jobs import ACTIONS
    from swm_jupyter.handlers.schedules import SCHEDULE_ACTIONS

    implemented = set()
    for pattern, handler in default_handlers:
        if pattern.endswith("(?P<path>.*)"):
            continue
        route = pattern.replace("/swm/api/v1", "").replace(JOB_ID_PATTERN, "X")
        route = (
            re.sub(r"\(\?P<(job_id|name|path|schedule_id)>[^)]*\)", "X", route).replace("/?", "").replace("\\.", ".")
        )
        if "(?P<ext>" in route:
            routes = [route.replace("(?P<ext>json|yaml)", e) for e in ("json", "yaml")]
        elif "(?P<action>" in route:
            actions = SCHEDULE_ACTIONS if route.startswith("/schedules") else ACTIONS
            routes = [re.sub(r"\(\?P<action>[^)]*\)", a, route) for a in actions]
        else:
            routes = [route]
        for method in ("GET", "POST", "DELETE", "PUT", "PATCH"):
            if method.lower() in handler.__dict__:
                implemented.update((method, r) for r in routes)
    documented = {(m, re.sub("/jobs/actions/X", "/jobs/actions/" + "{action}", p)) for m, p in documented}
    bulk = {("POST", f"/jobs/actions/{a}") for a in ACTIONS}
    assert ("POST", "/jobs/actions/{action}") in documented
    assert implemented - bulk == documented - {("POST", "/jobs/actions/{action}")}


# -- security -----------------------------------------------------------------------------------------------


async def test_every_endpoint_needs_authentication(api: Any, jp_fetch: Any) -> None:
    job = await submit(api, {"command": ["true"], "hold": True})
    calls = [
        ("GET", "jobs"),
        ("POST", "jobs"),
        ("GET", f"jobs/{job['id']}"),
        ("DELETE", f"jobs/{job['id']}"),
        ("POST", f"jobs/{job['id']}/hold"),
        ("POST", "jobs/actions/cancel"),
        ("GET", f"jobs/{job['id']}/log"),
        ("GET", f"jobs/{job['id']}/files"),
        ("GET", f"jobs/{job['id']}/files/stdout"),
        ("GET", "sites"),
        ("GET", "sites/local"),
        ("GET", "openapi.json"),
        ("GET", "nothing-here"),
    ]
    for method, path in calls:
        response = await jp_fetch(
            "swm/api/v1/" + path,
            method=method,
            headers={"Authorization": ""},
            raise_error=False,
            body=b"{}" if method == "POST" else None,
            allow_nonstandard_methods=True,
        )
        assert response.code == 403, (method, path, response.code)
        assert "Traceback" not in response.body.decode(errors="replace")
    assert body(await api("jobs", job["id"]))["state"] == "held", "nothing changed"


async def test_cookie_requests_need_the_xsrf_token(api: Any, jp_fetch: Any, jp_serverapp: Any) -> None:
    token = jp_serverapp.identity_provider.token
    login = await jp_fetch("api", "status", params={"token": token}, headers={"Authorization": ""}, raise_error=False)
    cookies = [c.split(";")[0] for c in login.headers.get_list("Set-Cookie")]
    cookie = "; ".join(cookies)
    assert any(c.startswith("username-") for c in cookies), cookies
    spec = json.dumps({"command": ["true"], "hold": True})
    headers = {"Authorization": "", "Cookie": cookie, "Content-Type": "application/json"}
    no_xsrf = await jp_fetch("swm/api/v1/jobs", method="POST", body=spec, headers=headers, raise_error=False)
    assert no_xsrf.code == 403
    listing = await jp_fetch("swm/api/v1/jobs", headers=headers, raise_error=False)
    assert listing.code == 200, "a same-site GET with the cookie works"
    xsrf = "2|abcdef12|0123456789abcdef0123456789abcdef|1764070000"
    headers = {**headers, "Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf}
    with_xsrf = await jp_fetch("swm/api/v1/jobs", method="POST", body=spec, headers=headers, raise_error=False)
    assert with_xsrf.code == 201, with_xsrf.body


async def test_no_secrets_in_responses(api: Any, jp_serverapp: Any) -> None:
    token = jp_serverapp.identity_provider.token
    job = await submit(
        api,
        {
            "command": ["true"],
            "hold": True,
            "env": {"API_TOKEN": "s3cr3t-value", "AWS_SECRET_ACCESS_KEY": "k3y", "MODE": "fast"},
        },
    )
    assert job["spec"]["env"] == {"API_TOKEN": "***", "AWS_SECRET_ACCESS_KEY": "***", "MODE": "fast"}
    everything = b"".join([(await api("jobs", job["id"])).body, (await api("jobs")).body, (await api("sites")).body])
    for secret in (b"s3cr3t-value", b"k3y", token.encode(), b"hunter2-site-secret"):
        assert secret not in everything


async def test_unexpected_error_is_generic_500(api: Any, swm_started: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def explode(query: Any) -> Any:
        raise RuntimeError("internal detail /very/secret/path")

    monkeypatch.setattr(swm_started, "query_jobs", explode)
    response = await api("jobs")
    assert response.code == 500
    data = body(response)
    assert data == {"message": "internal error in the swm API; the server log has the details", "errors": []}


# -- start and stop -----------------------------------------------------------------------------------------


async def test_locked_store_answers_503_and_server_keeps_running(
    jp_serverapp: Any, jp_fetch: Any, swm_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = JobStore(swm_data_dir / "jobs.sqlite")
    try:
        await jp_serverapp.extension_manager.start_all_extensions()
        app = jp_serverapp.web_app.settings["swm_app"]
        assert app.start_error and "another swm-jupyter manager" in app.start_error
        response = await jp_fetch("swm", "api", "v1", "jobs", raise_error=False)
        assert response.code == 503
        assert "another swm-jupyter manager" in body(response)["message"]
        assert (await jp_fetch("api", "status")).code == 200, "the rest of the server works"
    finally:
        other.close()


async def test_api_before_start_is_503(jp_fetch: Any) -> None:
    response = await jp_fetch("swm", "api", "v1", "sites", raise_error=False)
    assert response.code == 503 and "starting" in body(response)["message"]


async def test_stop_hook_stops_the_manager(jp_serverapp: Any, swm_started: Any) -> None:
    assert swm_started.store is not None
    await jp_serverapp.extension_manager.stop_all_extensions()
    assert swm_started.store is None
