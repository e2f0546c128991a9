"""swm-jupyter: Sky Port inside Jupyter (server extension, gates, client, magics, widgets)."""

from ._version import __version__

__all__ = ["__version__"]
