"""What every swm widget shares: a client, background work that never blocks the kernel, and reprs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import ipywidgets as widgets
from traitlets import Unicode

from ..client.api import Client

_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()
_DEFAULT: Client | None = None


def default_client() -> Client:
    """The client shared by the magics and widgets of this process (created on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Client()
    return _DEFAULT


def set_default_client(client: Client | None) -> None:
    """Make ``client`` the shared one (None: find the server again on next use)."""
    global _DEFAULT
    _DEFAULT = client


def executor() -> ThreadPoolExecutor:
    """The small thread pool that runs widget actions off the kernel's thread."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="swm-widget")
        return _EXECUTOR


class SwmWidget(widgets.VBox):
    """Base of the swm widgets: a VBox whose ``status`` trait tells what happened last.

    Subclasses implement :meth:`html` and :meth:`text`; the same HTML is the widget's ``text/html``
    representation, so it prints usefully where widgets are not rendered.
    """

    status = Unicode("", help="The outcome of the last action, or the last error.")

    def __init__(self, client: Client | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client or default_client()
        self.pending: list[Future[Any]] = []
        self.status_html = widgets.HTML()
        self.observe(self._show_status, "status")

    def _show_status(self, change: dict[str, Any]) -> None:
        text = str(change["new"])
        color = "var(--jp-error-color1, #c62828)" if text.startswith("error") else "var(--jp-ui-font-color2, #555)"
        from ..client.render import esc

        self.status_html.value = f"<span style='color:{color}'>{esc(text)}</span>" if text else ""

    def run_in_background(
        self, work: Callable[[], Any], done: Callable[[Any], None] | None = None, what: str = ""
    ) -> Future[Any]:
        """Run ``work()`` on the widget thread pool; ``done(result)`` after it, errors go to ``status``."""

        def task() -> Any:
            try:
                result = work()
            except Exception as exc:
                self.status = f"error: {what + ': ' if what else ''}{getattr(exc, 'message', None) or exc}"
                raise
            if done is not None:
                done(result)
            return result

        future = executor().submit(task)
        self.pending = [f for f in self.pending if not f.done()] + [future]
        return future

    def wait_pending(self, timeout: float = 30.0) -> None:
        """Wait for the background work started so far (for scripts and tests, not for callbacks)."""
        for future in list(self.pending):
            try:
                future.result(timeout)
            except Exception:
                pass

    def html(self) -> str:  # pragma: no cover - abstract
        """The widget's content as HTML."""
        raise NotImplementedError

    def text(self) -> str:  # pragma: no cover - abstract
        """The widget's content as plain text."""
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = dict(super()._repr_mimebundle_(**kwargs) or {})
        data["text/plain"] = self.text()
        data["text/html"] = self.html()
        return data

    def __repr__(self) -> str:
        return self.text()

    def close(self) -> None:
        """Stop following events and close the widget and its children."""
        self.stop()
        for child in self.children:
            child.close()
        super().close()

    def stop(self) -> None:
        """Stop live updates (the widget keeps its last state)."""
