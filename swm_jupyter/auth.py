"""Identity for Sky Port terminals: Jupyter's token or cookie, or a verified TLS client certificate.

Sky Port terminals (``swmclient``, its console, its JupyterHub spawner) prove who they are with a
client certificate signed by the core's CA, and send ``Authorization: Bearer swm`` as a fixed
placeholder. :class:`SkyPortIdentityProvider` keeps Jupyter's own identity (token, login cookie)
exactly as it is and, only on handlers that opt in with ``accepts_client_certificate = True`` (the
Sky Port compatibility routes under ``/user/``), also accepts a certificate that the TLS layer has
verified against ``ServerApp.client_ca``. The user's name is the certificate's common name (CN).

Configure it with::

    c.ServerApp.identity_provider_class = "swm_jupyter.auth.SkyPortIdentityProvider"
    c.ServerApp.certfile = "server.pem"
    c.ServerApp.keyfile = "server.key"
    c.ServerApp.client_ca = "ca.pem"

What it does not do: a certificate never opens the rest of the server (contents, kernels,
terminals, the ``/swm/api/v1`` API), never sets a login cookie, and never marks a request as
token-authenticated (which would switch off Jupyter's origin and XSRF checks). A bearer value that
is not the server's token authenticates nobody; it does not stop the certificate from being used.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User
from tornado import web

#: What a certificate's common name must look like to become a user name.
_USERNAME = re.compile(r"^[A-Za-z0-9_.@+=:,-][A-Za-z0-9_.@+=:, -]{0,127}$")


@dataclass
class CertificateUser(User):
    """A user identified by a verified TLS client certificate (``username`` is its CN)."""

    certificate_subject: str = ""


def peer_certificate(handler: web.RequestHandler) -> dict[str, Any] | None:
    """The client certificate of the request's TLS connection, as verified by the TLS layer.

    Returns the certificate dict of :meth:`ssl.SSLSocket.getpeercert`, or None when the connection is
    not TLS, the client sent no certificate, or the server does not verify client certificates
    (``getpeercert`` answers an empty dict for certificates it did not validate).
    """
    stream = getattr(handler.request.connection, "stream", None)
    getpeercert = getattr(getattr(stream, "socket", None), "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        cert = getpeercert()
    except (OSError, ValueError):
        return None
    return cert if isinstance(cert, dict) and cert else None


def certificate_username(cert: dict[str, Any] | None) -> str | None:
    """The common name (CN) of a certificate's subject, or None if it has none that is a valid name."""
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and isinstance(value, str) and _USERNAME.match(value):
                return value
    return None


def subject_text(cert: dict[str, Any]) -> str:
    """The certificate's subject as ``CN=alice,O=Example`` (for logs and the user model)."""
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    parts = [f"{short.get(key, key)}={value}" for rdn in cert.get("subject", ()) for key, value in rdn]
    return ",".join(parts)


class SkyPortIdentityProvider(IdentityProvider):
    """Jupyter's identity (token, cookie) plus verified client certificates on the Sky Port routes.

    The token and cookie are checked first, exactly as :class:`IdentityProvider` does; a request
    they do not authenticate is then identified by its client certificate, but only if the handler
    has ``accepts_client_certificate = True``. Anything else stays unauthenticated (403).
    """

    #: Whoever holds the server's token or login cookie is the server's owner (see :func:`owner_name`).
    users_are_server_owner = True

    async def get_user(self, handler: web.RequestHandler) -> User | None:
        """The user of a request: token or cookie user, else certificate user, else None."""
        found = super().get_user(handler)
        user = await found if isinstance(found, Awaitable) else found
        if user is not None:
            return user
        if not getattr(handler, "accepts_client_certificate", False):
            return None
        cert = peer_certificate(handler)
        name = certificate_username(cert)
        if cert is None or name is None:
            if cert is not None:
                self.log.warning("swm: refusing a client certificate without a usable common name")
            return None
        self.log.debug("swm: request from %s authenticated by its client certificate", name)
        return CertificateUser(username=name, name=name, display_name=name, certificate_subject=subject_text(cert))


def is_certificate_user(user: Any) -> bool:
    """True if ``user`` was identified by a client certificate (not by the Jupyter token or cookie)."""
    return isinstance(user, CertificateUser)


def accepts_certificate_users(serverapp: Any) -> bool:
    """True if the server lets TLS client certificates identify users (the Sky Port identity provider with
    ``ServerApp.client_ca``): people other than the server's owner may then submit jobs."""
    provider = getattr(serverapp, "identity_provider", None)
    return isinstance(provider, SkyPortIdentityProvider) and bool(getattr(serverapp, "client_ca", ""))


def server_user_name() -> str:
    """The name of the account running the server (its numeric uid if the account has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers with a random uid)
        return str(os.getuid())


def users_are_server_owner(identity_provider: Any) -> bool:
    """True if every token or cookie user of ``identity_provider`` is the one person who runs the server.

    That holds for jupyter_server's own providers (one shared token or password, whose users get a
    random anonymous name per browser or request) and for :class:`SkyPortIdentityProvider`. A provider
    that knows real users (JupyterHub's) says otherwise by setting ``users_are_server_owner = False``,
    or simply by living outside ``jupyter_server``.
    """
    default = type(identity_provider).__module__.startswith("jupyter_server.")
    return bool(getattr(identity_provider, "users_are_server_owner", default))


def owner_name(user: Any, identity_provider: Any, server_owner: str) -> str:
    """The owner recorded for (and matched against) the jobs of the request's ``user``.

    A certificate user is their certificate's common name. A user of the server's own token or login
    cookie is ``server_owner`` (the same name for the token, the cookie, the CLI, the Python client and
    the kernels of one server), not the random name jupyter_server gives them. Any other user (e.g. a
    JupyterHub user) is their user name.
    """
    if is_certificate_user(user):
        return str(user.username)
    if users_are_server_owner(identity_provider):
        return server_owner
    return str(getattr(user, "username", "") or "")


__all__ = [
    "CertificateUser",
    "SkyPortIdentityProvider",
    "accepts_certificate_users",
    "certificate_username",
    "is_certificate_user",
    "owner_name",
    "peer_certificate",
    "server_user_name",
    "users_are_server_owner",
]
