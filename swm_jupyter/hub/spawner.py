"""SwmSpawner: each hub user's Jupyter server is a job of the hub's swm service, on any of its sites.

``c.JupyterHub.spawner_class = "swm"``. The spawner talks only to the swm service's REST API, as
the user (never as an admin):

- **start** submits a job running ``python -m swm_jupyter.hub.server_job -- jupyterhub-singleuser``
  (:mod:`.server_job`) on the chosen site. The server's hub token and other secret-looking
  variables go in the request's ``private_env``: the service hands them to the job's process only,
  never stores them, never shows them. The server picks a free port; its address comes back on the
  job's stdout (one ``swm-spawner-ready`` line), pushed on the service's events websocket
  (:mod:`.job_watch`; polled through the job log when the socket cannot be used). The server starts
  through :mod:`.fast_start` (``fast_start``). A job that ends first raises
  :class:`~jupyterhub.spawner.SpawnException` with the job's reason and the last lines of its stderr.
- **poll** answers from the job's state; while the service cannot be reached it answers "running"
  for ``unknown_grace`` seconds (a scheduler or service outage does not stop servers).
- **stop** cancels the job and returns once it is final.
- **get_state/load_state** keep the job id, so a restarted hub finds its servers again.
- **files**: on sites that do not see the users' homes (``stage_site_kinds``), the paths the user chose
  (``stage``, or ``stage_paths``) are the job's ``input_files`` and come back into the home after
  stop (:mod:`.stage_back`).
- **progress** yields the job's own steps (queued, pending with the site's reason, staging, starting,
  ready), per spawner.
- **the spawn form** is built from the service's live ``/sites`` (:mod:`.spawn_form`): site, cpus,
  memory, gpus, walltime, Slurm partition and account, cloud flavor (price per hour, estimated cost of
  the walltime from the service's dry run) and image, and the configured ``profiles`` the user may use
  (:mod:`.spawn_options`); the user's last choice is pre-selected. The choice is checked by the
  service's dry run before anything starts: a bad value shows the service's message on the form (or,
  for a start through the API, on the progress page).

Calls are made with the server's own token (``api_token``), which the hub gives the scopes of
``c.Spawner.server_token_scopes`` (``access:services!service=swm`` and ``custom:swm:jobs!user``).
After a hub restart that token is no longer known to the spawner (the hub keeps only its hash):
the spawner then makes a short-lived token of the user with just those two scopes.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from jupyterhub.spawner import Spawner, SpawnException
from tornado import httpclient
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from ..core.errors import PathNotAllowed
from ..core.job_env import secret_matcher
from . import JOBS_SCOPE, SERVICE_NAME
from .client_mode import service_base_url
from .job_watch import JobWatch, OutputLines
from .server_job import READY_MARKER
from .spawn_form import render_form
from .spawn_options import (
    SpawnOptionsError,
    apply_choices,
    choices_from_form,
    profiles_for,
    resolve_choices,
    stage_list,
)
from .stage_back import HomeAccount, under, write_back

#: Percent of the progress bar reached when the job enters each state.
STATE_PROGRESS = {"queued": 10, "held": 10, "waiting": 30, "transferring": 50, "running": 70}
#: States after which a job does not run again.
FINAL_STATES = ("finished", "error", "canceled")
#: Names of variables that go to the job as ``private_env`` besides those of the hub's own secrets.
PRIVATE_NAME_PATTERNS = ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*_KEY", "*PRIVATE*")
_JOB_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.@+=:,-]+")
#: The most cloud flavors whose cost the form asks the service to estimate.
MAX_ESTIMATES = 30


class ServiceUnreachable(Exception):
    """The swm service did not answer (connection refused, timeout, 502/503/504 from the proxy)."""


class SwmSpawner(Spawner):  # type: ignore[misc]
    """Starts each user's ``jupyterhub-singleuser`` as a job of the hub's swm service (see the module docstring)."""

    service_name = Unicode(SERVICE_NAME, help="The name of the swm service in c.JupyterHub.services.").tag(config=True)
    service_url = Unicode(
        "",
        help="The swm service's base URL with its prefix, e.g. http://127.0.0.1:10101/services/swm/. "
        "Default: the url and prefix of the hub's service named service_name.",
    ).tag(config=True)
    site = Unicode("", help="The site servers run on unless the user chooses one. Default: the service's default.").tag(
        config=True
    )
    resources = Dict(
        help='Resources of the server job unless the user chooses, e.g. {"cpus": 2, "memory": "4G", '
        '"walltime": "8:00:00"} (the job spec\'s "resources").'
    ).tag(config=True)
    site_extras = Dict(
        help='Site extras of the server job, by gate kind, e.g. {"slurm": {"partition": "interactive"}}.'
    ).tag(config=True)
    server_python = Unicode(
        sys.executable,
        help="The Python on the sites that runs swm_jupyter.hub.server_job (with jupyterhub installed). "
        "Default: the hub's own Python.",
    ).tag(config=True)
    report_host = Unicode(
        "",
        help="The host name the proxy reaches servers by. Default: the listen ip, or the node's name "
        "when it listens on all addresses (Spawner.ip = '0.0.0.0', needed on remote sites).",
    ).tag(config=True)
    private_env_names = List(
        Unicode(),
        list(PRIVATE_NAME_PATTERNS),
        help="Shell-style patterns of environment names passed to the server only as private variables "
        "(never stored or shown by the service), besides the hub's tokens (always private).",
    ).tag(config=True)
    start_poll_interval = Float(0.5, help="Seconds between looks at the job while the server starts.").tag(config=True)
    unknown_grace = Float(
        600.0,
        help="Seconds poll() keeps answering 'running' while the swm service cannot be reached, "
        "before it reports the server stopped.",
    ).tag(config=True)
    stop_wait = Float(60.0, help="Seconds stop() waits for the canceled job to be final.").tag(config=True)
    stderr_lines = Integer(20, help="Lines of the job's stderr shown when the server fails to start.").tag(config=True)
    request_timeout = Float(30.0, help="Seconds to wait for one answer of the swm service.").tag(config=True)
    allow_root = Bool(
        False,
        help="Let servers run as root when the swm service runs its jobs as root (no run_as_owner). "
        "For tests only: the user would own the machine.",
    ).tag(config=True)

    follow_events = Bool(
        True,
        help="Follow a starting server's job on the swm service's events websocket (its output and state pushed as "
        "they come) rather than only polling it every start_poll_interval. Default: True.",
    ).tag(config=True)
    fast_start = Bool(
        True,
        help="Start jupyterhub-singleuser without importing rfc3987_syntax (see swm_jupyter.hub.fast_start: "
        "1 - 3 s of a server's start, for a string format no Jupyter schema uses). Only for a command of "
        "server_python's own environment. Default: True.",
    ).tag(config=True)
    stage_paths = List(
        Unicode(),
        help="Files and folders of the user's home (relative paths) copied into the server's job before it starts "
        "and back into the home after it stops, on sites of the kinds in stage_site_kinds (the user's own "
        "choice in the spawn form, field stage, goes over it). The server then serves its job folder. "
        "Default: none.",
    ).tag(config=True)
    stage_site_kinds = List(
        Unicode(),
        ["ssh", "cloud"],
        help="Kinds of sites that do not see the users' homes: paths to stage are staged only there. "
        'Default: ["ssh", "cloud"].',
    ).tag(config=True)

    profiles = List(
        Dict(),
        help='Server profiles, like ProfilesSpawner\'s: [{"name": "small", "display": "2 cpus, 8 hours", '
        '"options": {"site": "cluster", "cpus": 2, "walltime": "8:00:00", "partition": "interactive"}, '
        '"users": [...], "groups": [...]}]. options: site, cpus, memory, gpus, walltime, partition, account, '
        "flavor, image. A profile with users or groups is offered to those only; without either, to everyone.",
    ).tag(config=True)
    user_choices = Bool(
        True,
        help="Let users choose site and resources in the spawn form (over their profile's). False: only profiles.",
    ).tag(config=True)
    estimate_walltime = Unicode(
        "",
        help="The walltime whose cost the form shows for each cloud flavor. "
        "Default: the walltime of resources, else 1:00:00.",
    ).tag(config=True)

    @default("options_form")
    def _default_options_form(self) -> Any:
        """The form built from the service's live sites (a configured form or callable replaces it)."""
        return spawn_form_html

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        """Reads that form and checks it with the service's dry run."""
        return spawn_form_options

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        """Checks the user's options against the profiles before anything starts (a refusal is a 400)."""
        return check_user_options

    job_id = Unicode("")
    job_site = Unicode("")
    #: Paths of the user's home staged into the job (to bring back after it stops), and when it was submitted.
    staged = List(Unicode())
    staged_since = Float(0.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._steps: list[dict[str, Any]] = []
        self._step_added = asyncio.Event()
        self._start_over = False
        self._own_token = ""
        self._own_token_expires = 0.0
        self._unreachable_since: float | None = None

    # -- state kept by the hub ---------------------------------------------------------------------

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the job id after a hub restart."""
        super().load_state(state)
        self.job_id = state.get("job_id", "")
        self.job_site = state.get("site", "")
        self.staged = list(state.get("staged") or [])
        self.staged_since = float(state.get("staged_since") or 0.0)

    def get_state(self) -> dict[str, Any]:
        """The job id and site (stored in the hub's database)."""
        state: dict[str, Any] = super().get_state()
        if self.job_id:
            state["job_id"] = self.job_id
            state["site"] = self.job_site
            if self.staged:
                state["staged"] = list(self.staged)
                state["staged_since"] = self.staged_since
        return state

    def clear_state(self) -> None:
        """Forget the job once the server is stopped."""
        super().clear_state()
        self.job_id = ""
        self.job_site = ""
        self.staged = []
        self.staged_since = 0.0

    # -- the service's API -------------------------------------------------------------------------

    def api_base(self) -> str:
        """The swm API's URL (``.../swm/api/v1/``) of the hub's swm service."""
        base = self.service_url
        if not base:
            service = (self.user.settings.get("services") or {}).get(self.service_name)
            if service is None or not getattr(service, "url", None):
                raise SpawnException(
                    f"the hub has no service {self.service_name!r} with a url: declare the swm service in "
                    "c.JupyterHub.services (see docs/jupyterhub.md)",
                    reason="swm-service-missing",
                )
            base = service_base_url(service.url, service.prefix)
        return base.rstrip("/") + "/swm/api/v1/"

    def token(self, own: bool = False) -> str:
        """The user's token for the service: the server's own, or (after a hub restart, or ``own``: before a
        server is started) a short-lived one."""
        if self.api_token and not own:
            return str(self.api_token)
        if not self._own_token or time.time() > self._own_token_expires - 60:
            scopes = [f"access:services!service={self.service_name}", f"{JOBS_SCOPE}!user"]
            self._own_token = self.user.new_api_token(
                note=f"swm spawner: server {self.name or '(default)'} after a hub restart",
                scopes=scopes,
                expires_in=3600,
            )
            self._own_token_expires = time.time() + 3600
        return self._own_token

    async def api(self, method: str, path: str, body: Any = None, *, own_token: bool = False) -> tuple[int, Any]:
        """``(status, JSON answer or text)`` of one call of the service. Raises :class:`ServiceUnreachable`."""
        request = httpclient.HTTPRequest(
            self.api_base() + path,
            method=method,
            headers={"Authorization": f"token {self.token(own_token)}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else (b"" if method == "POST" else None),
            request_timeout=self.request_timeout,
            connect_timeout=min(10.0, self.request_timeout),
        )
        try:
            answer = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as exc:
            raise ServiceUnreachable(f"{type(exc).__name__}: {exc}") from None
        if answer.code in (502, 503, 504, 599):
            raise ServiceUnreachable(f"the swm service answered {answer.code}")
        text = answer.body.decode("utf-8", "replace") if answer.body else ""
        if "json" in answer.headers.get("Content-Type", ""):
            try:
                return answer.code, json.loads(text)
            except ValueError:
                pass
        return answer.code, text

    # -- what the job is -------------------------------------------------------------------------

    def split_env(self, env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """``(public, private)``: the hub's tokens and secret-looking names go to ``private``."""
        private_name = secret_matcher(self.private_env_names)
        public = {k: v for k, v in env.items() if not private_name.match(k)}
        private = {k: v for k, v in env.items() if private_name.match(k)}
        return public, private

    def job_name(self) -> str:
        """``jupyterhub-<user>[-<server>]`` with only the characters a job name may have."""
        name = f"jupyterhub-{self.user.name}" + (f"-{self.name}" if self.name else "")
        return _JOB_NAME_CHARS.sub("_", name)[:128]

    def choices(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The fields of this server's job from ``options`` (default: ``user_options``) and the profiles (see
        :mod:`.spawn_options`). Raises :class:`SpawnOptionsError`."""
        return resolve_choices(
            self.user_options or {} if options is None else options,
            profiles=self.profiles,
            user=self.user.name,
            groups=[group.name for group in getattr(self.user, "groups", [])],
            user_choices=self.user_choices,
        )

    def placement(self, choices: dict[str, Any]) -> dict[str, Any]:
        """Where the job runs and with what: site, resources and site extras from the configuration, with
        ``choices`` over them."""
        request: dict[str, Any] = {}
        if self.site:
            request["site"] = self.site
        if self.resources:
            request["resources"] = dict(self.resources)
        request.update({kind: dict(extras) for kind, extras in self.site_extras.items()})
        return apply_choices(request, choices)

    def job_request(self, choices: dict[str, Any] | None = None, *, stage_in: bool = False) -> dict[str, Any]:
        """The job submitted for this server (its ``private_env`` holds the token); with ``stage_in``, the paths
        to stage are its ``input_files`` and the server serves its job folder."""
        public, private = self.split_env(self.get_env())
        hub_names = (n for n in [*public, *private] if n.startswith(("JUPYTERHUB_", "JPY_")))
        public["SWM_SPAWNER_ENV"] = ",".join(sorted(hub_names))
        if self.allow_root:
            public["SWM_SPAWNER_ALLOW_ROOT"] = "1"
        command = [self.server_python, "-m", "swm_jupyter.hub.server_job", "--ip", self.ip or "127.0.0.1"]
        if self.report_host:
            command += ["--report-host", self.report_host]
        choices = self.choices() if choices is None else choices
        stage = stage_list(choices["stage"]) if "stage" in choices else list(self.stage_paths)
        if stage and stage_in:
            command.append("--in-job-folder")
        if self.fast_start:
            command.append("--fast-start")
        command += ["--start-timeout", str(int(self.start_timeout)), "--", *self.cmd, *self.get_args()]
        request: dict[str, Any] = {"name": self.job_name(), "command": command, "env": public, "private_env": private}
        request.update(self.placement(choices))
        if stage and stage_in:
            request["input_files"] = stage
        return request

    async def site_kind(self, site: str, *, own_token: bool = False) -> str:
        """The gate kind of ``site`` (the service's default site when empty), from the service's ``/sites``."""
        status, answer = await self.api("GET", "sites", own_token=own_token)
        if status != 200 or not isinstance(answer, dict):
            return ""
        name = site or str(answer.get("default") or "")
        return next((str(s.get("kind")) for s in answer.get("sites") or [] if s.get("name") == name), "")

    # -- the spawn form ----------------------------------------------------------------------------

    async def dry_run(self, request: dict[str, Any], *, own_token: bool = False) -> dict[str, Any]:
        """The service's dry run of ``request``: ``{"job", "cost_estimate", ...}``. Raises
        :class:`SpawnOptionsError` with the service's message when it refuses, :class:`ServiceUnreachable`."""
        status, answer = await self.api("POST", "jobs?dry_run=1", request, own_token=own_token)
        if status == 200 and isinstance(answer, dict):
            return answer
        raise SpawnOptionsError(service_message(answer))

    def form_walltime(self) -> str:
        """The walltime whose cost the form shows."""
        return self.estimate_walltime or str(self.resources.get("walltime") or "1:00:00")

    async def cost_estimates(self, sites: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """``{site: {flavor: cost}}`` of the form's walltime for each flavor of each healthy cloud site, from
        the service's dry runs (flavors it cannot estimate are left out)."""
        asked: list[tuple[str, str]] = []
        for site in sites:
            if site.get("kind") == "cloud" and site.get("healthy"):
                asked += [(str(site["name"]), str(f.get("name"))) for f in site.get("flavors") or []]
        asked = asked[:MAX_ESTIMATES]

        async def one(site: str, flavor: str) -> Any:
            request = {
                "name": "spawn-form-estimate",
                "command": ["true"],
                "site": site,
                "flavor": flavor,
                "resources": {"walltime": self.form_walltime()},
            }
            try:
                return (await self.dry_run(request, own_token=True)).get("cost_estimate")
            except (SpawnOptionsError, ServiceUnreachable):
                return None

        costs = await asyncio.gather(*(one(site, flavor) for site, flavor in asked))
        estimates: dict[str, dict[str, Any]] = {}
        for (site, flavor), cost in zip(asked, costs, strict=True):
            if isinstance(cost, int | float):
                estimates.setdefault(site, {})[flavor] = float(cost)
        return estimates

    async def build_options_form(self) -> str:
        """The spawn form's HTML from the service's live ``/sites`` for this user (see :mod:`.spawn_form`)."""
        groups = [group.name for group in getattr(self.user, "groups", [])]
        profiles = profiles_for(self.profiles, self.user.name, groups)
        if not self.user_choices and not profiles:
            return ""
        try:
            status, answer = await self.api("GET", "sites", own_token=True)
        except ServiceUnreachable as exc:
            self.log.warning("swm: no spawn form for %s: the swm service does not answer (%s)", self.user.name, exc)
            status, answer = 0, None
        if status != 200 or not isinstance(answer, dict):
            sites, default_site = [], self.site
            note = '<div class="alert alert-warning">The swm service does not answer: its sites cannot be shown.</div>'
        else:
            sites, default_site, note = list(answer.get("sites") or []), self.site or answer.get("default", ""), ""
        estimates = await self.cost_estimates(sites) if sites else {}
        return note + render_form(
            sites,
            default_site=default_site,
            profiles=profiles,
            user_choices=self.user_choices and bool(sites),
            last=self.user_options or {},
            defaults=self.resources,
            estimates=estimates,
            estimate_walltime=self.form_walltime(),
        )

    async def check_form(self, form_data: dict[str, list[str]]) -> dict[str, Any]:
        """The user's options from the form, checked with the profiles and the service's dry run. Raises
        :class:`SpawnOptionsError` (shown on the form) when they cannot be used."""
        options = choices_from_form(form_data)
        choices = self.choices(options)
        probe = {
            "name": self.job_name(),
            "command": [self.server_python, "-m", "swm_jupyter.hub.server_job"],
            "private_env": {"JUPYTERHUB_API_TOKEN": "checked-by-the-spawn-form"},
            **self.placement(choices),
        }
        try:
            stage = stage_list(choices.get("stage") or [])
            if stage and await self.site_kind(str(probe.get("site") or ""), own_token=True) in self.stage_site_kinds:
                probe["input_files"] = stage  # the paths to bring are checked in the user's home, as the user
            await self.dry_run(probe, own_token=True)
        except ServiceUnreachable as exc:
            raise SpawnOptionsError(f"the swm service does not answer ({exc}); try again soon") from None
        return options

    # -- progress ----------------------------------------------------------------------------------

    def note(self, progress: int, message: str) -> None:
        """Add a step to this spawner's progress (read by :meth:`progress`)."""
        self._steps.append({"progress": progress, "message": message})
        self._step_added.set()

    def note_history(self, job: dict[str, Any], seen: int) -> int:
        """Add a step for each history entry of ``job`` after the first ``seen``; return how many there are."""
        history = job.get("history") or []
        for entry in history[seen:]:
            state, details = entry.get("state", ""), entry.get("details") or ""
            words = {
                "queued": f"queued on site {job.get('site')}",
                "held": "held",
                "waiting": f"waiting on site {job.get('site')}",
                "transferring": "staging files",
                "running": "starting the server",
            }.get(state, state)
            self.note(STATE_PROGRESS.get(state, 90), words + (f": {details}" if details else ""))
        return len(history)

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """The steps of this server's start, as they happen, until it is ready or failed."""
        sent = 0
        while True:
            while sent < len(self._steps):
                yield self._steps[sent]
                sent += 1
            if self._start_over:
                return
            self._step_added.clear()
            await self._step_added.wait()

    # -- the spawner API ---------------------------------------------------------------------------

    async def start(self) -> str:
        """Submit the server's job and return its URL once the server listens (see the module docstring)."""
        self._steps, self._start_over = [], False
        self._step_added = asyncio.Event()
        try:
            return await self._start()
        finally:
            self._start_over = True
            self._step_added.set()

    async def _start(self) -> str:
        try:
            request = self.job_request()
            if self.stage_paths or self.choices().get("stage"):
                if await self.site_kind(str(request.get("site") or "")) in self.stage_site_kinds:
                    request = self.job_request(stage_in=True)
        except SpawnOptionsError as exc:
            raise SpawnException(f"the server's options cannot be used: {exc}", reason="swm-options") from None
        except ServiceUnreachable as exc:
            raise SpawnException(
                f"the swm service does not answer ({exc}); try again soon", reason="swm-down"
            ) from None
        try:
            checked = await self.dry_run(request)
            status, answer = await self.api("POST", "jobs", request)
        except SpawnOptionsError as exc:
            raise SpawnException(f"the swm service refused the server: {exc}", reason="swm-refused") from None
        except ServiceUnreachable as exc:
            message = f"the swm service does not answer ({exc}); try again soon"
            raise SpawnException(message, reason="swm-down") from None
        if status != 201:
            raise SpawnException(f"the swm service refused the server: {service_message(answer)}", reason="swm-refused")
        self.job_id, self.job_site = answer["id"], answer.get("site", "")
        self.staged = [str(p) for p in request.get("input_files") or []]
        self.staged_since = time.time()
        self.log.info("swm: %s's server %r is swm job %s on %s", self.user.name, self.name, self.job_id, self.job_site)
        cost = checked.get("cost_estimate")
        self.note(
            5,
            f"submitted as swm job {self.job_id} to site {self.job_site}"
            + (f" (estimated cost {cost:.2f})" if isinstance(cost, int | float) else ""),
        )
        watch = JobWatch(self.api_base(), self.token(), self.job_id, self.log)
        try:
            if self.follow_events:
                await watch.start()
            return await self._wait_ready(watch)
        finally:
            await watch.close()

    async def _wait_ready(self, watch: JobWatch) -> str:
        """Follow the job (live on ``watch``, else by polling) until the server's ready line; return its URL."""
        seen, offset, polled = 0, 0, OutputLines()
        while True:
            if watch.live:
                await watch.wait(max(self.start_poll_interval, 2.0))
                address = ready_address(watch.take())
                if address is not None:
                    self.note(100, f"server ready on {address[0]}:{address[1]}")
                    return f"http://{address[0]}:{address[1]}"
            else:
                await asyncio.sleep(self.start_poll_interval)
            try:
                status, job = await self.api("GET", f"jobs/{quote(self.job_id)}")
            except ServiceUnreachable:
                continue
            if status != 200:
                raise SpawnException(f"swm job {self.job_id} vanished ({status})", reason="swm-job-missing")
            seen = self.note_history(job, seen)
            if job["state"] in FINAL_STATES:
                raise SpawnException(await self.failure_message(job), reason="swm-job-ended")
            if watch.live or job["state"] not in ("waiting", "running"):  # waiting: it may run before the service sees
                continue
            try:
                chunk, offset = await self.read_log("stdout", offset)
            except ServiceUnreachable:
                continue
            address = ready_address(polled.feed(chunk))
            if address is not None:
                host, port = address
                self.note(100, f"server ready on {host}:{port}")
                return f"http://{host}:{port}"

    async def fetch_file(self, path: str) -> bytes:
        """The bytes of the file ``path`` of the job folder, through the service. Raises :class:`ServiceUnreachable`."""
        request = httpclient.HTTPRequest(
            self.api_base() + f"jobs/{quote(self.job_id)}/files/{quote(path)}",
            headers={"Authorization": f"token {self.token()}"},
            request_timeout=max(self.request_timeout, 300.0),
        )
        try:
            answer = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as exc:
            raise ServiceUnreachable(str(exc)) from None
        if answer.code != 200:
            raise ServiceUnreachable(f"the swm service answered {answer.code} for the job's file {path}")
        return answer.body or b""

    async def stage_back(self) -> None:
        """Write the staged paths' files of the stopped server's job back into the user's home (see
        :mod:`.stage_back`); what cannot be written is logged, the rest still comes back."""
        try:
            entry = pwd.getpwnam(self.user.name)
        except KeyError:
            self.log.warning(
                "swm: no OS account %s: the staged files of job %s stay there", self.user.name, self.job_id
            )
            return
        account = HomeAccount(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
        staged = [os.path.normpath(p) for p in self.staged]
        try:
            status, answer = await self.api("GET", f"jobs/{quote(self.job_id)}/files")
        except ServiceUnreachable as exc:
            self.log.warning("swm: the staged files of job %s cannot be listed (%s)", self.job_id, exc)
            return
        files = [f["path"] for f in (answer.get("files") or [])] if status == 200 and isinstance(answer, dict) else []
        written: list[str] = []
        for path in files:
            if not under(path, staged):
                continue
            try:
                data = await self.fetch_file(path)
                written.append(
                    await asyncio.to_thread(
                        write_back, account, path, data, since=self.staged_since, tag=self.job_id[:8]
                    )
                )
            except (ServiceUnreachable, PathNotAllowed, OSError) as exc:
                self.log.warning(
                    "swm: %s of job %s not brought back to %s's home: %s", path, self.job_id, account.username, exc
                )
        self.log.info(
            "swm: brought %d staged files of job %s back to %s's home", len(written), self.job_id, account.username
        )

    async def read_log(self, stream: str, offset: int, limit: int = 1 << 16) -> tuple[bytes, int]:
        """Bytes of the job's ``stream`` from ``offset``, and the next offset."""
        path = f"jobs/{quote(self.job_id)}/log?stream={stream}&offset={offset}&limit={limit}"
        request = httpclient.HTTPRequest(
            self.api_base() + path,
            headers={"Authorization": f"token {self.token()}"},
            request_timeout=self.request_timeout,
        )
        try:
            answer = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as exc:
            raise ServiceUnreachable(str(exc)) from None
        if answer.code != 200:
            raise ServiceUnreachable(f"the swm service answered {answer.code} for the job's {stream}")
        return answer.body or b"", int(answer.headers.get("X-Log-Offset", offset + len(answer.body or b"")))

    async def failure_message(self, job: dict[str, Any]) -> str:
        """Why the job ended before the server was ready: its state, reason, exit code and stderr's last lines."""
        what = f"the server's swm job {job['id']} ended ({job['state']}"
        if job.get("exit_code") is not None:
            what += f", exit code {job['exit_code']}"
        what += ")"
        if job.get("state_details"):
            what += f": {job['state_details']}"
        try:
            data, _ = await self.read_log("stderr", 0, 1 << 20)
        except ServiceUnreachable:
            data = b""
        lines = data.decode("utf-8", "replace").splitlines()[-self.stderr_lines :]
        if lines:
            what += "\nlast lines of its stderr:\n" + "\n".join(lines)
        return what

    async def poll(self) -> int | None:
        """None while the job runs (or the service cannot be reached, for ``unknown_grace`` s), else an exit status."""
        if not self.job_id:
            return 0
        try:
            status, job = await self.api("GET", f"jobs/{quote(self.job_id)}")
        except ServiceUnreachable as exc:
            now = time.monotonic()
            if self._unreachable_since is None:
                self._unreachable_since = now
                self.log.warning("swm: cannot reach the swm service for %s's server (%s)", self.user.name, exc)
            if now - self._unreachable_since < self.unknown_grace:
                return None
            return 1
        self._unreachable_since = None
        if status == 404:
            return 1
        if status != 200 or job["state"] not in FINAL_STATES:
            return None
        return int(job.get("exit_code") or 0) if job["state"] == "finished" else 1

    async def stop(self, now: bool = False) -> None:
        """Cancel the job and return once it is final (or after ``stop_wait`` s)."""
        if not self.job_id:
            return
        path = f"jobs/{quote(self.job_id)}"
        deadline = time.monotonic() + self.stop_wait
        canceled = False
        while time.monotonic() < deadline:
            try:
                if not canceled:
                    status, _ = await self.api("POST", f"{path}/cancel")
                    canceled = status in (200, 202, 404, 409)
                status, job = await self.api("GET", path)
            except ServiceUnreachable:
                await asyncio.sleep(1.0)
                continue
            if status == 404:
                return
            if status == 200 and job["state"] in FINAL_STATES:
                if self.staged:
                    await self.stage_back()
                return
            await asyncio.sleep(self.start_poll_interval)
        self.log.warning(
            "swm: job %s of %s's server is not final %.0f s after cancel", self.job_id, self.user.name, self.stop_wait
        )


def service_message(answer: Any) -> str:
    """The service's error answer as one line: its message and each bad field's own message."""
    if not isinstance(answer, dict):
        return str(answer)[:500]
    message = str(answer.get("message") or "no message")
    fields = [
        f"{e.get('field')}: {e.get('message')}"
        for e in answer.get("errors") or []
        if isinstance(e, dict) and e.get("message") and e.get("message") not in message
    ]
    return message + (f" ({'; '.join(fields)})" if fields else "")


async def spawn_form_html(spawner: SwmSpawner) -> str:
    """``Spawner.options_form`` of SwmSpawner: the form built from the service's live sites."""
    return await spawner.build_options_form()


async def spawn_form_options(form_data: dict[str, list[str]], spawner: SwmSpawner) -> dict[str, Any]:
    """``Spawner.options_from_form`` of SwmSpawner: the checked options (a ValueError shows on the form)."""
    return await spawner.check_form(form_data)


def check_user_options(spawner: SwmSpawner, user_options: dict[str, Any]) -> None:
    """``Spawner.apply_user_options`` of SwmSpawner: raise ValueError if the options cannot be used (the start then
    fails with the reason); ``start()`` applies them."""
    spawner.choices(user_options)


def ready_address(output: bytes) -> tuple[str, int] | None:
    """The ``(host, port)`` of the first ``swm-spawner-ready`` line in ``output``, or None."""
    for line in output.decode("utf-8", "replace").splitlines():
        if line.startswith(READY_MARKER + " "):
            try:
                data = json.loads(line[len(READY_MARKER) + 1 :])
                return str(data["host"]), int(data["port"])
            except (ValueError, KeyError, TypeError):
                return None
    return None


__all__ = [
    "ServiceUnreachable",
    "SwmSpawner",
    "check_user_options",
    "ready_address",
    "service_message",
    "spawn_form_html",
    "spawn_form_options",
]
