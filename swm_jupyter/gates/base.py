"""The ``Gate`` contract, re-exported for gates: it lives in :mod:`swm_jupyter.core.gate_contract`.

A gate subclasses :class:`Gate` and returns :class:`GateStatus` values; :func:`safe_path`
(:mod:`swm_jupyter.core.user_paths`) resolves a user's path inside a job folder.
"""

from __future__ import annotations

from ..core.gate_contract import Gate, GateStatus
from ..core.user_paths import safe_path

__all__ = ["Gate", "GateStatus", "safe_path"]
