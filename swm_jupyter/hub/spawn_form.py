"""The HTML of SwmSpawner's spawn form, built from the swm service's live ``/sites`` (no I/O here).

The hub wraps it in its own ``<form>`` with the start button. Fields: ``profile`` (when profiles are
configured), ``site``, ``cpus``, ``memory``, ``gpus``, ``walltime``, and per site ``<site>.partition`` and
``<site>.account`` (Slurm) or ``<site>.flavor`` and ``<site>.image`` (cloud), read back by
:func:`~swm_jupyter.hub.spawn_options.choices_from_form`. The user's last choice is pre-selected. A few
lines of script show only the chosen site's own fields; without script every site's fields show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

_SCRIPT = """
<script>
(function () {
  var select = document.getElementById("swm-site");
  if (!select) { return; }
  function show() {
    document.querySelectorAll(".swm-site-fields").forEach(function (el) {
      el.style.display = el.dataset.site === select.value ? "" : "none";
    });
  }
  select.addEventListener("change", show);
  show();
})();
</script>
"""


def _attr(value: Any) -> str:
    return escape(str(value), quote=True)


def _option(value: str, label: str, selected: bool) -> str:
    return f'<option value="{_attr(value)}"{" selected" if selected else ""}>{escape(label)}</option>'


def _input(name: str, label: str, value: Any, placeholder: str, hint: str = "") -> str:
    field_id = "swm-" + name.replace(".", "-")
    shown = "" if value in (None, "") else _attr(value)
    return (
        f'<div class="mb-2"><label class="form-label" for="{_attr(field_id)}">{escape(label)}</label>'
        f'<input class="form-control" id="{_attr(field_id)}" name="{_attr(name)}" value="{shown}" '
        f'placeholder="{_attr(placeholder)}">'
        + (f'<div class="form-text">{escape(hint)}</div>' if hint else "")
        + "</div>"
    )


def _select(name: str, label: str, options: list[tuple[str, str]], current: Any) -> str:
    field_id = "swm-" + name.replace(".", "-")
    body = "".join(_option(value, text, str(current) == value) for value, text in options)
    return (
        f'<div class="mb-2"><label class="form-label" for="{_attr(field_id)}">{escape(label)}</label>'
        f'<select class="form-select" id="{_attr(field_id)}" name="{_attr(name)}">{body}</select></div>'
    )


def site_label(site: Mapping[str, Any]) -> str:
    """``name (kind)``, with the site's health message when it is not healthy."""
    label = f"{site.get('name')} ({site.get('kind')})"
    if not site.get("healthy", True):
        label += f" - unavailable: {site.get('health_message') or 'no answer'}"
    elif site.get("description"):
        label += f" - {site['description']}"
    return label


def _limits_hint(site: Mapping[str, Any]) -> str:
    limits = site.get("limits") or {}
    parts = [f"{key} up to {limits[key]}" for key in ("cpus", "memory", "gpus") if limits.get(key)]
    return ("this site: " + ", ".join(parts)) if parts else ""


def _slurm_fields(site: Mapping[str, Any], last: Mapping[str, Any], chosen: bool) -> str:
    name = str(site["name"])
    partitions = [(str(p.get("name")), p) for p in site.get("partitions") or []]
    options = [("", "the cluster's default")]
    for pname, part in partitions:
        text = f"{pname} ({part.get('nodes', '?')} nodes, {part.get('cpus', '?')} cpus, {part.get('gpus', 0)} gpus)"
        options.append((pname, text + ("" if part.get("available", True) else " - down")))
    return _select(f"{name}.partition", "Slurm partition", options, last.get("partition", "") if chosen else "") + (
        _input(f"{name}.account", "Slurm account", last.get("account", "") if chosen else "", "your default account")
    )


def _cloud_fields(
    site: Mapping[str, Any], last: Mapping[str, Any], chosen: bool, estimates: Mapping[str, Any], walltime: str
) -> str:
    name = str(site["name"])
    flavors = site.get("flavors") or []
    current_flavor = last.get("flavor") if chosen else site.get("default_flavor")
    options = []
    for flavor in flavors:
        fname = str(flavor.get("name"))
        text = f"{fname}: {flavor.get('cpus')} cpus, {flavor.get('mem')} MB, {flavor.get('gpus', 0)} gpus"
        if flavor.get("price") is not None:
            text += f", {flavor['price']} per hour"
        cost = estimates.get(fname)
        if cost is not None:
            text += f", about {cost:.2f} for {walltime}"
        options.append((fname, text))
    images = [(str(i.get("name")), str(i.get("name"))) for i in site.get("images") or []]
    current_image = last.get("image") if chosen else site.get("default_image")
    html = _select(f"{name}.flavor", "Flavor (price per hour; estimated cost of the walltime)", options, current_flavor)
    if images:
        html += _select(f"{name}.image", "Image", images, current_image)
    if estimates:
        html += (
            f'<div class="form-text">Estimated costs are the swm service\'s own estimate for a walltime of '
            f"{escape(walltime)}.</div>"
        )
    return html


def render_form(
    sites: Iterable[Mapping[str, Any]],
    *,
    default_site: str,
    profiles: Iterable[Mapping[str, Any]] = (),
    user_choices: bool = True,
    last: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    estimates: Mapping[str, Mapping[str, Any]] | None = None,
    estimate_walltime: str = "",
) -> str:
    """The form's HTML. ``last``: the user's previous options (pre-selected); ``defaults``: the configured
    resources (shown as placeholders); ``estimates``: ``{site: {flavor: cost}}`` from the service's dry runs."""
    last, defaults, estimates = dict(last or {}), dict(defaults or {}), dict(estimates or {})
    sites = list(sites)
    profiles = list(profiles)
    parts = ['<div class="swm-spawn-form">']
    if profiles:
        options = [] if not user_choices else [("", "no profile: choose below")]
        options += [(str(p.get("name")), str(p.get("display") or p.get("name"))) for p in profiles]
        parts.append(_select("profile", "Profile", options, last.get("profile", "")))
    if user_choices:
        chosen_site = str(last.get("site") or default_site)
        site_options = [(str(s.get("name")), site_label(s)) for s in sites]
        parts.append(_select("site", "Site", site_options, chosen_site))
        parts.append('<div class="row">')
        for field, label, placeholder in (
            ("cpus", "CPUs", "1"),
            ("memory", "Memory", "e.g. 4G"),
            ("gpus", "GPUs", "0"),
            ("walltime", "Walltime", "e.g. 8:00:00"),
        ):
            shown_default = defaults.get(field)
            parts.append(
                '<div class="col-md-3">'
                + _input(field, label, last.get(field, ""), str(shown_default or placeholder))
                + "</div>"
            )
        parts.append("</div>")
        staged = last.get("stage") or []
        parts.append(
            '<div class="mb-2"><label class="form-label" for="swm-stage">Files and folders to bring (paths in your '
            "home, one a line; for sites without your home folder: copied in before the server starts and back "
            'after it stops)</label><textarea class="form-control" id="swm-stage" name="stage" rows="2">'
            + escape("\n".join(str(p) for p in staged) if isinstance(staged, list) else str(staged))
            + "</textarea></div>"
        )
        for site in sites:
            name = str(site.get("name"))
            kind = str(site.get("kind"))
            chosen = name == chosen_site
            body = ""
            if kind == "slurm":
                body = _slurm_fields(site, last, chosen)
            elif kind == "cloud":
                body = _cloud_fields(site, last, chosen, estimates.get(name) or {}, estimate_walltime)
            hint = _limits_hint(site)
            if hint:
                body += f'<div class="form-text">{escape(hint)}</div>'
            parts.append(f'<div class="swm-site-fields mb-2" data-site="{_attr(name)}">{body}</div>')
    parts.append("</div>")
    if user_choices:
        parts.append(_SCRIPT)
    return "\n".join(parts)


__all__ = ["render_form", "site_label"]
