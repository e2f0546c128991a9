"""The swm service of a JupyterHub: one Jupyter server running the swm extension for every hub user.

The hub starts it (and starts it again if it dies) from ``c.JupyterHub.services``::

    c.JupyterHub.services = [{
        "name": "swm",
        "url": "http://127.0.0.1:10101",
        "command": [sys.executable, "-m", "swm_jupyter.hub.service", "--SwmApp.data_dir=/var/lib/swm"],
        "oauth_no_confirm": True,
    }]

It listens where the hub says (``JUPYTERHUB_SERVICE_URL``, under ``JUPYTERHUB_SERVICE_PREFIX``),
authenticates every request through the hub (:mod:`.identity`), and serves only the swm API: the
other extensions of the environment (JupyterLab, terminals, ...) are not loaded, terminals are off,
and the authorizer refuses every other route. Its job store is its own (``SwmApp.data_dir``), with
the same guarantees as a standalone server: an acknowledged job is stored before the answer, a
restart reconciles every job, a lock on the store keeps a second process from running a job twice.
Further options come from the command line (``--SwmApp.sites=...``) or a config file
(``--config=/etc/swm/swm_service_config.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlparse

from jupyter_server.serverapp import ServerApp
from traitlets import default
from traitlets.config import Config

#: The only server extension the service loads.
EXTENSION = "swm_jupyter"


class ServiceEnvironmentMissing(SystemExit):
    """The process was not started by JupyterHub as a service with a ``url``."""


def hub_listen_address(environ: dict[str, str] | os._Environ[str]) -> tuple[str, int, str]:
    """``(ip, port, base_url)`` from ``JUPYTERHUB_SERVICE_URL`` and ``JUPYTERHUB_SERVICE_PREFIX``.

    Raises :class:`ServiceEnvironmentMissing` (exit with a message) when the hub did not set them.
    """
    url = environ.get("JUPYTERHUB_SERVICE_URL", "")
    if not url:
        raise ServiceEnvironmentMissing(
            "swm service: JUPYTERHUB_SERVICE_URL is not set. This command is started by JupyterHub: declare it in "
            'c.JupyterHub.services with a "url" and a "command" (see docs/jupyterhub.md)'
        )
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
    return parts.hostname or "127.0.0.1", port, prefix


class SwmServiceApp(ServerApp):
    """A Jupyter server that runs only the swm extension, authenticated and authorized by the hub."""

    name = "swm-hub-service"
    description = "The swm service of a JupyterHub: one workload manager for every user of the hub."
    #: Read by the swm extension: jobs' input paths are then in each owner's own folder (SwmApp.user_root).
    swm_hub_service = True

    @default("identity_provider_class")
    def _default_identity_provider_class(self) -> Any:
        from .identity import SwmHubIdentityProvider

        return SwmHubIdentityProvider

    @default("authorizer_class")
    def _default_authorizer_class(self) -> Any:
        from .identity import SwmHubAuthorizer

        return SwmHubAuthorizer

    def load_config_file(self, *args: Any, **kwargs: Any) -> None:
        """Load the config files, then listen where the hub says (the command line still wins)."""
        super().load_config_file(*args, **kwargs)
        ip, port, base_url = hub_listen_address(os.environ)
        self.update_config(
            Config(
                {
                    "ServerApp": {
                        "ip": ip,
                        "port": port,
                        "base_url": base_url,
                        "port_retries": 0,
                        "open_browser": False,
                        "terminals_enabled": False,
                        "allow_remote_access": True,
                        "trust_xheaders": True,
                        "allow_root": True,
                    }
                }
            )
        )

    def init_webapp(self) -> None:
        """Make the web app; XSRF is checked by Jupyter Server after the hub identified the caller.

        Tornado's own check runs before authentication, when a hub token cannot be seen yet: it is
        switched off as ``jupyterhub-singleuser`` does; every handler still checks XSRF for
        cookie-authenticated requests (browsers), never for token-authenticated ones.
        """
        super().init_webapp()
        self.web_app.settings["xsrf_cookies"] = False
        headers = self.web_app.settings.setdefault("headers", {})
        headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")

    def init_server_extensions(self) -> None:
        """Load only the swm extension, whatever else the environment enables."""
        self.jpserver_extensions = {name: False for name in self.jpserver_extensions} | {EXTENSION: True}
        super().init_server_extensions()

    def write_server_info_file(self) -> None:
        """Write no runtime file: it would hold the service's hub token, and no local client needs it."""

    def write_browser_open_files(self) -> None:
        """Write no browser-open file (the service has no browser page)."""


def main(argv: list[str] | None = None) -> None:
    """Run the service until it is stopped (``python -m swm_jupyter.hub.service [--Trait=value ...]``)."""
    try:
        SwmServiceApp.launch_instance(argv)
    except ServiceEnvironmentMissing as exc:
        print(exc.code, file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
