"""The job model: a validated ``JobSpec`` (what the user asked for) and a ``Job`` (what happened)."""

from __future__ import annotations

import posixpath
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import ValidationError
from .jobfields import (
    DEPENDENCY_TYPES,
    ENV_NAME_PATTERN,
    EXTRA_SECTIONS,
    FIELD_NAMES,
    MAX_COUNT,
    PRIORITY_RANGE,
    RESOURCE_NAMES,
    field_named,
    validation_errors,
)
from .states import HistoryEntry, JobState, is_failed
from .units import parse_memory_mb, parse_storage_mb, parse_walltime_seconds

#: The spec section a schedule's run carries (``{"id", "due_time"}``): set by the scheduler only, never by a
#: request (it is not one of the request's fields); kept with the stored spec like site extras.
SCHEDULE_SECTION = "schedule"
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_ARRAY = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")
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

    FIELDS = FIELD_NAMES

    @classmethod
    def from_dict(cls, data: Any, *, extra_sections: tuple[str, ...] = EXTRA_SECTIONS, stored: bool = False) -> JobSpec:
        """Validate a JSON-like request and return the spec.

        The fields and their shapes are those of :mod:`~swm_jupyter.core.jobfields` (checked with its
        JSON Schema); then what people write is read (sizes, times, arrays, dependencies). Raises
        :class:`ValidationError` listing every bad field (``field`` is a dotted path). A new request
        is refused if anything would only fail when the job runs or ends: a NUL byte in any text, an
        input or output file path that is absolute or has a ``..`` part. ``stored=True`` (specs read
        back from the store) takes the trusted path of :func:`spec_from_json` instead.
        """
        if stored and isinstance(data, dict):
            return spec_from_json(data)
        if not isinstance(data, dict):
            raise ValidationError("a job must be a JSON object", [{"field": "", "message": "expected an object"}])
        data = _without_nulls(data)
        errors = [
            {"field": path, "message": "has a NUL byte (\\0), which no file name, argument or variable can hold"}
            for path in _nul_paths(data)
        ]
        errors.extend(validation_errors(data, tuple(extra_sections)))
        failed = {e["field"] for e in errors}  # a field whose shape is wrong is not read further
        out: dict[str, Any] = {}

        def bad(path: str, message: str) -> None:
            errors.append({"field": path, "message": message})

        for key in extra_sections:
            if key in data and key not in failed:
                out.setdefault("extras", {})[key] = dict(data[key])
        for key, value in data.items():
            if key in failed or value is None or key not in _READERS:
                continue
            reader = _READERS[key]
            try:
                out[key] = reader(value, bad)
            except ValueError as exc:
                bad(key, str(exc))
        given = [k for k in ("script", "command", "notebook") if data.get(k) is not None]
        if not given:
            bad("script", "say what to run: give one of script, command or notebook")
        elif len(given) > 1:
            bad(given[1], f"give only one of script, command or notebook (got {', '.join(given)})")
        if data.get("parameters") is not None and data.get("notebook") is None and "parameters" not in failed:
            bad("parameters", "parameters go with a notebook job")
        if errors:
            first: dict[str, dict[str, str]] = {}
            for error in errors:
                first.setdefault(error["field"], error)  # the first problem found of each field
            errors = list(first.values())
            raise ValidationError(
                "the job request has errors: "
                + "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors),
                errors,
            )
        out = {k: v for k, v in out.items() if v is not None and k in _SPEC_ARGS}
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


def _without_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the known fields (and resources) given as ``null``: null means "not given"."""
    out = {k: v for k, v in data.items() if v is not None or k not in FIELD_NAMES}
    if isinstance(out.get("resources"), dict):
        res = out["resources"]
        out["resources"] = {k: v for k, v in res.items() if v is not None or k not in RESOURCE_NAMES}
    return out


def _resources(value: dict[str, Any], bad: Any) -> Resources:
    """The resources of a request whose shape the schema checked: counts, memory and walltime read."""
    kwargs: dict[str, Any] = {}
    for key in ("nodes", "cpus", "gpus"):
        number = value.get(key)
        if number is None:
            continue
        minimum = 0 if key == "gpus" else 1
        if isinstance(number, str) and number.isdigit():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= MAX_COUNT:
            bad(f"resources.{key}", field_named(key).hint)
        else:
            kwargs[key] = number
    sizes = {**value, "memory": value.get("memory", value.get("mem"))}
    for key, (attribute, parse) in _SIZE_READERS.items():
        if sizes.get(key) is None:
            continue
        try:
            kwargs[attribute] = parse(sizes[key])
        except ValueError as exc:
            bad(f"resources.{key}", str(exc))
    return Resources(**kwargs)


#: The resources written as sizes or times: request key -> (:class:`Resources` attribute, reader).
_SIZE_READERS: dict[str, tuple[str, Any]] = {
    "memory": ("memory_mb", parse_memory_mb),
    "storage": ("storage_mb", parse_storage_mb),
    "walltime": ("walltime", parse_walltime_seconds),
}


def _env(value: dict[str, str], bad: Any) -> dict[str, str]:
    for name in value:
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            bad(f"env.{name}", "is not a valid environment variable name")
    return dict(value)


def _files(key: str) -> Any:
    def read(value: Any, bad: Any) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value) if v]
        outside = [v for v in value if not is_inside_path(v)]
        if outside:
            where = "job folder" if key == "output_files" else "server's root folder"
            bad(key, f"{outside[0]!r} must be a relative path inside the {where} (no '..', not absolute)")
            return None
        return tuple(value)

    return read


def _whole(key: str, low: int, high: int, hint: str) -> Any:
    def read(value: Any, bad: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            bad(key, hint)
            return None
        return value

    return read


def _ports(key: str) -> Any:
    def read(value: Any, bad: Any) -> tuple[int, ...] | None:
        return _port_list(key, value, bad)

    return read


def _port_list(key: str, value: Any, bad: Any) -> tuple[int, ...] | None:
    if isinstance(value, str):
        try:
            value = [int(p) for p in re.split(r"[,\s]+", value) if p]
        except ValueError:
            value = None
    if not isinstance(value, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in value
    ):
        bad(key, "must be a list of port numbers (1-65535)")
        return None
    return tuple(value)


def _parameters(value: dict[str, Any], bad: Any) -> dict[str, Any] | None:
    if not all(isinstance(k, str) for k in value):
        bad("parameters", "must be an object of name: value")
        return None
    return dict(value)


def _stream_file(key: str) -> Any:
    def read(value: str, bad: Any) -> str | None:
        if not is_inside_path(value):
            bad(key, f"{value!r} must be a relative path inside the job's folder (no '..', not absolute)")
            return None
        return value

    return read


def _same(value: Any, _bad: Any) -> Any:
    return value


#: How each field of a checked request becomes the value :class:`JobSpec` keeps.
_READERS: dict[str, Any] = {
    "name": _same,
    "site": _same,
    "script": _same,
    "command": lambda value, _bad: tuple(value),
    "notebook": _same,
    "parameters": _parameters,
    "workdir": _same,
    "env": _env,
    "resources": _resources,
    "input_files": _files("input_files"),
    "output_files": _files("output_files"),
    "depends_on": lambda value, bad: _dependencies(value, bad) or None,
    "array": lambda value, _bad: ArraySpec.parse(str(value)),
    "priority": _whole("priority", -PRIORITY_RANGE, PRIORITY_RANGE, field_named("priority").hint),
    "hold": _same,
    "account": _same,
    "flavor": _same,
    "cloud_image": _same,
    "container_image": _same,
    "ports": _ports("ports"),
    "relocatable": _same,
    "comment": _same,
    "stdin": _stream_file("stdin"),
    "stdout": _stream_file("stdout"),
    "stderr": _stream_file("stderr"),
    "submission_address": _same,
    "outbound_ports": _ports("outbound_ports"),
    "warnings": lambda value, _bad: tuple(value),
}
_SPEC_ARGS = {*_READERS, "extras"}


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
            "changes": len(self.history),
            "state_details": self.state_details,
            "failed": is_failed(self.state, self.exit_code, self.signal),
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
    """Rebuild a spec stored by :meth:`JobSpec.to_dict` (trusted input from the store, not validated again).

    Specs accepted by an earlier version (a ``..`` in ``output_files``, a walltime beyond today's limit)
    load as they were stored.
    """
    get = data.get
    res = get("resources") or {}
    command = get("command")
    array = get("array")
    extras = {k: dict(v) for k, v in data.items() if k not in _STORED_KEYS and isinstance(v, dict)}
    return JobSpec(
        name=get("name") or "job",
        site=get("site"),
        script=get("script"),
        command=tuple(command) if command is not None else None,
        notebook=get("notebook"),
        parameters=dict(get("parameters") or {}),
        workdir=get("workdir"),
        env=dict(get("env") or {}),
        resources=Resources(
            **{_STORED_RESOURCES[k]: v for k, v in res.items() if v is not None and k in _STORED_RESOURCES}
        ),
        input_files=tuple(get("input_files") or ()),
        output_files=tuple(get("output_files") or ()),
        depends_on=tuple(Dependency(d["type"], d["job"]) for d in get("depends_on") or ()),
        array=ArraySpec.parse(str(array)) if array not in (None, "") else None,
        priority=get("priority") or 0,
        hold=bool(get("hold")),
        account=get("account"),
        flavor=get("flavor"),
        cloud_image=get("cloud_image"),
        container_image=get("container_image"),
        ports=tuple(get("ports") or ()),
        relocatable=bool(get("relocatable")),
        comment=get("comment"),
        stdin=get("stdin"),
        stdout=get("stdout"),
        stderr=get("stderr"),
        submission_address=get("submission_address"),
        outbound_ports=tuple(get("outbound_ports") or ()),
        warnings=tuple(get("warnings") or ()),
        extras=extras,
    )


_STORED_KEYS = frozenset(FIELD_NAMES)


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
