"""``JobMonitor``: a live table of jobs with filters and per-row actions, fed by the events websocket."""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as widgets
from traitlets import Dict, Int, List, Unicode

from ..client import render
from ..client.api import Client
from ..core.states import FAILED, is_failed
from .base import SwmWidget

ALL = "(all)"
STATES = ("queued", "held", "waiting", "transferring", "running", "finished", "error", "canceled", FAILED)
_WIDTHS = {"id": "80px", "name": "160px", "site": "90px", "state": "110px", "elapsed": "70px", "exit": "70px"}


def _in_state(job: dict[str, Any], state: str) -> bool:
    """True if ``job`` is in ``state``, or failed for the ``failed`` filter (as the server filters)."""
    if state == FAILED:
        return is_failed(str(job.get("state")), job.get("exit_code"), job.get("signal"))
    return job.get("state") == state


class JobRow(widgets.HBox):
    """One row of the monitor: the cells of a job and its action buttons."""

    def __init__(self, monitor: JobMonitor, job: dict[str, Any]) -> None:
        """Build the row of ``job`` for ``monitor`` (buttons call the monitor's actions)."""
        self.job_id = str(job["id"])
        self.cells = {c: widgets.HTML(layout=widgets.Layout(width=w)) for c, w in _WIDTHS.items()}
        self.buttons: dict[str, widgets.Button] = {}
        for action, icon, tip in (
            ("cancel", "stop", "Cancel"),
            ("hold", "pause", "Hold"),
            ("release", "play", "Release"),
            ("requeue", "redo", "Run again"),
            ("logs", "file-text", "Open the job's view and log"),
        ):
            # As wide as its word and icon ("release" was cut at a fixed width).
            button = widgets.Button(
                icon=icon,
                tooltip=tip,
                description=action,
                layout=widgets.Layout(width="auto", min_width="82px", flex="0 0 auto"),
            )
            button.add_class("swm-monitor-action")
            button.on_click(lambda _b, a=action: monitor.act(self.job_id, a))
            self.buttons[action] = button
        # A narrow notebook wraps the buttons under the cells rather than squeezing their words.
        super().__init__([*self.cells.values(), *self.buttons.values()], layout=widgets.Layout(flex_flow="row wrap"))
        self.update(job)

    def update(self, job: dict[str, Any], now: float | None = None) -> None:
        """Redraw the cells and enable the actions that make sense in the job's state."""
        cells = render.job_row(job, now)
        for key, widget in self.cells.items():
            if key == "state":
                value = render.state_badge(cells["state"])
            elif key == "id":
                value = f"<code title='{render.esc(job.get('id'))}'>{render.esc(cells['id'])}</code>"
            else:
                value = render.esc(cells[key])
            if widget.value != value:
                widget.value = value
        state = job.get("state")
        final = state in render.FINAL_STATES
        self.buttons["cancel"].disabled = final
        self.buttons["hold"].disabled = state not in ("queued", "waiting")
        self.buttons["release"].disabled = state != "held"
        self.buttons["requeue"].disabled = not final


class JobMonitor(SwmWidget):
    """Live table of jobs (id, name, site, coloured state, elapsed, exit code) with filters and actions.

    The table is loaded once with ``GET /jobs``; after that every change comes from the client's one
    events websocket. ``jobs`` (id -> summary) and ``visible`` (ids shown, newest first) are traits.
    """

    jobs = Dict(help="Every job the monitor knows: id -> JobSummary.")
    visible = List(Unicode(), help="Ids of the rows shown, newest first.")
    state_filter = Unicode("", help="Show only this state ('' for all).")
    site_filter = Unicode("", help="Show only this site ('' for all).")
    name_filter = Unicode("", help="Show only names containing this text.")
    limit = Int(50, help="Most rows shown.")
    selected = Unicode("", help="Id of the job opened with the logs action.")

    def __init__(
        self,
        client: Client | None = None,
        *,
        state: str = "",
        site: str = "",
        name: str = "",
        limit: int = 50,
        follow: bool = True,
        **kwargs: Any,
    ) -> None:
        """Show the jobs matching the filters; ``follow=False`` loads once and does not follow events."""
        super().__init__(client=client, **kwargs)
        self._lock = threading.RLock()
        self.rows: dict[str, JobRow] = {}
        self.limit = limit
        self.state_box = widgets.Dropdown(
            options=[ALL, *STATES], value=state or ALL, description="state", layout=widgets.Layout(width="200px")
        )
        self.site_box = widgets.Dropdown(
            options=[ALL, *([site] if site else [])],
            value=site or ALL,
            description="site",
            layout=widgets.Layout(width="200px"),
        )
        self.name_box = widgets.Text(value=name, placeholder="name contains", layout=widgets.Layout(width="180px"))
        self.refresh_button = widgets.Button(icon="refresh", description="refresh", layout=widgets.Layout(width="90px"))
        self.refresh_button.on_click(lambda _: self.reload())
        self.header = widgets.HBox(
            [widgets.HTML(f"<b>{c}</b>", layout=widgets.Layout(width=w)) for c, w in _WIDTHS.items()]
        )
        self.table = widgets.VBox()
        self.detail = widgets.VBox()
        self.children = [
            widgets.HBox([self.state_box, self.site_box, self.name_box, self.refresh_button]),
            self.header,
            self.table,
            self.status_html,
            self.detail,
        ]
        self.state_filter, self.site_filter, self.name_filter = state, site, name
        self.state_box.observe(lambda c: self._set_filter("state_filter", c["new"]), "value")
        self.site_box.observe(lambda c: self._set_filter("site_filter", c["new"]), "value")
        self.name_box.observe(lambda c: self._set_filter("name_filter", c["new"]), "value")
        self._follow = follow
        if follow:
            self.client.events().add_listener(self._on_event)
        self.run_in_background(self._load_sites, what="listing sites")
        self.reload()

    # data ----------------------------------------------------------------------------------------
    def _set_filter(self, name: str, value: str) -> None:
        setattr(self, name, "" if value == ALL else value)
        self.reload()

    def _load_sites(self) -> None:
        names = [s["name"] for s in self.client.sites()]
        current = self.site_box.value
        self.site_box.options = [ALL, *names] if current in (ALL, *names) else [ALL, *names, current]

    def reload(self) -> Any:
        """Load the jobs matching the filters from the server (in the background); returns the future."""

        def load() -> list[dict[str, Any]]:
            return list(
                self.client.jobs(
                    state=self.state_filter or None,
                    site=self.site_filter or None,
                    name=self.name_filter or None,
                    limit=self.limit,
                )
            )

        def done(jobs: list[dict[str, Any]]) -> None:
            with self._lock:
                merged = dict(self.jobs)
                merged.update({j["id"]: j for j in jobs})
                self.jobs = merged
                self._redraw()

        return self.run_in_background(load, done, what="loading jobs")

    def matches(self, job: dict[str, Any]) -> bool:
        """True if ``job`` passes the filters."""
        return (
            (not self.state_filter or _in_state(job, self.state_filter))
            and (not self.site_filter or job.get("site") == self.site_filter)
            and (not self.name_filter or self.name_filter in str(job.get("name", "")))
        )

    def _redraw(self) -> None:
        with self._lock:
            shown = sorted(
                (j for j in self.jobs.values() if self.matches(j)),
                key=lambda j: j.get("submit_time") or 0,
                reverse=True,
            )[: self.limit]
            ids = [j["id"] for j in shown]
            now = time.time()
            for job in shown:
                row = self.rows.get(job["id"])
                if row is None:
                    self.rows[job["id"]] = JobRow(self, job)
                else:
                    row.update(job, now)
            if ids != self.visible:
                self.visible = ids
                self.table.children = [self.rows[i] for i in ids]

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "job" and isinstance(message.get("job"), dict):
            job = message["job"]
            with self._lock:
                merged = dict(self.jobs)
                merged[job["id"]] = {**merged.get(job["id"], {}), **job}
                self.jobs = merged
                self._redraw()
        elif kind == "job_deleted" and isinstance(message.get("job"), dict):
            gone = message["job"].get("id")
            with self._lock:
                if gone in self.jobs:
                    self.jobs = {i: j for i, j in self.jobs.items() if i != gone and j.get("array_parent") != gone}
                    self._redraw()
        elif kind == "tick":
            now = time.time()
            with self._lock:
                for job_id in self.visible:
                    job = self.jobs.get(job_id, {})
                    if job.get("state") == "running":
                        self.rows[job_id].update(job, now)

    # actions ---------------------------------------------------------------------------------------
    def act(self, job_id: str, action: str) -> Any:
        """Run ``action`` (cancel, hold, release, requeue, logs) on ``job_id`` in the background."""
        if action == "logs":
            from .view import JobView

            self.selected = job_id
            old = list(self.detail.children)
            self.detail.children = []
            for child in old:
                child.close()

            def show(view: JobView) -> None:
                if self.selected == job_id:
                    self.detail.children = [view]

            return self.run_in_background(lambda: JobView(job_id, self.client), show, what="opening the job")
        self.status = f"{action} {job_id[:8]}..."

        def work() -> dict[str, Any]:
            if action == "cancel":
                return dict(self.client.cancel(job_id))
            return dict(self.client.act(job_id, action))

        def done(job: dict[str, Any]) -> None:
            self.status = f"{action}: {job_id[:8]} is {job.get('state')}"
            self._on_event(
                {"type": "job", "job": {k: v for k, v in job.items() if k not in ("spec", "history", "folder")}}
            )

        return self.run_in_background(work, done, what=f"{action} {job_id[:8]}")

    def stop(self) -> None:
        """Stop following events."""
        if self.client._events is not None:
            self.client._events.remove_listener(self._on_event)
        for child in self.detail.children:
            if isinstance(child, SwmWidget):
                child.stop()

    # reprs ------------------------------------------------------------------------------------------
    def shown_jobs(self) -> list[dict[str, Any]]:
        """The summaries of the rows shown, in order."""
        return [self.jobs[i] for i in self.visible if i in self.jobs]

    def html(self) -> str:
        """The table as HTML."""
        return render.jobs_html(self.shown_jobs(), title="swm jobs")

    def text(self) -> str:
        """The table as plain text."""
        return render.jobs_text(self.shown_jobs())
