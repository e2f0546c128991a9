"""The one definition of a job request's fields.

Each field of a job spec is declared here once: its JSON Schema (OpenAPI 3.0 subset), the hint a
refusal gives, its command-line option, and the conversion of what people write (``"4G"``,
``"1:00:00"``, ``"afterok:ID"``) into the value :class:`~swm_jupyter.core.model.JobSpec` keeps.
Derived from it:

- :func:`validation_errors`: a request checked with ``jsonschema`` against :func:`job_spec_schema`,
  every error named by its field (``resources.cpus``) with what to fix;
- :func:`job_spec_schema`: the ``JobSpec`` component of the OpenAPI document (``handlers/openapi.json``
  is regenerated from it with ``python -m swm_jupyter.handlers.openapi_doc``);
- :func:`add_spec_options` / :func:`spec_from_options`: the job options of ``swm submit``, ``%%swm
  submit`` and the Python client's keyword arguments.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

#: Gate kinds whose names may carry site-specific extras in a spec (``{"slurm": {...}}``).
EXTRA_SECTIONS = ("local", "slurm", "ssh", "cloud")
DEPENDENCY_TYPES = ("afterok", "afterany")
#: Largest number of nodes, cpus or gpus a job may ask for (a typo, not a request, above it).
MAX_COUNT = 1_000_000
#: Priorities run from -PRIORITY_RANGE to PRIORITY_RANGE (higher runs first).
PRIORITY_RANGE = 1_000_000
NAME_PATTERN = r"^[A-Za-z0-9_.@+=:,-][A-Za-z0-9_.@+=:, -]{0,127}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NON_EMPTY = r"\S"


@dataclass(frozen=True)
class Option:
    """A field's command-line option (``swm submit``, ``%%swm submit``)."""

    flags: tuple[str, ...]
    help: str
    #: ``int``, ``str`` or ``"flag"`` (present = true) or ``"append"`` (repeatable text).
    kind: Any = str
    metavar: str | None = None

    @property
    def dest(self) -> str:
        """The argparse destination: the long flag without dashes."""
        return self.flags[-1].lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Field:
    """One field of a job request: schema, refusal hint, option, and where it goes in the request."""

    name: str
    schema: dict[str, Any]
    hint: str
    description: str = ""
    option: Option | None = None
    #: True: a resource (``resources.<name>`` in the request).
    resource: bool = False
    #: Errors below this field are reported at ``name.<key>`` (objects of named entries), not ``name``.
    keyed: bool = False

    def full_schema(self) -> dict[str, Any]:
        """The field's schema with its description."""
        out = dict(self.schema)
        if self.description:
            out["description"] = self.description
        return out


def _text(name: str, description: str, option: Option | None = None) -> Field:
    """A field of non-empty text."""
    return Field(name, {"type": "string", "pattern": _NON_EMPTY}, "must be a non-empty string", description, option)


def _count_hint(minimum: int) -> str:
    return f"must be a whole number from {minimum} to {MAX_COUNT}"


def _stream(name: str, description: str) -> Field:
    """A file of the job's folder for one of its standard streams."""
    return Field(
        name,
        {"type": "string", "pattern": _NON_EMPTY},
        "must be a relative path inside the job's folder (no '..', not absolute)",
        description + " (relative to its working folder)",
    )


def _count(minimum: int) -> dict[str, Any]:
    return {
        "oneOf": [
            {"type": "integer", "minimum": minimum, "maximum": MAX_COUNT},
            {"type": "string", "pattern": r"^\d+$"},
        ]
    }


_PORTS = {
    "oneOf": [
        {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}},
        {"type": "string"},
    ]
}
_FILES = {"oneOf": [{"type": "array", "items": {"type": "string", "minLength": 1}}, {"type": "string"}]}

_SIZE = {"oneOf": [{"type": "number"}, {"type": "string"}]}


def _resource(name: str, schema: dict[str, Any], hint: str, description: str, option: Option | None) -> Field:
    """A field under ``resources``."""
    return Field(name, schema, hint, description, option, resource=True)


#: The resources (``resources.<name>``), in order.
RESOURCES: tuple[Field, ...] = (
    _resource("nodes", _count(1), _count_hint(1), "Nodes", Option(("-N", "--nodes"), "nodes", int)),
    _resource("cpus", _count(1), _count_hint(1), "CPUs per node", Option(("-c", "--cpus"), "cpus per node", int)),
    _resource(
        "memory",
        _SIZE,
        "must be a number of MB or a size such as 512M or 4G",
        "MB, or a size such as 512M or 4G",
        Option(("-m", "--mem"), "memory, e.g. 4G"),
    ),
    _resource("mem", _SIZE, "same as memory", "Same as memory", None),
    _resource("gpus", _count(0), _count_hint(0), "GPUs", Option(("-g", "--gpus"), "gpus", int)),
    _resource(
        "storage",
        _SIZE,
        "must be a number of MB or a size such as 512M or 4G",
        "disk the job needs: MB, or 20G",
        None,
    ),
    _resource(
        "walltime",
        _SIZE,
        "write seconds, HH:MM:SS, D-HH:MM:SS, minutes as text, or 30s/10m/2h/1d",
        'Time limit: seconds (a number), or HH:MM:SS, D-HH:MM:SS, minutes ("90"), 30s, 10m, 2h, 1d',
        Option(("-t", "--walltime"), "time limit, e.g. 01:00:00 or 2h"),
    ),
)

#: The fields of a job request, in order (site extras such as ``slurm`` come after them).
FIELDS: tuple[Field, ...] = (
    Field(
        "name",
        {"type": "string", "pattern": NAME_PATTERN},
        "use up to 128 letters, digits, spaces and _.@+=:,-",
        "Job name (default: from #SWM name, the notebook or the command)",
        Option(("-n", "--name"), "job name"),
    ),
    _text("site", "Site to run on (default: the server's default site)", Option(("-s", "--site"), "site to run on")),
    Field(
        "script",
        {"type": "string", "pattern": _NON_EMPTY},
        "must be the non-empty text of a script",
        "Script text; its #SWM lines are read",
    ),
    Field(
        "command",
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        'must be a non-empty list of arguments (strings), e.g. ["python", "train.py"]',
        "Command and arguments",
    ),
    _text("notebook", "Notebook path relative to the server's root folder"),
    Field(
        "parameters",
        {"type": "object", "additionalProperties": True},
        "must be an object of name: value",
        "Notebook parameters (papermill's convention)",
    ),
    _text("workdir", "Working folder of the job", Option(("--workdir",), "working folder")),
    Field(
        "env",
        {"type": "object", "additionalProperties": {"type": "string"}},
        "must be an object of NAME: value strings",
        "Environment variables of the job",
        Option(("-e", "--env"), "environment variable (repeatable)", "append", "NAME=VALUE"),
        keyed=True,
    ),
    Field(
        "resources",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {r.name: r.full_schema() for r in RESOURCES},
        },
        'must be an object such as {"cpus": 4, "memory": "8G"}',
        "What the job needs on its site",
        keyed=True,
    ),
    Field(
        "input_files",
        _FILES,
        "must be a list of file paths",
        "Files copied to the job folder: paths relative to the server's root folder "
        "(a list, or one comma-separated string)",
    ),
    Field(
        "output_files",
        _FILES,
        "must be a list of file paths",
        "Files brought back: paths relative to the job folder (a list, or one comma-separated string)",
    ),
    Field(
        "depends_on",
        {
            "oneOf": [
                {
                    "type": "array",
                    "items": {
                        "oneOf": [
                            {"type": "string"},
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "type": {"type": "string", "enum": list(DEPENDENCY_TYPES)},
                                    "job": {"type": "string"},
                                },
                                "required": ["job"],
                            },
                        ]
                    },
                },
                {
                    "type": "object",
                    "additionalProperties": {
                        "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]
                    },
                },
                {"type": "string"},
            ]
        },
        'must be a list of job ids, {"afterok": [ids]}, or "afterok:ID"',
        'Jobs this one waits for: [{"type": "afterok", "job": ID}], {"afterok": [IDs]} or "afterok:ID:ID,afterany:ID"',
        Option(("-d", "--depends"), "e.g. afterok:JOBID[:JOBID]"),
    ),
    Field(
        "array",
        {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]},
        "write 0-99, 0-99%10 or 1,3,5-9:2",
        "A job array in Slurm's syntax: 0-99, 0-99%10 or 1,3,5-9:2",
        Option(("-a", "--array"), "job array, e.g. 0-99%%10"),
    ),
    Field(
        "priority",
        {"type": "integer", "minimum": -PRIORITY_RANGE, "maximum": PRIORITY_RANGE},
        f"must be a whole number between -{PRIORITY_RANGE} and {PRIORITY_RANGE} (higher runs first)",
        "Higher runs first",
        Option(("--priority",), "higher runs first", int),
    ),
    Field(
        "hold",
        {"type": "boolean"},
        "must be true or false",
        "Submit held",
        Option(("--hold",), "submit held", "flag"),
    ),
    _text("account", "Account charged (Sky Port's #SWM account)", Option(("--account",), "account charged")),
    _text("flavor", "Cloud flavor id", Option(("--flavor",), "cloud flavor")),
    _text("cloud_image", "Cloud image", Option(("--cloud-image",), "cloud image")),
    _text("container_image", "Container image", Option(("--container-image",), "container image")),
    Field(
        "ports",
        _PORTS,
        "must be a list of port numbers (1-65535)",
        "Ports to open (a list, or one comma-separated string)",
    ),
    Field("relocatable", {"type": "boolean"}, "must be true or false", "The job may move between sites"),
    _text("comment", "Sky Port's job comment"),
    _stream("stdin", "file the job reads its standard input from"),
    _stream("stdout", "file the job writes its standard output to"),
    _stream("stderr", "file the job writes its standard error to"),
    _text("submission_address", "the address the job was submitted from"),
    Field(
        "outbound_ports",
        _PORTS,
        "must be a list of port numbers (1-65535)",
        "outbound TCP ports (ports are inbound; a list, or one comma-separated string)",
    ),
    Field(
        "warnings",
        {"type": "array", "items": {"type": "string"}, "readOnly": True},
        "must be a list of strings",
        "set by the server: #SWM lines it ignored; a request's own value is discarded",
    ),
)

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
RESOURCE_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCES)
_BY_NAME = {f.name: f for f in FIELDS}
_RESOURCE_BY_NAME = {r.name: r for r in RESOURCES}


def field_named(name: str) -> Field:
    """The field ``name`` (a top-level field or a resource). Raises ``KeyError``."""
    return _BY_NAME.get(name) or _RESOURCE_BY_NAME[name]


def job_spec_schema(extra_sections: Iterable[str] = EXTRA_SECTIONS) -> dict[str, Any]:
    """The JSON Schema of a job request (the OpenAPI document's ``JobSpec`` component)."""
    properties = {f.name: f.full_schema() for f in FIELDS}
    for section in extra_sections:
        properties[section] = {
            "type": "object",
            "additionalProperties": True,
            "description": f"Options for {section} sites",
        }
    return {
        "type": "object",
        "description": "A job request. Give exactly one of script, command or notebook.",
        "additionalProperties": False,
        "properties": properties,
    }


@lru_cache(maxsize=8)
def _validator(extra_sections: tuple[str, ...]) -> jsonschema.protocols.Validator:
    import jsonschema  # here: the command line imports this module for its options, and must start fast

    schema = job_spec_schema(extra_sections)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    return cls(schema)


def _hint(path: list[Any]) -> tuple[str, str]:
    """The reported field (a dotted path) and hint of a schema error at ``path`` inside the request."""
    top = str(path[0])
    known = _BY_NAME.get(top)
    if known is None:
        return top, 'site extras must be an object, e.g. {"partition": "gpu"}'
    if known.name == "resources" and len(path) > 1:
        resource = _RESOURCE_BY_NAME[str(path[1])]
        return f"resources.{path[1]}", resource.hint
    if known.keyed and len(path) > 1:
        return f"{top}.{path[1]}", "value must be a string"
    return top, known.hint


def validation_errors(data: dict[str, Any], extra_sections: tuple[str, ...] = EXTRA_SECTIONS) -> list[dict[str, str]]:
    """Every schema error of the request ``data``: ``[{"field": dotted path, "message": what to fix}]``.

    One entry per field (the first problem found), unknown fields each named.
    """
    errors: dict[str, str] = {}
    for error in _validator(tuple(extra_sections)).iter_errors(data):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict) and len(path) <= 1:
            allowed = set(error.schema.get("properties", {}))
            for key in error.instance:
                if key in allowed:
                    continue
                if path:  # the resources (the one object below the top whose keys are fixed)
                    errors.setdefault(f"{path[0]}.{key}", f"unknown resource; known: {', '.join(RESOURCE_NAMES)}")
                else:
                    names = ", ".join((*FIELD_NAMES, *extra_sections))
                    errors.setdefault(str(key), f"unknown field; known fields are {names}")
            continue
        if not path:
            continue
        name, hint = _hint(path)
        errors.setdefault(name, hint)
    return [{"field": k, "message": v} for k, v in errors.items()]


# -- options of the command line, the magics and the Python client --------------------------------------


def _all_options() -> list[tuple[Field, Option]]:
    """Every field with an option, in the order of the fields (the resources where ``resources`` is)."""
    fields = [r for f in FIELDS for r in (RESOURCES if f.name == "resources" else (f,))]
    return [(f, f.option) for f in fields if f.option is not None]


def add_spec_options(parser: argparse.ArgumentParser, only: Iterable[str] | None = None) -> None:
    """Add every job field's option (``--site``, ``--cpus``, ``--mem``, ``--walltime``, ...) to ``parser``;
    ``only``: just the options with these destinations (``site``, ``cpus``, ``mem``, ``env``, ...)."""
    wanted = None if only is None else set(only)
    for _field, option in _all_options():
        if wanted is not None and option.dest not in wanted:
            continue
        if option.kind == "flag":
            parser.add_argument(*option.flags, dest=option.dest, action="store_true", help=option.help)
        elif option.kind == "append":
            parser.add_argument(
                *option.flags, dest=option.dest, action="append", metavar=option.metavar, help=option.help
            )
        else:
            parser.add_argument(
                *option.flags, dest=option.dest, type=option.kind, metavar=option.metavar, help=option.help
            )


#: Keyword names the Python client also accepts for a field (``mem=`` and ``depends=``).
ALIASES = {"mem": "memory", "depends": "depends_on"}


def spec_from_options(values: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The request body of ``base`` with the options given in ``values`` (argparse's or keyword arguments).

    Options are option destinations or field names (``cpus``, ``mem``/``memory``, ``depends``/
    ``depends_on``, ``env`` as ``["NAME=VALUE"]`` or a dict, any other field by its name); ``None``
    and ``False`` mean "not given" and are left out. Raises ``ValueError`` for an ``--env`` without ``=``.
    """
    body: dict[str, Any] = dict(base or {})
    resources: dict[str, Any] = dict(body.get("resources") or {})
    for key, value in values.items():
        if value is None or value is False:
            continue
        name = ALIASES.get(key, key)
        if name in _RESOURCE_BY_NAME:
            resources[name] = value
        elif name == "env" and isinstance(value, list):
            env = dict(body.get("env") or {})
            for item in value:
                var, sep, text = str(item).partition("=")
                if not sep:
                    raise ValueError(f"--env takes NAME=VALUE (got {item!r})")
                env[var] = text
            if env:
                body["env"] = env
        elif name == "resources" and isinstance(value, Mapping):
            resources.update({k: v for k, v in value.items() if v is not None})
        else:
            body[name] = value
    if resources:
        body["resources"] = resources
    return body


def option_values(args: argparse.Namespace, only: Iterable[str] | None = None) -> dict[str, Any]:
    """The job options of parsed ``args`` (those :func:`add_spec_options` added, with the same ``only``),
    by destination."""
    wanted = None if only is None else set(only)
    return {
        option.dest: getattr(args, option.dest, None)
        for _f, option in _all_options()
        if wanted is None or option.dest in wanted
    }


def option_help(width: int = 100, indent: int = 9) -> str:
    """Every job option with its metavar, wrapped for usage texts (lines after the first indented)."""
    words = [
        option.flags[-1] if option.kind == "flag" else f"{option.flags[-1]} {option.metavar or field.name.upper()}"
        for field, option in _all_options()
    ]
    return textwrap.fill(" ".join(words), width, subsequent_indent=" " * indent, break_on_hyphens=False)


__all__ = [
    "DEPENDENCY_TYPES",
    "ENV_NAME_PATTERN",
    "EXTRA_SECTIONS",
    "FIELDS",
    "FIELD_NAMES",
    "MAX_COUNT",
    "NAME_PATTERN",
    "PRIORITY_RANGE",
    "RESOURCES",
    "RESOURCE_NAMES",
    "Field",
    "Option",
    "add_spec_options",
    "field_named",
    "job_spec_schema",
    "option_help",
    "option_values",
    "spec_from_options",
    "validation_errors",
]
