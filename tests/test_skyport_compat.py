"""The Sky Port core's user API (``/user/...``) against a real in-process Jupyter server (pytest-jupyter).

The server runs with :class:`swm_jupyter.auth.SkyPortIdentityProvider`. Requests here are plain
HTTP, so a client certificate is simulated by replacing :func:`swm_jupyter.auth.peer_certificate`
(what the TLS socket would report) for requests carrying a test header; the real TLS path is tested
with ``swmclient`` in ``test_swmclient_tls.py``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from typing import Any

import pytest
from traitlets import Unicode

from swm_jupyter import auth
from swm_jupyter.gates.local import LocalGate
from tests.conftest import body

CN_HEADER = "X-Test-Client-Cn"
ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


class CatalogGate(LocalGate):
    """A local gate that also offers a catalogue of flavors, images and nodes (as a cloud gate would)."""

    kind = "cloud"

    url = Unicode("").tag(config=True)
    account = Unicode("").tag(config=True)
    password = Unicode("").tag(config=True)

    async def describe(self) -> dict[str, Any]:
        """Flavors with prices, a cloud and a container image, two nodes (one down)."""
        info = await super().describe()
        info.pop("host", None)
        info.update(
            {
                "kind": self.kind,
                "cloud_kind": "azure",
                "gate_url": self.url,
                "flavors": [
                    {"id": "f-small", "name": "small", "cpus": 2, "mem": 4096, "storage": 30, "gpus": 0, "price": 0.1},
                    {"id": "f-gpu", "name": "gpu", "cpus": 8, "mem": 65536, "storage": 100, "gpus": 1, "price": 2.5},
                ],
                "images": [
                    {"id": "i-ubuntu", "name": "ubuntu-22.04", "extra": {}},
                    {"id": "i-jupyter", "name": "jupyter/base", "kind": "container", "comment": "notebook image"},
                ],
                "default_flavor": "f-small",
                "default_image": "i-ubuntu",
                "nodes": [
                    {"name": "vm-1", "host": "10.0.0.5", "state": "idle", "cpus": 2, "mem": 4096},
                    {"name": "vm-2", "host": "10.0.0.6", "state": "down", "cpus": 2, "mem": 4096},
                ],
            }
        )
        return info


@pytest.fixture
def swm_sites() -> dict[str, Any]:
    """A local site and a site whose gate offers a catalogue (with a secret option that must not show)."""
    return {
        "local": {"gate": "local", "cpus": 4},
        "cloudy": {
            "gate": "tests.test_skyport_compat.CatalogGate",
            "cpus": 2,
            "url": "https://gate.example.org:8444",
            "account": "acct-1",
            "password": "hunter2-compat-secret",
        },
    }


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    """The shared test server, with the Sky Port identity provider."""
    config = dict(jp_server_config)
    config["ServerApp"] = {
        **config["ServerApp"],
        "identity_provider_class": "swm_jupyter.auth.SkyPortIdentityProvider",
    }
    return config


@pytest.fixture(autouse=True)
def fake_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests with ``X-Test-Client-Cn: name`` look as if they came with a verified certificate."""

    def peer_certificate(handler: Any) -> dict[str, Any] | None:
        name = handler.request.headers.get(CN_HEADER)
        if name is None:
            return None
        return {"subject": ((("organizationName", "Test"),), (("commonName", name),))}

    monkeypatch.setattr(auth, "peer_certificate", peer_certificate)


@pytest.fixture
def user(jp_fetch: Any, swm_started: Any) -> Any:
    """``await user("job", as_cn="alice")``: jp_fetch under /user that never raises on errors.

    ``as_cn`` sends a (simulated) client certificate and no Jupyter token; ``token=False`` sends
    neither; by default the Jupyter token is sent.
    """

    async def call(*parts: str, as_cn: str | None = None, token: bool = True, **kwargs: Any) -> Any:
        headers = kwargs.setdefault("headers", {})
        if as_cn is not None:
            headers[CN_HEADER] = as_cn
            headers.setdefault("Authorization", "Bearer swm")
        elif not token:
            headers.setdefault("Authorization", "")
        kwargs.setdefault("raise_error", False)
        if kwargs.get("method") in ("POST", "PATCH", "PUT") and "body" not in kwargs:
            kwargs["body"] = b""
        return await jp_fetch("user", *parts, **kwargs)

    return call


def multipart(script: str, *, filename: str | None = "job.sh", field: str = "script_content") -> tuple[bytes, str]:
    """A multipart/form-data body with the script as one field (a file when ``filename`` is given)."""
    boundary = uuid.uuid4().hex
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    data = (
        f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: text/plain\r\n\r\n{script}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    return data, f"multipart/form-data; boundary={boundary}"


async def submit(user: Any, script: str, **kwargs: Any) -> str:
    """Submit a script as swmclient does (multipart file field); return the new job id."""
    data, content_type = multipart(script)
    response = await user("job", method="POST", body=data, headers={"Content-Type": content_type}, **kwargs)
    assert response.code == 200, response.body
    assert response.headers["Content-Type"].startswith("text/plain")
    job_id = response.body.decode().splitlines()[0]
    uuid.UUID(job_id)
    return job_id


def assert_error_text(response: Any) -> str:
    """The text of an error answer, checked to be in the shape of Sky Port's core: ``Error: <why>`` as text."""
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers["Content-Type"]
    text = response.body.decode()
    assert text.startswith("Error: ") and text.endswith("\n") and len(text) > len("Error: \n"), text
    return text


def refused_submission(response: Any, status: int) -> str:
    """A refused submission: ``200`` (all that swmclient reads) with the reason, the real status in a header."""
    assert response.code == 200, (response.code, response.body)
    assert response.headers["X-Swm-Status"] == str(status)
    return assert_error_text(response)


SCRIPT = "#!/bin/sh\n#SWM name compat-job\n#SWM cpus 2\n#SWM mem 64M\necho out-$((6*7))\necho err-text >&2\n"


# -- routes and shapes -------------------------------------------------------------------------------


async def test_version_under_the_base_url(user: Any, jp_base_url: str) -> None:
    response = await user()
    assert response.code == 200 and body(response) == {"api_version": 1}
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.effective_url.split("?")[0].endswith(f"{jp_base_url}user")


async def test_submit_get_and_outputs_of_a_finished_job(user: Any, swm_started: Any) -> None:
    job_id = await submit(user, SCRIPT)
    done = await swm_started.wait(job_id, timeout=30)
    assert done.exit_code == 0
    job = body(await user("job", job_id))
    assert set(job) == {
        "id", "name", "state", "state_details", "submit_time", "start_time", "end_time", "duration",
        "exitcode", "signal", "node_names", "node_ips", "remote_id", "flavor_id", "request", "resources",
        "comment", "warnings",
    }  # fmt: skip
    assert job["id"] == job_id and job["name"] == "compat-job" and job["state"] == "F"
    for key in ("submit_time", "start_time", "end_time"):
        assert isinstance(job[key], str) and __import__("re").match(ISO, job[key]), job[key]
    for key in ("duration", "exitcode", "signal"):
        assert isinstance(job[key], int)
    assert job["exitcode"] == 0 and job["signal"] == 0 and job["duration"] >= 0
    assert swm_started.get(job_id).spec.submission_address == "127.0.0.1", "the client's address, as Sky Port"
    assert job["remote_id"] == "local" and job["flavor_id"] == ""
    assert job["node_names"] and all(isinstance(n, str) for n in job["node_names"])
    assert isinstance(job["node_ips"], list)
    request = {r["name"]: r for r in job["request"]}
    assert request["cpus"]["count"] == 2 and request["node"]["count"] == 1
    assert request["mem"]["count"] == 64 * 1024 * 1024, "Sky Port counts memory in bytes"
    assert all(isinstance(r["count"], int) for r in job["request"])
    assert job["resources"] == job["request"]
    stdout = await user("job", job_id, "stdout")
    assert stdout.code == 200 and stdout.body == b"out-42\n"
    stderr = await user("job", job_id, "stderr")
    assert stderr.code == 200 and stderr.body == b"err-text\n"


@pytest.mark.parametrize("how", ["multipart-field", "raw-body", "raw-shellscript"])
async def test_other_submission_forms(user: Any, swm_started: Any, how: str) -> None:
    script = "#SWM name form-test\n#SWM priority 3\necho hi\n"
    if how == "multipart-field":  # what swmclient sends: a file part without a filename
        data, content_type = multipart(script, filename=None)
    else:
        data, content_type = script.encode(), "text/x-shellscript" if how == "raw-shellscript" else "text/plain"
    response = await user("job", method="POST", body=data, headers={"Content-Type": content_type})
    assert response.code == 200, response.body
    job = swm_started.get(response.body.decode().strip())
    assert job.spec.name == "form-test" and job.spec.priority == 3


async def test_list_jobs_oldest_first_and_limit(user: Any) -> None:
    ids = [await submit(user, f"#SWM name list-{i}\n#SWM priority -5\nsleep 0\n") for i in range(3)]
    jobs = body(await user("job"))
    assert [j["id"] for j in jobs] == ids
    assert all(j["state"] in "QWTRFEC" and len(j["state"]) == 1 for j in jobs)
    limited = body(await user("job", params={"limit": "2"}))
    assert [j["id"] for j in limited] == ids[:2]
    assert (await user("job", params={"limit": "-1"})).code == 400
    assert (await user("job", params={"limit": "many"})).code == 400


async def test_held_state_mapping(user: Any, swm_started: Any) -> None:
    job = await swm_started.submit({"script": "echo held\n", "hold": True}, owner="someone")
    shown = body(await user("job", job.id))
    assert shown["state"] == "Q" and "held" in shown["state_details"]
    assert shown["start_time"] == "" and shown["end_time"] == "" and shown["duration"] == 0
    assert shown["resources"] == [] and shown["node_names"] == []
    assert (await user("job", job.id, "stdout")).code == 404, "no output before the job ran"


async def test_cancel_then_cancel_again_is_409(user: Any, swm_started: Any) -> None:
    job = await swm_started.submit({"script": "sleep 30\n", "hold": True})
    response = await user("job", job.id, method="DELETE")
    assert response.code == 200 and response.body.decode().strip() == f"Canceled: {job.id}"
    assert body(await user("job", job.id))["state"] == "C"
    again = await user("job", job.id, method="DELETE")
    assert again.code == 409 and "cancel" in assert_error_text(again)


async def test_requeue_with_the_modification_header(user: Any, swm_started: Any) -> None:
    job_id = await submit(user, "#SWM name rq\necho run\n")
    await swm_started.wait(job_id, timeout=30)
    missing = await user("job", job_id, method="PATCH")
    assert missing.code == 400 and "modification" in assert_error_text(missing)
    unknown = await user("job", job_id, method="PATCH", headers={"modification": "resize"})
    assert unknown.code == 400
    assert swm_started.get(job_id).state.value == "finished", "a refused PATCH changes nothing"
    response = await user("job", job_id, method="PATCH", headers={"modification": "requeue"})
    assert response.code == 200 and response.body.decode().strip() == f"Requeued: {job_id}"
    assert body(await user("job", job_id))["state"] in "QWRF"
    await swm_started.wait(job_id, timeout=30)
    history = [h.state.value for h in swm_started.get(job_id).history]
    assert history.count("finished") == 2, history
    held = await swm_started.submit({"script": "echo x\n", "hold": True})
    assert (await user("job", held.id, method="PATCH", headers={"modification": "requeue"})).code == 409


async def test_unknown_job_and_route_are_404(user: Any) -> None:
    missing = str(uuid.uuid4())
    for parts, kwargs in (
        (("job", missing), {}),
        (("job", missing), {"method": "DELETE"}),
        (("job", missing), {"method": "PATCH", "headers": {"modification": "requeue"}}),
        (("job", missing, "stdout"), {}),
        (("job", missing, "stderr"), {}),
        (("nothing-here",), {}),
        (("job", missing, "stdlog"), {}),
    ):
        response = await user(*parts, **kwargs)
        assert response.code == 404, (parts, response.code)
        assert_error_text(response)


async def test_path_parameter_is_refused_and_reads_nothing(user: Any, swm_started: Any, tmp_path: Any) -> None:
    secret = tmp_path / "server-secret.sh"
    secret.write_text("#SWM name stolen\necho secret\n")
    before = len(body(await user("job")))
    for kwargs in (
        {"params": {"path": str(secret)}},
        {"params": {"path": str(secret)}, "body": b"echo x\n", "headers": {"Content-Type": "text/plain"}},
    ):
        response = await user("job", method="POST", **kwargs)
        assert refused_submission(response, 400).startswith("Error: ?path= is not supported")
    assert len(body(await user("job"))) == before


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"", "text/plain"),
        (b"   \n", "text/plain"),
        (b"\xff\xfe not utf-8", "text/plain"),
        (b"#SWM cpus lots\necho x\n", "text/plain"),
        (b"#SWM ports 53/udp\necho x\n", "text/plain"),
        (multipart("echo x\n", field="other")[0], "form"),
    ],
)
async def test_bad_scripts_are_refused_with_the_reason(
    user: Any, swm_started: Any, data: bytes, content_type: str
) -> None:
    if content_type == "form":
        data, content_type = multipart("echo x\n", field="other")
    before = len(swm_started.jobs)
    response = await user("job", method="POST", body=data, headers={"Content-Type": content_type})
    assert len(refused_submission(response, 400)) > len("Error: ")
    assert len(swm_started.jobs) == before, "nothing was stored"


async def test_remote_sites(user: Any) -> None:
    sites = body(await user("remote"))
    assert [s["id"] for s in sites] == ["local", "cloudy"]
    for site in sites:
        assert set(site) == {"id", "name", "account_id", "server", "port", "kind", "default_image_id",
                             "default_flavor_id"}  # fmt: skip
        assert isinstance(site["port"], int)
    local, cloudy = sites
    assert local["kind"] == "local" and local["server"]
    assert local["account_id"] == "local", "a site's account is its name unless configured"
    assert cloudy["kind"] == "azure" and cloudy["server"] == "gate.example.org" and cloudy["port"] == 8444
    assert cloudy["account_id"] == "acct-1"
    assert cloudy["default_flavor_id"] == "f-small" and cloudy["default_image_id"] == "i-ubuntu"
    assert len(body(await user("remote", params={"limit": "1"}))) == 1


async def test_flavors_and_images(user: Any) -> None:
    flavors = body(await user("flavor"))
    assert [f["id"] for f in flavors] == ["f-small", "f-gpu"]
    gpu = flavors[1]
    assert set(gpu) == {"id", "name", "remote_id", "resources", "price"}
    assert gpu["name"] == "gpu" and gpu["remote_id"] == "cloudy" and gpu["price"] == 2.5
    assert {r["name"]: r["count"] for r in gpu["resources"]} == {"cpus": 8, "mem": 65536, "storage": 100, "gpus": 1}
    images = body(await user("image"))
    assert [(i["id"], i["kind"]) for i in images] == [("i-ubuntu", "cloud"), ("i-jupyter", "container")]
    assert all(set(i) == {"id", "name", "remote_id", "kind", "comment"} for i in images)
    assert images[1]["comment"] == "notebook image" and images[0]["remote_id"] == "cloudy"
    assert len(body(await user("flavor", params={"limit": "1"}))) == 1
    assert body(await user("image", params={"limit": "0"})) == []


async def test_nodes(user: Any, jp_serverapp: Any, swm_started: Any) -> None:
    for _ in range(100):  # a site reports its hosts up once the manager has set it up
        if (await swm_started.describe_site("cloudy"))["healthy"]:
            break
        await asyncio.sleep(0.1)
    nodes = body(await user("node"))
    assert len(nodes) == 3
    for node in nodes:
        assert set(node) == {"id", "name", "host", "api_port", "state_power", "state_alloc", "resources", "roles"}
        assert node["state_power"] in ("up", "down")
        assert node["state_alloc"] in ("idle", "busy", "offline", "stopped", "maint", "loading")
        assert isinstance(node["api_port"], int)
        assert all(set(r) >= {"id", "name", "comment"} for r in node["roles"])
    host, vm1, vm2 = nodes
    mib = 1024 * 1024
    host_mem = {r["name"]: r["count"] for r in host["resources"]}["mem"]
    assert host_mem == swm_started.gates["local"].memory_mb * mib, "node memory is in bytes, as in Sky Port"
    host_disk = {r["name"]: r["count"] for r in host["resources"]}["storage"]
    assert host_disk == shutil.disk_usage(swm_started.data_dir).total, "the job folders' disk, bytes"
    assert {r["name"]: r["count"] for r in vm1["resources"]} == {"cpus": 2, "mem": 4096 * mib}
    assert {r["name"] for r in host["roles"]} >= {"core", "local site"}
    assert host["state_power"] == "up" and host["api_port"] == jp_serverapp.port
    assert (vm1["host"], vm1["state_power"], vm1["state_alloc"]) == ("10.0.0.5", "up", "idle")
    assert (vm2["host"], vm2["state_power"], vm2["state_alloc"]) == ("10.0.0.6", "down", "offline")
    assert len(body(await user("node", params={"limit": "2"}))) == 2


# -- Sky Port job scripts, accounts, warnings --------------------------------------------------------


async def test_sky_port_script_forms_are_stored_with_their_meaning(user: Any, swm_started: Any) -> None:
    script = (
        "#!/bin/sh\n#SWM name wild\n#SWM comment from the wild\n#SWM account_id acct-1\n#SWM image ubuntu-22.04\n"
        "#SWM ports 1234/tcp,8081/tcp/out\n#SWM storage 2G\n#SWM nodes 1\n#SWM submission-address 10.0.0.9\n"
        "#SWM stdout mine.txt\necho to-my-file\n"
    )
    job_id = await submit(user, script)
    job = swm_started.get(job_id)
    assert job.site == "cloudy", "account acct-1 is the cloudy site's"
    spec = job.spec
    assert (spec.account, spec.cloud_image, spec.comment) == ("acct-1", "ubuntu-22.04", "from the wild")
    assert spec.ports == (1234,) and spec.outbound_ports == (8081,) and spec.resources.storage_mb == 2048
    assert spec.submission_address == "10.0.0.9" and spec.stdout == "mine.txt" and spec.warnings == ()
    done = await swm_started.wait(job_id, timeout=30)
    assert done.exit_code == 0
    assert (await swm_started.open_file(job_id, "mine.txt")).read() == b"to-my-file\n", "#SWM stdout is honoured"
    shown = body(await user("job", job_id))
    assert shown["comment"] == "from the wild" and shown["warnings"] == []
    request = {r["name"]: r for r in shown["request"]}
    assert request["ports"] == {"name": "ports", "count": 2, "value": "1234/tcp/in,8081/tcp/out"}
    assert request["storage"]["count"] == 2048 * 1024 * 1024
    assert request["submission-address"]["value"] == "10.0.0.9"


#: The job script of Sky Port's own JupyterHub spawner, as it renders it (with no input files).
SPAWNER_SCRIPT = """#!/bin/bash
#
# This is a job script that is executed by Sky Port on a compute node.

#SWM relocatable
#SWM flavor f-small
#SWM ports 8888/tcp/in,8081/tcp/out
#SWM account acct-1
#SWM cloud-image ubuntu-22.04
#SWM container-image jupyter/datascience-notebook:hub-3.1.1
#SWM input-files \n
export HOME=$(pwd)
echo Start single user jupyter server
"""


async def test_the_sky_port_spawners_own_script(user: Any, swm_started: Any) -> None:
    job = swm_started.get(await submit(user, SPAWNER_SCRIPT))
    spec = job.spec
    assert job.site == "cloudy" and spec.relocatable and spec.flavor == "f-small"
    assert spec.ports == (8888,) and spec.outbound_ports == (8081,) and spec.input_files == ()
    assert spec.container_image == "jupyter/datascience-notebook:hub-3.1.1" and spec.warnings == ()


async def test_account_chooses_the_site(user: Any, swm_started: Any) -> None:
    to_cloudy = swm_started.get(await submit(user, "#SWM account acct-1\necho x\n"))
    to_local = swm_started.get(await submit(user, "#SWM account local\necho x\n"))
    named = swm_started.get(await submit(user, "#SWM site local\n#SWM account acct-1\necho x\n"))
    plain = swm_started.get(await submit(user, "echo x\n"))
    assert (to_cloudy.site, to_local.site, named.site, plain.site) == ("cloudy", "local", "local", "local")
    before = len(swm_started.jobs)
    response = await user(
        "job", method="POST", body=b"#SWM account nobody\necho x\n", headers={"Content-Type": "text/plain"}
    )
    text = refused_submission(response, 400)
    assert "'nobody'" in text and "local, acct-1" in text
    with pytest.raises(Exception, match="known accounts: local, acct-1"):
        await swm_started.submit({"script": "echo x\n", "account": "nobody"})
    assert len(swm_started.jobs) == before


async def test_unknown_directive_is_a_warning_everywhere_unless_strict(user: Any, api: Any, swm_started: Any) -> None:
    script = "#!/bin/sh\n#SWM name warned\n#SWM frobnicate 3\necho x\n"
    data, content_type = multipart(script)
    response = await user("job", method="POST", body=data, headers={"Content-Type": content_type})
    assert response.code == 200 and "X-Swm-Status" not in response.headers
    job_id, warning = response.body.decode().splitlines()
    assert warning.startswith("Warning: line 3: unknown directive 'frobnicate'"), warning
    assert swm_started.get(job_id).spec.warnings == (warning.removeprefix("Warning: "),)
    assert body(await user("job", job_id))["warnings"] == [warning.removeprefix("Warning: ")]
    native = await api("jobs", method="POST", body=script.encode(), headers={"Content-Type": "text/x-shellscript"})
    assert native.code == 201 and body(native)["warnings"][0].startswith("line 3: unknown directive")
    assert body(await api("jobs", body(native)["id"]))["spec"]["warnings"] == body(native)["warnings"]
    dry = await api("jobs", params={"dry_run": "1"}, json_body={"script": script})
    assert dry.code == 200 and body(dry)["warnings"] == body(native)["warnings"]
    sneaky = await api("jobs", json_body={"script": "echo x\n", "warnings": ["all is well"]})
    assert sneaky.code == 201 and body(sneaky)["warnings"] == [], "warnings are the server's own"

    swm_started.strict_directives = True
    try:
        before = len(swm_started.jobs)
        refused = await user("job", method="POST", body=data, headers={"Content-Type": content_type})
        assert "unknown directive 'frobnicate'" in refused_submission(refused, 400)
        strict = await api("jobs", method="POST", body=script.encode(), headers={"Content-Type": "text/x-shellscript"})
        assert strict.code == 400 and "frobnicate" in body(strict)["message"]
        assert (await api("jobs", params={"dry_run": "1"}, json_body={"script": script})).code == 400
        assert len(swm_started.jobs) == before
    finally:
        swm_started.strict_directives = False


async def test_no_secret_in_any_answer(user: Any) -> None:
    for route in ("remote", "flavor", "image", "node", "job"):
        assert b"hunter2" not in (await user(route)).body


# -- identity and ownership --------------------------------------------------------------------------


ROUTES = [
    ("GET", ()),
    ("GET", ("job",)),
    ("POST", ("job",)),
    ("GET", ("job", "x")),
    ("DELETE", ("job", "x")),
    ("PATCH", ("job", "x")),
    ("GET", ("job", "x", "stdout")),
    ("GET", ("job", "x", "stderr")),
    ("GET", ("remote",)),
    ("GET", ("flavor",)),
    ("GET", ("image",)),
    ("GET", ("node",)),
    ("GET", ("elsewhere",)),
]


@pytest.mark.parametrize(("method", "parts"), ROUTES)
async def test_every_route_needs_a_token_or_certificate(user: Any, method: str, parts: tuple[str, ...]) -> None:
    for headers in ({}, {"Authorization": "Bearer swm"}, {"Authorization": "token wrong"}):
        response = await user(*parts, method=method, token=False, headers=dict(headers))
        assert response.code == 403, (method, parts, headers, response.code)


async def test_bearer_placeholder_does_not_break_token_auth(user: Any, jp_serverapp: Any) -> None:
    token = jp_serverapp.identity_provider.token
    assert (await user("job", headers={"Authorization": f"Bearer {token}"})).code == 200
    assert (await user("job", headers={"Authorization": f"token {token}"})).code == 200
    assert (await user("job", headers={"Authorization": "Bearer swm"}, params={"token": token})).code == 200


async def test_certificate_users_see_and_change_only_their_jobs(user: Any, swm_started: Any) -> None:
    alice_job = await submit(user, "#SWM name alice-job\nsleep 30\n", as_cn="alice")
    bob_job = await submit(user, "#SWM name bob-job\nsleep 30\n", as_cn="bob")
    assert swm_started.get(alice_job).owner == "alice" and swm_started.get(bob_job).owner == "bob"
    owner_job = await submit(user, "#SWM name owner-job\necho x\n")
    assert [j["id"] for j in body(await user("job", as_cn="alice"))] == [alice_job]
    assert [j["id"] for j in body(await user("job", as_cn="bob"))] == [bob_job]
    everything = {j["id"] for j in body(await user("job"))}
    assert {alice_job, bob_job, owner_job} <= everything, "the Jupyter token holder owns the server"
    for kwargs in (
        {},
        {"method": "DELETE"},
        {"method": "PATCH", "headers": {"modification": "requeue"}},
    ):
        response = await user("job", alice_job, as_cn="bob", **kwargs)
        assert response.code == 404, kwargs
    for stream in ("stdout", "stderr"):
        assert (await user("job", alice_job, stream, as_cn="bob")).code == 404
    assert (await user("job", owner_job, as_cn="alice")).code == 404
    untouched = swm_started.get(alice_job)
    assert untouched.state.value != "canceled" and untouched.wanted is None, "bob changed nothing"
    response = await user("job", alice_job, method="DELETE", as_cn="alice")
    assert response.code == 200 and response.body.decode().strip() == f"Canceled: {alice_job}"
    response = await user("job", bob_job, method="DELETE")
    assert response.code == 200, "the token holder may cancel anyone's job"


async def test_certificate_opens_only_the_sky_port_routes(user: Any, jp_fetch: Any) -> None:
    headers = {CN_HEADER: "alice", "Authorization": "Bearer swm"}
    assert (await user("job", as_cn="alice")).code == 200
    for parts in (("swm", "api", "v1", "jobs"), ("swm", "api", "v1", "sites"), ("api", "contents"), ("api", "me")):
        response = await jp_fetch(*parts, headers=dict(headers), raise_error=False)
        assert response.code == 403, parts
    response = await user("job", as_cn="alice")
    assert "Set-Cookie" not in response.headers, "a certificate never turns into a login cookie"


async def test_certificate_from_a_browser_needs_xsrf(user: Any) -> None:
    data, content_type = multipart("echo x\n")
    response = await user(
        "job",
        method="POST",
        body=data,
        as_cn="alice",
        headers={"Content-Type": content_type, "Origin": "https://evil.example.org"},
    )
    assert response.code in (403, 404), response.code
    response = await user(
        "job", method="POST", body=data, as_cn="alice", headers={"Content-Type": content_type, "Sec-Fetch-Mode": "cors"}
    )
    assert response.code == 403
    assert body(await user("job", as_cn="alice")) == []


async def test_certificate_without_common_name_is_refused(user: Any) -> None:
    assert (await user("job", as_cn="")).code == 403
    assert (await user("job", as_cn="x" * 200)).code == 403


def test_certificate_helpers() -> None:
    cert = {"subject": ((("countryName", "DE"),), (("organizationName", "Lab"),), (("commonName", "carol"),))}
    assert auth.certificate_username(cert) == "carol"
    assert auth.subject_text(cert) == "C=DE,O=Lab,CN=carol"
    assert auth.certificate_username({"subject": ((("organizationName", "Lab"),),)}) is None
    assert auth.certificate_username({}) is None and auth.certificate_username(None) is None
    assert auth.certificate_username({"subject": ((("commonName", "x" * 200),),)}) is None
    assert json.dumps(cert)
