"""An aiohttp client of the Sky Port gate protocol (``shared/skyport-gate-protocol.md``).

It copes with the protocol's oddities: inputs as lower-case string headers, a JSON body with
``pem_data`` on every request (GET and DELETE too), wrapped lists (``{"flavors": [...]}``), and two
error styles (an HTTP error with ``detail``, or ``200`` with ``error``). One ``ClientSession`` per
client; reads are retried with capped backoff; ``pem_data`` never reaches a log line or a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from ..core.errors import GateError, SiteUnavailable

_log = logging.getLogger(__name__)

#: Partition statuses that mean "not ready yet" and "up"; anything else means "down".
PENDING_STATUSES = frozenset({"creating", "updating", None})
UP_STATUS = "succeeded"
#: The Azure gate names a partition's resource group ``<partname>-resource-group`` and lists it so.
AZURE_SUFFIX = "-resource-group"
#: HTTP statuses after which an idempotent request is tried again.
_RETRY_STATUSES = frozenset({502, 503, 504})


class GateUnreachable(SiteUnavailable):
    """The gate did not answer (connection refused, TLS failure, timeout) after the retries."""


class GateAnswerError(GateError):
    """The gate answered with an error: HTTP ``status`` with ``detail``, or ``200`` with ``error``.

    ``partition`` holds the partition that came with a ``200``/``error`` answer, if any.
    """

    def __init__(self, message: str, status: int, partition: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.partition = partition


class SkyPortClient:
    """Speaks the Sky Port gate protocol to ``base_url`` for one cloud ``kind``.

    ``pem_data`` is sent as ``{"pem_data": ...}`` with every request when set. TLS is checked
    against ``ca_file`` (None: the system's CAs) unless ``verify_tls`` is False; ``client_cert``
    (and ``client_key``, when not in the same file) is presented to the gate. Requests time out
    after ``timeout`` seconds; GET and DELETE are tried ``retries`` more times on connection
    errors, timeouts and 502/503/504 with backoff capped at ``max_backoff``. POST is never retried
    here (it could make a second partition); callers look the partition up by name instead.
    """

    def __init__(
        self,
        base_url: str,
        kind: str,
        *,
        pem_data: str = "",
        ca_file: str = "",
        client_cert: str = "",
        client_key: str = "",
        verify_tls: bool = True,
        timeout: float = 300.0,
        retries: int = 3,
        max_backoff: float = 10.0,
        common_headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.kind = kind.strip("/")
        self._pem_data = pem_data
        self.ca_file = ca_file
        self.client_cert = client_cert
        self.client_key = client_key
        self.verify_tls = verify_tls
        self.timeout = timeout
        self.retries = max(0, retries)
        self.max_backoff = max_backoff
        self._common_headers = {str(k).lower(): str(v) for k, v in (common_headers or {}).items()}
        #: Texts never shown (header values: passwords, account ids), longest first.
        self._secrets = sorted(
            {str(t) for t in (*secrets, *self._common_headers.values()) if len(str(t)) >= 4}, key=len
        )[::-1]
        self.log = log or _log
        self._session: aiohttp.ClientSession | None = None
        #: How many requests were sent, by ``"METHOD section"`` (tests and describe() read it).
        self.requests_sent: dict[str, int] = {}

    @property
    def public_url(self) -> str:
        """The base URL without any user name or password in it (safe to show)."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.base_url.startswith("https:"):
            return True
        if not self.verify_tls:
            return False
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key or None)
        return context

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    async def close(self) -> None:
        """Close the session (a later request opens a new one)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def scrub(self, text: str) -> str:
        """``text`` with the configured ``pem_data`` (or any line of it) and the ``secrets`` (the
        values of headers that carry credentials) replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if self._pem_data:
            text = text.replace(self._pem_data, "***")
            for line in self._pem_data.splitlines():
                if len(line.strip()) >= 16:
                    text = text.replace(line.strip(), "***")
        return text

    async def request(
        self,
        method: str,
        section: str,
        ident: str | None = None,
        *,
        headers: Mapping[str, Any] | None = None,
        retry: bool | None = None,
    ) -> dict[str, Any]:
        """Send one request to ``/<kind>/<section>[/<ident>]`` and return the JSON answer.

        Header values are sent as strings under lower-case names, after the common headers (which
        an empty value does not replace). Raises :class:`GateUnreachable`
        when the gate does not answer, :class:`GateAnswerError` for an HTTP error (``detail``) or
        a ``200`` with ``error``. ``retry`` defaults to True for GET and DELETE.
        """
        path = f"/{quote(self.kind)}/{quote(section)}"
        if ident is not None:
            # As Sky Port's core does: the id goes into the path as it is, slashes included (an Azure
            # partition id is a resource path: partitions//subscriptions/<s>/resourceGroups/<group>).
            path += "/" + quote(str(ident), safe="/")
        url = self.base_url + path
        sent_headers = {**self._common_headers}
        for name, value in (headers or {}).items():
            if value is None or (value == "" and sent_headers.get(str(name).lower())):
                continue  # an empty value leaves a common header's value (OpenStack's username) alone
            sent_headers[str(name).lower()] = str(value)
        body = json.dumps({"pem_data": self._pem_data}) if self._pem_data else None
        if body is not None:
            sent_headers["content-type"] = "application/json"
        attempts = 1 + (self.retries if (retry if retry is not None else method in ("GET", "DELETE")) else 0)
        key = f"{method} {section}"
        delay = 0.5
        last = ""
        for attempt in range(attempts):
            self.requests_sent[key] = self.requests_sent.get(key, 0) + 1
            try:
                session = self._open_session()
                async with session.request(method, url, data=body, headers=sent_headers) as response:
                    status = response.status
                    text = await response.text()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ssl.SSLError) as exc:
                last = f"{type(exc).__name__}: {self.scrub(str(exc)) or 'no answer'}"
            else:
                if status in _RETRY_STATUSES and attempt + 1 < attempts:
                    last = f"HTTP {status}"
                else:
                    return self._answer(method, path, status, text)
            if attempt + 1 < attempts:
                self.log.info("cloud gate %s %s failed (%s); trying again in %.1f s", method, path, last, delay)
                await asyncio.sleep(delay)
                delay = min(self.max_backoff, delay * 2)
        raise GateUnreachable(f"the cloud gate at {self.public_url} does not answer {method} {path}: {last}")

    def _answer(self, method: str, path: str, status: int, text: str) -> dict[str, Any]:
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            data = None
        if status >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            message = detail if isinstance(detail, str) else (text.strip()[:300] or f"HTTP {status}")
            raise GateAnswerError(self.scrub(f"{method} {path}: HTTP {status}: {message}"), status)
        if not isinstance(data, dict):
            raise GateAnswerError(f"{method} {path}: the gate's answer is not a JSON object", status)
        if data.get("error") is not None:
            partition = data.get("partition") if isinstance(data.get("partition"), dict) else None
            raise GateAnswerError(self.scrub(f"{method} {path}: {data['error']}"), status, partition)
        return data

    # -- the protocol's requests -------------------------------------------------------------------

    async def flavors(self, location: str = "") -> list[dict[str, Any]]:
        """``GET /<kind>/flavors``: flavors with cpus, gpus, mem, storage and price."""
        data = await self.request("GET", "flavors", headers=_extra(location))
        return _list(data, "flavors")

    async def images(self, location: str = "") -> list[dict[str, Any]]:
        """``GET /<kind>/images``: the images (``id``, ``name``, ``extra``)."""
        data = await self.request("GET", "images", headers=_extra(location))
        return _list(data, "images")

    async def partitions(self) -> list[dict[str, Any]]:
        """``GET /<kind>/partitions``: every partition the gate knows."""
        return _list(await self.request("GET", "partitions"), "partitions")

    async def partition(self, name_or_id: str) -> dict[str, Any] | None:
        """``GET /<kind>/partitions/<name or id>``: the partition, or None when the gate says 404."""
        try:
            return await self.request("GET", "partitions", name_or_id)
        except GateAnswerError as exc:
            if exc.status == 404:
                return None
            raise

    async def create_partition(self, headers: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /<kind>/partitions`` with the creation ``headers``; returns the new partition.

        Raises :class:`GateAnswerError` when the gate refuses (its ``partition``, if any, is kept).
        """
        data = await self.request("POST", "partitions", headers=headers)
        partition = data.get("partition")
        if not isinstance(partition, dict) or not partition.get("id"):
            # The real gate answers {"partition": {}} when its template code fails (a missing
            # header, say): nothing was made, and nothing can be tracked. Say what it answered.
            words = self.scrub(json.dumps(data))[:500]
            raise GateAnswerError(f"POST partitions: the gate made no partition (no id in its answer: {words})", 200)
        return partition

    async def delete_partition(self, ident: str) -> bool:
        """``DELETE /<kind>/partitions/<id>`` (deletion is asynchronous); False if it was gone already."""
        try:
            await self.request("DELETE", "partitions", ident)
        except GateAnswerError as exc:
            if exc.status == 404:
                return False
            raise
        return True


def base_name(name: str) -> str:
    """A partition name without the ``-resource-group`` suffix the Azure gate adds to list names."""
    return name[: -len(AZURE_SUFFIX)] if name.endswith(AZURE_SUFFIX) else name


def same_partition(listed: dict[str, Any], name: str) -> bool:
    """True if a partition the gate listed is the one called ``name`` (with or without the suffix)."""
    return base_name(str(listed.get("name") or "")) == base_name(name)


def _extra(location: str) -> dict[str, str]:
    return {"extra": f"location={location}"} if location else {}


def _list(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data.get(key)
    if not isinstance(items, list):
        raise GateAnswerError(f"the gate's answer has no {key!r} list", 200)
    return [item for item in items if isinstance(item, dict)]


__all__ = [
    "AZURE_SUFFIX",
    "PENDING_STATUSES",
    "UP_STATUS",
    "GateAnswerError",
    "GateUnreachable",
    "SkyPortClient",
    "base_name",
    "same_partition",
]
