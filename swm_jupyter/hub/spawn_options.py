"""What a hub user chose for their server (profile, site, resources, Slurm and cloud fields), and the job it makes.

Pure functions, no I/O: :func:`choices_from_form` reads the spawn form's fields, :func:`resolve_choices`
applies the configured profiles with their allow-lists, and :func:`apply_choices` writes the result into
the job request that :class:`~swm_jupyter.hub.spawner.SwmSpawner` submits. Values are passed on as the
user gave them (numbers as numbers): the swm service's dry run says what is wrong with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Fields common to every site.
RESOURCE_FIELDS = ("cpus", "memory", "gpus", "walltime")
#: Fields of one kind of site, by gate kind (the form names them ``<site>.<field>``).
SITE_FIELDS = {"slurm": ("partition", "account"), "cloud": ("flavor", "image")}
#: Every field a user's options may hold.
CHOICE_FIELDS = ("site", *RESOURCE_FIELDS, "partition", "account", "flavor", "image", "stage")
_INTEGER = re.compile(r"^[0-9]+$")


class SpawnOptionsError(ValueError):
    """The user's options cannot be used (unknown field or profile, a profile they may not use)."""


def allowed(profile: Mapping[str, Any], user: str, groups: Iterable[str]) -> bool:
    """True if ``user`` (member of ``groups``) may use ``profile``: its ``users`` or ``groups`` name them,
    or it has neither list (everyone may)."""
    users, wanted = profile.get("users") or [], profile.get("groups") or []
    if not users and not wanted:
        return True
    return user in users or bool(set(groups) & set(wanted))


def profiles_for(profiles: Iterable[Mapping[str, Any]], user: str, groups: Iterable[str]) -> list[Mapping[str, Any]]:
    """The profiles ``user`` may use, in configured order."""
    groups = list(groups)
    return [p for p in profiles if allowed(p, user, groups)]


def choices_from_form(form: Mapping[str, list[str]]) -> dict[str, Any]:
    """The user's options from the spawn form's fields (lists of strings): ``profile``, ``site``, the resource
    fields, and the chosen site's own fields (``<site>.partition`` ...). Empty fields are left out."""
    first = {key: (values[0].strip() if values else "") for key, values in form.items()}
    choices: dict[str, Any] = {}
    for key in ("profile", "site", *RESOURCE_FIELDS):
        if first.get(key):
            choices[key] = first[key]
    if first.get("stage"):
        choices["stage"] = stage_list(first["stage"])
    site = choices.get("site", "")
    for key, value in first.items():
        prefix, dot, field = key.partition(".")
        if dot and prefix == site and field in CHOICE_FIELDS and value:
            choices[field] = value
    return choices


def resolve_choices(
    user_options: Mapping[str, Any],
    *,
    profiles: Iterable[Mapping[str, Any]],
    user: str,
    groups: Iterable[str],
    user_choices: bool,
) -> dict[str, Any]:
    """The fields the server's job is made from: the chosen profile's ``options``, then (if ``user_choices``)
    the user's own fields over them. Raises :class:`SpawnOptionsError` for an unknown field, an unknown
    profile, a profile the user may not use, or own fields where only profiles are allowed."""
    options = dict(user_options or {})
    unknown = sorted(set(options) - {"profile", *CHOICE_FIELDS})
    if unknown:
        known = ", ".join(("profile", *CHOICE_FIELDS))
        raise SpawnOptionsError(f"unknown server options: {', '.join(unknown)} (known: {known})")
    chosen: dict[str, Any] = {}
    name = options.pop("profile", "")
    profiles = list(profiles)
    if name:
        profile = next((p for p in profiles if p.get("name") == name), None)
        if profile is None:
            names = ", ".join(str(p.get("name")) for p in profiles) or "none are configured"
            raise SpawnOptionsError(f"there is no profile {name!r} (profiles: {names})")
        if not allowed(profile, user, groups):
            raise SpawnOptionsError(f"{user} may not use the profile {name!r}: choose another profile")
        chosen.update(profile.get("options") or {})
    elif profiles and not user_choices:
        raise SpawnOptionsError("choose a profile: this hub starts servers only from its profiles")
    if options and not user_choices:
        raise SpawnOptionsError(f"this hub starts servers only from its profiles: remove {', '.join(sorted(options))}")
    chosen.update(options)
    return chosen


def stage_list(value: Any) -> list[str]:
    """The paths to stage from a ``stage`` option: a list, or text with one path a line (or comma-separated).
    Raises :class:`SpawnOptionsError` for anything else."""
    if isinstance(value, str):
        items: list[Any] = re.split(r"[\n,]", value)
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise SpawnOptionsError("stage: give a list of paths in your home folder (or one path a line)")
    if not all(isinstance(item, str) for item in items):
        raise SpawnOptionsError("stage: every path must be text")
    return [item.strip() for item in items if item.strip()]


def _number_or_text(value: Any) -> Any:
    """``"4"`` becomes 4; anything else stays as it is (the service checks it)."""
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    return value


def apply_choices(request: dict[str, Any], choices: Mapping[str, Any]) -> dict[str, Any]:
    """``request`` (a job request) with ``choices`` written in: ``site``, ``resources``, Slurm's ``partition``
    and ``account`` (under ``"slurm"``), the cloud ``flavor`` and ``cloud_image``. Returns ``request``."""
    if choices.get("site"):
        request["site"] = str(choices["site"])
    resources = dict(request.get("resources") or {})
    for field in RESOURCE_FIELDS:
        if choices.get(field) not in (None, ""):
            value = choices[field]
            resources[field] = _number_or_text(value) if field in ("cpus", "gpus") else value
    if resources:
        request["resources"] = resources
    slurm = {f: choices[f] for f in SITE_FIELDS["slurm"] if choices.get(f)}
    if slurm:
        request["slurm"] = {**(request.get("slurm") or {}), **slurm}
    if choices.get("flavor"):
        request["flavor"] = str(choices["flavor"])
    if choices.get("image"):
        request["cloud_image"] = str(choices["image"])
    return request


__all__ = [
    "CHOICE_FIELDS",
    "RESOURCE_FIELDS",
    "SITE_FIELDS",
    "SpawnOptionsError",
    "allowed",
    "apply_choices",
    "choices_from_form",
    "profiles_for",
    "resolve_choices",
    "stage_list",
]
