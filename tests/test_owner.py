"""The owner of jobs: one name for the server's token and login cookie (not a random name per request),
the same on every route and in the websocket's hello, so ``?owner=`` finds them (issue 13)."""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import Any

import pytest

from tests.conftest import body

XSRF = "2|abcdef12|0123456789abcdef0123456789abcdef|1764070000"


async def cookie_headers(jp_fetch: Any, token: str) -> dict[str, str]:
    """Headers of a browser that logged in with the token once: its login cookie and an XSRF pair."""
    login = await jp_fetch("api", "status", params={"token": token}, headers={"Authorization": ""}, raise_error=False)
    cookies = [c.split(";")[0] for c in login.headers.get_list("Set-Cookie")]
    assert any(c.startswith("username-") for c in cookies), cookies
    return {"Authorization": "", "Cookie": "; ".join([*cookies, f"_xsrf={XSRF}"]), "X-XSRFToken": XSRF}


async def test_token_and_cookie_submissions_have_one_owner(api: Any, jp_fetch: Any, jp_serverapp: Any) -> None:
    expected = getpass.getuser()
    token = jp_serverapp.identity_provider.token
    owners = [body(await api("jobs", json_body={"command": ["true"], "hold": True}))["owner"] for _ in range(3)]
    headers = {**await cookie_headers(jp_fetch, token), "Content-Type": "application/json"}
    spec = json.dumps({"command": ["true"], "hold": True})
    by_cookie = await jp_fetch("swm/api/v1/jobs", method="POST", body=spec, headers=headers, raise_error=False)
    assert by_cookie.code == 201, by_cookie.body
    owners.append(body(by_cookie)["owner"])
    assert owners == [expected] * 4, owners
    found = body(await api("jobs", params={"owner": expected}))
    assert found["total"] == 4
    assert body(await api("jobs", params={"owner": "someone-else"}))["total"] == 0


async def test_sky_port_route_with_the_token_records_the_same_owner(
    api: Any, jp_fetch: Any, swm_started: Any
) -> None:
    response = await jp_fetch(
        "user", "job", method="POST", body=b"echo hi\n", headers={"Content-Type": "text/plain"}, raise_error=False
    )
    assert response.code == 200, response.body
    assert swm_started.get(response.body.decode().strip()).owner == getpass.getuser()


async def test_the_websocket_hello_names_the_owner(api: Any, jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch("swm", "api", "v1", "events")
    hello = json.loads(await asyncio.wait_for(ws.read_message(), 10))
    ws.close()
    assert hello["type"] == "hello" and hello["owner"] == getpass.getuser()


class TestConfiguredOwner:
    """``SwmApp.server_owner`` names the owner instead of the account's name."""

    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        """The shared test server, with a configured owner name."""
        return {**jp_server_config, "SwmApp": {**jp_server_config["SwmApp"], "server_owner": "alice"}}

    async def test_configured_owner_is_recorded(self, api: Any) -> None:
        job = body(await api("jobs", json_body={"command": ["true"], "hold": True}))
        assert job["owner"] == "alice"
        assert body(await api("jobs", params={"owner": "alice"}))["total"] == 1


def test_only_shared_secret_providers_map_to_the_server_owner() -> None:
    from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider, User

    from swm_jupyter.auth import (
        CertificateUser,
        SkyPortIdentityProvider,
        owner_name,
        server_user_name,
        users_are_server_owner,
    )

    class HubLikeProvider(IdentityProvider):
        """A provider that knows real users (as JupyterHub's does), defined outside jupyter_server."""

    anonymous = User(username="0f3c9e", name="Anonymous Io")
    for provider in (IdentityProvider(), PasswordIdentityProvider(), SkyPortIdentityProvider()):
        assert users_are_server_owner(provider)
        assert owner_name(anonymous, provider, "me") == "me"
    assert not users_are_server_owner(HubLikeProvider())
    assert owner_name(User(username="bob"), HubLikeProvider(), "me") == "bob"
    assert owner_name(CertificateUser(username="carol"), SkyPortIdentityProvider(), "me") == "carol"
    assert server_user_name() == getpass.getuser()
