"""The one HTTP stack of the client side (standard library only): the CLI, ``Client`` and ``AsyncClient`` use it.

:class:`Connection` makes authenticated requests under ``/swm/api/v1/`` of the server that
:func:`~swm_jupyter.client.discovery.find_server` finds (or the one given), tries a request sent
with an ``Idempotency-Key`` again when its answer was lost, and turns every failure into a
:class:`~swm_jupyter.client.errors.SwmError`. One request per HTTP connection, so a
:class:`Connection` can be used from many threads at once (``AsyncClient`` runs it in threads).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .discovery import API_PATH, check_base_url, find_server, locate_server, server_info
from .errors import ServerNotFound, SwmError, error_for

#: The former name of :class:`SwmError` (what the server refused), kept for code that imports it.
ApiError = SwmError


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
            kind = self.headers.get("content-type", "")
            raise ServerNotFound(not_the_api(self.url, self.status, kind), self.status) from None


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
    """Authenticated HTTP requests to one swm server (``urllib``; safe to share between threads)."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        token_source: str = "",
    ) -> None:
        """Talk to ``base_url`` with ``token``; both are found (:func:`locate_server`) when ``base_url`` is None.

        ``token_source`` says where a given token came from (``"--token"``, ``"SWM_TOKEN"``), for the
        message when the server refuses it.
        """
        if base_url is None:
            found = locate_server()
            base_url = found.base_url
            if token is None:
                token, token_source = found.token, found.token_source
        else:
            check_base_url(base_url.strip())
        self.base_url = base_url.strip().rstrip("/") + "/"
        self.token = token
        self.token_source = token_source if token else ""
        self.timeout = timeout

    def url(self, path: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None) -> str:
        """The full URL of an API path (``"jobs"`` -> ``.../swm/api/v1/jobs``) with query parameters."""
        url = f"{self.base_url}{API_PATH}/{urllib.parse.quote(path.lstrip('/'), safe='/')}"
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
        """Send a request and return the answer. Raises :class:`SwmError` (a refusal: 4xx/5xx) or
        :class:`ServerNotFound` (no answer, or not the swm API).

        With ``idempotency_key`` (sent as ``Idempotency-Key``) a request that got no answer, or 502,
        503 or 504, is sent again a few times with the same key: the server acts on it once.
        """
        delays = RETRY_DELAYS if idempotency_key else ()
        for delay in delays:
            try:
                return self._send(method, path, params, json_body, data, content_type, timeout, idempotency_key)
            except SwmError as exc:
                if not exc.retryable:
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
            raise self._refusal(url, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerNotFound(f"cannot reach the swm server at {self.base_url}: {reason}") from None
        except (ValueError, http.client.HTTPException) as exc:  # a URL urllib cannot use, a garbled answer
            raise ServerNotFound(f"cannot talk to the swm server at {self.base_url}: {exc}") from None

    def _refusal(self, url: str, exc: urllib.error.HTTPError) -> SwmError:
        """The error for an error answer: the server's message, or :class:`ServerNotFound` if it is not the API."""
        try:
            raw = exc.read()
            data_json = json.loads(raw)
            message = str(data_json["message"] or exc.reason)
            errors = data_json.get("errors") or []
        except (OSError, http.client.HTTPException, ValueError, TypeError, KeyError, AttributeError):
            content_type = exc.headers.get("Content-Type", "") if exc.headers else ""
            return ServerNotFound(not_the_api(url, exc.code, content_type), exc.code)
        if exc.code in (401, 403):
            message = self.refused_token_message(message)
        return error_for(exc.code, message, errors)

    def refused_token_message(self, message: str) -> str:
        """The server's refusal ``message`` (401/403) with what was sent: no token, or which token from where."""
        if not self.token:
            return f"the server refused the request: no token was sent (set SWM_TOKEN or give --token); {message}"
        source = f" from {self.token_source}" if self.token_source else ""
        return (
            f"the server refused the token{source}: it is not a valid token of {self.base_url} "
            f"or has no access to swm ({message})"
        )

    def get_json(self, path: str, **params: Any) -> Any:
        """``GET`` a JSON document."""
        return self.request("GET", path, params=params).json()

    def post_json(self, path: str, body: Any = None, **params: Any) -> Any:
        """``POST`` JSON (or nothing) and return the JSON answer."""
        return self.request("POST", path, params=params, json_body=body).json()


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return value


__all__ = [
    "ApiError",
    "Connection",
    "Response",
    "ServerNotFound",
    "SwmError",
    "check_base_url",
    "find_server",
    "server_info",
]
