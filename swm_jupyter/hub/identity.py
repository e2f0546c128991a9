"""Hub identity for the swm service: who calls (hub tokens, the hub's OAuth) and what they may do.

Authentication is JupyterHub's own: :class:`SwmHubIdentityProvider` is the identity provider of
``jupyterhub-singleuser`` (:class:`~jupyterhub.singleuser.extension.JupyterHubIdentityProvider`,
built on :class:`~jupyterhub.services.auth.HubOAuth`): API calls carry a hub token
(``Authorization: token ...``) that the hub resolves with ``user_for_token``; browsers log in
through the hub's OAuth (``/oauth_callback``). A caller needs the service's access scope
(``access:services!service=swm``), as for any hub service.

Authorization is by the custom scopes of the caller's token:

- ``custom:swm:jobs`` (usually ``custom:swm:jobs!user``): the caller's own jobs;
- ``custom:swm:admin``: every user's jobs.

A token with neither gets ``403`` on every swm route. Nothing else of the service's Jupyter server
(contents, kernels, terminals) is open to anyone.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyterhub.services.auth import check_scopes
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider, JupyterHubUser
from tornado import web

from ..handlers.base import AUTH_RESOURCE
from . import ADMIN_SCOPE, JOBS_SCOPE


def swm_access(hub_user: dict[str, Any]) -> tuple[bool, bool]:
    """``(may_use, sees_all)`` of a hub user model (with its token's ``scopes``) from the hub API."""
    scopes = set(hub_user.get("scopes") or ())
    sees_all = bool(check_scopes({ADMIN_SCOPE}, scopes))
    own = {JOBS_SCOPE, f"{JOBS_SCOPE}!user={hub_user.get('name', '')}"}
    return sees_all or bool(check_scopes(own, scopes)), sees_all


class SwmHubIdentityProvider(JupyterHubIdentityProvider):  # type: ignore[misc]
    """The hub's identity (token or OAuth cookie) with the caller's swm rights attached.

    The user it answers has ``swm_may_use`` (the token holds ``custom:swm:jobs`` or
    ``custom:swm:admin``) and ``swm_sees_all`` (``custom:swm:admin``), read by
    :mod:`swm_jupyter.handlers.access` and :class:`SwmHubAuthorizer`.
    """

    async def get_user(self, handler: web.RequestHandler) -> JupyterHubUser | None:
        """The hub user of the request with ``swm_may_use`` and ``swm_sees_all`` set, or None."""
        user = await super().get_user(handler)
        if user is not None and not hasattr(user, "swm_sees_all"):
            user.swm_may_use, user.swm_sees_all = swm_access(user.hub_user)
        return user  # type: ignore[no-any-return]


class SwmHubAuthorizer(Authorizer):
    """Allows the swm API to callers whose token has an swm scope, and nothing else to anyone."""

    def is_authorized(self, handler: web.RequestHandler, user: Any, action: str, resource: str) -> bool:
        """True only for the ``swm`` resource and a user with ``custom:swm:jobs`` or ``custom:swm:admin``."""
        allowed = resource == AUTH_RESOURCE and bool(getattr(user, "swm_may_use", False))
        if not allowed:
            self.log.info(
                "swm: refusing %s on %s to %s (needs the scope %s or %s)",
                action,
                resource,
                getattr(user, "username", "?"),
                JOBS_SCOPE,
                ADMIN_SCOPE,
            )
        return allowed


__all__ = ["SwmHubAuthorizer", "SwmHubIdentityProvider", "swm_access"]
