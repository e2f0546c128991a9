"""Gates: one class per kind of site, found through the ``swm_jupyter.gates`` entry points.

Nothing is imported here until it is used: the local supervisor
(:mod:`swm_jupyter.daemons.local_supervisor`), a process of its own, then starts without loading
the gates and their libraries (a fifth of a second less before the first local job can start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Gate, GateStatus

__all__ = ["Gate", "GateStatus"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
