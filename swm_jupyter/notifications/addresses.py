"""Which addresses a webhook may reach: public ones only, unless the server allows private ones.

A schedule's webhook URL is given by any user who may create schedules; the server POSTs to it.
Left open, that lets a user make the server call its own loopback services, the cloud's metadata
address (``169.254.169.254``) or the site's private network (server-side request forgery). So,
unless ``ScheduleRunner.webhook_allow_private`` is set, a webhook goes only to *global* addresses:
:func:`literal_private_host` refuses a URL naming a loopback, private, link-local, shared,
reserved or multicast address (or ``localhost``) when the schedule is stored, and
:class:`PublicResolver` refuses, at each delivery, a host name that resolves to one (a name
that changes its address after the check - DNS rebinding - is caught there, as aiohttp connects
only to the addresses the resolver answers).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

#: The option that lets webhooks reach private addresses (named in every refusal).
ALLOW_OPTION = "ScheduleRunner.webhook_allow_private"


class PrivateAddress(OSError):
    """A webhook's host is or resolves to an address that is not public (not retried)."""


def is_public(address: str) -> bool:
    """True if ``address`` (an IP address as text) is a global unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not ip.is_multicast


def url_host(url: str) -> str:
    """The host of a URL, lower-case, without brackets (``""`` if it has none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def literal_private_host(url: str) -> str | None:
    """The host of ``url`` if it is ``localhost`` or an IP address that is not public, else None.

    Host names other than ``localhost`` are checked when the webhook is delivered (see
    :class:`PublicResolver`).
    """
    host = url_host(url).rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return host
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return None if is_public(host) else host


class PublicResolver(AbstractResolver):
    """An aiohttp resolver that answers only the public addresses of a name (raises :class:`PrivateAddress`)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        """The addresses of ``host`` if every one is public. Raises :class:`PrivateAddress` otherwise."""
        found = await self._inner.resolve(host, port, family)
        private = [entry["host"] for entry in found if not is_public(entry["host"])]
        if private:
            raise PrivateAddress(f"the webhook's host resolves to an address that is not public (see {ALLOW_OPTION})")
        return found

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


__all__ = ["ALLOW_OPTION", "PrivateAddress", "PublicResolver", "is_public", "literal_private_host", "url_host"]
