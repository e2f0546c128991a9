"""Find the running swm server and talk HTTP to it (stdlib only; shared by the CLI and the client).

:func:`find_server` answers ``(base_url, token)``: ``SWM_URL`` / ``SWM_TOKEN`` if set, otherwise the
Jupyter server this process belongs to (a kernel's parent), else the running server whose root
folder holds the current folder, else the newest one, found in Jupyter's runtime files
(``jpserver-*.json``). :class:`Connection` makes authenticated requests under ``/swm/api/v1/``.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_PATH = "swm/api/v1"


class ServerNotFound(Exception):
    """No swm server could be found or reached; the message says what to do."""


class ApiError(Exception):
    """The server answered an error: ``status``, its ``message`` and the bad ``errors`` fields."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


def _running_servers() -> list[dict[str, Any]]:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:  # pragma: no cover - jupyter_server is a dependency
        return []
    try:
        return list(list_running_servers())
    except OSError:
        return []


def check_base_url(url: str, source: str = "the server URL") -> str:
    """``url`` if it is an ``http(s)://host[:port][/base/]`` address; else :class:`ServerNotFound` saying so.

    ``source`` names where the URL came from (``SWM_URL``, ``--url``) in the message.
    """
    example = "write it like http://127.0.0.1:8888/ (the Jupyter server's address and base path)"
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError as exc:
        raise ServerNotFound(f"{source} {url!r} is not a URL ({exc}): {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ServerNotFound(f"{source} {url!r} is not an http:// or https:// URL: {example}")
    return url


def find_server() -> tuple[str, str | None]:
    """Return ``(base_url, token)`` of the swm server to talk to. Raises :class:`ServerNotFound`.

    ``base_url`` is the Jupyter server's URL with its base path and a trailing slash
    (``http://127.0.0.1:8888/``); the API is at ``base_url + "swm/api/v1/"``.
    """
    url = os.environ.get("SWM_URL")
    if url:
        url = check_base_url(url.strip(), "SWM_URL").rstrip("/")
        if url.endswith("/" + API_PATH):
            url = url[: -len(API_PATH) - 1]
        return url + "/", os.environ.get("SWM_TOKEN") or None
    servers = _running_servers()
    if not servers:
        raise ServerNotFound(
            "no running Jupyter server found: start one (jupyter lab / jupyter server), or set SWM_URL and SWM_TOKEN"
        )
    chosen = _choose(servers, parent_pid=os.getppid(), cwd=Path.cwd())
    token = os.environ.get("SWM_TOKEN") or chosen.get("token") or None
    return str(chosen["url"]).rstrip("/") + "/", token


def _choose(servers: list[dict[str, Any]], *, parent_pid: int, cwd: Path) -> dict[str, Any]:
    for info in servers:
        if info.get("pid") == parent_pid:
            return info
    inside = []
    for info in servers:
        root = info.get("root_dir") or info.get("notebook_dir")
        if root:
            try:
                cwd.resolve().relative_to(Path(root).resolve())
            except ValueError:
                continue
            inside.append((len(Path(root).resolve().parts), info))
    if inside:
        return max(inside, key=lambda pair: pair[0])[1]
    return servers[-1]


def server_info(base_url: str) -> dict[str, Any] | None:
    """The runtime-file record of the running server at ``base_url`` (with its ``root_dir``), or None."""
    want = base_url.rstrip("/")
    for info in _running_servers():
        if str(info.get("url", "")).rstrip("/") == want:
            return info
    return None


@dataclass
class Response:
    """An HTTP answer: status, headers (lower-case names) and body bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    url: str = ""

    def json(self) -> Any:
        """The body parsed as JSON. Raises :class:`ServerNotFound` if it is not JSON (not the swm API)."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise ServerNotFound(not_the_api(self.url, self.status, self.headers.get("content-type", ""))) from None


def not_the_api(url: str, status: int, content_type: str) -> str:
    """One line saying that ``url`` answered something other than the swm API's JSON."""
    kind = content_type.split(";")[0].strip() or "no content type"
    where = url.split("?")[0]
    return (
        f"{where} answered HTTP {status} with {kind}, not the swm API: check that the URL is the Jupyter "
        "server's address and base path (SWM_URL or --url) and that swm_jupyter is enabled there"
    )


#: Seconds to wait before each new try of a request sent with an Idempotency-Key.
RETRY_DELAYS = (0.5, 1.0, 2.0)


class Connection:
    """Authenticated HTTP requests to one swm server (``urllib``; one request at a time)."""

    def __init__(self, base_url: str | None = None, token: str | None = None, *, timeout: float = 30.0) -> None:
        if base_url is None:
            base_url, found = find_server()
            token = token or found
        else:
            check_base_url(base_url.strip())
        self.base_url = base_url.strip().rstrip("/") + "/"
        self.token = token
        self.timeout = timeout

    def url(self, path: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None) -> str:
        """The full URL of an API path (``"jobs"`` -> ``.../swm/api/v1/jobs``) with query parameters."""
        url = f"{self.base_url}{API_PATH}/{path.lstrip('/')}"
        if params:
            items = params.items() if isinstance(params, Mapping) else params
            query = urllib.parse.urlencode([(k, _text(v)) for k, v in items if v is not None], doseq=True)
            if query:
                url += "?" + query
        return url

    def headers(self) -> dict[str, str]:
        """The authentication header (if a token is known)."""
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Response:
        """Send a request and return the answer. Raises :class:`ApiError` (4xx/5xx) or :class:`ServerNotFound`.

        With ``idempotency_key`` (sent as ``Idempotency-Key``) a request that got no answer, or 502,
        503 or 504, is sent again a few times with the same key: the server acts on it once.
        """
        delays = RETRY_DELAYS if idempotency_key else ()
        for delay in delays:
            try:
                return self._send(method, path, params, json_body, data, content_type, timeout, idempotency_key)
            except ServerNotFound:
                pass
            except ApiError as exc:
                if exc.status not in (502, 503, 504):
                    raise
            time.sleep(delay)
        return self._send(method, path, params, json_body, data, content_type, timeout, idempotency_key)

    def _send(
        self,
        method: str,
        path: str,
        params: Any,
        json_body: Any,
        data: bytes | None,
        content_type: str | None,
        timeout: float | None,
        idempotency_key: str | None,
    ) -> Response:
        headers = self.headers()
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if json_body is not None:
            data = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        url = self.url(path, params)
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as answer:
                found = {k.lower(): v for k, v in answer.headers.items()}
                return Response(answer.status, found, answer.read(), answer.geturl())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                data_json = json.loads(raw)
                message = str(data_json["message"] or exc.reason)
                errors = data_json.get("errors") or []
            except (ValueError, TypeError, KeyError, AttributeError):
                raise ServerNotFound(not_the_api(url, exc.code, exc.headers.get("Content-Type", ""))) from None
            if exc.code == 403 and not self.token:
                message += " (no token: set SWM_TOKEN)"
            raise ApiError(exc.code, message, errors) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerNotFound(f"cannot reach the swm server at {self.base_url}: {reason}") from None
        except (ValueError, http.client.HTTPException) as exc:  # a URL urllib cannot use, a garbled answer
            raise ServerNotFound(f"cannot talk to the swm server at {self.base_url}: {exc}") from None

    def get_json(self, path: str, **params: Any) -> Any:
        """``GET`` a JSON document."""
        return self.request("GET", path, params=params).json()

    def post_json(self, path: str, body: Any = None, **params: Any) -> Any:
        """``POST`` JSON (or nothing) and return the JSON answer."""
        return self.request("POST", path, params=params, json_body=body).json()

    def websocket_url(self, path: str = "events", **params: Any) -> str:
        """The ``ws://`` / ``wss://`` URL of a websocket path."""
        url = self.url(path, params)
        return "ws" + url[4:] if url.startswith("http") else url


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return value


__all__ = ["ApiError", "Connection", "Response", "ServerNotFound", "check_base_url", "find_server", "server_info"]
