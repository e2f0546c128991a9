"""The ``cloud`` gate: machines from a Sky Port gate service, the job run on them over SSH.

Per job: a partition named ``swm-`` + the first 8 characters of the job id is looked up by name
(a restarted server reuses it) or created; once the gate says ``succeeded``, the job's folder is
copied to ``master_public_ip`` over SFTP and the job runs there detached, through the ``ssh``
gate (inside ``container_image`` when the VM has a working container runtime); outputs come back
and the partition is deleted whatever happened. Every step is kept in ``job.gate_data``
(``partition``, ``partition_id``, ``step``, addresses, remote ``folder`` and ``pid``), so a
restarted server carries on where the last one stopped. A maintenance task refreshes the flavor
and image catalogue and deletes ``swm-*`` partitions that belong to no live job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import posixpath
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitlets import Bool, Dict, Float, Int, List, Unicode

from ..core.cost import estimate_cost
from ..core.errors import GateError, SiteUnavailable
from ..core.launch import STDERR_FILE, STDOUT_FILE, job_argv, job_environment
from ..core.model import Job
from ..core.states import JobState
from .base import Gate, GateStatus
from .cloud_protocol import PENDING_STATUSES, UP_STATUS, GateAnswerError, GateUnreachable, SkyPortClient
from .commands import CommandError
from .ssh import SshGate
from .ssh_transport import read_remote_files
from .status_record import STATUS_FILE

#: Steps of a job on its partition, in order (``gate_data["step"]``).
STEP_CREATE = "create"  # the gate has not acknowledged a partition yet
STEP_CREATING = "creating"  # the partition exists and is not up yet
STEP_STARTING = "starting"  # up: connecting, staging inputs, starting the job
STEP_RUNNING = "running"  # the job was started on the master
STEP_FAILED = "failed"  # starting failed; ``error`` says why

_GONE_STATUSES = frozenset({"deleting", "deleted"})

#: Prints the absolute path of a folder after making it. $1: the folder.
_ABSOLUTE_FOLDER = 'mkdir -p -- "$1" && cd -- "$1" && pwd -P'
#: Exit 0 when $1 is a container runtime that can reach its engine.
_RUNTIME_PROBE = 'command -v "$1" >/dev/null 2>&1 && "$1" info >/dev/null 2>&1'


class CloudGate(Gate):
    """Runs each job on its own partition (VMs) made by a Sky Port gate service, over SSH.

    Configure it with the gate's ``url`` and cloud ``kind``; TLS with ``ca_file`` and
    ``client_cert``/``client_key``; the Azure credential as ``pem_data`` (or ``pem_file``); and
    how to log in to the VMs (``ssh_user``, ``ssh_key_file``, ``ssh_port``).
    """

    kind = "cloud"

    # -- the gate service -------------------------------------------------------------------------
    url = Unicode(
        "", help="Base URL of the Sky Port gate, e.g. https://gate.example.org:8444 (http:// for tests)."
    ).tag(config=True)
    cloud_kind = Unicode(
        "azure", help="The cloud kind: the first path segment of every request (azure, openstack, ...)."
    ).tag(config=True)
    location = Unicode("", help="Cloud location/region sent as the 'location' (and 'extra') header; empty: none.").tag(
        config=True
    )
    pem_data = Unicode(
        "", help="PEM text sent as {'pem_data': ...} with every request (the Azure credential); never shown."
    ).tag(config=True)
    pem_file = Unicode("", help="File to read pem_data from when pem_data is empty (read at setup).").tag(config=True)
    ca_file = Unicode("", help="CA bundle to check the gate's TLS certificate; empty: the system's CAs.").tag(
        config=True
    )
    client_cert = Unicode("", help="Client certificate (PEM) presented to the gate; may hold the key too.").tag(
        config=True
    )
    client_key = Unicode("", help="Private key of client_cert when it is in a separate file.").tag(config=True)
    verify_tls = Bool(True, help="Check the gate's TLS certificate (default True).").tag(config=True)
    headers = Dict(
        help="Extra header parameters sent when creating a partition, e.g. for OpenStack "
        "{'tenantname': 'p1', 'keyname': 'swm', 'vmimage': '...', 'password': '...'}; values never shown."
    ).tag(config=True)
    username = Unicode("", help="The 'username' header: the user the gate creates on the VMs; empty: none.").tag(
        config=True
    )
    runtime = Dict(help="The 'runtime' header as {k: v} (sent as k=v,k=v); empty: none.").tag(config=True)
    request_timeout = Float(300.0, help="Seconds to wait for one answer of the gate (default 300).").tag(config=True)
    retries = Int(3, help="Extra tries of a GET/DELETE that got no answer, with capped backoff (default 3).").tag(
        config=True
    )

    # -- catalogue, partitions, cost --------------------------------------------------------------
    catalogue_refresh = Float(600.0, help="Seconds between refreshes of flavors and images (default 600).").tag(
        config=True
    )
    maintenance_interval = Float(
        30.0, help="Seconds between maintenance passes: catalogue refresh when due, orphan sweep (default 30)."
    ).tag(config=True)
    default_flavor = Unicode("", help="Flavor of jobs that name none; empty: the cheapest that fits.").tag(config=True)
    default_image = Unicode("", help="Cloud image of jobs that name none; empty: the first the gate lists.").tag(
        config=True
    )
    max_nodes = Int(0, help="The most nodes (VMs) one job may ask for; 0: no limit.").tag(config=True)
    create_timeout = Float(
        900.0, help="Seconds a partition may stay 'creating' before the job fails and it is deleted (default 900)."
    ).tag(config=True)
    partition_prefix = Unicode(
        "swm-", help="Prefix of partition names: prefix + first 8 characters of the job id."
    ).tag(config=True)
    sweep_orphans = Bool(
        True,
        help="Delete partitions with partition_prefix that belong to no live job (default True). Turn off, "
        "or give each server its own prefix, when several servers share one gate account.",
    ).tag(config=True)
    orphan_grace = Float(
        120.0, help="Seconds after setup before the first orphan sweep, so live jobs are known (default 120)."
    ).tag(config=True)
    default_walltime = Float(
        3600.0, help="Seconds used for the cost estimate of a job without a walltime (default 3600; 0: no estimate)."
    ).tag(config=True)

    # -- running the job on the master over SSH ---------------------------------------------------
    ssh_port = Int(22, help="SSH port of the VMs (default 22).").tag(config=True)
    ssh_user = Unicode("", help="SSH user on the VMs; empty: 'username', else the current user.").tag(config=True)
    ssh_key_file = Unicode("", help="Private key to log in to the VMs; empty: the agent and ~/.ssh keys.").tag(
        config=True
    )
    known_hosts = Unicode(
        None, allow_none=True, help="known_hosts file for the VMs' host keys; None: ~/.ssh/known_hosts."
    ).tag(config=True)
    check_host_keys = Bool(
        False, help="Check the VMs' host keys (default False: new VMs have keys no one has seen yet)."
    ).tag(config=True)
    use_agent = Bool(True, help="Also use keys of the SSH agent (default True).").tag(config=True)
    ssh_ready_timeout = Float(
        300.0, help="Seconds to wait for SSH on a partition that the gate reports up (default 300)."
    ).tag(config=True)
    ssh_lost_timeout = Float(
        300.0, help="Seconds the master of a running job may not answer before the job fails (default 300)."
    ).tag(config=True)
    env = Dict(help="Environment variables set for every remote command and job.").tag(config=True)
    remote_workdir = Unicode(".swm/jobs", help="Folder on the master for job folders (relative: under home).").tag(
        config=True
    )
    python = Unicode(
        "python3",
        help="Python on the VMs (or in the container), for notebook jobs and Executor calls: a path or command "
        "(default python3); Executor calls also accept a shell line that ends with one.",
    ).tag(config=True)
    container_runtimes = List(
        Unicode(),
        ["docker", "podman"],
        help="Container runtimes tried on the master, in order (default docker, podman).",
    ).tag(config=True)
    container_options = List(
        Unicode(), [], help="Extra options of '<runtime> run' for container jobs, e.g. ['--gpus', 'all']."
    ).tag(config=True)
    kill_grace = Float(5.0, help="Seconds between SIGTERM and SIGKILL when a job is canceled (default 5).").tag(
        config=True
    )
    command_timeout = Float(60.0, help="Seconds a remote command may take (default 60).").tag(config=True)
    poll_interval = Float(2.0, help="Seconds between polls while jobs are live (default 2).").tag(config=True)
    idle_poll_interval = Float(30.0, help="Seconds between polls with no live job (default 30).").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: SkyPortClient | None = None
        self._flavors: list[dict[str, Any]] = []
        self._images: list[dict[str, Any]] = []
        self._catalogue_time: float | None = None
        self._health = "not contacted yet"
        self._setup_time: float | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._starts: dict[str, asyncio.Task[None]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._progress: dict[str, str] = {}
        self._masters: dict[str, SshGate] = {}
        self._claimed: set[str] = set()
        self._live = 0
        #: Names of partitions deleted by the orphan sweep (tests and describe() read it).
        self.swept: list[str] = []

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def client(self) -> SkyPortClient:
        """The site's protocol client (one aiohttp session, opened on first request)."""
        if self._client is None:
            if not self.url:
                raise SiteUnavailable(f"the cloud site {self.site_name!r} has no gate url configured")
            pem = self.pem_data
            if not pem and self.pem_file:
                pem = Path(self.pem_file).expanduser().read_text()
            self._client = SkyPortClient(
                self.url,
                self.cloud_kind,
                pem_data=pem,
                ca_file=self.ca_file,
                client_cert=self.client_cert,
                client_key=self.client_key,
                verify_tls=self.verify_tls,
                timeout=self.request_timeout,
                retries=self.retries,
                log=self.log,
            )
        return self._client

    async def setup(self) -> None:
        """Load the catalogue and start the maintenance task.

        Raises :class:`SiteUnavailable` (or :class:`GateError`) while the gate cannot be reached or
        refuses: the manager then keeps the site unready, retries with backoff, and queued jobs wait.
        """
        await self.refresh_catalogue()
        if self._setup_time is None:
            self._setup_time = time.monotonic()
        if self._maintenance is None or self._maintenance.done():
            self._maintenance = asyncio.create_task(self._maintain(), name=f"swm-cloud-{self.site_name}")

    async def cleanup(self) -> None:
        """Stop background work and close sessions; partitions and jobs stay (a restart resumes them)."""
        tasks = [t for t in [self._maintenance, *self._starts.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._maintenance = None
        self._starts.clear()
        for master in list(self._masters.values()):
            await master.cleanup()
        self._masters.clear()
        if self._client is not None:
            await self._client.close()

    def next_poll_delay(self) -> float:
        """Seconds until the next poll: ``poll_interval`` with live jobs, else ``idle_poll_interval``."""
        return self.poll_interval if self._live else self.idle_poll_interval

    # -- catalogue --------------------------------------------------------------------------------

    async def refresh_catalogue(self) -> None:
        """Fetch flavors and images from the gate; on failure mark the site unhealthy and raise."""
        try:
            flavors = await self.client.flavors(self.location)
            images = await self.client.images(self.location)
        except (SiteUnavailable, GateError) as exc:
            self._health = exc.message
            raise
        self._flavors = [_flavor(f) for f in flavors]
        self._images = [_image(i) for i in images]
        self._catalogue_time = time.time()
        self._health = ""

    async def _maintain(self) -> None:
        """Refresh the catalogue when due or after a failure, and sweep orphaned partitions."""
        while True:
            await asyncio.sleep(self.maintenance_interval)
            try:
                age = time.time() - (self._catalogue_time or 0)
                if self._health or age >= self.catalogue_refresh:
                    await self.refresh_catalogue()
                    self.log.info("cloud site %s: catalogue refreshed", self.site_name)
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except (SiteUnavailable, GateError) as exc:
                self.log.warning("cloud site %s: %s", self.site_name, exc.message)
            except Exception:
                self.log.exception("cloud site %s: maintenance failed", self.site_name)

    async def sweep(self) -> list[str]:
        """Delete partitions named with ``partition_prefix`` that no live job of this gate claims.

        Runs only with ``sweep_orphans`` and once ``orphan_grace`` seconds passed since setup (so
        that a restarted server has polled its live jobs first). Returns the names deleted.
        """
        if not self.sweep_orphans or self._setup_time is None:
            return []
        if time.monotonic() - self._setup_time < self.orphan_grace:
            return []
        deleted: list[str] = []
        for part in await self.client.partitions():
            name = str(part.get("name") or "")
            if not name.startswith(self.partition_prefix) or name in self._claimed:
                continue
            if part.get("status") in _GONE_STATUSES or not part.get("id"):
                continue
            if name in self._claimed:  # claimed while we were deleting others
                continue
            self.log.info("cloud site %s: deleting partition %s, which belongs to no live job", self.site_name, name)
            await self.client.delete_partition(str(part["id"]))
            deleted.append(name)
        self.swept.extend(deleted)
        return deleted

    def _find(self, items: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
        for item in items:
            if wanted in (item.get("name"), item.get("id")):
                return item
        return None

    def _pick(self, job: Job) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, str]]]:
        """The flavor and image of ``job`` from the cached catalogue, and the errors (no I/O)."""
        spec = job.spec
        errors: list[dict[str, str]] = []
        res = spec.resources
        if self.max_nodes and res.nodes > self.max_nodes:
            errors.append({"field": "resources.nodes", "message": f"at most {self.max_nodes} nodes on this site"})
        if self._catalogue_time is None:
            named = [k for k in ("flavor", "cloud_image") if getattr(spec, k)]
            if named or not (self.default_flavor and self.default_image):
                reason = f" ({self._health})" if self._health else ""
                errors.append(
                    {
                        "field": named[0] if named else "flavor",
                        "message": f"the flavor and image catalogue of site {self.site_name!r} is not loaded yet"
                        f"{reason}; try again when the site is healthy",
                    }
                )
            return None, None, errors
        flavor: dict[str, Any] | None = None
        wanted = spec.flavor or self.default_flavor
        if wanted:
            flavor = self._find(self._flavors, wanted)
            if flavor is None:
                names = ", ".join(str(f["name"]) for f in self._flavors) or "(none)"
                errors.append({"field": "flavor", "message": f"unknown flavor {wanted!r}; flavors: {names}"})
        else:
            fitting = [
                f
                for f in self._flavors
                if (f["cpus"] or 0) >= res.cpus
                and (f["gpus"] or 0) >= res.gpus
                and (res.memory_mb is None or (f["mem"] or 0) >= res.memory_mb)
            ]
            fitting.sort(key=lambda f: (f["price"] if f["price"] is not None else float("inf"), f["cpus"] or 0))
            if fitting:
                flavor = fitting[0]
            else:
                errors.append(
                    {"field": "flavor", "message": "no flavor has the cpus, gpus and memory asked for; name one"}
                )
        if flavor is not None:
            if res.cpus > (flavor["cpus"] or 0) or res.gpus > (flavor["gpus"] or 0):
                errors.append(
                    {
                        "field": "resources",
                        "message": f"flavor {flavor['name']} has {flavor['cpus']} cpus and {flavor['gpus']} gpus; "
                        f"the job asks for {res.cpus} and {res.gpus}",
                    }
                )
        image: dict[str, Any] | None = None
        wanted_image = spec.cloud_image or self.default_image
        if wanted_image:
            image = self._find(self._images, wanted_image)
            if image is None:
                names = ", ".join(str(i["name"]) for i in self._images) or "(none)"
                errors.append({"field": "cloud_image", "message": f"unknown image {wanted_image!r}; images: {names}"})
        elif self._images:
            image = self._images[0]
        else:
            errors.append({"field": "cloud_image", "message": "the gate lists no images"})
        return flavor, image, errors

    def validate(self, job: Job) -> list[dict[str, str]]:
        """Check the job's flavor, image and nodes against the cached catalogue (no I/O)."""
        return self._pick(job)[2]

    def estimate_cost(self, job: Job) -> float | None:
        """Flavor price per hour x nodes x hours (the walltime, else ``default_walltime``); None if unknown."""
        flavor = self._pick(job)[0]
        seconds = job.spec.resources.walltime or self.default_walltime
        if flavor is None:
            return None
        return estimate_cost(flavor.get("price"), job.spec.resources.nodes, seconds)

    # -- per-job records --------------------------------------------------------------------------

    def partition_name(self, job: Job) -> str:
        """The job's deterministic partition name: ``partition_prefix`` + first 8 characters of its id."""
        return self.partition_prefix + job.id.replace("-", "")[:8]

    def _record(self, job: Job) -> dict[str, Any]:
        record = self._records.get(job.id)
        if record is None:
            record = dict(job.gate_data)
            self._records[job.id] = record
        return record

    def _status(self, job: Job, state: JobState, details: str, **kwargs: Any) -> GateStatus:
        record = self._record(job)
        return GateStatus(state, details, native_id=record.get("partition_id"), gate_data=dict(record), **kwargs)

    # -- submission and partitions ----------------------------------------------------------------

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Ask the gate for the job's partition (reusing one of the same name) and return at once.

        The first status is W ``creating partition swm-...``; the rest happens in :meth:`poll`.
        When the gate does not answer the job waits (W) and creation is tried again by each poll.
        Raises :class:`GateError` when the flavor or image no longer exists.
        """
        name = self.partition_name(job)
        self._claimed.add(name)
        flavor, image, errors = self._pick(job)
        if errors and self._catalogue_time is not None:
            raise GateError("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        record: dict[str, Any] = {
            "partition": name,
            "step": STEP_CREATE,
            "flavor": flavor["name"] if flavor else (job.spec.flavor or self.default_flavor),
            "image": image["name"] if image else (job.spec.cloud_image or self.default_image),
            "since": time.time(),
        }
        self._records[job.id] = record
        status = await self._create(job, existing=None, looked_up=False)
        price = flavor.get("price") if flavor else None
        status.extra["cost"] = {"price_per_hour": price, "flavor": record["flavor"]}
        return status

    def _create_headers(self, job: Job, record: dict[str, Any]) -> dict[str, str]:
        spec = job.spec
        headers: dict[str, str] = {
            "partname": record["partition"],
            "flavorname": str(record["flavor"]),
            "osversion": str(record["image"]),
            "containerimage": spec.container_image or "",
            "username": self.username,
            "count": str(max(0, spec.resources.nodes - 1)),
            "jobid": job.id,
            "ports": ",".join(str(p) for p in spec.ports),
            "runtime": ",".join(f"{k}={v}" for k, v in self.runtime.items()),
            "location": self.location,
        }
        headers = {k: v for k, v in headers.items() if v != "" or k == "count"}
        headers.update({str(k).lower(): str(v) for k, v in self.headers.items()})
        return headers

    async def _create(self, job: Job, existing: dict[str, Any] | None, looked_up: bool) -> GateStatus:
        """Look the partition up by name (unless ``looked_up``) and create it if there is none."""
        record = self._record(job)
        name = record["partition"]
        try:
            if not looked_up:
                existing = await self.client.partition(name)
            if existing is not None and existing.get("status") not in _GONE_STATUSES and existing.get("id"):
                self.log.info("cloud site %s: job %s reuses partition %s", self.site_name, job.id, name)
                partition = existing
            else:
                self.log.info(
                    "cloud site %s: creating partition %s for job %s (flavor %s, image %s, %d node(s))",
                    self.site_name,
                    name,
                    job.id,
                    record["flavor"],
                    record["image"],
                    job.spec.resources.nodes,
                )
                partition = await self.client.create_partition(self._create_headers(job, record))
        except GateUnreachable as exc:
            self._health = exc.message
            if self._timed_out(record):
                return self._status(job, JobState.ERROR, f"the cloud gate did not answer for {self.create_timeout:g} s")
            return self._status(job, JobState.WAITING, f"waiting for the cloud gate to answer: {exc.message}")
        except GateAnswerError as exc:
            if exc.partition and exc.partition.get("id"):
                record["partition_id"] = str(exc.partition["id"])
            record["step"] = STEP_FAILED
            return self._status(job, JobState.ERROR, f"the cloud gate refused partition {name}: {exc.message}")
        if partition.get("id"):
            record["partition_id"] = str(partition["id"])
        record["step"] = STEP_CREATING
        return self._creating_status(job, partition)

    def _timed_out(self, record: dict[str, Any]) -> bool:
        return time.time() - float(record.get("since") or time.time()) > self.create_timeout

    def _creating_status(self, job: Job, partition: dict[str, Any] | None) -> GateStatus:
        """What a job whose partition is being made is doing, given the partition's record."""
        record = self._record(job)
        name = record["partition"]
        if partition is None:
            return self._status(job, JobState.ERROR, f"partition {name} is gone from the cloud gate")
        status = partition.get("status")
        if status in PENDING_STATUSES:
            if self._timed_out(record):
                return self._status(
                    job,
                    JobState.ERROR,
                    f"partition {name} was not ready after {self.create_timeout:g} s ({status}); it is deleted",
                )
            return self._status(job, JobState.WAITING, f"creating partition {name} ({status or 'no status yet'})")
        if status == UP_STATUS:
            master = partition.get("master_public_ip")
            if not master:
                return self._status(job, JobState.ERROR, f"partition {name} is up but has no master_public_ip")
            computes = [str(ip) for ip in partition.get("compute_instances_ips") or [] if ip]
            record.update(
                step=STEP_STARTING,
                master=str(master),
                master_private=str(partition.get("master_private_ip") or master),
                computes=computes,
                up_since=time.time(),
            )
            self._progress[job.id] = f"partition {name} is up; connecting to {master}"
            self._ensure_started(job)
            return self._status(job, JobState.TRANSFERRING, self._progress[job.id])
        description = partition.get("description") or "no description"
        return self._status(job, JobState.ERROR, f"partition {name} is {status}: {description}; it is deleted")

    # -- polling ----------------------------------------------------------------------------------

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """Move every job one step on: one partition listing for those being created, the
        start task for those being started, one SSH command per master for those running.
        """
        self._live = len(jobs)
        out: dict[str, GateStatus] = {}
        creating: list[Job] = []
        starting: list[Job] = []
        running: list[Job] = []
        for job in jobs:
            record = self._record(job)
            self._claimed.add(str(record.get("partition") or self.partition_name(job)))
            step = record.get("step")
            if step in (None, STEP_CREATE, STEP_CREATING):
                creating.append(job)
            elif step in (STEP_STARTING, STEP_FAILED):
                starting.append(job)
            elif step == STEP_RUNNING:
                running.append(job)
        if creating:
            listing: list[dict[str, Any]] | None
            try:
                listing = await self.client.partitions()
                if self._catalogue_time is not None:
                    self._health = ""
            except (GateUnreachable, GateAnswerError) as exc:
                self._health = exc.message
                listing = None
            by_name = {str(p.get("name")): p for p in listing or []}
            for job in creating:
                status = await self._poll_creating(job, listing, by_name)
                if status is not None:
                    out[job.id] = status
        for job in starting:
            out[job.id] = self._starting_status(job)
        if running:
            results = await asyncio.gather(*(self._running_status(j) for j in running))
            for job, status in zip(running, results, strict=True):
                if status is not None:
                    out[job.id] = status
        return out

    async def _poll_creating(
        self, job: Job, listing: list[dict[str, Any]] | None, by_name: dict[str, dict[str, Any]]
    ) -> GateStatus | None:
        record = self._record(job)
        step = record.get("step")
        if step is None:
            # A job the manager was launching when the server stopped: did it reach the gate?
            name = self.partition_name(job)
            found = by_name.get(name)
            if found is None or found.get("status") in _GONE_STATUSES or not found.get("id"):
                self._records.pop(job.id, None)
                return None
            record.update(partition=name, partition_id=str(found["id"]), step=STEP_CREATING, since=time.time())
            record.setdefault("flavor", job.spec.flavor or self.default_flavor)
            record.setdefault("image", job.spec.cloud_image or self.default_image)
            return self._creating_status(job, found)
        if listing is None:
            if self._timed_out(record):
                return self._status(job, JobState.ERROR, f"the cloud gate did not answer for {self.create_timeout:g} s")
            return self._status(job, JobState.WAITING, f"the cloud gate does not answer ({self._health}); waiting")
        found = by_name.get(str(record["partition"]))
        if step == STEP_CREATE:
            return await self._create(job, existing=found, looked_up=True)
        if found is not None and record.get("partition_id") and str(found.get("id")) != record["partition_id"]:
            found = await self.client.partition(record["partition_id"])
        return self._creating_status(job, found)

    def _ensure_started(self, job: Job) -> None:
        task = self._starts.get(job.id)
        if task is None or (task.done() and self._record(job).get("step") == STEP_STARTING):
            self._starts[job.id] = asyncio.create_task(self._start(job), name=f"swm-cloud-start-{job.id}")

    def _starting_status(self, job: Job) -> GateStatus:
        record = self._record(job)
        if record.get("step") == STEP_FAILED:
            return self._status(job, JobState.ERROR, str(record.get("error") or "the job could not be started"))
        if job.id not in self._starts:
            self._ensure_started(job)
        progress = self._progress.get(job.id) or f"starting the job on partition {record.get('partition')}"
        return self._status(job, JobState.TRANSFERRING, progress)

    def _master(self, record: dict[str, Any]) -> SshGate:
        """The ssh gate of the partition's master (one SSH connection per partition)."""
        name = str(record["partition"])
        master = self._masters.get(name)
        if master is None:
            master = SshGate(
                log=self.log,
                site_name=f"{self.site_name}/{name}",
                host=str(record["master"]),
                port=self.ssh_port,
                user=self.ssh_user or self.username,
                key_file=self.ssh_key_file,
                known_hosts=self.known_hosts,
                check_host_keys=self.check_host_keys,
                use_agent=self.use_agent,
                env=self.env,
                remote_workdir=self.remote_workdir,
                python=self.python,
                kill_grace=self.kill_grace,
                command_timeout=self.command_timeout,
            )
            self._masters[name] = master
        return master

    def _remote_job(self, job: Job, record: dict[str, Any]) -> Job:
        """The job as the master's ssh gate runs it: node addresses in its env, wrapped in the
        container runtime when there is one, and the remote folder and pid in its gate data.
        """
        nodes = [str(record.get("master_private") or record["master"]), *record.get("computes", [])]
        env = {
            **job.spec.env,
            "SWM_NODE_IPS": " ".join(nodes),
            "SWM_MASTER_IP": nodes[0],
            "SWM_NODES": str(len(nodes)),
            "SWM_PARTITION": str(record["partition"]),
        }
        spec = dataclasses.replace(job.spec, env=env)
        folder = str(record.get("folder") or posixpath.join(self.remote_workdir, job.id))
        runtime = record.get("runtime")
        if runtime and job.spec.container_image:
            names = sorted({*job_environment(dataclasses.replace(job, spec=spec), folder), *self.env, "SWM_WORKDIR"})
            command = [
                str(runtime),
                "run",
                "--rm",
                "--network",
                "host",
                "-v",
                f"{folder}:{folder}",
                "-w",
                folder,
                *(word for name in names for word in ("-e", name)),
                *self.container_options,
                job.spec.container_image,
                *job_argv(job, self.python),
            ]
            spec = dataclasses.replace(spec, command=tuple(command), workdir=None)
        gate_data = {"folder": folder}
        if record.get("pid"):
            gate_data["pid"] = str(record["pid"])
        return Job(
            id=job.id,
            spec=spec,
            site=job.site,
            folder=job.folder,
            gate_data=gate_data,
            wanted=job.wanted,
            array_parent=job.array_parent,
            array_index=job.array_index,
        )

    async def _start(self, job: Job) -> None:
        """Connect to the master, find a container runtime, stage the inputs and start the job.

        Safe to run again after a restart: a job whose status file exists on the master was
        started already and is only adopted.
        """
        record = self._record(job)
        name = record["partition"]
        try:
            master = self._master(record)
            deadline = time.monotonic() + self.ssh_ready_timeout
            while True:
                try:
                    await master.transport.connect()
                    break
                except SiteUnavailable as exc:
                    if time.monotonic() > deadline:
                        raise GateError(
                            f"SSH to the master of partition {name} failed for {self.ssh_ready_timeout:g} s: "
                            f"{exc.message}"
                        ) from None
                    self._step(job.id, f"partition {name} is up; waiting for SSH on {record['master']}")
                    await asyncio.sleep(2)
            transport = master.transport
            result = await transport.run(
                ["sh", "-c", _ABSOLUTE_FOLDER, "sh", posixpath.join(self.remote_workdir, job.id)],
                timeout=self.command_timeout,
            )
            record["folder"] = result.stdout.strip().splitlines()[-1]
            if job.spec.container_image and "runtime" not in record:
                self._step(job.id, f"looking for a container runtime on {record['master']}")
                record["runtime"] = await self._find_runtime(master)
                if not record["runtime"]:
                    record["note"] = "no container runtime on the VM; the job ran without its container_image"
            status_path = posixpath.join(record["folder"], STATUS_FILE)
            earlier = (await read_remote_files(transport, [status_path]))[status_path]
            if earlier:
                words = earlier.split()
                record["pid"] = words[2] if len(words) > 2 and words[2].isdigit() else ""
                self.log.info("cloud site %s: job %s had started on %s already", self.site_name, job.id, name)
            else:
                self._step(job.id, f"staging inputs to {record['master']} (partition {name})")
                started = await master.submit(self._remote_job(job, record))
                record["pid"] = (started.gate_data or {}).get("pid", "")
                record["started"] = started.start_time
            record["step"] = STEP_RUNNING
        except asyncio.CancelledError:
            raise
        except (GateError, SiteUnavailable) as exc:
            record.update(step=STEP_FAILED, error=f"the job could not be started on partition {name}: {exc.message}")
        except Exception as exc:
            self.log.exception("cloud site %s: starting job %s failed", self.site_name, job.id)
            record.update(step=STEP_FAILED, error=f"the job could not be started on partition {name}: {exc}")
        finally:
            self._progress.pop(job.id, None)
        self.notify()

    def _step(self, job_id: str, text: str) -> None:
        """Note the step a job's start is at, and have the manager look now so the step is recorded."""
        self._progress[job_id] = text
        self.notify()

    async def _find_runtime(self, master: SshGate) -> str:
        for runtime in self.container_runtimes:
            probe = await master.transport.run(
                ["sh", "-c", _RUNTIME_PROBE, "sh", runtime], check=False, timeout=self.command_timeout
            )
            if probe.exit_code == 0:
                return str(runtime)
        return ""

    async def _running_status(self, job: Job) -> GateStatus | None:
        record = self._record(job)
        name = record["partition"]
        master = self._master(record)
        try:
            answer = (await master.poll([self._remote_job(job, record)])).get(job.id)
        except (SiteUnavailable, CommandError) as exc:
            lost = record.setdefault("ssh_lost", time.time())
            if time.time() - float(lost) > self.ssh_lost_timeout:
                return self._status(
                    job,
                    JobState.ERROR,
                    f"the master of partition {name} did not answer for {self.ssh_lost_timeout:g} s: {exc.message}",
                )
            return None
        record.pop("ssh_lost", None)
        if answer is None:
            return None
        where = f"partition {name}, {record['master']}"
        nodes = 1 + len(record.get("computes", []))
        if nodes > 1:
            where += f", {nodes} nodes"
        if record.get("runtime") and job.spec.container_image:
            where += f", in {job.spec.container_image} ({record['runtime']})"
        details = f"{answer.details} ({where})"
        if record.get("note"):
            details += f"; {record['note']}"
        return dataclasses.replace(
            answer, details=details, native_id=record.get("partition_id"), gate_data=dict(record)
        )

    # -- cancel, files, release -------------------------------------------------------------------

    async def _stop_start_task(self, job: Job) -> None:
        task = self._starts.pop(job.id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def cancel(self, job: Job) -> None:
        """Stop the job: its start, or its process group on the master. The partition goes with
        :meth:`release_resources`. Idempotent.
        """
        await self._stop_start_task(job)
        record = self._record(job)
        if record.get("step") == STEP_RUNNING and record.get("master"):
            await self._master(record).cancel(self._remote_job(job, record))

    async def stage_out(self, job: Job) -> None:
        """Bring the remote job folder (stdout, stderr, outputs) back, if the job reached the master."""
        record = self._record(job)
        if not record.get("master") or not record.get("folder") or not job.folder:
            return
        await self._master(record).stage_out(self._remote_job(job, record))

    async def read_output(self, job: Job, stream: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Live log bytes of ``stream`` read on the master; the local file before or after that."""
        if stream not in (STDOUT_FILE, STDERR_FILE):
            raise GateError(f"unknown stream {stream!r}; use stdout or stderr")
        record = self._record(job)
        if record.get("step") == STEP_RUNNING and record.get("folder"):
            return await self._master(record).read_output(self._remote_job(job, record), stream, offset, limit)
        return await super().read_output(job, stream, offset, limit)

    async def release_resources(self, job: Job) -> None:
        """Delete the job's partition whatever happened (finished, failed, canceled). Idempotent.

        Raises when the gate cannot be reached; the orphan sweep deletes it later.
        """
        await self._stop_start_task(job)
        record = self._record(job)
        name = str(record.get("partition") or self.partition_name(job))
        try:
            ident = record.get("partition_id")
            if not ident:
                found = await self.client.partition(name)
                ident = found.get("id") if found and found.get("status") not in _GONE_STATUSES else None
            if ident:
                if await self.client.delete_partition(str(ident)):
                    self.log.info(
                        "cloud site %s: partition %s of job %s is being deleted", self.site_name, name, job.id
                    )
        finally:
            self._claimed.discard(name)
            self._records.pop(job.id, None)
            self._progress.pop(job.id, None)
            master = self._masters.pop(name, None)
            if master is not None:
                await master.cleanup()

    # -- description ------------------------------------------------------------------------------

    async def describe(self) -> dict[str, Any]:
        """Flavors (with prices per hour) and images from the cached catalogue, and the site's health."""
        healthy = self._catalogue_time is not None and not self._health
        message = self._health or (
            f"{self.cloud_kind} through {self.client.public_url}" if self.url else "no gate url configured"
        )
        return {
            "kind": self.kind,
            "healthy": healthy,
            "health_message": message if not healthy else f"{self.cloud_kind} through {self.client.public_url}",
            "cloud_kind": self.cloud_kind,
            "gate_url": self.client.public_url if self.url else "",
            "location": self.location,
            "limits": {"nodes": self.max_nodes or None, "walltime": None},
            "flavors": [dict(f) for f in self._flavors],
            "images": [dict(i) for i in self._images],
            "catalogue_time": self._catalogue_time,
            "units": {
                "mem": "as the provider gives them (MB on Azure)",
                "storage": "as the provider gives them",
                "price": "per VM and hour",
            },
            "default_flavor": self.default_flavor,
            "default_image": self.default_image,
        }


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _flavor(raw: dict[str, Any]) -> dict[str, Any]:
    """A flavor as shown to users: the protocol's fields plus ``memory`` and ``price_per_hour``."""
    mem = _number(raw.get("mem"), int)
    price = _number(raw.get("price"), float)
    return {
        "id": str(raw.get("id") or raw.get("name") or ""),
        "name": str(raw.get("name") or raw.get("id") or ""),
        "cpus": _number(raw.get("cpus"), int) or 0,
        "gpus": _number(raw.get("gpus"), int) or 0,
        "mem": mem,
        "memory": mem,
        "storage": _number(raw.get("storage"), int),
        "price": price,
        "price_per_hour": price,
    }


def _image(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(raw.get("id") or raw.get("name") or ""),
        "name": str(raw.get("name") or raw.get("id") or ""),
        "kind": "cloud",
        "extra": raw.get("extra") if isinstance(raw.get("extra"), dict) else {},
    }


__all__ = ["CloudGate"]
