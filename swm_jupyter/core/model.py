"""The job model: a validated ``JobSpec`` (what the user asked for) and a ``Job`` (what happened)."""

from __future__ import annotations

import posixpath
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import ValidationError
from .states import HistoryEntry, JobState
from .units import parse_memory_mb, parse_walltime_seconds

#: Gate kinds whose names may carry site-specific extras in a spec (``{"slurm": {...}}``).
EXTRA_SECTIONS = ("local", "slurm", "ssh", "cloud")
#: The spec section a schedule's run carries (``{"id", "due_time"}``): set by the scheduler only, never by a request.
SCHEDULE_SECTION = "schedule"
DEPENDENCY_TYPES = ("afterok", "afterany")
_NAME = re.compile(r"^[A-Za-z0-9_.@+=:,-][A-Za-z0-9_.@+=:, -]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARRAY = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")
#: Largest number of nodes, cpus or gpus a job may ask for (a typo, not a request, above it).
MAX_COUNT = 1_000_000
#: The resources as :meth:`JobSpec.to_dict` stores them -> the fields of :class:`Resources`.
_STORED_RESOURCES = {
    "nodes": "nodes",
    "cpus": "cpus",
    "memory": "memory_mb",
    "gpus": "gpus",
    "walltime": "walltime",
    "storage": "storage_mb",
}


@dataclass(frozen=True)
class Resources:
    """What a job needs on its site. ``memory_mb``, ``walltime`` (seconds) and ``storage_mb`` (disk) may be unset."""

    nodes: int = 1
    cpus: int = 1
    memory_mb: int | None = None
    gpus: int = 0
    walltime: int | None = None
    storage_mb: int | None = None


#: The most tasks an array can ever have, whatever ``max_array_size`` says (Slurm's own ceiling).
ARRAY_TASKS_CAP = 4_000_001


def _array_ranges(text: str) -> tuple[list[range], int | None]:
    """The index ranges and the throttle of an array written in Slurm's syntax. Raises ``ValueError``."""
    body, _, throttle_text = str(text).strip().partition("%")
    throttle = None
    if throttle_text:
        if not throttle_text.isdigit() or int(throttle_text) < 1:
            raise ValueError(f"array throttle {throttle_text!r} must be a positive whole number")
        throttle = int(throttle_text)
    ranges: list[range] = []
    for part in body.split(","):
        match = _ARRAY.match(part.strip())
        if not match:
            raise ValueError(f"cannot read array {text!r}: write 0-99, 0-99%10 or 1,3,5-9:2")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        step = int(match.group(3)) if match.group(3) is not None else 1
        if end < start or step < 1:
            raise ValueError(f"array range {part!r} must go upwards with a positive step")
        ranges.append(range(start, end + 1, step))
    return ranges, throttle


def array_task_count(text: str) -> int:
    """How many tasks an array written in Slurm's syntax has (counted as written). Raises ``ValueError``."""
    return sum(len(r) for r in _array_ranges(text)[0])


@dataclass(frozen=True)
class ArraySpec:
    """A job array: task indices and the most tasks allowed to run at once (None: no limit)."""

    indices: tuple[int, ...]
    throttle: int | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str, *, max_tasks: int = ARRAY_TASKS_CAP) -> ArraySpec:
        """Parse Slurm's syntax: ``0-99``, ``0-99%10``, ``1,3,5-9:2%4``. Raises ``ValueError``.

        An array of more than ``max_tasks`` tasks (counted as written) is refused before any index
        is made.
        """
        ranges, throttle = _array_ranges(text)
        count = sum(len(r) for r in ranges)
        if count > max_tasks:
            raise ValueError(f"the array has {count:,} tasks; at most {max_tasks:,} are allowed")
        indices: list[int] = []
        for indices_of_part in ranges:
            indices.extend(indices_of_part)
        unique = tuple(sorted(set(indices)))
        return cls(indices=unique, throttle=throttle, text=str(text).strip())


@dataclass(frozen=True)
class Dependency:
    """This job may start only after ``job_id`` ended (``afterok``: and finished with exit 0)."""

    kind: str
    job_id: str


@dataclass(frozen=True)
class JobSpec:
    """A validated job request. Build it with :meth:`from_dict`, never by hand from user input."""

    name: str = "job"
    site: str | None = None
    script: str | None = None
    command: tuple[str, ...] | None = None
    notebook: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    input_files: tuple[str, ...] = ()
    output_files: tuple[str, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    array: ArraySpec | None = None
    priority: int = 0
    hold: bool = False
    account: str | None = None
    flavor: str | None = None
    cloud_image: str | None = None
    container_image: str | None = None
    ports: tuple[int, ...] = ()
    relocatable: bool = False
    #: Sky Port's job fields: free text, files (relative to the job's folder) for the job's standard
    #: streams, the address the job was submitted from, and outbound ports (``ports`` are inbound).
    comment: str | None = None
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    submission_address: str | None = None
    outbound_ports: tuple[int, ...] = ()
    #: What the server noted about the request (e.g. unknown ``#SWM`` directives it ignored); set by
    #: the manager at submission, whatever the request says.
    warnings: tuple[str, ...] = ()
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)

    FIELDS = (
        "name",
        "site",
        "script",
        "command",
        "notebook",
        "parameters",
        "workdir",
        "env",
        "resources",
        "input_files",
        "output_files",
        "depends_on",
        "array",
        "priority",
        "hold",
        "account",
        "flavor",
        "cloud_image",
        "container_image",
        "ports",
        "relocatable",
        "comment",
        "stdin",
        "stdout",
        "stderr",
        "submission_address",
        "outbound_ports",
        "warnings",
    )

    @classmethod
    def from_dict(
        cls, data: Any, *, extra_sections: tuple[str, ...] = EXTRA_SECTIONS, stored: bool = False
    ) -> JobSpec:
        """Validate a JSON-like request and return the spec.

        Raises :class:`ValidationError` listing every bad field (``field`` is a dotted path). A new
        request is refused if anything would only fail when the job runs or ends: a NUL byte in any
        text, an input or output file path that is absolute or has a ``..`` part. ``stored=True``
        (specs read back from the store, accepted by an earlier version) skips those checks.
        """
        if not isinstance(data, dict):
            raise ValidationError("a job must be a JSON object", [{"field": "", "message": "expected an object"}])
        errors: list[dict[str, str]] = []
        out: dict[str, Any] = {}

        def bad(path: str, message: str) -> None:
            errors.append({"field": path, "message": message})

        if not stored:
            for path in _nul_paths(data):
                bad(path, "has a NUL byte (\\0), which no file name, argument or variable can hold")

        for key in data:
            if key not in cls.FIELDS and key not in extra_sections:
                bad(key, f"unknown field; known fields are {', '.join(cls.FIELDS)}")
        for key in extra_sections:
            if key in data:
                if isinstance(data[key], dict):
                    out.setdefault("extras", {})[key] = dict(data[key])
                else:
                    bad(key, 'site extras must be an object, e.g. {"partition": "gpu"}')

        def text(key: str, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> None:
            value = data.get(key)
            if value is None:
                return
            if not isinstance(value, str) or not value.strip():
                bad(key, "must be a non-empty string")
            elif pattern is not None and not pattern.match(value):
                bad(key, hint)
            else:
                out[key] = value

        text("name", pattern=_NAME, hint="use up to 128 letters, digits, spaces and _.@+=:,-")
        for key in (
            "site",
            "workdir",
            "account",
            "flavor",
            "cloud_image",
            "container_image",
            "notebook",
            "comment",
            "submission_address",
        ):
            text(key)
        for key in ("stdin", "stdout", "stderr"):
            text(key)
            if key in out and not stored and not is_inside_path(out[key]):
                bad(key, f"{out[key]!r} must be a relative path inside the job's folder (no '..', not absolute)")
                del out[key]
        warnings = data.get("warnings")
        if warnings is not None:
            if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
                bad("warnings", "must be a list of strings")
            else:
                out["warnings"] = tuple(warnings)
        script = data.get("script")
        if script is not None:
            if not isinstance(script, str) or not script.strip():
                bad("script", "must be the non-empty text of a script")
            else:
                out["script"] = script
        command = data.get("command")
        if command is not None:
            if isinstance(command, str):
                bad("command", 'must be a list of arguments, e.g. ["python", "train.py"]')
            elif not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
                bad("command", "must be a non-empty list of strings")
            else:
                out["command"] = tuple(command)
        given = [k for k in ("script", "command", "notebook") if data.get(k) is not None]
        if not given:
            bad("script", "say what to run: give one of script, command or notebook")
        elif len(given) > 1:
            bad(given[1], f"give only one of script, command or notebook (got {', '.join(given)})")

        params = data.get("parameters")
        if params is not None:
            if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
                bad("parameters", "must be an object of name: value")
            elif data.get("notebook") is None:
                bad("parameters", "parameters go with a notebook job")
            else:
                out["parameters"] = dict(params)

        env = data.get("env")
        if env is not None:
            if not isinstance(env, dict):
                bad("env", "must be an object of NAME: value strings")
            else:
                for name, value in env.items():
                    if not isinstance(name, str) or not _ENV_NAME.match(name):
                        bad(f"env.{name}", "is not a valid environment variable name")
                    elif not isinstance(value, str):
                        bad(f"env.{name}", "value must be a string")
                out["env"] = {str(k): str(v) for k, v in env.items()}

        out["resources"] = _resources(data.get("resources"), bad, stored=stored)

        for key in ("input_files", "output_files"):
            value = data.get(key)
            if value is None:
                continue
            if isinstance(value, str):
                value = [v for v in re.split(r"[,\s]+", value) if v]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                bad(key, "must be a list of file paths")
                continue
            outside = [v for v in value if not stored and not is_inside_path(v)]
            if outside:
                where = "job folder" if key == "output_files" else "server's root folder"
                bad(key, f"{outside[0]!r} must be a relative path inside the {where} (no '..', not absolute)")
            else:
                out[key] = tuple(value)

        deps = _dependencies(data.get("depends_on"), bad)
        if deps:
            out["depends_on"] = deps

        array = data.get("array")
        if array is not None:
            try:
                out["array"] = ArraySpec.parse(str(array))
            except ValueError as exc:
                bad("array", str(exc))

        priority = data.get("priority")
        if priority is not None:
            if isinstance(priority, bool) or not isinstance(priority, int) or not -1_000_000 <= priority <= 1_000_000:
                bad("priority", "must be a whole number between -1000000 and 1000000 (higher runs first)")
            else:
                out["priority"] = priority
        for key in ("hold", "relocatable"):
            value = data.get(key)
            if value is not None:
                if not isinstance(value, bool):
                    bad(key, "must be true or false")
                else:
                    out[key] = value
        for key in ("ports", "outbound_ports"):
            ports = data.get(key)
            if ports is None:
                continue
            if isinstance(ports, str):
                try:
                    ports = [int(p) for p in re.split(r"[,\s]+", ports) if p]
                except ValueError:
                    ports = None
            if not isinstance(ports, list) or not all(
                isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports
            ):
                bad(key, "must be a list of port numbers (1-65535)")
            else:
                out[key] = tuple(ports)
        if errors:
            raise ValidationError(
                "the job request has errors: "
                + "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors),
                errors,
            )
        if "name" not in out:
            out["name"] = _default_name(out)
        return cls(**out)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: what :meth:`from_dict` reads back to an equal spec."""
        res = self.resources
        out: dict[str, Any] = {
            "name": self.name,
            "site": self.site,
            "script": self.script,
            "command": list(self.command) if self.command is not None else None,
            "notebook": self.notebook,
            "parameters": self.parameters,
            "workdir": self.workdir,
            "env": self.env,
            "resources": {
                "nodes": res.nodes,
                "cpus": res.cpus,
                "memory": res.memory_mb,
                "gpus": res.gpus,
                "walltime": res.walltime,
                "storage": res.storage_mb,
            },
            "input_files": list(self.input_files),
            "output_files": list(self.output_files),
            "depends_on": [{"type": d.kind, "job": d.job_id} for d in self.depends_on],
            "array": self.array.text if self.array else None,
            "priority": self.priority,
            "hold": self.hold,
            "account": self.account,
            "flavor": self.flavor,
            "cloud_image": self.cloud_image,
            "container_image": self.container_image,
            "ports": list(self.ports),
            "relocatable": self.relocatable,
            "comment": self.comment,
            "stdin": self.stdin,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "submission_address": self.submission_address,
            "outbound_ports": list(self.outbound_ports),
            "warnings": list(self.warnings),
        }
        out.update(self.extras)
        return out

    def extra(self, section: str) -> dict[str, Any]:
        """The site extras under ``section`` (a gate kind), or an empty dict."""
        return self.extras.get(section, {})


def _resources(value: Any, bad: Any, *, stored: bool = False) -> Resources:
    if value is None:
        return Resources()
    if stored and isinstance(value, dict) and set(value) <= set(_STORED_RESOURCES):
        # Stored by to_dict as whole numbers, within the limits of the version that accepted them.
        return Resources(**{_STORED_RESOURCES[k]: v for k, v in value.items() if v is not None})
    if not isinstance(value, dict):
        bad("resources", 'must be an object such as {"cpus": 4, "memory": "8G"}')
        return Resources()
    known = ("nodes", "cpus", "memory", "mem", "gpus", "walltime", "storage")
    kwargs: dict[str, Any] = {}
    for key in value:
        if key not in known:
            bad(f"resources.{key}", f"unknown resource; known: {', '.join(known)}")
    for key in ("nodes", "cpus", "gpus"):
        if value.get(key) is None:
            continue
        number = value[key]
        if isinstance(number, str) and number.isdigit():
            number = int(number)
        minimum = 0 if key == "gpus" else 1
        if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= MAX_COUNT:
            bad(f"resources.{key}", f"must be a whole number from {minimum} to {MAX_COUNT}")
        else:
            kwargs[key] = number
    memory = value.get("memory", value.get("mem"))
    if memory is not None:
        try:
            kwargs["memory_mb"] = parse_memory_mb(memory)
        except ValueError as exc:
            bad("resources.memory", str(exc))
    if value.get("walltime") is not None:
        try:
            kwargs["walltime"] = parse_walltime_seconds(value["walltime"])
        except ValueError as exc:
            bad("resources.walltime", str(exc))
    if value.get("storage") is not None:
        try:
            kwargs["storage_mb"] = parse_memory_mb(value["storage"])
        except ValueError as exc:
            bad("resources.storage", str(exc).replace("memory", "storage"))
    return Resources(**kwargs)


def _nul_paths(data: Any, path: str = "") -> list[str]:
    """The dotted paths of every string (value or key) in ``data`` that holds a NUL byte."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                found.append(where)
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and "\x00" in key:
                    found.append(name)
                else:
                    stack.append((name, item))
        elif isinstance(value, list | tuple):
            stack.extend((f"{where}.{i}", item) for i, item in enumerate(value))
    return sorted(found)


def is_inside_path(path: str) -> bool:
    """True for a relative path with no ``..`` part (it cannot leave the folder it is relative to)."""
    return not posixpath.isabs(path) and not path.startswith("\\") and ".." not in re.split(r"[/\\]", path)


def _dependencies(value: Any, bad: Any) -> tuple[Dependency, ...]:
    """Read ``[{"type": "afterok", "job": id}]``, ``{"afterok": [ids]}`` or ``"afterok:a:b,afterany:c"``."""
    if value is None:
        return ()
    pairs: list[tuple[str, Any]] = []
    if isinstance(value, str):
        for part in re.split(r"[,?]", value):
            kind, _, ids = part.strip().partition(":")
            if not ids:
                bad("depends_on", f"cannot read {part!r}: write afterok:JOBID[:JOBID...]")
                continue
            pairs.extend((kind, job) for job in ids.split(":"))
    elif isinstance(value, dict):
        for kind, ids in value.items():
            if isinstance(ids, str):
                ids = [ids]
            if not isinstance(ids, list):
                bad(f"depends_on.{kind}", "must be a list of job ids")
                continue
            pairs.extend((kind, job) for job in ids)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                pairs.append(("afterok", item))
            elif isinstance(item, dict) and set(item) <= {"type", "job"} and "job" in item:
                pairs.append((item.get("type", "afterok"), item["job"]))
            else:
                bad(f"depends_on.{i}", 'must be a job id or {"type": "afterok", "job": ID}')
    else:
        bad("depends_on", 'must be a list of job ids, {"afterok": [ids]}, or "afterok:ID"')
    deps: list[Dependency] = []
    for kind, job in pairs:
        if kind not in DEPENDENCY_TYPES:
            bad("depends_on", f"unknown dependency type {kind!r}; use {' or '.join(DEPENDENCY_TYPES)}")
        elif not isinstance(job, str) or not job.strip():
            bad("depends_on", "a job id must be a non-empty string")
        else:
            deps.append(Dependency(kind, job.strip()))
    return tuple(deps)


def _default_name(fields: dict[str, Any]) -> str:
    if fields.get("notebook"):
        return str(fields["notebook"]).rsplit("/", 1)[-1][:128]
    if fields.get("command"):
        return str(fields["command"][0]).rsplit("/", 1)[-1][:128] or "job"
    return "job"


def new_job_id() -> str:
    """A new job id: a UUID4 string, as Sky Port uses."""
    return str(uuid.uuid4())


@dataclass(slots=True)
class Job:
    """A job in the store: its spec, its state and what the site told us about it.

    Who writes what: ``gate_data`` is the gate's own per-job state (survives restarts), written
    only from the :class:`~swm_jupyter.core.gate_contract.GateStatus` a gate returns; the core
    never puts anything of its own there. ``wanted`` (a user's wish the reconciler carries out),
    ``launching``, ``finalizing`` and ``held_on_site`` are the core's: a gate may read them, never
    writes them. Each is stored in its own column, so each survives a crash.
    """

    id: str
    spec: JobSpec
    site: str
    state: JobState = JobState.QUEUED
    state_details: str = ""
    exit_code: int | None = None
    signal: int | None = None
    native_id: str | None = None
    array_parent: str | None = None
    array_index: int | None = None
    submit_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    gate_data: dict[str, Any] = field(default_factory=dict)
    wanted: str | None = None
    #: The core has decided to hand the job to its site and stored that intent; cleared once the
    #: site answered. Set after a restart: the site is asked whether the job reached it.
    launching: bool = False
    #: The core is collecting the job's outputs and releasing its site resources.
    finalizing: bool = False
    #: The job is held in the site's own queue (not in ours): it is polled, and released there.
    held_on_site: bool = False
    folder: str = ""
    cost: dict[str, Any] = field(default_factory=dict)
    owner: str = ""
    seq: int = 0
    #: Variables given to the job's process only (e.g. a hub token): kept in memory from
    #: submission to launch, never stored, never in :meth:`to_dict`, events or logs. Lost if the
    #: manager restarts before the job is launched (the job then starts without them).
    private_env: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_array_parent(self) -> bool:
        """True for the record that stands for a whole array (its tasks are separate jobs)."""
        return self.spec.array is not None and self.array_index is None

    def summary(self) -> dict[str, Any]:
        """The short JSON form used in lists and events (no spec body, no history)."""
        return {
            "id": self.id,
            "name": self.spec.name,
            "site": self.site,
            "state": self.state.value,
            "state_code": self.state.code,
            "state_details": self.state_details,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "native_id": self.native_id,
            "array_parent": self.array_parent,
            "array_index": self.array_index,
            "priority": self.spec.priority,
            "owner": self.owner,
            "submit_time": self.submit_time,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "cost": self.cost,
            **({"schedule": self.spec.extras[SCHEDULE_SECTION]} if SCHEDULE_SECTION in self.spec.extras else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """The full JSON form: summary, spec and history."""
        out = self.summary()
        out["spec"] = self.spec.to_dict()
        out["history"] = [h.to_dict() for h in self.history]
        out["folder"] = self.folder
        out["warnings"] = list(self.spec.warnings)
        return out


def parse_private_env(value: Any) -> dict[str, str]:
    """Validate a request's ``private_env`` (``{"NAME": "value"}``); errors name the variable, never its value.

    Raises :class:`ValidationError`.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(
            "private_env must be an object of NAME: value strings",
            [{"field": "private_env", "message": "must be an object of NAME: value strings"}],
        )
    errors = [
        {"field": f"private_env.{name}", "message": "needs a valid variable name and a string value"}
        for name, text in value.items()
        if not isinstance(name, str) or not _ENV_NAME.match(name) or not isinstance(text, str)
    ]
    if errors:
        raise ValidationError("private_env has bad entries: " + ", ".join(e["field"] for e in errors), errors)
    return dict(value)


def replace_spec_extras(spec: JobSpec, extras: dict[str, dict[str, Any]], after: str | None = None) -> JobSpec:
    """A copy of ``spec`` with these sections added to its extras (e.g. :data:`SCHEDULE_SECTION`), and
    with ``after``, a dependency on that job's end (``afterany``)."""
    depends_on = spec.depends_on + ((Dependency("afterany", after),) if after else ())
    return replace(spec, extras={**spec.extras, **extras}, depends_on=depends_on)


def spec_from_json(data: dict[str, Any]) -> JobSpec:
    """Rebuild a spec stored by :meth:`JobSpec.to_dict` (trusted input from the store)."""
    clean = {k: v for k, v in data.items() if v is not None and v != [] and v != {}}
    return JobSpec.from_dict(clean, stored=True, extra_sections=(*EXTRA_SECTIONS, SCHEDULE_SECTION))


__all__ = [
    "ArraySpec",
    "Dependency",
    "Job",
    "JobSpec",
    "Resources",
    "asdict",
    "is_inside_path",
    "new_job_id",
    "parse_private_env",
    "replace_spec_extras",
    "spec_from_json",
]
