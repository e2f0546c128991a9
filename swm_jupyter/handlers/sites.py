"""REST handlers of sites, the OpenAPI document, and JSON 404s for unknown API paths."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import JobNotFound
from .base import API_PREFIX, SwmHandler, redact
from .openapi_doc import openapi_document as openapi_document


def public_site(site: dict[str, Any], extra_patterns: Iterable[str] = ()) -> dict[str, Any]:
    """A site's description for clients, with secret-looking options and values hidden."""
    return redact(site, extra_patterns=extra_patterns)


class SitesHandler(SwmHandler):
    """``GET /sites``: every configured site with its gate, health, limits, flavors and images."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``{"sites": [Site...], "default": name}``."""
        manager = self.manager
        sites = await manager.describe_sites()
        self.write_json(
            {"sites": [public_site(s, self.secret_patterns) for s in sites], "default": manager.default_site}
        )


class SiteHandler(SwmHandler):
    """``GET /sites/{name}``: one site, ``404`` if there is none of that name."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """The site's description."""
        self.write_json(public_site(await self.manager.describe_site(name), self.secret_patterns))


class OpenAPIHandler(SwmHandler):
    """``GET /openapi.json`` and ``GET /openapi.yaml``: the API document, with this server's URL."""

    @web.authenticated
    @authorized
    async def get(self, ext: str) -> None:
        """The document in JSON or YAML."""
        document = dict(openapi_document())
        document["servers"] = [{"url": f"{self.base_url.rstrip('/')}{API_PREFIX}"}]
        if ext == "yaml":
            import yaml

            self.finish(yaml.safe_dump(document, sort_keys=False), set_content_type="application/yaml")
            return
        self.write_json(document)


class NotFoundHandler(SwmHandler):
    """Any other path under ``/swm/api/v1/``: a JSON ``404`` (after authentication)."""

    def _missing(self) -> None:
        raise JobNotFound(f"no swm API route {self.request.method} {self.request.path}; see {API_PREFIX}/openapi.json")

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        """404."""
        self._missing()

    @web.authenticated
    @authorized
    async def post(self, path: str) -> None:
        """404."""
        self._missing()

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        """404."""
        self._missing()

    @web.authenticated
    @authorized
    async def patch(self, path: str) -> None:
        """404."""
        self._missing()

    @web.authenticated
    @authorized
    async def delete(self, path: str) -> None:
        """404."""
        self._missing()
