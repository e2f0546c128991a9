"""The ``#SWM`` job-script directives: Sky Port's vocabulary plus resources and scheduling.

Sky Port's core reads a directive line as ``#SWM <name> <rest of the line>`` and ignores names it
does not know. Here every name of Sky Port's set is read with its meaning, plus the forms found in
scripts in the wild (``account_id``, ``input``, ``output``, ``image``, ``storage``) and our own
resources and scheduling names. An unknown name is a warning (the line is ignored), or an error
when the caller asks for strict reading; a known name with a bad value is always an error.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from .errors import ValidationError
from .model import ArraySpec, is_inside_path
from .units import parse_memory_mb, parse_storage_mb, parse_walltime_seconds

PREFIX = "#SWM"


def _positive_int(value: str) -> int:
    if not re.fullmatch(r"\d+", value) or int(value) < 1:
        raise ValueError(f"{value!r} is not a whole number of at least 1")
    return int(value)


def _count(value: str) -> int:
    if not re.fullmatch(r"\d+", value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _integer(value: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _boolean(value: str) -> bool:
    low = value.lower()
    if low in ("", "true", "yes", "1", "on"):
        return True
    if low in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _text(value: str) -> str:
    if not value:
        raise ValueError("needs a value")
    return value


def _file_list(value: str) -> list[str]:
    files = [v for v in re.split(r"[,\s]+", value) if v]
    if not files:
        raise ValueError("needs at least one file name")
    outside = [f for f in files if not is_inside_path(f)]
    if outside:
        raise ValueError(f"{outside[0]!r} must be a relative path (no '..', not absolute)")
    return files


_PORT = re.compile(r"^(?P<port>\d+)(?:/(?P<proto>[A-Za-z]+)(?:/(?P<way>[A-Za-z]+))?)?$")


def _ports(value: str) -> tuple[list[int], list[int]]:
    """Sky Port's ``ports``: ``8888``, ``8888/tcp``, ``8888/tcp/in`` or ``8081/tcp/out``, comma-separated.

    Returns (inbound, outbound) port numbers; only tcp is supported.
    """
    inbound: list[int] = []
    outbound: list[int] = []
    for item in (v for v in re.split(r"[,\s]+", value) if v):
        match = _PORT.match(item)
        if not match or not 1 <= int(match.group("port")) <= 65535:
            raise ValueError(
                f"{item!r}: write a port between 1 and 65535 as 8888, 8888/tcp, 8888/tcp/in or 8081/tcp/out"
            )
        proto = (match.group("proto") or "tcp").lower()
        if proto != "tcp":
            raise ValueError(f"{item!r}: only tcp ports are supported")
        way = (match.group("way") or "in").lower()
        if way not in ("in", "out"):
            raise ValueError(f"{item!r}: the direction is in or out")
        (inbound if way == "in" else outbound).append(int(match.group("port")))
    if not inbound and not outbound:
        raise ValueError("needs at least one port")
    return inbound, outbound


def _stream_file(value: str) -> str:
    if not is_inside_path(value):
        raise ValueError(f"{value!r} must be a relative path inside the job's folder (no '..', not absolute)")
    return value


def _array(value: str) -> str:
    ArraySpec.parse(value)
    return value


def _depends(value: str) -> str:
    for part in value.split(","):
        kind, _, ids = part.partition(":")
        if kind not in ("afterok", "afterany") or not ids:
            raise ValueError(f"{part!r}: write afterok:JOBID[:JOBID] or afterany:JOBID")
    return value


def _memory(value: str) -> int:
    return parse_memory_mb(value)


def _walltime(value: str) -> int:
    return parse_walltime_seconds(value)


#: directive -> (where it goes in the spec, how its value is read)
DIRECTIVES: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "name": (("name",), _text),
    "site": (("site",), _text),
    "account": (("account",), _text),
    "flavor": (("flavor",), _text),
    "cloud-image": (("cloud_image",), _text),
    "container-image": (("container_image",), _text),
    "workdir": (("workdir",), _text),
    "input-files": (("input_files",), _file_list),
    "output-files": (("output_files",), _file_list),
    "relocatable": (("relocatable",), _boolean),
    "ports": (("ports",), _ports),
    "comment": (("comment",), _text),
    "submission-address": (("submission_address",), _text),
    "stdin": (("stdin",), _stream_file),
    "stdout": (("stdout",), _stream_file),
    "stderr": (("stderr",), _stream_file),
    "storage": (("resources", "storage"), parse_storage_mb),
    "gpus": (("resources", "gpus"), _count),
    "cpus": (("resources", "cpus"), _positive_int),
    "mem": (("resources", "memory"), _memory),
    "nodes": (("resources", "nodes"), _positive_int),
    "walltime": (("resources", "walltime"), _walltime),
    "depends": (("depends_on",), _depends),
    "array": (("array",), _array),
    "priority": (("priority",), _integer),
}
#: Other names scripts in the wild use -> the directive they mean.
ALIASES = {"account-id": "account", "input": "input-files", "output": "output-files", "image": "cloud-image"}
#: Directives that may be given on several lines (their values add up).
REPEATABLE = ("input-files", "output-files")
#: Every name a directive line may use, as written in warnings and errors.
KNOWN_NAMES = ", ".join([*DIRECTIVES, "account_id", "input", "output", "image"])
_LINE = re.compile(r"^#SWM(?:\s+|$)(?P<key>[A-Za-z][A-Za-z0-9_-]*)?(?:\s*=\s*|\s+)?(?P<value>.*)$")


def parse_directives(script: str) -> dict[str, Any]:
    """Read the ``#SWM`` lines of ``script`` into spec fields, strictly (an unknown directive is an error).

    See :func:`read_directives`.
    """
    return read_directives(script, strict=True)[0]


def read_directives(script: str, *, strict: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Read the ``#SWM`` lines of ``script`` into spec fields (a dict for ``JobSpec.from_dict``) and warnings.

    Directives are ``#SWM key value`` or ``#SWM key=value``, before the first command line (after
    the ``#!`` line, comments and blank lines). Without ``#SWM name``, an ``#SBATCH --job-name``
    line names the job. An unknown directive is ignored with a warning naming its line, unless
    ``strict``. Raises :class:`ValidationError` naming the line of every malformed, repeated or
    misplaced directive (and, when ``strict``, every unknown one).
    """
    fields: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    in_header = True
    for number, raw in enumerate(script.splitlines(), start=1):
        line = raw.strip()
        if not line.upper().startswith(PREFIX):
            if line and not line.startswith("#"):
                in_header = False
            continue
        if not line.startswith(PREFIX) or (len(line) > 4 and not line[4].isspace()):
            errors.append(
                {"field": f"line {number}", "message": f"malformed directive {line!r}: write '#SWM key value'"}
            )
            continue
        where = f"line {number}"
        if not in_header:
            errors.append({"field": where, "message": "#SWM lines must come before the first command of the script"})
            continue
        match = _LINE.match(line)
        key = (match.group("key") or "") if match else ""
        value = (match.group("value") or "").strip() if match else ""
        normal = key.lower().replace("_", "-")
        normal = ALIASES.get(normal, normal)
        if not normal:
            errors.append({"field": where, "message": "empty #SWM directive: write '#SWM key value'"})
            continue
        if normal not in DIRECTIVES:
            message = f"unknown directive {key!r}; known: {KNOWN_NAMES}"
            if strict:
                errors.append({"field": where, "message": message})
            else:
                warnings.append(f"{where}: {message} (the line is ignored)")
            continue
        if normal in seen and normal not in REPEATABLE:
            errors.append({"field": where, "message": f"{normal!r} is already set on line {seen[normal]}"})
            continue
        seen[normal] = number
        path, read = DIRECTIVES[normal]
        if not value and normal in REPEATABLE:
            continue  # no files, as Sky Port reads it (its own spawner writes the line with an empty list)
        if not value and read is not _boolean:
            errors.append({"field": where, "message": f"{normal!r} needs a value"})
            continue
        try:
            parsed = read(value)
        except ValueError as exc:
            errors.append({"field": where, "message": f"{normal}: {exc}"})
            continue
        if read is _ports:
            inbound, outbound = parsed
            for name, ports in (("ports", inbound), ("outbound_ports", outbound)):
                if ports:
                    fields[name] = ports
            continue
        target = fields
        for part in path[:-1]:
            target = target.setdefault(part, {})
        if normal in REPEATABLE and path[-1] in target:
            target[path[-1]] = [*target[path[-1]], *parsed]
        else:
            target[path[-1]] = parsed
    if "name" not in fields:  # the name the script gives Slurm names the job (and SWM_JOB_NAME) too
        sbatch_name = sbatch_job_name(script)
        if sbatch_name:
            fields["name"] = sbatch_name
    if errors:
        raise ValidationError(
            "the script's #SWM lines have errors: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors,
        )
    return fields, warnings


def merge_request(directives: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Merge fields from ``#SWM`` lines under the request's own fields: the request wins."""
    merged = dict(directives)
    for key, value in request.items():
        if value is None:
            continue
        if key == "resources" and isinstance(value, dict) and isinstance(merged.get("resources"), dict):
            merged["resources"] = {**merged["resources"], **{k: v for k, v in value.items() if v is not None}}
        else:
            merged[key] = value
    return merged


#: Short ``#SBATCH`` options and the long names they stand for (for conflict checks).
_SHORT_OPTIONS = {
    "N": "nodes",
    "c": "cpus-per-task",
    "t": "time",
    "a": "array",
    "d": "dependency",
    "p": "partition",
    "A": "account",
    "q": "qos",
    "C": "constraint",
    "o": "output",
    "e": "error",
    "J": "job-name",
    "D": "chdir",
    "G": "gpus",
    "n": "ntasks",
    "H": "hold",
}


def script_sbatch_options(script: str | None) -> list[tuple[str, str, str]]:
    """The ``#SBATCH`` options at the top of a user's script, as ``(name, value, line)``.

    ``name`` is the long option name without dashes (short forms are translated). Like sbatch,
    reading stops at the first line that is neither blank nor a comment.
    """
    found: list[tuple[str, str, str]] = []
    if not script:
        return found
    for raw in script.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            break
        if not line.startswith("#SBATCH"):
            continue
        try:
            words = shlex.split(line[len("#SBATCH") :], comments=True)
        except ValueError:
            words = line[len("#SBATCH") :].split()
        k = 0
        while k < len(words):
            word = words[k]
            name, value = "", ""
            if word.startswith("--"):
                name, _, value = word[2:].partition("=")
                if not _ and k + 1 < len(words) and not words[k + 1].startswith("-"):
                    value = words[k + 1]
                    k += 1
            elif word.startswith("-") and len(word) > 1:
                name = _SHORT_OPTIONS.get(word[1], word[1])
                value = word[2:]
                if not value and k + 1 < len(words) and not words[k + 1].startswith("-"):
                    value = words[k + 1]
                    k += 1
            if name:
                found.append((name, value, line))
            k += 1
    return found


def sbatch_job_name(script: str | None) -> str | None:
    """The job name a script's ``#SBATCH --job-name``/``-J`` line gives, made a valid job name; None if none."""
    names = [value for name, value, _ in script_sbatch_options(script) if name == "job-name" and value]
    if not names:
        return None
    return re.sub(r"[^A-Za-z0-9 _.@+=:,-]", "_", names[-1])[:128]
