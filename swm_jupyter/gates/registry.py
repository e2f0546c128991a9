"""Old home of the gate registry: it lives in :mod:`swm_jupyter.core.gate_registry` (re-exported here)."""

from __future__ import annotations

from ..core.gate_registry import BUILTIN, GROUP, available_gates, load_gate_class

__all__ = ["BUILTIN", "GROUP", "available_gates", "load_gate_class"]
