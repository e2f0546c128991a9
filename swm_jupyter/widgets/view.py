"""``JobView``: one job, live — header, progress through its states, spec, history, log tail, outputs, cancel."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Dict, Int, List, Unicode

from ..client import render
from ..client.api import Client, Job
from .base import SwmWidget

#: Characters of log kept in the view (the whole log is ``job.logs()``).
LOG_KEEP = 20_000


class JobView(SwmWidget):
    """A live view of one job; its traits (``state``, ``log``, ``files``...) are readable without a front end.

    Updates come from the client's events websocket (state changes and log bytes); nothing polls.
    """

    job_id = Unicode(help="The job's id.")
    state = Unicode(help="The job's current state name.")
    job_data = Dict(help="The job's last known document.")
    log = Unicode(help="The tail of the job's stdout (last 20,000 characters).")
    log_offset = Int(0, help="Bytes of stdout read so far.")
    files = List(help="The files of the job folder, once the job ended: [{path, size, mtime}].")
    live = Bool(False, help="True while following the events stream.")

    def __init__(self, job: Job | str, client: Client | None = None, *, follow: bool = True, **kwargs: Any) -> None:
        """Show ``job`` (a handle or an id); ``follow=False`` draws it once without following events."""
        if isinstance(job, Job):
            client = client or job.client
        super().__init__(client=client, **kwargs)
        self.job = job if isinstance(job, Job) else self.client.job(job)
        self.job_id = self.job.id
        self.header = widgets.HTML()
        self.progress = widgets.IntProgress(
            min=0, max=len(render.PROGRESS_STEPS) - 1, description="", layout=widgets.Layout(width="320px")
        )
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="warning", tooltip="Cancel this job"
        )
        self.cancel_button.on_click(lambda _: self.cancel())
        self.spec_html = widgets.HTML()
        self.history_html = widgets.HTML()
        self.log_area = widgets.Textarea(disabled=True, layout=widgets.Layout(width="100%", height="160px"))
        self.files_html = widgets.HTML()
        details = widgets.Accordion(children=[self.spec_html, self.history_html, self.files_html])
        for i, title in enumerate(("spec", "history", "outputs")):
            details.set_title(i, title)
        self.children = [
            widgets.HBox([self.progress, self.cancel_button]),
            self.header,
            self.log_area,
            details,
            self.status_html,
        ]
        self._apply(self.job.data)
        self._subscribed = False
        self.observe(lambda c: setattr(self.log_area, "value", c["new"]), "log")
        self._load_log()
        if self.job.done:
            self.load_files()
        if follow:
            self.follow()

    # live updates ------------------------------------------------------------------------------
    def follow(self) -> None:
        """Follow the job's state and log through the client's events stream."""
        if self.live:
            return
        events = self.client.events()
        events.add_listener(self._on_event)
        if not self.job.done:
            events.subscribe_logs({self.job_id: self.log_offset})
            self._subscribed = True
        self.live = True
        # Catch up with what happened before the stream connected (no event is lost that way).
        self.run_in_background(self._catch_up, what="refreshing the job")

    def _catch_up(self) -> None:
        was_done = self.state in render.FINAL_STATES
        self.job.refresh()
        self._apply(self.job.data)
        if self.job.done and not was_done:
            self._finish()

    def stop(self) -> None:
        """Stop following events."""
        if self.client._events is not None:
            self.client._events.remove_listener(self._on_event)
            if self._subscribed:
                self.client._events.unsubscribe_logs([self.job_id])
        self._subscribed = False
        self.live = False

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "job" and (message.get("job") or {}).get("id") == self.job_id:
            was_done = self.state in render.FINAL_STATES
            self.job._update(message["job"])
            self._apply(self.job.data)
            if self.job.done and not was_done:
                self.run_in_background(self._finish, what="refreshing the job")
        elif kind == "log" and message.get("job_id") == self.job_id and message.get("stream", "stdout") == "stdout":
            self._add_log(str(message.get("data", "")), message.get("offset"))
        elif kind == "tick" and self.state == "running":
            self.header.value = render.job_html(self.job.data)

    def _finish(self) -> None:
        self.job.refresh()
        self._apply(self.job.data)
        self._load_log()
        self.load_files()
        self.stop()

    def _add_log(self, data: str, offset: Any) -> None:
        """Append log text from the websocket; ``offset`` is the byte offset *after* ``data`` (the server's)."""
        raw = data.encode()
        end = offset if isinstance(offset, int) else self.log_offset + len(raw)
        start = end - len(raw)
        if end <= self.log_offset:
            return  # already shown (read over HTTP first)
        if start > self.log_offset:  # a gap: read it over HTTP
            self.run_in_background(self._load_log, what="reading the log")
            return
        fresh = raw[self.log_offset - start :].decode("utf-8", "replace")
        self.log = (self.log + fresh)[-LOG_KEEP:]
        self.log_offset = end

    def _load_log(self) -> None:
        offset = self.log_offset
        while True:
            text, next_offset, _ = self.client.log(self.job_id, "stdout", offset)
            if not text or next_offset <= offset:
                break
            if offset == self.log_offset:
                self.log = (self.log + text)[-LOG_KEEP:]
                self.log_offset = next_offset
            offset = next_offset

    def load_files(self) -> None:
        """Read the list of files in the job folder into ``files`` (done when the job ends)."""
        self.files = self.client.files(self.job_id)
        rows = "".join(
            f"<tr><td><code>{render.esc(f['path'])}</code></td><td>{render.esc(f.get('size'))}</td></tr>"
            for f in self.files
        )
        self.files_html.value = f"<table><tr><th>file</th><th>bytes</th></tr>{rows}</table>"

    def _apply(self, data: dict[str, Any]) -> None:
        self.job_data = dict(data)
        self.state = str(data.get("state", ""))
        step, _ = render.progress_fraction(data)
        self.progress.value = step
        self.progress.description = render.shown_state(data)
        self.progress.bar_style = (
            "success"
            if self.state == "finished" and not data.get("exit_code")
            else "danger"
            if self.state in render.FINAL_STATES
            else "info"
        )
        self.cancel_button.disabled = self.state in render.FINAL_STATES
        self.header.value = render.job_html(data)
        spec = data.get("spec")
        if spec:
            self.spec_html.value = f"<pre>{render.esc(json.dumps(spec, indent=2))}</pre>"
        if data.get("history"):
            self.history_html.value = render.history_html(data["history"])

    # actions -----------------------------------------------------------------------------------
    def cancel(self) -> Any:
        """Ask the server to cancel the job, in the background; returns the future."""
        self.status = "canceling..."

        def done(_: Any) -> None:
            self.status = "cancel requested"
            self._apply(self.job.data)

        return self.run_in_background(self.job.cancel, done, what="cancel")

    # reprs ---------------------------------------------------------------------------------------
    def html(self) -> str:
        """The job's header and log tail as HTML."""
        tail = "\n".join(self.log.splitlines()[-10:])
        log = f"<pre style='max-height:12em;overflow:auto'>{render.esc(tail)}</pre>" if tail else ""
        return render.job_html(self.job.data) + log

    def text(self) -> str:
        """One line about the job, then the last lines of its log."""
        tail = self.log.splitlines()[-5:]
        return "\n".join([render.job_text(self.job.data), *tail])
