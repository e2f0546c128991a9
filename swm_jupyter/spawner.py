"""The JupyterHub spawner of swm-jupyter: ``c.JupyterHub.spawner_class = "swm"`` (see docs/spawner.md).

Re-exports :class:`swm_jupyter.hub.spawner.SwmSpawner`; importing it needs the ``jupyterhub`` package.
"""

from __future__ import annotations

from .hub.spawner import SwmSpawner

__all__ = ["SwmSpawner"]
