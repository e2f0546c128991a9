"""The published Sky Port client ``swmclient``, unchanged, against a real ``jupyter server`` over TLS.

The test makes a CA, a server certificate and client certificates with ``openssl``, starts
``jupyter server`` as a subprocess with ``certfile``/``keyfile``/``client_ca`` and the
:class:`~swm_jupyter.auth.SkyPortIdentityProvider`, under a base URL with a path, and drives it
with ``swmclient.api.SwmApi`` exactly as Sky Port terminals do.
"""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from swmclient.api import SwmApi
from swmclient.generated.models.job_state import JobState as ClientJobState

from tests.conftest import TOKEN, free_port

BASE_URL = "/sky/"
SCRIPT = "#!/bin/sh\n#SWM name tls-job\n#SWM cpus 1\n#SWM mem 32M\necho stdout-$((20+22))\necho stderr-line >&2\n"


def openssl(*args: str, cwd: Path) -> None:
    """Run ``openssl`` quietly; fail the test with its output if it fails."""
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"openssl {' '.join(args)}: {result.stderr}"


def make_cert(folder: Path, name: str, ca: str, *, server: bool = False) -> tuple[Path, Path]:
    """A key and a certificate with CN=name signed by the CA ``ca`` (``ca.pem``/``ca.key`` prefix)."""
    key, csr, cert, ext = (folder / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "ext"))
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", f"/O=swm-jupyter tests/CN={name}", cwd=folder)  # fmt: skip
    if server:
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    else:
        ext.write_text("extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-sha256", "-extfile", str(ext), cwd=folder)  # fmt: skip
    return key, cert


def make_ca(folder: Path, name: str) -> Path:
    """A self-signed test CA: ``name.pem`` and ``name.key`` in ``folder``."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/O=swm-jupyter tests/CN={name}", cwd=folder)  # fmt: skip
    return folder / f"{name}.pem"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A CA with a server certificate and clients alice, bob and carol; and a client of another CA (mallory)."""
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    out: dict[str, Any] = {"ca": ca}
    out["server"] = make_cert(folder, "server", "ca", server=True)
    for name in ("alice", "bob", "carol"):
        out[name] = make_cert(folder, name, "ca")
    out["mallory"] = make_cert(folder, "mallory", "other-ca")
    return out


class TlsServer:
    """A ``jupyter server`` subprocess with TLS, a client CA and the Sky Port identity provider."""

    def __init__(self, base: Path, pki: dict[str, Any], *, cert_optional: bool = False) -> None:
        self.base = base
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}{BASE_URL.rstrip('/')}"
        self.pki = pki
        self.log_path = base / "server.log"
        key, cert = pki["server"]
        config = {
            "ServerApp": {
                "certfile": str(cert),
                "keyfile": str(key),
                "client_ca": str(pki["ca"]),
                "identity_provider_class": "swm_jupyter.auth.SkyPortIdentityProvider",
                "base_url": BASE_URL,
                "port": self.port,
                "ip": "127.0.0.1",
                "open_browser": False,
                "allow_root": True,
                "root_dir": str(base / "root"),
                "jpserver_extensions": {"swm_jupyter": True, "jupyterlab": False, "jupyter_lsp": False},
            },
            "IdentityProvider": {"token": TOKEN},
            "SwmApp": {
                "data_dir": str(base / "swm-data"),
                "poll_interval": 0.5,
                # The test's certificate users run jobs under the server's own account (local sites).
                "allow_shared_account": True,
                "sites": {
                    "local": {"gate": "local", "cpus": 2},
                    "cloudy": {
                        "gate": "tests.test_skyport_compat.CatalogGate",
                        "cpus": 1,
                        "url": "https://gate:8444",
                        "account": "acct-9",
                    },
                },
            },
        }
        if cert_optional:  # browsers without a certificate may connect; certificates still verified
            config["ServerApp"]["ssl_options"] = {"cert_reqs": int(ssl.CERT_OPTIONAL)}
        self.config_path = base / "jupyter_server_config.json"
        self.config_path.write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> TlsServer:
        """Start the server and wait until it answers a client with a certificate."""
        (self.base / "root").mkdir(exist_ok=True)
        for name in ("in-a.txt", "in-b.txt"):  # input files of the scripts below (under the server's root)
            (self.base / "root" / name).write_text(f"{name} says hi\n")
        env = dict(os.environ)
        env.update(
            {
                "JUPYTER_CONFIG_DIR": str(self.base / "config"),
                "JUPYTER_RUNTIME_DIR": str(self.base / "runtime"),
                "JUPYTER_DATA_DIR": str(self.base / "data"),
                "JUPYTER_PLATFORM_DIRS": "1",
                "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]),
            }
        )
        cmd = [sys.executable, "-m", "jupyter_server", f"--config={self.config_path}"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.base)
        deadline = time.monotonic() + timeout
        with self.client("alice") as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"jupyter server exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if client.get(f"{self.url}/user/remote").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
        raise RuntimeError(f"jupyter server did not answer in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def context(self, who: str | None) -> ssl.SSLContext:
        """A client TLS context trusting the test CA, with ``who``'s certificate (None: no certificate)."""
        context = ssl.create_default_context(cafile=str(self.pki["ca"]))
        if who is not None:
            key, cert = self.pki[who]
            context.load_cert_chain(str(cert), str(key))
        return context

    def client(self, who: str | None) -> httpx.Client:
        """An httpx client for raw requests, as ``who``."""
        return httpx.Client(verify=self.context(who), timeout=10)

    def api(self, who: str) -> SwmApi:
        """The published client, set up as Sky Port terminals set it up."""
        key, cert = self.pki[who]
        return SwmApi(self.url, str(key), str(cert), str(self.pki["ca"]))

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Any]) -> Iterator[TlsServer]:
    """One TLS server for the module (client certificates required, Jupyter's default with client_ca)."""
    server = TlsServer(tmp_path_factory.mktemp("tls-server"), pki)
    try:
        yield server.start()
    finally:
        server.stop()


def wait_for(get: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30) -> Any:
    """Call ``get`` until ``done`` accepts its answer; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    value = get()
    while not done(value):
        assert time.monotonic() < deadline, f"still {value!r} after {timeout}s"
        time.sleep(0.3)
        value = get()
    return value


def test_swmclient_catalogue(tls_server: TlsServer) -> None:
    api = tls_server.api("alice")
    sites = api.get_remote_sites()
    assert sites is not None and [s.id for s in sites] == ["local", "cloudy"]
    assert sites[1].kind == "azure" and sites[1].default_flavor_id == "f-small" and isinstance(sites[1].port, int)
    flavors = api.get_flavors()
    assert flavors is not None and [(f.name, f.price) for f in flavors] == [("small", 0.1), ("gpu", 2.5)]
    assert {r.name: r.count for r in flavors[1].resources} == {"cpus": 8, "mem": 65536, "storage": 100, "gpus": 1}
    images = api.get_images()
    assert images is not None
    assert [(i.id, i.kind) for i in images] == [("i-ubuntu", "cloud"), ("i-jupyter", "container")]
    nodes = api.get_nodes()
    assert nodes is not None and len(nodes) == 3
    assert nodes[0].api_port == tls_server.port and nodes[0].state_power.value == "up"
    assert {r.name for r in nodes[0].roles} >= {"core"}
    assert [n.host for n in nodes[1:]] == ["10.0.0.5", "10.0.0.6"]
    mem = {n.name: {r.name: r.count for r in n.resources}["mem"] for n in nodes}
    assert mem["vm-1"] == 4096 * 1024 * 1024, "node memory in bytes, as Sky Port's core reports it"
    assert mem[nodes[0].name] > 64 * 1024 * 1024, "the Jupyter host's memory in bytes, not MB"
    assert [(s.id, s.account_id) for s in sites] == [("local", "local"), ("cloudy", "acct-9")]


#: Sky Port's own directives, each with its meaning.
SKY_PORT_SET = """#!/bin/sh
#SWM name sky-set
#SWM comment the whole Sky Port set
#SWM account acct-9
#SWM flavor f-small
#SWM cloud-image ubuntu-22.04
#SWM container-image python:3.12
#SWM gpus 0
#SWM ports 8888/tcp/in,8081/tcp/out
#SWM submission-address 10.1.1.1
#SWM relocatable
#SWM input-files in-a.txt
#SWM input-files in-b.txt
#SWM output-files made.txt
#SWM stdin in-a.txt
#SWM stdout my-out.txt
#SWM stderr my-err.txt
cat; cat in-b.txt; echo to-stderr >&2; echo made > made.txt
"""
#: The forms scripts in the wild use.
WILD_FORMS = """#!/bin/sh
#SWM name wild-forms
#SWM account_id acct-9
#SWM image ubuntu-22.04
#SWM input in-a.txt
#SWM output made.txt
#SWM nodes 1
#SWM storage 1G
#SWM ports 8888/tcp
#SWM workdir /tmp
pwd
"""


def stored_spec(server: TlsServer, job_id: str) -> dict[str, Any]:
    """The job's stored spec, read with the server's token through the native API."""
    with server.client("alice") as client:
        response = client.get(f"{server.url}/swm/api/v1/jobs/{job_id}", headers={"Authorization": f"token {TOKEN}"})
        assert response.status_code == 200, response.text
        return dict(response.json()["spec"])


def submit_text(api: SwmApi, script: str) -> list[str]:
    """Submit with swmclient; the lines of the answer (what Sky Port's console prints)."""
    answer = api.submit_job(io.BytesIO(script.encode()))
    assert answer is not None, "swmclient got no answer it could read"
    return answer.payload.read().decode().splitlines()


def test_swmclient_submits_every_directive_form(tls_server: TlsServer) -> None:
    api = tls_server.api("carol")
    (job_id,) = submit_text(api, SKY_PORT_SET)
    spec = stored_spec(tls_server, job_id)
    assert spec["name"] == "sky-set" and spec["comment"] == "the whole Sky Port set"
    assert (spec["account"], spec["flavor"], spec["cloud_image"]) == ("acct-9", "f-small", "ubuntu-22.04")
    assert spec["container_image"] == "python:3.12" and spec["resources"]["gpus"] == 0
    assert spec["ports"] == [8888] and spec["outbound_ports"] == [8081]
    assert spec["submission_address"] == "10.1.1.1" and spec["relocatable"] is True
    assert spec["input_files"] == ["in-a.txt", "in-b.txt"] and spec["output_files"] == ["made.txt"]
    assert (spec["stdin"], spec["stdout"], spec["stderr"]) == ("in-a.txt", "my-out.txt", "my-err.txt")
    assert spec["warnings"] == []
    job = wait_for(lambda: api.get_job(job_id), lambda j: j.state in (ClientJobState.F, ClientJobState.E))
    assert job.state == ClientJobState.F and job.exitcode == 0, job.state_details
    assert job.remote_id == "cloudy", "account acct-9 chose the cloudy site"
    assert job.comment == "the whole Sky Port set"
    with tls_server.client("alice") as client:
        token = {"Authorization": f"token {TOKEN}"}
        files = f"{tls_server.url}/swm/api/v1/jobs/{job_id}/files"
        assert client.get(f"{files}/my-out.txt", headers=token).text == "in-a.txt says hi\nin-b.txt says hi\n"
        assert client.get(f"{files}/my-err.txt", headers=token).text == "to-stderr\n"

    (wild_id,) = submit_text(api, WILD_FORMS)
    spec = stored_spec(tls_server, wild_id)
    assert (spec["account"], spec["cloud_image"]) == ("acct-9", "ubuntu-22.04")
    assert spec["input_files"] == ["in-a.txt"] and spec["output_files"] == ["made.txt"]
    assert spec["resources"]["nodes"] == 1 and spec["resources"]["storage"] == 1024
    assert spec["ports"] == [8888] and spec["workdir"] == "/tmp"
    wild = wait_for(lambda: api.get_job(wild_id), lambda j: j.state in (ClientJobState.F, ClientJobState.E))
    assert wild.state == ClientJobState.F and wild.remote_id == "cloudy"
    assert {r.name: r.count for r in wild.request}["storage"] == 1024 * 1024 * 1024
    assert api.get_job_stdout(wild_id).payload.read() == b"/tmp\n"


def test_swmclient_reads_warnings_and_refusals(tls_server: TlsServer) -> None:
    api = tls_server.api("carol")
    job_id, warning = submit_text(api, "#SWM name odd\n#SWM checkpoint dmtcp\necho x\n")
    assert warning.startswith("Warning: line 2: unknown directive 'checkpoint'"), warning
    assert api.get_job(job_id)["warnings"] == [warning.removeprefix("Warning: ")]
    for script, needle in (
        ("#SWM cpus lots\necho x\n", "cpus"),
        ("#SWM account nobody\necho x\n", "known accounts: local, acct-9"),
        ("#SWM ports 53/udp\necho x\n", "only tcp"),
    ):
        lines = submit_text(api, script)
        assert lines[0].startswith("Error: ") and needle in lines[0], lines
    assert job_id in [j.id for j in api.get_jobs() or []] and len(api.get_jobs() or []) >= 1


def test_swmclient_job_lifecycle(tls_server: TlsServer) -> None:
    api = tls_server.api("alice")
    answer = api.submit_job(io.BytesIO(SCRIPT.encode()))
    assert answer is not None, "submit answered an error"
    job_id = answer.payload.read().decode().splitlines()[0]
    job = api.get_job(job_id)
    assert job.id == job_id and job.name == "tls-job" and job.remote_id == "local"
    assert {r.name: r.count for r in job.request}["mem"] == 32 * 1024 * 1024, "Sky Port counts bytes"
    job = wait_for(lambda: api.get_job(job_id), lambda j: j.state == ClientJobState.F)
    assert job.exitcode == 0 and job.end_time and job.start_time and isinstance(job.duration, int)
    assert api.get_job_stdout(job_id).payload.read() == b"stdout-42\n"
    assert api.get_job_stderr(job_id).payload.read() == b"stderr-line\n"
    assert [j.id for j in api.get_jobs() or []] == [job_id]

    assert api.requeue_job(job_id).decode().strip() == f"Requeued: {job_id}"
    assert api.get_job(job_id).state in (ClientJobState.Q, ClientJobState.W, ClientJobState.R, ClientJobState.F)
    again = wait_for(lambda: api.get_job(job_id), lambda j: j.state == ClientJobState.F)
    assert again.exitcode == 0

    answer = api.submit_job(io.BytesIO(b"#SWM name long\nsleep 60\n"))
    long_id = answer.payload.read().decode().strip()
    wait_for(lambda: api.get_job(long_id), lambda j: j.state == ClientJobState.R)
    assert api.cancel_job(long_id).decode().strip() == f"Canceled: {long_id}"
    canceled = wait_for(lambda: api.get_job(long_id), lambda j: j.state == ClientJobState.C)
    assert canceled.end_time
    assert api.get_job(job_id).state == ClientJobState.F, "canceling one job leaves the other alone"


def test_certificate_users_are_kept_apart(tls_server: TlsServer) -> None:
    alice, bob = tls_server.api("alice"), tls_server.api("bob")
    answer = bob.submit_job(io.BytesIO(b"#SWM name bobs\n#SWM priority 1\nsleep 30\n"))
    bob_id = answer.payload.read().decode().strip()
    assert bob_id in [j.id for j in bob.get_jobs() or []]
    assert bob_id not in [j.id for j in alice.get_jobs() or []]
    assert alice.get_job(bob_id) is None and alice.get_job_stdout(bob_id) is None
    assert alice.cancel_job(bob_id) is not None and bob.get_job(bob_id).state != ClientJobState.C
    assert alice.requeue_job(bob_id) is not None
    with tls_server.client("alice") as client:
        refused = client.delete(f"{tls_server.url}/user/job/{bob_id}", headers={"Authorization": "Bearer swm"})
        assert refused.status_code == 404
        token = client.get(f"{tls_server.url}/user/job", headers={"Authorization": f"token {TOKEN}"})
        assert token.status_code == 200 and bob_id in [j["id"] for j in token.json()], "the token holder sees all"
    assert bob.cancel_job(bob_id).decode().startswith("Canceled")


def test_certificate_opens_only_the_sky_port_routes(tls_server: TlsServer) -> None:
    with tls_server.client("alice") as client:
        for path in ("/swm/api/v1/jobs", "/api/contents", "/api/me", "/api/kernels"):
            response = client.get(f"{tls_server.url}{path}", headers={"Authorization": "Bearer swm"})
            assert response.status_code == 403, path
            assert "set-cookie" not in response.headers
        with_token = client.get(f"{tls_server.url}/swm/api/v1/jobs", headers={"Authorization": f"token {TOKEN}"})
        assert with_token.status_code == 200, "the Jupyter token still works over TLS"


def test_connections_without_a_trusted_certificate_are_refused(tls_server: TlsServer) -> None:
    for who in (None, "mallory"):
        with tls_server.client(who) as client, pytest.raises(httpx.HTTPError):
            client.get(f"{tls_server.url}/user/job", headers={"Authorization": f"token {TOKEN}"})


def test_certificate_optional_lets_token_users_in_without_one(tmp_path: Path, pki: dict[str, Any]) -> None:
    server = TlsServer(tmp_path, pki, cert_optional=True)
    try:
        server.start()
        with server.client(None) as anonymous:
            assert anonymous.get(f"{server.url}/user/job", headers={"Authorization": "Bearer swm"}).status_code == 403
            response = anonymous.get(f"{server.url}/user/job", headers={"Authorization": f"token {TOKEN}"})
            assert response.status_code == 200
        assert server.api("alice").get_jobs() == []
        with server.client("mallory") as client, pytest.raises(httpx.HTTPError):
            client.get(f"{server.url}/user/job")
    finally:
        server.stop()
