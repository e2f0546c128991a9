"""Find gate classes by entry-point name or dotted path; report a broken one when it is used.

This is the only way the core reaches a gate module: by name, imported when a site asks for it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .errors import SiteUnavailable
from .gate_contract import Gate

GROUP = "swm_jupyter.gates"

#: Gates shipped with swm-jupyter, usable even when the package's entry points are not installed.
BUILTIN = {
    "local": "swm_jupyter.gates.local:LocalGate",
    "slurm": "swm_jupyter.gates.slurm:SlurmGate",
    "ssh": "swm_jupyter.gates.ssh:SshGate",
    "cloud": "swm_jupyter.gates.cloud:CloudGate",
}


def available_gates() -> dict[str, str]:
    """Gate names and where they come from: the built-ins plus the ``swm_jupyter.gates`` entry points."""
    found = dict(BUILTIN)
    for entry in entry_points(group=GROUP):
        found[entry.name] = entry.value
    return found


def load_gate_class(name: str) -> type[Gate]:
    """Return the gate class for an entry-point name (``"slurm"``) or a dotted path (``"pkg.mod:Cls"``
    or ``"pkg.mod.Cls"``). Raises :class:`SiteUnavailable` saying what failed and what exists.
    """
    target = available_gates().get(name, name)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    elif "." in target:
        module_name, _, attr = target.rpartition(".")
    else:
        raise SiteUnavailable(f"no gate named {name!r}; available gates: {', '.join(sorted(available_gates()))}")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except Exception as exc:  # noqa: BLE001 - any import failure is reported the same way
        raise SiteUnavailable(
            f"the gate {name!r} ({target}) failed to load: {type(exc).__name__}: {exc}; "
            f"available gates: {', '.join(sorted(available_gates()))}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Gate)):
        raise SiteUnavailable(f"{target} is not a Gate subclass")
    return cls
