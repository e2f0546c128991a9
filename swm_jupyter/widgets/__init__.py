"""ipywidgets 8 views of swm: ``JobMonitor``, ``JobView``, ``SubmitForm`` and ``Timeline``.

Each is a ``VBox`` whose state is traits (readable without a front end), whose actions run in a
background thread, and whose live updates come from the client's one events websocket.
"""

from __future__ import annotations

from .base import default_client, set_default_client
from .monitor import JobMonitor
from .submit import SubmitForm, cost_estimate
from .timeline import Timeline, gantt_svg
from .view import JobView

__all__ = [
    "JobMonitor",
    "JobView",
    "SubmitForm",
    "Timeline",
    "cost_estimate",
    "default_client",
    "gantt_svg",
    "set_default_client",
]
