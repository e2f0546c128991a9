"""The Jupyter server extension: configures a :class:`WorkloadManager` and serves the REST API.

Enable it (``jupyter server extension enable swm_jupyter``) and configure it with traitlets::

    c.SwmApp.sites = {"local": {"gate": "local"}, "cluster": {"gate": "slurm", "ssh_host": "login"}}
    c.SwmApp.data_dir = "/scratch/me/swm"

The manager's loops start in the extension's start hook (after the server's event loop runs) and
stop in its stop hook. If the job store is locked by another server, or ``data_dir`` cannot be
written, the error is logged and the API answers ``503`` with the reason (``cannot write data_dir
/x: Permission denied``) instead of the server failing to start.

In a JupyterHub user's server, when the hub runs the swm service (or ``c.SwmApp.service_url`` is
set), the extension runs no manager: it forwards its API to the service (client mode, see
:mod:`swm_jupyter.hub.client_mode`).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitType, Unicode, default

from ._version import __version__
from .auth import accepts_certificate_users, server_user_name
from .core import gc_pauses
from .core.errors import SwmError
from .core.manager import WorkloadManager
from .core.schedule_runner import ScheduleRunner
from .hub import SERVICE_NAME
from .hub.client_mode import ServiceLink, find_service, in_hub_single_user_server, server_token, service_base_url


class FolderNotWritable(SwmError):
    """A folder the manager must write (``data_dir``, the store's folder) cannot be written (API: 503)."""

    status = 503


class SharedAccountRefused(SwmError):
    """Certificate users would run jobs under the server's account and nobody said that is accepted (503)."""

    status = 503


def check_writable_folder(path: str, option: str) -> None:
    """Make ``path`` (with its parents) and write a probe file in it; raise :class:`FolderNotWritable` if not.

    The message names the option and the path and says why: ``cannot write data_dir /x: Permission denied``.
    """
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".swm-write-test-"):
            pass
    except OSError as exc:
        raise FolderNotWritable(f"cannot write {option} {path}: {exc.strerror or type(exc).__name__}") from None


def shared_account_sites(sites: dict[str, Any]) -> list[str]:
    """Names of the configured sites whose gate runs jobs under the server's own account.

    A gate says so with its ``runs_as_owner`` attribute (when that is a configurable trait, the site's
    option of that name or the trait's default). A gate that cannot be loaded runs nothing and is not
    listed (its site reports the error when used).
    """
    from .core.gate_registry import load_gate_class

    shared: list[str] = []
    for name, options in sites.items():
        options = dict(options or {})
        try:
            cls = load_gate_class(str(options.get("gate", name)))
        except SwmError:
            continue
        runs_as_owner = cls.runs_as_owner
        if isinstance(runs_as_owner, TraitType):
            runs_as_owner = options.get("runs_as_owner", runs_as_owner.default_value)
        if options.get("run_as_owner") is True and cls.supports_run_as_owner:
            runs_as_owner = True  # the site's option (see core/accounts.py)
        if runs_as_owner is not True:
            shared.append(str(name))
    return shared


#: Traits of the app that are handed on to the manager when set (unset: the manager's default).
MANAGER_TRAITS = (
    "sites",
    "default_site",
    "store_path",
    "data_dir",
    "poll_interval",
    "synchronous",
    "secret_env",
    "secret_patterns",
    "scheduling_policy",
    "fairshare_window",
    "max_running_per_user",
    "max_queued_per_user",
    "max_array_size",
    "strict_directives",
)


class SwmApp(ExtensionApp):
    """The swm-jupyter server extension: a workload manager and its REST/websocket API."""

    name = "swm_jupyter"
    description = "Sky Port workload manager inside the Jupyter server"
    version = __version__
    load_other_extensions = True

    sites = Dict(
        default_value=None,
        allow_none=True,
        help='Sites by name, each {"gate": entry-point name or dotted path, ...gate options}. '
        'Default: one site {"local": {"gate": "local"}}.',
    ).tag(config=True)
    default_site = Unicode(
        None, allow_none=True, help="Site of jobs that name none. Default: the first configured site."
    ).tag(config=True)
    data_dir = Unicode(
        None, allow_none=True, help="Folder of the job store and the job folders. Default: <jupyter data dir>/swm."
    ).tag(config=True)
    store_path = Unicode(
        None, allow_none=True, help="Path of the SQLite job store. Default: <data_dir>/jobs.sqlite."
    ).tag(config=True)
    poll_interval = Float(
        None, allow_none=True, help="Seconds between status polls of a site whose gate sets no pace. Default: 2."
    ).tag(config=True)
    synchronous = Enum(
        ["FULL", "NORMAL"],
        None,
        allow_none=True,
        help="SQLite synchronous mode of the store: NORMAL (default) keeps every acknowledged job through a "
        "crash or kill of the server; FULL also through power loss, at about a third of the submission rate.",
    ).tag(config=True)
    secret_env = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="Names of the server's environment variables that jobs never inherit, besides the built-in "
        "JUPYTER_TOKEN, JUPYTER_PASSWORD, JPY_*, JUPYTERHUB_*TOKEN*, JUPYTERHUB_*SECRET*; shell patterns "
        "(* ?), matched without regard to case.",
    ).tag(config=True)
    secret_patterns = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="More names whose values are secret (shell-style patterns matched in upper case, e.g. "
        "'MYCOMPANY_*' or '*_LICENSE'), hidden in API responses and messages beside the built-in ones "
        "(*TOKEN*, *SECRET*, *PASS*, *KEY*, *PAT, *COOKIE*, ...). Default: none.",
    ).tag(config=True)
    scheduling_policy = Enum(
        ["fifo", "fairshare"],
        None,
        allow_none=True,
        help="Order of queued jobs of different users: fifo (priority, then submission order, whoever the "
        "owner; the default) or fairshare (the user with the least recent cpu-seconds first).",
    ).tag(config=True)
    fairshare_window = Float(
        None,
        allow_none=True,
        help="Half-life of past usage for fair share, in seconds. Default: 604800 (7 days).",
    ).tag(config=True)
    max_running_per_user = Int(
        None,
        allow_none=True,
        help="The most jobs of one user on the sites at once (all sites together); more stay queued. "
        "Default: 0 (no limit). A site may set its own in its options.",
    ).tag(config=True)
    max_queued_per_user = Int(
        None,
        allow_none=True,
        help="The most jobs of one user queued or held at once (all sites together); more are refused (429). "
        "Default: 0 (no limit). A site may set its own in its options.",
    ).tag(config=True)
    server_owner = Unicode(
        help="Owner recorded on the jobs of whoever holds the server's token or login cookie (the browser, the "
        "swm CLI, the Python client, kernels), and the name ?owner= finds them by. Certificate users of the "
        "Sky Port routes are their certificate's CN. Default: the name of the account running the server.",
    ).tag(config=True)
    allow_shared_account = Bool(
        False,
        help="Serve Sky Port certificate users (ServerApp.client_ca with the SkyPortIdentityProvider) although "
        "their jobs run on sites that use the server's own account, where a job can read the server's token and "
        "so act as the server's owner. Default: False, and the swm API then does not start (503 saying why) "
        "unless every site runs jobs under their owners' accounts.",
    ).tag(config=True)
    max_array_size = Int(
        None,
        allow_none=True,
        help="Most tasks one job array may have (like Slurm's MaxArraySize); larger arrays get 400. "
        "Default: 100001 (indices 0-100000).",
    ).tag(config=True)
    strict_directives = Bool(
        None,
        allow_none=True,
        help="Refuse (400) a job script with an #SWM directive this server does not know, on every route. "
        "Default: False: the line is ignored and the job carries a warning (in the submit answer and the job).",
    ).tag(config=True)
    gc_freeze = Bool(
        True,
        help="Keep Python's full garbage collections from stalling requests: once started, and after each big "
        "array submission, move long-lived objects out of later collections (gc.freeze), and hold automatic "
        "collections while a big array is submitted or acted on. Default: True.",
    ).tag(config=True)
    max_body_bytes = Int(
        16 * 1024 * 1024,
        help="Largest request body (a job spec or script) the API accepts, in bytes; larger ones get 413. "
        "Default: 16 MiB.",
    ).tag(config=True)

    @default("server_owner")
    def _default_server_owner(self) -> str:
        return server_user_name()

    service_url = Unicode(
        None,
        allow_none=True,
        help="URL of a JupyterHub's swm service (with its prefix, e.g. http://127.0.0.1:10101/services/swm/). "
        "When set, this server runs no workload manager and forwards its swm API to the service with its "
        "JUPYTERHUB_API_TOKEN (client mode). Default: in a hub user's server, the URL of the hub's service "
        "named service_name if the hub has one; elsewhere none (standalone).",
    ).tag(config=True)
    user_root = Unicode(
        None,
        allow_none=True,
        help="Each job owner's own folder, as a template ({home}: the owner's home, {username}, {uid}): "
        "input_files, notebook and a relative workdir are paths in it, read with the owner's rights. "
        'Default: "{home}" in the hub\'s swm service (python -m swm_jupyter.hub.service), where every job has '
        "a hub user as owner; elsewhere none (paths are relative to the server's root_dir). An empty string "
        "turns it off.",
    ).tag(config=True)
    service_name = Unicode(
        SERVICE_NAME, help="Name of the hub's swm service looked up in a hub user's server. Default: swm."
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manager: WorkloadManager | None = None
        #: The schedules of the manager (None in client mode: they live in the hub's service).
        self.schedules: ScheduleRunner | None = None
        #: Where the hub's swm service is, in client mode (None: standalone, this server runs the manager).
        self.service_link: ServiceLink | None = None
        #: Why the manager is not running (e.g. the store is locked), answered as 503 by the API.
        self.start_error: str | None = None

    def find_service_link(self) -> ServiceLink | None:
        """The hub's swm service to forward to, or None to run a manager here (see :attr:`service_url`)."""
        url = self.service_url
        if not url and in_hub_single_user_server(os.environ):
            url, why_not = find_service(self.service_name, os.environ)
            if not url:
                self.log.warning("swm: no swm service found on this hub (%s); running a workload manager here", why_not)
        if not url:
            return None
        token = server_token()
        if not token:
            self.log.warning("swm: SwmApp.service_url is set but JUPYTERHUB_API_TOKEN is not: the service will refuse")
        return ServiceLink(service_base_url(url), token)

    def initialize_settings(self) -> None:
        """Make the manager (not started yet) and hand it to the handlers through the settings."""
        self.service_link = self.find_service_link()
        if self.service_link is not None:
            self.settings.update({"swm_app": self, "swm_manager": None})
            self.log.info("swm: client of the hub's swm service at %s", self.service_link.url)
            return
        traits = {name: getattr(self, name) for name in MANAGER_TRAITS if getattr(self, name) is not None}
        root_dir = getattr(self.serverapp, "root_dir", None) if self.serverapp is not None else None
        if root_dir:
            traits["input_root"] = str(root_dir)
        user_root = self.user_root
        if user_root is None:  # the service's class may be __main__'s (python -m): it says what it is
            user_root = "{home}" if getattr(self.serverapp, "swm_hub_service", False) else ""
        traits["user_root"] = user_root
        self.manager = WorkloadManager(parent=self, **traits)
        self.schedules = ScheduleRunner(parent=self, manager=self.manager)
        self.start_error = "the workload manager is starting"
        self.settings.update({"swm_app": self, "swm_manager": self.manager, "swm_schedules": self.schedules})

    def initialize_handlers(self) -> None:
        """Register the REST and websocket handlers under ``/swm/api/v1/``."""
        from .handlers import default_handlers, skyport_compat

        if self.service_link is not None:
            from .hub.client_mode import client_handlers

            self.handlers.extend(client_handlers(self.service_link))
            return
        self.handlers.extend(default_handlers + skyport_compat.compat_handlers())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Start the manager's loops once the server's event loop runs; a locked store is logged, not fatal."""
        if self.manager is None:
            return
        try:
            self.check_certificate_users(serverapp)
            check_writable_folder(self.manager.data_dir, "data_dir")
            check_writable_folder(os.path.dirname(os.path.abspath(self.manager.store_path)), "the folder of store_path")
            gc_pauses.enabled = self.gc_freeze
            await self.manager.start()
            if self.schedules is not None:
                await self.schedules.start()
            gc_pauses.freeze_startup_heap()
        except SwmError as exc:
            self.start_error = exc.message
            self.log.error("swm: the workload manager did not start: %s; the swm API answers 503", exc.message)
            return
        except Exception as exc:
            self.start_error = "the workload manager failed to start; see the server log"
            self.log.exception("swm: the workload manager failed to start: %s", type(exc).__name__)
            return
        self.start_error = None
        self.log.info("swm: API at %sswm/api/v1/", self.serverapp.base_url if self.serverapp else "/")

    def check_certificate_users(self, serverapp: Any) -> None:
        """Refuse (:class:`SharedAccountRefused`) to serve certificate users whose jobs would share the server's
        account, unless ``allow_shared_account`` says the operator accepts it (then log a warning)."""
        if not accepts_certificate_users(serverapp):
            return
        shared = shared_account_sites(self.manager.sites if self.manager is not None else {})
        if not shared:
            return
        risk = (
            f"Sky Port certificate users (ServerApp.client_ca) can submit jobs to sites that run them under the "
            f"server's own account ({', '.join(shared)}): such a job can read the server's token and act as its owner"
        )
        if not self.allow_shared_account:
            raise SharedAccountRefused(
                f"{risk}; set c.SwmApp.allow_shared_account = True to accept that, or remove ServerApp.client_ca"
            )
        self.log.warning("swm: %s; allowed by SwmApp.allow_shared_account = True", risk)

    async def stop_extension(self) -> None:
        """Stop the manager's loops and close the store; running jobs carry on detached."""
        from .handlers.events import EventsWebSocket
        from .hub.client_mode import ServiceEventsSocket

        EventsWebSocket.close_all()
        ServiceEventsSocket.close_all()
        if self.manager is not None and self.start_error is None:
            self.start_error = "the workload manager is stopping"
            if self.schedules is not None:
                await self.schedules.stop()
            await self.manager.stop()


main = launch_new_instance = SwmApp.launch_instance
