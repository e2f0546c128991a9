"""A webhook delivery: POST of a JSON body, retried with capped exponential backoff."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..core.jsoncodec import to_text
from .addresses import ALLOW_OPTION, PrivateAddress, PublicResolver, literal_private_host

#: Statuses worth another try (the receiver is overloaded or failing for now).
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class WebhookResult:
    """How a delivery went: ``ok``, how many ``attempts``, the last ``error`` (no secret in it)."""

    ok: bool
    attempts: int
    error: str = ""
    status: int | None = None
    time: float = 0.0


async def deliver_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    attempts: int = 5,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    timeout: float = 10.0,
    allow_private: bool = False,
) -> WebhookResult:
    """POST ``payload`` as JSON to ``url``; a 2xx answer is success.

    A connection error, a timeout or a status of :data:`RETRY_STATUSES` is retried up to
    ``attempts`` tries in all, waiting ``backoff`` seconds, then twice that each time (at most
    ``max_backoff``). Another status fails at once. ``token`` is sent as ``Authorization: Bearer``.
    The error text names the status or the kind of failure, never the URL's query or the token.
    ``asyncio.CancelledError`` is not swallowed.

    Unless ``allow_private``, a URL naming, or a host name resolving to, an address that is not
    public (loopback, private, link-local such as a cloud's metadata address...) fails at once,
    not retried (see :mod:`.addresses`).
    """
    if not allow_private and literal_private_host(url) is not None:
        return WebhookResult(
            False, 1, f"the webhook's address is not public (see {ALLOW_OPTION}; not retried)", None, time.time()
        )
    sent_headers = {"Content-Type": "application/json", "User-Agent": "swm-jupyter-schedules"}
    sent_headers.update(headers or {})
    if token:
        sent_headers["Authorization"] = f"Bearer {token}"
    body = to_text(payload).encode()
    delay = backoff
    error = ""
    status: int | None = None
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    connector = None if allow_private else aiohttp.TCPConnector(resolver=PublicResolver(), use_dns_cache=False)
    async with aiohttp.ClientSession(timeout=client_timeout, connector=connector) as session:
        for attempt in range(1, max(1, attempts) + 1):
            try:
                async with session.post(url, data=body, headers=sent_headers, allow_redirects=False) as response:
                    status = response.status
                    await response.read()
                if 200 <= status < 300:
                    return WebhookResult(True, attempt, "", status, time.time())
                error = f"the webhook answered HTTP {status}"
                if status not in RETRY_STATUSES:
                    return WebhookResult(False, attempt, error + " (not retried)", status, time.time())
            except asyncio.CancelledError:
                raise
            except asyncio.TimeoutError:
                error, status = f"the webhook did not answer within {timeout:g} s", None
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, PrivateAddress):
                    return WebhookResult(False, attempt, str(exc.os_error) + " (not retried)", None, time.time())
                error, status = f"the webhook could not be reached ({type(exc).__name__})", None
            except aiohttp.ClientError as exc:
                error, status = f"the webhook could not be reached ({type(exc).__name__})", None
            except ValueError:  # a URL or header aiohttp refuses to send: no later try can do better
                return WebhookResult(
                    False, attempt, "the webhook request is malformed (not retried)", None, time.time()
                )
            if attempt < attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_backoff)
    return WebhookResult(False, max(1, attempts), error + f" after {max(1, attempts)} attempts", status, time.time())
