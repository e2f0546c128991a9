"""The ``cloud`` gate: machines from a Sky Port gate service, the job run on them over SSH.

Per job, an explicit start sequence (:data:`START_STEPS`, an async generator like dask-gateway's
``do_start_cluster``): ``create`` looks the partition (``swm-`` + the first 8 characters of the
job id) up by name, with or without the Azure ``-resource-group`` suffix, and asks the gate for it
when there is none, sending every header Sky Port's core sends; ``wait`` asks the gate about it by
the id it returned until it is ``succeeded``; ``connect`` logs in to ``master_public_ip``;
``runtime`` finds a container runtime for a ``container_image``; ``launch`` copies the job folder
and starts the job detached through the ``ssh`` gate (with its ``private_env``). After each step
the record (``job.gate_data``: ``step``, ``partition``, ``partition_id``, addresses, remote
``folder``, ``pid``) goes to the core, which stores it, so a restarted server resumes at the step
reached. Outputs come back and the partition is deleted whatever happened. A maintenance task
refreshes the flavor and image catalogue and deletes ``swm-*`` partitions that belong to no job
this gate holds (by name or id).
"""

from __future__ import annotations

import asyncio
import dataclasses
import posixpath
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncssh
from traitlets import Bool, Dict, Float, Int, List, Unicode

from ..core.cost import estimate_cost
from ..core.errors import GateError, SiteUnavailable
from ..core.gate_contract import Gate, GateStatus
from ..core.launch import STDERR_FILE, STDOUT_FILE, job_argv, job_environment
from ..core.model import Job
from ..core.states import JobState
from ..core.tasks import being_cancelled, stop_task
from .cloud_catalogue import flavor_of, image_of, pick
from .cloud_protocol import (
    PENDING_STATUSES,
    UP_STATUS,
    GateAnswerError,
    GateUnreachable,
    SkyPortClient,
    base_name,
    same_partition,
)
from .commands import CommandError
from .ssh import SshGate
from .ssh_transport import read_remote_files
from .status_record import STATUS_FILE

#: The start sequence of a job, in order; ``gate_data["step"]`` is the step it reached.
STEP_CREATE = "create"  # look the partition up by name, else ask the gate for it
STEP_WAIT = "wait"  # ask the gate about the partition (by id) until it is up
STEP_CONNECT = "connect"  # log in to the master over SSH, make the remote job folder
STEP_RUNTIME = "runtime"  # find a container runtime on the master (container jobs only)
STEP_LAUNCH = "launch"  # stage the inputs and start the job (adopted if it had started)
START_STEPS = (STEP_CREATE, STEP_WAIT, STEP_CONNECT, STEP_RUNTIME, STEP_LAUNCH)
STEP_RUNNING = "running"  # the job was started on the master
STEP_FAILED = "failed"  # the start failed; ``error`` says why
#: Steps stored by earlier releases, and where their sequence resumes.
_OLDER_STEPS = {"creating": STEP_WAIT, "starting": STEP_CONNECT}

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
    #: A job's private_env goes over SSH to the master, as the ssh gate delivers it: a 0600 file in
    #: the remote job folder that the wrapper reads and removes before anything runs.
    private_env = True
    #: A canceled running job's folder comes back from the master before its partition is deleted
    #: (a spawned server's saved notebooks): once the partition is gone, nothing can be collected.
    collect_on_cancel = True

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
    request_headers = Dict(
        help="Header parameters sent with every request, e.g. the credentials the gate reads on each route "
        "(Azure {'subscriptionid': ..., 'tenantid': ..., 'appid': ...}; OpenStack {'username': ..., "
        "'password': ...}); values never shown."
    ).tag(config=True)
    username = Unicode("", help="The 'username' header: the user the gate creates on the VMs; empty: none.").tag(
        config=True
    )
    runtime = Dict(
        help="More of the 'runtime' header as {k: v} (sent as k=v,k=v after ssh_pub_key, which it may replace)."
    ).tag(config=True)
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
    ssh_public_key = Unicode(
        "",
        help="Public key sent to the gate as runtime 'ssh_pub_key=...' (the gate's cloud-init installs it): "
        "the key text or a .pub file; empty: the public key of ssh_key_file.",
    ).tag(config=True)
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
        #: Partition names (without the Azure suffix) and ids of the jobs this gate was given
        #: and has not released: the orphan sweep never deletes one of them.
        self._claimed: set[str] = set()
        self._claimed_ids: set[str] = set()
        self._public_key = ""
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
                common_headers=self.request_headers,
                secrets=[str(v) for v in self.headers.values()],
                log=self.log,
            )
        return self._client

    async def setup(self) -> None:
        """Load the catalogue and start the maintenance task.

        Raises :class:`SiteUnavailable` (or :class:`GateError`) while the gate cannot be reached or
        refuses: the manager then keeps the site unready, retries with backoff, and queued jobs wait.
        """
        self._public_key = await asyncio.to_thread(self._read_public_key)
        await self.refresh_catalogue()
        if self._setup_time is None:
            self._setup_time = time.monotonic()
        if self._maintenance is None or self._maintenance.done():
            self._maintenance = asyncio.create_task(self._maintain(), name=f"swm-cloud-{self.site_name}")

    async def cleanup(self) -> None:
        """Stop background work and close sessions; partitions and jobs stay (a restart resumes them)."""
        for task in [self._maintenance, *self._starts.values()]:
            await stop_task(task)
        self._maintenance = None
        self._starts.clear()
        for master in list(self._masters.values()):
            await master.cleanup()
        self._masters.clear()
        if self._client is not None:
            await self._client.close()

    def _read_public_key(self) -> str:
        """The public key sent as ``runtime: ssh_pub_key=...``: ``ssh_public_key``, else the one
        of ``ssh_key_file`` (its ``.pub`` file, or derived from the private key); empty if none."""
        if self.ssh_public_key:
            text = self.ssh_public_key
            if not text.startswith(("ssh-", "ecdsa-", "sk-")):
                text = Path(text).expanduser().read_text()
            return " ".join(text.split()[:2])
        if not self.ssh_key_file:
            return ""
        key_file = Path(self.ssh_key_file).expanduser()
        public = Path(str(key_file) + ".pub")
        try:
            if public.is_file():
                return " ".join(public.read_text().split()[:2])
            key = asyncssh.read_private_key(str(key_file))
            return " ".join(key.export_public_key().decode().split()[:2])
        except (OSError, ValueError, asyncssh.KeyImportError) as exc:
            self.log.warning("cloud site %s: no public key from %s: %s", self.site_name, key_file, exc)
            return ""

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
        self._flavors = [flavor_of(f) for f in flavors]
        self._images = [image_of(i) for i in images]
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

    def _claims(self) -> tuple[set[str], set[str]]:
        """Partition names (without the Azure suffix) and ids no sweep may delete: those of every
        job of the site that is not final (:attr:`live_jobs`, queued and held ones included), and
        of every job this gate was given and has not released."""
        names, ids = set(self._claimed), set(self._claimed_ids)
        for job in self.live_jobs():
            names.add(self.partition_name(job))
            names.add(base_name(str(job.gate_data.get("partition") or self.partition_name(job))))
            ids.update(str(v) for v in (job.gate_data.get("partition_id"), job.native_id) if v)
        return names, ids

    def is_orphan(self, part: dict[str, Any], claims: tuple[set[str], set[str]] | None = None) -> bool:
        """True if a listed partition is this site's (``partition_prefix``) and belongs to no job
        that is not final: neither its name, with or without the Azure ``-resource-group`` suffix,
        nor its id is claimed (see :meth:`_claims`). Gone and id-less partitions are not orphans.
        """
        name = base_name(str(part.get("name") or ""))
        ident = str(part.get("id") or "")
        if not name.startswith(self.partition_prefix) or not ident:
            return False
        if part.get("status") in _GONE_STATUSES:
            return False
        names, ids = claims if claims is not None else self._claims()
        return name not in names and ident not in ids

    async def sweep(self) -> list[str]:
        """Delete partitions named with ``partition_prefix`` that belong to no job that is not
        final (see :meth:`is_orphan`).

        Runs only with ``sweep_orphans`` and once ``orphan_grace`` seconds passed since setup (so
        that a restarted server has polled its live jobs first). Returns the names deleted.
        """
        if not self.sweep_orphans or self._setup_time is None:
            return []
        if time.monotonic() - self._setup_time < self.orphan_grace:
            return []
        deleted: list[str] = []
        for part in await self.client.partitions():
            if not self.is_orphan(part):  # claims asked again for each: a job may claim one meanwhile
                continue
            name = str(part.get("name"))
            self.log.info("cloud site %s: deleting partition %s, which belongs to no live job", self.site_name, name)
            await self.client.delete_partition(str(part["id"]))
            deleted.append(name)
        self.swept.extend(deleted)
        return deleted

    def _pick(self, job: Job) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, str]]]:
        """The flavor and image of ``job`` from the cached catalogue, and the errors (no I/O)."""
        not_loaded = None
        if self._catalogue_time is None:
            reason = f" ({self._health})" if self._health else ""
            not_loaded = (
                f"the flavor and image catalogue of site {self.site_name!r} is not loaded yet{reason}; "
                "try again when the site is healthy"
            )
        return pick(
            job.spec,
            self._flavors,
            self._images,
            default_flavor=self.default_flavor,
            default_image=self.default_image,
            max_nodes=self.max_nodes,
            not_loaded=not_loaded,
        )

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
            step = record.get("step")
            if step in _OLDER_STEPS:  # stored by a release before the start sequence had its own steps
                record["step"] = _OLDER_STEPS[step]
            self._records[job.id] = record
        return record

    def _claim(self, job: Job, record: dict[str, Any]) -> None:
        """Keep the sweep away from the job's partition: its name (suffix or not) and its id."""
        self._claimed.add(base_name(str(record.get("partition") or self.partition_name(job))))
        if record.get("partition_id"):
            self._claimed_ids.add(str(record["partition_id"]))

    def _status(self, job: Job, state: JobState, details: str, **kwargs: Any) -> GateStatus:
        record = self._record(job)
        return GateStatus(state, details, native_id=record.get("partition_id"), gate_data=dict(record), **kwargs)

    # -- submission -------------------------------------------------------------------------------

    async def submit(self, job: Job, dependencies: Sequence[tuple[str, str]] = ()) -> GateStatus:
        """Take the first step of the job's start sequence (its partition is asked for, or one of
        its name reused) and return; the rest of the sequence goes on in the background.

        The first status is W ``creating partition swm-...`` with the partition's id as native id,
        so the core stores the id at once; E with the gate's words when it refused; W ``waiting
        for the cloud gate`` when it does not answer (the sequence tries again). Raises
        :class:`GateError` when the flavor or image no longer exists.
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
        self._progress.pop(job.id, None)
        await self._stop_start_task(job)
        sequence = self.start_sequence(job)
        await anext(sequence)  # the first step: one attempt at the partition
        self._drive(job, sequence)
        status = self._sequence_status(job)
        price = flavor.get("price") if flavor else None
        status.extra["cost"] = {"price_per_hour": price, "flavor": record["flavor"]}
        return status

    def create_headers(self, job: Job, record: dict[str, Any]) -> dict[str, str]:
        """The headers of ``POST partitions`` for ``job``: every header Sky Port's core sends,
        empty when there is nothing to say (the real gate's templates call ``.split`` on them),
        the image as both ``osversion`` and ``vmimage`` (the OpenStack route reads the latter),
        ``runtime`` with ``ssh_pub_key`` (cloud-init installs it), then the site's ``headers``.
        """
        spec = job.spec
        runtime = {**({"ssh_pub_key": self._public_key} if self._public_key else {}), **self.runtime}
        headers: dict[str, str] = {
            "partname": record["partition"],
            "flavorname": str(record["flavor"]),
            "osversion": str(record["image"]),
            "vmimage": str(record["image"]),
            "containerimage": spec.container_image or "",
            "username": self.username,
            "count": str(max(0, spec.resources.nodes - 1)),
            "jobid": job.id,
            "ports": ",".join(str(p) for p in spec.ports),
            "runtime": ",".join(f"{k}={v}" for k, v in runtime.items()),
            "location": self.location,
        }
        headers.update({str(k).lower(): str(v) for k, v in self.headers.items()})
        return headers

    def _timed_out(self, record: dict[str, Any]) -> bool:
        return time.time() - float(record.get("since") or time.time()) > self.create_timeout

    async def _lookup(self, name: str) -> dict[str, Any] | None:
        """The live partition called ``name``, or None: ``GET partitions/<name>`` as Sky Port's core
        asks (the Azure gate looks up ``<name>-resource-group``), its answer's name taken with or
        without that suffix."""
        part = await self.client.partition(name)
        if part is None or not same_partition(part, name):
            return None
        if part.get("status") in _GONE_STATUSES or not part.get("id"):
            return None
        return part

    # -- the start sequence -----------------------------------------------------------------------

    async def start_sequence(self, job: Job) -> AsyncIterator[dict[str, Any]]:
        """The job's start, one step at a time, from the step its record reached (a restarted
        server resumes there): :data:`START_STEPS`, each yielding the record to keep.

        Like dask-gateway's ``do_start_cluster``: after each step the state is yielded, and the
        gate hands it to the core with its next status (``gate_data``), which stores it. A step
        that must wait (the gate does not answer, the partition is not up, SSH is not ready)
        yields the same step and is tried again after ``poll_interval``. A step that fails ends
        the sequence at ``failed`` with the reason in ``error``; a cancellation is never caught.
        """
        record = self._record(job)
        steps = {
            STEP_CREATE: self._step_create,
            STEP_WAIT: self._step_wait,
            STEP_CONNECT: self._step_connect,
            STEP_RUNTIME: self._step_runtime,
            STEP_LAUNCH: self._step_launch,
        }
        while record.get("step") in steps:
            step = str(record["step"])
            try:
                following = await steps[step](job, record)
            except asyncio.CancelledError:
                if being_cancelled():  # the server stops or the job is canceled: no failure, no record
                    raise
                following = STEP_FAILED  # an operation of the step cancelled itself
                record["error"] = (
                    f"the job could not be started on partition {record['partition']}: step {step} was cancelled"
                )
            except (GateError, SiteUnavailable) as exc:
                following = STEP_FAILED
                record["error"] = exc.message
            except Exception as exc:
                self.log.exception("cloud site %s: step %s of job %s failed", self.site_name, step, job.id)
                following = STEP_FAILED
                record["error"] = f"the job could not be started on partition {record['partition']}: {exc}"
            if following != step:
                self._progress.pop(job.id, None)
            record["step"] = following
            yield dict(record)
            if following == step:
                await asyncio.sleep(self.poll_interval)

    def _drive(self, job: Job, sequence: AsyncIterator[dict[str, Any]] | None = None) -> None:
        """Run the job's start sequence in the background unless it runs already; each state it
        yields makes the manager poll now, which stores it."""
        task = self._starts.get(job.id)
        if task is not None and not task.done():
            return
        if sequence is None:
            sequence = self.start_sequence(job)
        self._starts[job.id] = asyncio.create_task(self._follow(sequence), name=f"swm-cloud-start-{job.id}")

    async def _follow(self, sequence: AsyncIterator[dict[str, Any]]) -> None:
        last: dict[str, Any] | None = None
        async for state in sequence:
            if state != last:
                last = state
                self.notify()

    def _sequence_status(self, job: Job) -> GateStatus:
        """What a job in its start sequence is doing, from its record (no I/O)."""
        record = self._record(job)
        name = record["partition"]
        step = record.get("step")
        doing = self._progress.get(job.id)
        if step == STEP_FAILED:
            return self._status(job, JobState.ERROR, str(record.get("error") or "the job could not be started"))
        if step == STEP_CREATE:
            return self._status(job, JobState.WAITING, doing or f"creating partition {name}")
        if step == STEP_WAIT:
            return self._status(
                job, JobState.WAITING, doing or f"creating partition {name} ({record.get('status') or 'no status yet'})"
            )
        return self._status(job, JobState.TRANSFERRING, doing or f"starting the job on partition {name}")

    def _doing(self, job: Job, text: str) -> None:
        """Note what the job's start is doing now, and have the manager look (and record it)."""
        if self._progress.get(job.id) != text:
            self._progress[job.id] = text
            self.notify()

    def _gate_silent(
        self, job: Job, record: dict[str, Any], exc: GateError | SiteUnavailable, step: str, doing: str
    ) -> str:
        """The gate did not answer a step's question (or failed it): ``step`` is tried again, saying
        ``doing``, until ``create_timeout`` has passed since the submission, then the start fails."""
        self._health = exc.message
        if self._timed_out(record):
            raise GateError(f"the cloud gate did not answer for {self.create_timeout:g} s: {exc.message}") from None
        self._doing(job, doing)
        return step

    async def _step_create(self, job: Job, record: dict[str, Any]) -> str:
        """Reuse the partition of the job's name if the gate has one, else ask for it; keep its id.

        A gate that does not answer, or fails the lookup, is asked again (nothing was made) until
        ``create_timeout``; a refused creation fails the job with the gate's words.
        """
        name = str(record["partition"])
        try:
            partition = await self._lookup(name)
            if partition is not None:
                self.log.info("cloud site %s: job %s reuses partition %s", self.site_name, job.id, name)
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
                try:
                    partition = await self.client.create_partition(self.create_headers(job, record))
                except GateAnswerError as exc:
                    if exc.partition and exc.partition.get("id"):
                        record["partition_id"] = str(exc.partition["id"])
                        self._claim(job, record)
                    raise GateError(f"the cloud gate refused partition {name}: {exc.message}") from None
        except (GateUnreachable, GateAnswerError) as exc:
            return self._gate_silent(
                job, record, exc, STEP_CREATE, f"waiting for the cloud gate to answer: {exc.message}"
            )
        record["partition_id"] = str(partition["id"])
        record["status"] = partition.get("status")
        self._claim(job, record)
        return STEP_WAIT

    async def _step_wait(self, job: Job, record: dict[str, Any]) -> str:
        """Ask the gate about the partition by its id (as Sky Port's core does) until it is up."""
        name = record["partition"]
        try:
            partition = await self.client.partition(str(record["partition_id"]))
            if self._catalogue_time is not None:
                self._health = ""
        except (GateUnreachable, GateAnswerError) as exc:
            return self._gate_silent(
                job, record, exc, STEP_WAIT, f"the cloud gate does not answer ({exc.message}); waiting"
            )
        self._progress.pop(job.id, None)
        if partition is None:
            raise GateError(f"partition {name} is gone from the cloud gate")
        status = partition.get("status")
        record["status"] = status
        if status in PENDING_STATUSES:
            if self._timed_out(record):
                raise GateError(
                    f"partition {name} was not ready after {self.create_timeout:g} s ({status}); it is deleted"
                )
            return STEP_WAIT
        if status != UP_STATUS:
            description = partition.get("description") or "no description"
            raise GateError(f"partition {name} is {status}: {description}; it is deleted")
        master = partition.get("master_public_ip")
        if not master:
            raise GateError(f"partition {name} is up but has no master_public_ip")
        record.update(
            master=str(master),
            master_private=str(partition.get("master_private_ip") or master),
            computes=[str(ip) for ip in partition.get("compute_instances_ips") or [] if ip],
            up_since=time.time(),
        )
        self._doing(job, f"partition {name} is up; connecting to {master}")
        return STEP_CONNECT

    async def _step_connect(self, job: Job, record: dict[str, Any]) -> str:
        """Log in to the master (waiting up to ``ssh_ready_timeout``) and make the remote folder."""
        name = record["partition"]
        master = self._master(record)
        try:
            await master.transport.connect()
            result = await master.transport.run(
                ["sh", "-c", _ABSOLUTE_FOLDER, "sh", posixpath.join(self.remote_workdir, job.id)],
                timeout=self.command_timeout,
            )
        except (SiteUnavailable, CommandError) as exc:
            if isinstance(exc, CommandError) and exc.exit_code is not None:  # it ran, and said no
                raise GateError(f"the job could not be started on partition {name}: {exc.message}") from None
            if time.time() - float(record.get("up_since") or time.time()) > self.ssh_ready_timeout:
                raise GateError(
                    f"the job could not be started on partition {name}: SSH to its master failed for "
                    f"{self.ssh_ready_timeout:g} s: {exc.message}"
                ) from None
            self._doing(job, f"partition {name} is up; waiting for SSH on {record['master']}")
            return STEP_CONNECT
        record["folder"] = result.stdout.strip().splitlines()[-1]
        return STEP_RUNTIME if job.spec.container_image and "runtime" not in record else STEP_LAUNCH

    async def _step_runtime(self, job: Job, record: dict[str, Any]) -> str:
        """Find a container runtime on the master for a job with a ``container_image``."""
        self._doing(job, f"looking for a container runtime on {record['master']}")
        master = self._master(record)
        record["runtime"] = ""
        for runtime in self.container_runtimes:
            probe = await master.transport.run(
                ["sh", "-c", _RUNTIME_PROBE, "sh", runtime], check=False, timeout=self.command_timeout
            )
            if probe.exit_code == 0:
                record["runtime"] = str(runtime)
                break
        if not record["runtime"]:
            record["note"] = "no container runtime on the VM; the job ran without its container_image"
        return STEP_LAUNCH

    async def _step_launch(self, job: Job, record: dict[str, Any]) -> str:
        """Stage the inputs and start the job; a job whose status file exists on the master had
        started already (the server stopped right after) and is only adopted.
        """
        name = record["partition"]
        master = self._master(record)
        try:
            status_path = posixpath.join(record["folder"], STATUS_FILE)
            earlier = (await read_remote_files(master.transport, [status_path]))[status_path]
            if earlier:
                words = earlier.split()
                record["pid"] = words[2] if len(words) > 2 and words[2].isdigit() else ""
                self.log.info("cloud site %s: job %s had started on %s already", self.site_name, job.id, name)
            else:
                self._doing(job, f"staging inputs to {record['master']} (partition {name})")
                started = await master.submit(self._remote_job(job, record))
                record["pid"] = (started.gate_data or {}).get("pid", "")
                record["started"] = started.start_time
        except (GateError, SiteUnavailable, CommandError) as exc:
            raise GateError(f"the job could not be started on partition {name}: {exc.message}") from None
        return STEP_RUNNING

    # -- polling ----------------------------------------------------------------------------------

    async def poll(self, jobs: list[Job]) -> dict[str, GateStatus]:
        """Report every job: those in their start sequence from their record (resuming the
        sequence of a job this process does not drive yet, after a restart), those running with
        one SSH command per master. A job whose launch was cut short (no step stored) is looked
        up by its partition's name; when the gate has none it is left out, and the core queues
        it again.
        """
        self._live = len(jobs)
        out: dict[str, GateStatus] = {}
        running: list[Job] = []
        for job in jobs:
            record = self._record(job)
            self._claim(job, record)
            step = record.get("step")
            if step is None:
                adopted = await self._adopt(job)
                if adopted is not None:
                    out[job.id] = adopted
            elif step == STEP_RUNNING:
                running.append(job)
            else:
                if step in START_STEPS:
                    self._drive(job)
                out[job.id] = self._sequence_status(job)
        if running:
            results = await asyncio.gather(*(self._running_status(j) for j in running))
            for job, status in zip(running, results, strict=True):
                if status is not None:
                    out[job.id] = status
        return out

    async def _adopt(self, job: Job) -> GateStatus | None:
        """A job the core was launching when the server stopped: did its partition reach the gate?"""
        name = self.partition_name(job)
        try:
            found = await self._lookup(name)
        except (GateUnreachable, GateAnswerError) as exc:
            self._health = exc.message
            raise
        if found is None:
            self._records.pop(job.id, None)
            return None
        record = self._record(job)
        record.update(partition=name, partition_id=str(found["id"]), step=STEP_WAIT, since=time.time())
        record.setdefault("flavor", job.spec.flavor or self.default_flavor)
        record.setdefault("image", job.spec.cloud_image or self.default_image)
        record["status"] = found.get("status")
        self._claim(job, record)
        self._drive(job)
        return self._sequence_status(job)

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
        container runtime when there is one, the remote folder and pid in its gate data, and its
        ``private_env`` (which the ssh gate hands to the process only).
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
            names = sorted(
                {
                    *job_environment(dataclasses.replace(job, spec=spec), folder),
                    *self.env,
                    *job.private_env,
                    "SWM_WORKDIR",
                }
            )
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
            private_env=job.private_env,
        )

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
        """Stop the job's start sequence and wait for it to end. A cancellation of the caller
        while it waits is not swallowed: it goes on up."""
        ended = await stop_task(self._starts.pop(job.id, None))
        if ended is not None:
            self.log.warning("cloud site %s: the start of job %s ended with %r", self.site_name, job.id, ended)

    async def cancel(self, job: Job) -> None:
        """Stop the job: its start sequence, and its process group on the master once it was
        launched (or was being launched). The partition goes with :meth:`release_resources`. Idempotent.
        """
        await self._stop_start_task(job)
        record = self._record(job)
        if record.get("step") in (STEP_LAUNCH, STEP_RUNNING) and record.get("master") and record.get("folder"):
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
        """Delete the job's partition whatever happened (finished, failed, canceled), by the id
        the gate gave at creation (else found by name). Idempotent.

        Raises when the gate cannot be reached; the orphan sweep deletes it later.
        """
        await self._stop_start_task(job)
        record = self._record(job)
        name = str(record.get("partition") or self.partition_name(job))
        ident = record.get("partition_id")
        try:
            if not ident:
                found = await self._lookup(name)
                ident = found.get("id") if found else None
            if ident:
                if await self.client.delete_partition(str(ident)):
                    self.log.info(
                        "cloud site %s: partition %s of job %s is being deleted", self.site_name, name, job.id
                    )
        finally:
            self._claimed.discard(base_name(name))
            if ident:
                self._claimed_ids.discard(str(ident))
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


__all__ = ["CloudGate"]
