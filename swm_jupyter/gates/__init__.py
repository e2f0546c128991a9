"""Gates: one class per kind of site, found through the ``swm_jupyter.gates`` entry points."""

from .base import Gate, GateStatus

__all__ = ["Gate", "GateStatus"]
