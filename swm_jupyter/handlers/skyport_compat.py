"""The Sky Port core's user API (``/user/...``), served beside our own so Sky Port terminals work unchanged.

Routes, shapes and status codes follow ``shared/skyport-core-api.md`` (what the published
``swmclient`` speaks); they map onto the same :class:`~swm_jupyter.core.manager.WorkloadManager`
as the ``/swm/api/v1`` API:

- our states become the one-letter codes (a held job shows as ``Q`` with ``state_details`` saying so);
- our sites are RemoteSites, flavors and images come from the sites' gates, and the Jupyter host
  and the hosts the gates know are Nodes;
- a job is submitted as a script with ``#SWM`` lines, in the multipart field ``script_content`` or as
  the raw body;
- numbers carry Sky Port's units (memory and disk in bytes, times in seconds), see :data:`MIB`;
- errors are answered as Sky Port's core answers them: plain text (``Error: <why>``); a refused
  submission with ``200`` (the only answer ``swmclient`` reads), its real status in ``X-Swm-Status``.

Identity: the Jupyter token or cookie, or (with :class:`swm_jupyter.auth.SkyPortIdentityProvider`
and ``ServerApp.client_ca``) a verified client certificate. A certificate user sees and changes only
the jobs they own (owner = the certificate's CN); the Jupyter token or cookie holder owns the
server and sees every job, as in the ``/swm/api/v1`` API. Unlike the reference core, a client can
never make the server read a path it names (``?path=`` is refused with ``400``).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..auth import is_certificate_user
from ..core.directives import read_directives
from ..core.errors import JobNotFound, SwmError, ValidationError
from ..core.model import Job
from ..core.secrets import redact_text
from ..core.site_accounts import site_accounts
from ..core.states import ACTIVE_STATES, JobState
from ..core.store import JobQuery
from .base import SCRIPT_TYPES, SwmHandler, error_reply, redact

#: The API version the reference core reports at ``GET /user``.
API_VERSION = 1
#: The path prefix of the routes, relative to the server's base URL.
COMPAT_PREFIX = "/user"
#: Largest page read from the store at once when listing every job of a user.
PAGE = 1000
#: Bytes read at once when sending a job's output.
CHUNK = 1 << 20
#: The only ``modification`` header value of ``PATCH /user/job/{id}``.
MODIFICATIONS = ("requeue",)
#: Forms that carry the script in their ``script_content`` field.
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
#: Content types ``POST /user/job`` reads: a form (what ``swmclient`` sends), or the raw script.
SUBMIT_TYPES = (*FORM_TYPES, *SCRIPT_TYPES, "application/octet-stream")
#: Bytes in one MB as our specs and gates count memory and disk (Slurm's MB are MiB too): Sky Port counts bytes.
MIB = 1024 * 1024
#: The header that carries the status of a submission refused with ``200`` (see :meth:`CompatHandler.write_error`).
STATUS_HEADER = "X-Swm-Status"


class NotSupported(SwmError):
    """A request the reference core accepts but this server refuses on purpose (answered ``400``)."""

    status = 400


# -- shapes ----------------------------------------------------------------------------------------


def iso_time(epoch: float | None) -> str:
    """An epoch time as ISO-8601 UTC (``2025-11-25T10:00:00Z``); ``""`` when unset."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource(name: str, count: int, value: str | None = None) -> dict[str, Any]:
    """A Resource: ``{"name", "count"}`` and ``value`` when given."""
    out: dict[str, Any] = {"name": name, "count": int(count)}
    if value is not None:
        out["value"] = value
    return out


def job_request(job: Job) -> list[dict[str, Any]]:
    """What the job asked for, as Resources named as Sky Port's core names them (``node``, ``cpus``, ...).

    Units are Sky Port's: ``mem`` and ``storage`` in bytes, ``walltime`` in seconds.
    """
    spec = job.spec
    res = spec.resources
    out = [resource("node", res.nodes), resource("cpus", res.cpus)]
    if res.memory_mb is not None:
        out.append(resource("mem", res.memory_mb * MIB, f"{res.memory_mb}M"))
    if res.storage_mb is not None:
        out.append(resource("storage", res.storage_mb * MIB, f"{res.storage_mb}M"))
    if res.gpus:
        out.append(resource("gpus", res.gpus))
    if res.walltime is not None:
        out.append(resource("walltime", res.walltime, f"{res.walltime}s"))
    for name, value in (
        ("flavor", spec.flavor),
        ("cloud-image", spec.cloud_image),
        ("container-image", spec.container_image),
        ("account", spec.account),
        ("submission-address", spec.submission_address),
    ):
        if value:
            out.append(resource(name, 1, value))
    ports = [f"{p}/tcp/in" for p in spec.ports] + [f"{p}/tcp/out" for p in spec.outbound_ports]
    if ports:
        out.append(resource("ports", len(ports), ",".join(ports)))
    return out


def job_nodes(job: Job, local_sites: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """The host names and addresses the job got, as far as its gate recorded them.

    Jobs of ``local_sites`` (sites run on the Jupyter host) ran on this host once they started.
    """
    data = job.gate_data
    names = data.get("node_names") or data.get("nodes") or []
    ips = data.get("node_ips") or []
    if not ips and isinstance(data.get("master"), str):  # a cloud partition: its master, then its computes
        computes = data.get("computes")
        ips = [data["master"], *(computes if isinstance(computes, list) else [])]
        names = names or ([data["partition"]] if isinstance(data.get("partition"), str) else [])
    if not names and job.start_time is not None and data.get("host"):
        names = [data["host"]]
    if not names and job.start_time is not None and job.site in local_sites:
        names = [host_name()]
    return [str(n) for n in names if isinstance(n, str | int)], [str(i) for i in ips if isinstance(i, str)]


def compat_job(job: Job, now: float | None = None, local_sites: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A job in the reference core's Job shape (``local_sites``: the sites run on the Jupyter host)."""
    state = job.state
    details = job.state_details
    code = state.code
    if state is JobState.HELD:
        code = "Q"
        details = f"held: {details}" if details and not details.lower().startswith("held") else details or "held"
    if job.start_time is None:
        duration = 0
    else:
        end = job.end_time if job.end_time is not None else (now if now is not None else time.time())
        duration = max(0, int(end - job.start_time))
    names, ips = job_nodes(job, local_sites)
    request = job_request(job)
    comment = job.spec.comment or f"site {job.site}" + (f", native id {job.native_id}" if job.native_id else "")
    return {
        "id": job.id,
        "name": job.spec.name,
        "state": code,
        "state_details": redact_text(details),
        "submit_time": iso_time(job.submit_time),
        "start_time": iso_time(job.start_time),
        "end_time": iso_time(job.end_time),
        "duration": duration,
        "exitcode": int(job.exit_code or 0),
        "signal": int(job.signal or 0),
        "node_names": names,
        "node_ips": ips,
        "remote_id": job.site,
        "flavor_id": job.spec.flavor or "",
        "request": request,
        "resources": request if job.start_time is not None else [],
        "comment": comment,
        "warnings": list(job.spec.warnings),
    }


def _host_port(text: str, default_port: int = 0) -> tuple[str, int]:
    """``host:port`` or a URL split into host and port (``default_port`` when none is given)."""
    text = text.strip()
    if not text:
        return "", default_port
    parts = urlsplit(text if "//" in text else f"//{text}")
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    return parts.hostname or "", port


def compat_site(
    site: dict[str, Any], options: dict[str, Any], extra_patterns: Iterable[str] = (), account: str = ""
) -> dict[str, Any]:
    """A site described by the manager, as a RemoteSite (no option that may be secret is shown).

    ``account`` is the site's Sky Port account (the jobs of that ``#SWM account`` go there).
    """
    kind = str(site.get("kind") or "")
    server, port = "", 0
    if kind == "local":
        server = host_name()
    elif site.get("host"):
        server, port = _host_port(str(site["host"]), 22)
    elif site.get("login_node"):
        server, port = _host_port(str(site["login_node"]), 22)
    elif site.get("gate_url") or options.get("url"):
        server, port = _host_port(str(site.get("gate_url") or options["url"]), 443)
    elif options.get("ssh_host") or options.get("host"):
        server, port = _host_port(str(options.get("ssh_host") or options.get("host")), _int(options.get("port")) or 22)
    default_flavor = str(site.get("default_flavor") or options.get("default_flavor") or "")
    default_image = str(site.get("default_image") or options.get("default_image") or "")
    site_out: dict[str, Any] = redact(
        {
            "id": str(site["name"]),
            "name": str(site["name"]),
            "account_id": account or str(site["name"]),
            "server": server,
            "port": int(port),
            "kind": str(site.get("cloud_kind") or kind),
            "default_image_id": default_image,
            "default_flavor_id": default_flavor,
        },
        extra_patterns=extra_patterns,
    )
    return site_out


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def compat_flavor(flavor: dict[str, Any], site: str) -> dict[str, Any]:
    """A gate's flavor as a Flavor (resources ``cpus``, ``mem``, ``storage``, ``gpus``; price per hour)."""
    nested = flavor.get("resources")
    res: dict[str, Any] = nested if isinstance(nested, dict) else flavor
    try:
        price = float(flavor.get("price") or 0.0)
    except (TypeError, ValueError):
        price = 0.0
    name = str(flavor.get("name") or flavor.get("id") or "")
    return {
        "id": str(flavor.get("id") or name),
        "name": name,
        "remote_id": site,
        "resources": [
            resource("cpus", _int(res.get("cpus"))),
            resource("mem", _int(res.get("mem", res.get("memory")))),
            resource("storage", _int(res.get("storage"))),
            resource("gpus", _int(res.get("gpus"))),
        ],
        "price": price,
    }


def compat_image(image: dict[str, Any], site: str) -> dict[str, Any]:
    """A gate's image as an Image (``kind`` is ``cloud`` or ``container``)."""
    name = str(image.get("name") or image.get("id") or "")
    kind = "container" if str(image.get("kind") or "").lower() == "container" else "cloud"
    comment = image.get("comment") or image.get("description") or ""
    return {
        "id": str(image.get("id") or name),
        "name": name,
        "remote_id": site,
        "kind": kind,
        "comment": str(comment),
    }


@cache
def host_name() -> str:
    """The Jupyter host's name."""
    return socket.gethostname() or os.uname().nodename


def compat_nodes(
    sites: list[dict[str, Any]], running: dict[str, int], api_port: int, storage: int = 0
) -> list[dict[str, Any]]:
    """Nodes: the Jupyter host (the core, and the local sites on it), then every host a gate reports.

    A gate reports hosts as ``"nodes"`` (a list of ``{"name", "host", "state", "cpus", "mem"}``, mem
    in MB), or as the one ``"host"`` / ``"login_node"`` it drives. ``running`` counts active jobs
    per site. Node memory is answered in bytes, as Sky Port's core does; so is ``storage``, the size of
    the Jupyter host's disk that holds the job folders (left out when 0).
    """
    here = host_name()
    roles = [{"id": "core", "name": "core", "comment": "the swm-jupyter core (this Jupyter server)"}]
    cpus, mem = os.cpu_count() or 1, 0
    busy = False
    for site in sites:
        if site.get("kind") == "local":
            roles.append({"id": f"site:{site['name']}", "name": "local site", "comment": str(site["name"])})
            limits = site.get("limits") or {}
            cpus, mem = _int(limits.get("cpus")) or cpus, _int(limits.get("memory")) or mem
            busy = busy or running.get(str(site["name"]), 0) > 0
    nodes = [
        {
            "id": f"host:{here}",
            "name": here,
            "host": here,
            "api_port": api_port,
            "state_power": "up",
            "state_alloc": "busy" if busy else "idle",
            "resources": [
                resource("cpus", cpus),
                resource("mem", mem * MIB),
                *([resource("storage", storage)] if storage > 0 else []),
            ],
            "roles": roles,
        }
    ]
    for site in sites:
        name = str(site["name"])
        if site.get("kind") == "local":
            continue
        healthy = bool(site.get("healthy"))
        reported = site.get("nodes") if isinstance(site.get("nodes"), list) else None
        if reported is None:
            address = str(site.get("host") or site.get("login_node") or "")
            if not address:
                continue
            host, _port = _host_port(address, 22)
            limits = site.get("limits") or {}
            reported = [{"name": host, "host": host, "cpus": limits.get("cpus"), "mem": limits.get("memory")}]
        for node in reported:
            if not isinstance(node, dict):
                continue
            host = str(node.get("host") or node.get("name") or "")
            state = str(node.get("state") or "").lower()
            up = healthy and state not in ("down", "offline", "drain", "drained", "fail")
            alloc = "offline" if not up else ("busy" if running.get(name, 0) or state in ("busy", "alloc") else "idle")
            nodes.append(
                {
                    "id": f"{name}:{node.get('name') or host}",
                    "name": str(node.get("name") or host),
                    "host": host,
                    "api_port": 0,
                    "state_power": "up" if up else "down",
                    "state_alloc": alloc,
                    "resources": [
                        resource("cpus", _int(node.get("cpus"))),
                        resource("mem", _int(node.get("mem")) * MIB),
                    ],
                    "roles": [{"id": f"site:{name}", "name": f"{site.get('kind')} site", "comment": name}],
                }
            )
    return nodes


# -- handlers --------------------------------------------------------------------------------------


class CompatHandler(SwmHandler):
    """Base of the ``/user/...`` handlers: certificate identity allowed, jobs scoped to their owner."""

    #: Lets :class:`~swm_jupyter.auth.SkyPortIdentityProvider` identify the caller by a client certificate.
    accepts_client_certificate = True

    def check_xsrf_cookie(self) -> None:
        """Certificate-authenticated scripts need no XSRF token; browsers (they send Origin) still do.

        A browser holding a client certificate would present it on a cross-site form post, so a
        request that looks like it comes from a browser goes through Jupyter's XSRF check as usual.
        """
        user = getattr(self, "_jupyter_current_user", None)
        headers = self.request.headers
        if is_certificate_user(user) and "Origin" not in headers and "Sec-Fetch-Mode" not in headers:
            return None
        return super().check_xsrf_cookie()

    @property
    def scope_owner(self) -> str | None:
        """The owner whose jobs the caller may see, or None for all jobs (the Jupyter token/cookie user)."""
        return self.visible_owner

    def owned_job(self, job_id: str) -> Job:
        """The caller's job with that id. Raises :class:`JobNotFound` (404) for others' jobs too."""
        job = self.manager.get(job_id)
        owner = self.scope_owner
        if owner is not None and job.owner != owner:
            raise JobNotFound(f"no job {job_id!r}")
        return job

    def limit_argument(self) -> int | None:
        """The optional ``?limit=`` (a whole number of at least 0). Raises 400."""
        if not self.get_argument("limit", ""):
            return None
        return self.int_argument("limit", 0, minimum=0)

    def write_list(self, items: list[dict[str, Any]]) -> None:
        """Answer a JSON list, cut at ``?limit=`` when given."""
        limit = self.limit_argument()
        self.write_json(items if limit is None else items[:limit])

    #: True on the route whose refusals of a POST are answered ``200`` (submission; see :meth:`write_error`).
    refusals_answer_ok = False

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer an error as Sky Port's core does: the reason as plain text, ``Error: <why>``.

        ``swmclient`` reads the answer of a submission only when its status is ``200`` (anything else
        is ``None``, and Sky Port's console crashes on it); the reference core answers its refusals of a
        submission with ``200`` and the reason. So does this route (:attr:`refusals_answer_ok`): the
        status it would have had is in the ``X-Swm-Status`` header, and the text starts with
        ``Error:``, which a job id never does. Authentication and XSRF refusals keep their status.
        """
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status, reply = error_reply(status_code, exc)
        self.clear_header("Content-Disposition")
        if self.refusals_answer_ok and self.request.method == "POST" and isinstance(exc, SwmError):
            self.set_header(STATUS_HEADER, str(status))
            status = 200
        self.set_status(status)
        self.finish(f"Error: {reply['message']}\n", set_content_type="text/plain; charset=utf-8")

    def write_text(self, text: str, status: int = 200) -> None:
        """Answer plain text (what the reference core answers to submit, cancel and requeue)."""
        self.set_status(status)
        self.finish(text, set_content_type="text/plain; charset=utf-8")

    def local_sites(self) -> frozenset[str]:
        """Names of the sites whose gate runs jobs on the Jupyter host itself."""
        return frozenset(name for name, gate in self.manager.gates.items() if getattr(gate, "kind", "") == "local")


class CompatVersionHandler(CompatHandler):
    """``GET /user``: the API version."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """``{"api_version": 1}``."""
        self.write_json({"api_version": API_VERSION})


class CompatJobsHandler(CompatHandler):
    """``GET /user/job`` lists the caller's jobs; ``POST /user/job`` submits a job script."""

    refusals_answer_ok = True

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every job the caller may see (top-level: an array is one job), oldest first."""
        manager = self.manager
        limit = self.limit_argument()
        query = JobQuery(owner=self.scope_owner, top_level=True, sort="submit_time", limit=PAGE)
        local = self.local_sites()
        now = time.time()
        jobs: list[dict[str, Any]] = []
        while limit is None or len(jobs) < limit:
            page = manager.list_jobs(query)
            jobs.extend(compat_job(job, now, local) for job in page.jobs)
            if not page.next_cursor:
                break
            query.cursor = page.next_cursor
        self.write_json(jobs if limit is None else jobs[:limit])

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Submit the script (multipart ``script_content`` or raw body); answer the new job's id as text."""
        if self.get_argument("path", None) is not None:
            raise NotSupported(
                "?path= is not supported: this server never reads a file that a client names; send the script itself "
                "(multipart field script_content, or the raw body)",
                [{"field": "path", "message": "not supported: send the script content"}],
            )
        self.check_body_size()
        self.require_media_type(SUBMIT_TYPES)
        script = self._script()
        try:
            text = script.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(
                "the job script is not UTF-8 text", [{"field": "script_content", "message": "send UTF-8 text"}]
            ) from None
        if not text.strip():
            raise ValidationError(
                "the job script is empty", [{"field": "script_content", "message": "send the job script"}]
            )
        overrides = {} if _names_submission_address(text) else {"submission_address": self.request.remote_ip}
        job = await self.manager.submit_script(text, {k: v for k, v in overrides.items() if v}, owner=self.owner)
        self.write_text("".join(f"{line}\n" for line in [job.id, *(f"Warning: {w}" for w in job.spec.warnings)]))

    def _script(self) -> bytes:
        """The script bytes: the multipart field ``script_content`` (file or plain field), else the body."""
        if self.media_type() in FORM_TYPES:
            files = self.request.files.get("script_content") or []
            if files:
                return bytes(files[0]["body"])
            values = self.request.body_arguments.get("script_content") or []
            if values:
                return bytes(values[0])
            raise ValidationError(
                "the form has no script_content field",
                [{"field": "script_content", "message": "put the job script in the script_content field"}],
            )
        return bytes(self.request.body)


def _names_submission_address(script: str) -> bool:
    """True if the script gives ``#SWM submission-address`` (else Sky Port records the client's address)."""
    try:
        return "submission_address" in read_directives(script)[0]
    except ValidationError:
        return True  # the submission itself says what is wrong with the script


class CompatJobHandler(CompatHandler):
    """``GET``, ``DELETE`` (cancel) and ``PATCH`` (``modification: requeue``) of ``/user/job/{id}``."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """The job, or 404."""
        job = self.owned_job(job_id)
        self.write_json(compat_job(job, local_sites=self.local_sites()))

    @web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        """Cancel the job: ``Canceled: <id>``; ``409`` if it already ended."""
        job = self.owned_job(job_id)
        await self.manager.cancel(job.id)
        self.write_text(f"Canceled: {job.id}\n")

    @web.authenticated
    @authorized
    async def patch(self, job_id: str) -> None:
        """Requeue the job (header ``modification: requeue``): ``Requeued: <id>``; 400 without the header."""
        modification = self.request.headers.get("modification", "").strip().lower()
        if not modification:
            raise ValidationError(
                "say what to change in the modification header (modification: requeue)",
                [{"field": "modification", "message": "missing; the only value is requeue"}],
            )
        if modification not in MODIFICATIONS:
            raise ValidationError(
                f"unknown modification {modification!r}; the only one is requeue",
                [{"field": "modification", "message": "use requeue"}],
            )
        job = self.owned_job(job_id)
        await self.manager.requeue(job.id)
        self.write_text(f"Requeued: {job.id}\n")


class CompatOutputHandler(CompatHandler):
    """``GET /user/job/{id}/stdout`` and ``/stderr``: the job's output file (live while it runs)."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str, stream: str) -> None:
        """The raw bytes; 404 if the job has no such output (yet)."""
        manager = self.manager
        job = self.owned_job(job_id)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        if job.state not in ACTIVE_STATES:
            # 404 unless the file is there; 403 if the job made it a link (read_output refuses it too)
            (await manager.open_file(job.id, stream)).close()
        offset = 0
        while True:
            chunk = await manager.read_output(job.id, stream, offset, CHUNK)
            if not chunk:
                break
            self.write(chunk)
            await self.flush()
            offset += len(chunk)
        self.finish()


class CompatRemotesHandler(CompatHandler):
    """``GET /user/remote``: the configured sites as RemoteSites."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The sites, in configuration order."""
        sites = await self.manager.describe_sites()
        options = self.manager.sites
        accounts = site_accounts(options)
        self.write_list(
            [
                compat_site(
                    site, dict(options.get(site["name"]) or {}), self.secret_patterns, accounts.get(site["name"], "")
                )
                for site in sites
            ]
        )


class CompatFlavorsHandler(CompatHandler):
    """``GET /user/flavor``: the flavors every site's gate offers."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Flavors with their site as ``remote_id``."""
        sites = await self.manager.describe_sites()
        self.write_list(
            [compat_flavor(f, str(s["name"])) for s in sites for f in s.get("flavors") or [] if isinstance(f, dict)]
        )


class CompatImagesHandler(CompatHandler):
    """``GET /user/image``: the images every site's gate offers."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Images with their site as ``remote_id``."""
        sites = await self.manager.describe_sites()
        self.write_list(
            [compat_image(i, str(s["name"])) for s in sites for i in s.get("images") or [] if isinstance(i, dict)]
        )


class CompatNodesHandler(CompatHandler):
    """``GET /user/node``: the Jupyter host and the hosts the gates know."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Nodes with power and allocation state."""
        sites = await self.manager.describe_sites()
        running = {
            str(s["name"]): sum(int(n) for k, n in (s.get("counts") or {}).items() if JobState(k) in ACTIVE_STATES)
            for s in sites
        }
        port = int(getattr(self.serverapp, "port", 0) or 0)
        try:
            storage = shutil.disk_usage(self.manager.data_dir).total
        except OSError:
            storage = 0
        self.write_list(compat_nodes(sites, running, port, storage))


class CompatNotFoundHandler(CompatHandler):
    """Any other path under ``/user/``: a JSON ``404`` (after authentication)."""

    def _missing(self) -> None:
        raise JobNotFound(f"no Sky Port route {self.request.method} {self.request.path}")

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
    async def patch(self, path: str) -> None:
        """404."""
        self._missing()

    @web.authenticated
    @authorized
    async def delete(self, path: str) -> None:
        """404."""
        self._missing()


def compat_handlers() -> list[tuple[str, Any]]:
    """The ``(pattern, handler)`` pairs of the Sky Port routes, relative to the server's base URL."""
    job = r"(?P<job_id>[^/]+)"
    return [
        (rf"{COMPAT_PREFIX}/?", CompatVersionHandler),
        (rf"{COMPAT_PREFIX}/job/?", CompatJobsHandler),
        (rf"{COMPAT_PREFIX}/job/{job}/?", CompatJobHandler),
        (rf"{COMPAT_PREFIX}/job/{job}/(?P<stream>stdout|stderr)/?", CompatOutputHandler),
        (rf"{COMPAT_PREFIX}/remote/?", CompatRemotesHandler),
        (rf"{COMPAT_PREFIX}/flavor/?", CompatFlavorsHandler),
        (rf"{COMPAT_PREFIX}/image/?", CompatImagesHandler),
        (rf"{COMPAT_PREFIX}/node/?", CompatNodesHandler),
        (rf"{COMPAT_PREFIX}/(?P<path>.*)", CompatNotFoundHandler),
    ]


__all__ = ["API_VERSION", "COMPAT_PREFIX", "compat_flavor", "compat_handlers", "compat_image", "compat_job"]
