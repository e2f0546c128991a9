"""The flavor and image catalogue of a cloud site: what users are shown, and which flavor and
image a job gets (no I/O; the ``cloud`` gate keeps the catalogue and refreshes it)."""

from __future__ import annotations

from typing import Any

from ..core.model import JobSpec

#: A flavor or image as the catalogue keeps it.
Item = dict[str, Any]


def find(items: list[Item], wanted: str) -> Item | None:
    """The item whose name or id is ``wanted``, or None."""
    for item in items:
        if wanted in (item.get("name"), item.get("id")):
            return item
    return None


def _named(items: list[Item], wanted: str, field: str, what: str, errors: list[dict[str, str]]) -> Item | None:
    """The item called ``wanted``; else None, and an error on ``field`` that lists those there are."""
    item = find(items, wanted)
    if item is None:
        names = ", ".join(str(i["name"]) for i in items) or "(none)"
        errors.append({"field": field, "message": f"unknown {what} {wanted!r}; {what}s: {names}"})
    return item


def pick(
    spec: JobSpec,
    flavors: list[Item],
    images: list[Item],
    *,
    default_flavor: str = "",
    default_image: str = "",
    max_nodes: int = 0,
    not_loaded: str | None = None,
) -> tuple[Item | None, Item | None, list[dict[str, str]]]:
    """The flavor and image of a job, and the errors (``{"field", "message"}``).

    A named flavor or image must exist; with none named: ``default_flavor``, else the cheapest
    flavor with the cpus, gpus and memory asked for; ``default_image``, else the first image.
    ``not_loaded`` (the catalogue was never loaded: why) refuses a job that names a flavor or an
    image or relies on a default that is not configured.
    """
    errors: list[dict[str, str]] = []
    res = spec.resources
    if max_nodes and res.nodes > max_nodes:
        errors.append({"field": "resources.nodes", "message": f"at most {max_nodes} nodes on this site"})
    if not_loaded is not None:
        named = [k for k in ("flavor", "cloud_image") if getattr(spec, k)]
        if named or not (default_flavor and default_image):
            errors.append({"field": named[0] if named else "flavor", "message": not_loaded})
        return None, None, errors
    flavor: dict[str, Any] | None = None
    wanted = spec.flavor or default_flavor
    if wanted:
        flavor = _named(flavors, wanted, "flavor", "flavor", errors)
    else:
        fitting = [
            f
            for f in flavors
            if (f["cpus"] or 0) >= res.cpus
            and (f["gpus"] or 0) >= res.gpus
            and (res.memory_mb is None or (f["mem"] or 0) >= res.memory_mb)
        ]
        fitting.sort(key=lambda f: (f["price"] if f["price"] is not None else float("inf"), f["cpus"] or 0))
        if fitting:
            flavor = fitting[0]
        else:
            errors.append({"field": "flavor", "message": "no flavor has the cpus, gpus and memory asked for; name one"})
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
    wanted_image = spec.cloud_image or default_image
    if wanted_image:
        image = _named(images, wanted_image, "cloud_image", "image", errors)
    elif images:
        image = images[0]
    else:
        errors.append({"field": "cloud_image", "message": "the gate lists no images"})
    return flavor, image, errors


def number(value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` as ``kind``, or None when it is missing or not a number."""
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def flavor_of(raw: dict[str, Any]) -> dict[str, Any]:
    """A flavor as shown to users: the protocol's fields plus ``memory`` and ``price_per_hour``."""
    mem = number(raw.get("mem"), int)
    price = number(raw.get("price"), float)
    return {
        "id": str(raw.get("id") or raw.get("name") or ""),
        "name": str(raw.get("name") or raw.get("id") or ""),
        "cpus": number(raw.get("cpus"), int) or 0,
        "gpus": number(raw.get("gpus"), int) or 0,
        "mem": mem,
        "memory": mem,
        "storage": number(raw.get("storage"), int),
        "price": price,
        "price_per_hour": price,
    }


def image_of(raw: dict[str, Any]) -> dict[str, Any]:
    """An image as shown to users: ``id``, ``name``, ``kind`` and the gate's ``extra``."""
    return {
        "id": str(raw.get("id") or raw.get("name") or ""),
        "name": str(raw.get("name") or raw.get("id") or ""),
        "kind": "cloud",
        "extra": raw.get("extra") if isinstance(raw.get("extra"), dict) else {},
    }


__all__ = ["Item", "find", "flavor_of", "image_of", "number", "pick"]
