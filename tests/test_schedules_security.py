"""Schedules under review: webhooks never reach private addresses unless allowed (SSRF), and an update
that pauses a schedule still checks the job it changes (nothing half-written)."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from swm_jupyter.notifications import deliver_webhook
from swm_jupyter.notifications.addresses import is_public, literal_private_host
from tests.conftest import body


@pytest.fixture
def jp_server_config(swm_data_dir: Path, swm_sites: dict[str, Any]) -> dict[str, Any]:
    """The test server with the runner's defaults (webhooks to public addresses only) and mail to one domain."""
    return {
        "ServerApp": {"jpserver_extensions": {"swm_jupyter": True}},
        "SwmApp": {"data_dir": str(swm_data_dir), "sites": swm_sites, "poll_interval": 0.5, "synchronous": "NORMAL"},
        "ScheduleRunner": {"email_domains": ["example.org"]},
    }


class Receiver(BaseHTTPRequestHandler):
    """Keeps the path of every POST; answers 200."""

    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[str]]]:
    """A webhook receiver on every local address; its port and the paths it got."""
    seen: list[str] = []
    handler = type("R", (Receiver,), {"seen": seen})
    server = ThreadingHTTPServer(("0.0.0.0", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_private_addresses_are_told_apart_from_public_ones() -> None:
    for url in (
        "http://127.0.0.1:8888/api",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://[::1]:80/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00:ec2::254]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://LOCALHOST:9/",
        "http://api.localhost/",
        "http://localhost./",
    ):
        assert literal_private_host(url) is not None, url
    for url in ("https://hooks.example.org/x", "http://8.8.8.8/", "http://[2001:4860:4860::8888]/"):
        assert literal_private_host(url) is None, url
    assert is_public("8.8.8.8") and not is_public("192.168.1.1") and not is_public("not an address")


async def test_webhook_delivery_refuses_private_addresses_unless_allowed(receiver: tuple[int, list[str]]) -> None:
    port, seen = receiver
    # a host *name* resolving to a private address is refused when delivered (DNS rebinding included)
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, port, proto=socket.IPPROTO_TCP)}
    assert addresses and not any(ipaddress.ip_address(a).is_global for a in addresses), addresses
    for url in (f"http://127.0.0.1:{port}/literal", f"http://{name}:{port}/name"):
        result = await deliver_webhook(url, {"event": "x"}, attempts=3, backoff=0.01, timeout=5)
        assert not result.ok and result.attempts == 1, (url, result)
        assert "webhook_allow_private" in result.error and "not retried" in result.error, result.error
    assert seen == [], "nothing reached the private receiver"
    allowed = await deliver_webhook(f"http://{name}:{port}/allowed", {"event": "x"}, timeout=5, allow_private=True)
    assert allowed.ok, allowed
    assert seen == ["/allowed"]


async def test_a_private_webhook_url_is_a_400_and_nothing_is_stored(api: Any) -> None:
    bad = await api(
        "schedules",
        json_body={"job": {"command": ["true"]}, "every": "1h", "webhook": "http://169.254.169.254/latest/meta-data"},
    )
    assert bad.code == 400, bad.body
    errors = body(bad)["errors"]
    assert errors[0]["field"] == "webhook.url" and "webhook_allow_private" in errors[0]["message"], errors
    assert body(await api("schedules"))["schedules"] == [], "nothing was stored"

    made = body(await api("schedules", json_body={"job": {"command": ["true"]}, "every": "1h"}))
    refused = await api(
        "schedules",
        made["id"],
        method="PATCH",
        body=json.dumps({"webhook": {"url": "http://[::1]:8888/api/kernels"}}),
        headers={"Content-Type": "application/json"},
    )
    assert refused.code == 400 and body(refused)["errors"][0]["field"] == "webhook.url", refused.body
    assert body(await api("schedules", made["id"]))["webhook"] is None, "nothing changed"


async def test_pausing_update_still_checks_the_new_job(api: Any) -> None:
    made = body(await api("schedules", json_body={"job": {"command": ["true"]}, "every": "1h"}))
    patch = {"paused": True, "job": {"command": ["true"], "site": "nowhere"}}
    refused = await api(
        "schedules", made["id"], method="PATCH", body=json.dumps(patch), headers={"Content-Type": "application/json"}
    )
    assert refused.code == 400, refused.body
    assert any(e["field"] == "job.site" for e in body(refused)["errors"]), refused.body
    shown = body(await api("schedules", made["id"]))
    assert shown["paused"] is False and "site" not in shown["job"], "nothing changed"


async def test_a_schedule_refuses_private_env_which_is_never_stored(api: Any) -> None:
    job = {"command": ["true"], "private_env": {"HUB_TOKEN": "never-stored-value"}}
    refused = await api("schedules", json_body={"job": job, "every": "1h"})
    assert refused.code == 400, refused.body
    assert body(refused)["errors"][0]["field"] == "job.private_env"
    assert "never-stored-value" not in refused.body.decode()
    assert body(await api("schedules"))["schedules"] == [], "nothing was stored"
    made = body(await api("schedules", json_body={"job": {"command": ["true"]}, "every": "1h"}))
    patched = await api(
        "schedules",
        made["id"],
        method="PATCH",
        body=json.dumps({"job": job}),
        headers={"Content-Type": "application/json"},
    )
    assert patched.code == 400 and body(patched)["errors"][0]["field"] == "job.private_env", patched.body
    assert "private_env" not in body(await api("schedules", made["id"]))["job"], "nothing changed"


async def test_a_request_aiohttp_refuses_is_a_failed_delivery_not_an_exception(receiver: tuple[int, list[str]]) -> None:
    port, seen = receiver
    url = f"http://127.0.0.1:{port}/hook"
    result = await deliver_webhook(url, {"event": "x"}, headers={"X-A": "a\rb"}, attempts=3, allow_private=True)
    assert not result.ok and result.attempts == 1 and "malformed" in result.error, result
    assert seen == []


async def test_email_goes_only_to_the_configured_domains(api: Any) -> None:
    job = {"command": ["true"]}
    refused = await api(
        "schedules", json_body={"job": job, "every": "1h", "email": ["a@lab.example.org", "x@evil.test"]}
    )
    assert refused.code == 400, refused.body
    error = body(refused)["errors"][0]
    assert error["field"] == "email" and "x@evil.test" in error["message"] and "lab.example.org" not in error["message"]
    assert body(await api("schedules"))["schedules"] == [], "nothing was stored"
    made = body(await api("schedules", json_body={"job": job, "every": "1h", "email": ["a@lab.example.org"]}))
    assert made["email"] == ["a@lab.example.org"]
    patched = await api(
        "schedules",
        made["id"],
        method="PATCH",
        body=json.dumps({"email": ["b@example.org.evil.test"]}),
        headers={"Content-Type": "application/json"},
    )
    assert patched.code == 400 and body(patched)["errors"][0]["field"] == "email", patched.body
    assert body(await api("schedules", made["id"]))["email"] == ["a@lab.example.org"], "nothing changed"
