"""Client mode: a single-user server of a hub serves ``/swm/api/v1/*`` by forwarding it to the swm service.

In a user's single-user server the extension runs no core of its own when the hub has an swm
service (:func:`find_service`); it forwards every API request, and the events websocket, to the
service with the server's own hub token (``JUPYTERHUB_API_TOKEN``, which the hub gives the scopes
of ``c.Spawner.server_token_scopes``). The sidebar, ``%swm``, widgets, notebook jobs, the Python
client and the ``swm`` CLI keep talking to their own server, unchanged; the service sees the
server's user, and answers for that user's jobs only. The caller is authenticated by the
single-user server first (as every request to it), so only who may use the server may use its token.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import httpclient, web
from tornado.httputil import HTTPHeaders
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, WebSocketHandler, websocket_connect

from ..core.errors import SiteUnavailable, SwmError
from ..handlers.base import API_PREFIX, AUTH_RESOURCE, SwmHandler, error_reply

#: Response headers of the service passed on to the caller.
PASSED_HEADERS = (
    "Content-Type",
    "Content-Disposition",
    "Cache-Control",
    "X-Content-Type-Options",
    "X-Log-Offset",
    "X-Job-State",
)
#: Seconds to wait for the service to answer a request (long enough for a large file).
REQUEST_TIMEOUT = 600.0
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServiceLink:
    """Where the swm service is and the token to call it with."""

    url: str  # the service's base URL with its prefix and a trailing slash
    token: str

    @property
    def api_url(self) -> str:
        """The service's ``.../swm/api/v1/`` URL."""
        return f"{self.url}{API_PREFIX.strip('/')}/"

    @property
    def prefix(self) -> str:
        """The path part of :attr:`url` (the service's base URL on its server)."""
        return urllib.parse.urlparse(self.url).path or "/"

    def headers(self) -> dict[str, str]:
        """The authentication header of the server's token."""
        return {"Authorization": f"token {self.token}"}


def in_hub_single_user_server(environ: Mapping[str, str]) -> bool:
    """True in a process started by JupyterHub as a user's server (not as a service)."""
    return bool(environ.get("JUPYTERHUB_API_URL") and environ.get("JUPYTERHUB_API_TOKEN")) and not environ.get(
        "JUPYTERHUB_SERVICE_NAME"
    )


def find_service(name: str, environ: Mapping[str, str], timeout: float = 10.0) -> tuple[str | None, str]:
    """Ask the hub where its service ``name`` is: ``(service base URL or None, why not)``.

    Needs the server token to hold ``read:services!service=<name>`` (see docs/jupyterhub.md). Called
    once when the server starts, before its event loop runs.
    """
    api = environ["JUPYTERHUB_API_URL"].rstrip("/")
    request = urllib.request.Request(
        f"{api}/services/{urllib.parse.quote(name)}",
        headers={"Authorization": f"token {environ['JUPYTERHUB_API_TOKEN']}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            model = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return None, f"the hub answered {exc.code} for its service {name!r}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"cannot ask the hub about its service {name!r}: {getattr(exc, 'reason', exc)}"
    url, prefix = model.get("url") or "", model.get("prefix") or ""
    if not url:
        return None, f"the hub's service {name!r} has no url this server may see (scope read:services!service={name})"
    return service_base_url(url, prefix), ""


def unreachable_message(exc: BaseException | None) -> str:
    """The message of a 503 when the service did not answer (it is restarting, usually)."""
    reason = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return (
        f"the hub's swm service does not answer{reason}; your jobs keep running there. "
        "Try again in a moment; if it lasts, ask the hub's administrator"
    )


def service_base_url(url: str, prefix: str = "") -> str:
    """``url`` joined with the service's ``prefix`` (``/services/swm/``), with one trailing slash."""
    base = url.rstrip("/")
    path = prefix.strip("/")
    if path and not urllib.parse.urlparse(base).path.strip("/"):
        base = f"{base}/{path}"
    return base + "/"


class ServiceForwardHandler(SwmHandler):
    """``/swm/api/v1/{path}``: forwards the request to the service and streams its answer back."""

    def initialize(self, link: ServiceLink) -> None:
        """Keep the link to the service."""
        self.link = link
        self._headers_sent = False
        self._status = 0
        self._pending = HTTPHeaders()

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        """Forward."""
        await self.forward(path)

    @web.authenticated
    @authorized
    async def post(self, path: str) -> None:
        """Forward."""
        await self.forward(path)

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        """Forward."""
        await self.forward(path)

    @web.authenticated
    @authorized
    async def patch(self, path: str) -> None:
        """Forward."""
        await self.forward(path)

    @web.authenticated
    @authorized
    async def delete(self, path: str) -> None:
        """Forward."""
        await self.forward(path)

    @property
    def content_security_policy(self) -> str:
        """Answers may be job files: nothing in them runs with this server's origin."""
        return super().content_security_policy + "; sandbox"

    async def forward(self, path: str) -> None:
        """Send the request on with the server's token; answer what the service answers."""
        query = self.request.query
        url = self.link.api_url + path + (f"?{query}" if query else "")
        headers = self.link.headers()
        for name in ("Content-Type", "Accept"):
            if name in self.request.headers:
                headers[name] = self.request.headers[name]
        method = self.request.method or "GET"
        has_body = method in ("POST", "PUT", "PATCH")
        request = httpclient.HTTPRequest(
            url,
            method=method,
            headers=headers,
            body=self.request.body if has_body else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=REQUEST_TIMEOUT,
            header_callback=self._on_header_line,
            streaming_callback=self._on_chunk,
            decompress_response=True,
        )
        try:
            await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as exc:
            if not self._headers_sent:
                raise SiteUnavailable(unreachable_message(exc)) from None
            raise
        if not self._headers_sent:
            raise SiteUnavailable(unreachable_message(None))
        self.finish()

    def _on_header_line(self, line: str) -> None:
        """Collect the service's status line and headers; at their end, start the answer."""
        if line.startswith("HTTP/"):
            self._status = int(line.split(" ", 2)[1])
            self._pending = HTTPHeaders()
        elif line.strip():
            self._pending.parse_line(line)
        elif self._status >= 200 and not self._headers_sent:
            self._headers_sent = True
            self.set_status(self._status)
            self.clear_header("Content-Type")
            for name in PASSED_HEADERS:
                if name in self._pending:
                    self.set_header(name, self._pending[name])
            location = self._pending.get("Location")
            if location:
                self.set_header("Location", self.local_location(location))

    def local_location(self, location: str) -> str:
        """A ``Location`` of the service rewritten to this server's base URL."""
        path = urllib.parse.urlparse(location).path
        if path.startswith(self.link.prefix):
            return self.base_url.rstrip("/") + "/" + path[len(self.link.prefix) :]
        return location

    def _on_chunk(self, chunk: bytes) -> None:
        if chunk:
            self.write(chunk)


class ServiceEventsSocket(WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """``/swm/api/v1/events``: a websocket relayed both ways to the service's events websocket."""

    auth_resource = AUTH_RESOURCE
    open_sockets: ClassVar[set[ServiceEventsSocket]] = set()

    def initialize(self, link: ServiceLink) -> None:
        """Keep the link; the upstream socket is opened before the upgrade."""
        self.link = link
        self.upstream: WebSocketClientConnection | None = None
        self.relay: asyncio.Task[None] | None = None

    def set_default_headers(self) -> None:
        """No default headers for websockets (as jupyter_server's kernel websocket)."""

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Authenticate, authorize, connect to the service (503 if it does not answer), then upgrade."""
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE))
        if not allowed:
            raise web.HTTPError(403, "User is not authorized to read on resource: swm.")
        query = self.request.query
        url = "ws" + self.link.api_url[4:] + "events" + (f"?{query}" if query else "")
        request = httpclient.HTTPRequest(url, headers=self.link.headers(), connect_timeout=CONNECT_TIMEOUT)
        try:
            self.upstream = await websocket_connect(request, ping_interval=30)
        except httpclient.HTTPClientError as exc:
            body = exc.response.body if exc.response is not None else b""
            self.set_status(exc.code)
            self.set_header("Content-Type", "application/json")
            self.finish(body or json.dumps(error_reply(exc.code, None)[1]))
            return
        except OSError as exc:
            raise SiteUnavailable(unreachable_message(exc)) from None
        res = super().get(*args, **kwargs)
        if res is not None:
            await res

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Refusals before the upgrade are JSON ``{"message", "errors"}`` like the REST API's."""
        status, reply = error_reply(status_code, kwargs.get("exc_info", (None, None, None))[1])
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(reply))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Expected errors in one line."""
        if isinstance(value, SwmError):
            self.log.info("swm: events websocket refused (%d): %s", value.status, value.message)
            return
        super().log_exception(typ, value, tb)

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Start relaying the service's messages to the client."""
        super().open(*args, **kwargs)
        self.open_sockets.add(self)
        self.relay = asyncio.create_task(self._relay())

    async def _relay(self) -> None:
        upstream = self.upstream
        assert upstream is not None
        while True:
            message = await upstream.read_message()
            if message is None:
                self.close(1011 if upstream.close_code in (None, 1006) else 1001, "the swm service closed the stream")
                return
            try:
                await self.write_message(message)
            except WebSocketClosedError:
                return

    async def on_message(self, message: str | bytes) -> None:
        """Pass the client's messages (log subscriptions) on to the service."""
        if self.upstream is not None:
            try:
                await self.upstream.write_message(message)
            except WebSocketClosedError:
                self.close(1011, "the swm service closed the stream")

    def on_close(self) -> None:
        """Close the upstream socket and stop the relay."""
        self.open_sockets.discard(self)
        if self.relay is not None:
            self.relay.cancel()
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    @classmethod
    def close_all(cls) -> None:
        """Close every relayed socket (at server stop)."""
        for socket in list(cls.open_sockets):
            socket.close(1001, "server stopping")
            socket.on_close()


def client_handlers(link: ServiceLink) -> list[tuple[str, Any, dict[str, Any]]]:
    """The routes of client mode, relative to the server's base URL."""
    return [
        (rf"{API_PREFIX}/events", ServiceEventsSocket, {"link": link}),
        (rf"{API_PREFIX}/(?P<path>.*)", ServiceForwardHandler, {"link": link}),
    ]


def server_token(environ: Mapping[str, str] | None = None) -> str:
    """The single-user server's hub token (``JUPYTERHUB_API_TOKEN``)."""
    return (environ if environ is not None else os.environ).get("JUPYTERHUB_API_TOKEN", "")


__all__ = [
    "ServiceEventsSocket",
    "ServiceForwardHandler",
    "ServiceLink",
    "client_handlers",
    "find_service",
    "in_hub_single_user_server",
    "server_token",
    "service_base_url",
    "unreachable_message",
]
