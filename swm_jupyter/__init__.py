"""swm-jupyter: Sky Port inside Jupyter (server extension, gates, client, magics, widgets)."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["Executor", "__version__"]


def __getattr__(name: str) -> Any:
    """``from swm_jupyter import Executor`` (imported on first use, so the server and CLI stay light)."""
    if name == "Executor":
        from .executor import Executor

        return Executor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tell the Jupyter server where the extension is (the app class is imported only here)."""
    from .app import SwmApp

    return [{"module": "swm_jupyter", "app": SwmApp}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext swm_jupyter``: register the ``%swm`` / ``%%swm`` magics (imported only here)."""
    from .magics import load_ipython_extension as load

    load(ipython)
