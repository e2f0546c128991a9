"""``Timeline``: the jobs of a session as a Gantt chart (queued span, then running span, per job)."""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as widgets
from traitlets import Dict, List, Unicode

from ..client import render
from ..client.api import Client
from .base import SwmWidget

ROW = 18
LABEL = 150
WIDTH = 640


def spans(job: dict[str, Any], now: float) -> list[tuple[str, float, float]]:
    """``[(kind, start, end)]``: ``queued`` from submit to start, then the job's state from start to end/now."""
    out: list[tuple[str, float, float]] = []
    submit = job.get("submit_time")
    start = job.get("start_time")
    end = job.get("end_time")
    state = render.shown_state(job)
    if submit is not None:
        out.append(("queued", submit, start if start is not None else (end if end is not None else now)))
    if start is not None:
        ended = job.get("state") in render.FINAL_STATES
        out.append((state if ended else "running", start, end if end is not None else now))
    return out


def gantt_svg(jobs: list[dict[str, Any]], now: float | None = None) -> str:
    """An SVG Gantt chart of ``jobs``: one row each, grey while queued, coloured while running/ended."""
    now = now or time.time()
    if not jobs:
        return "<i>no jobs in this session yet</i>"
    t0 = min(j.get("submit_time") or now for j in jobs)
    t1 = max(max((s[2] for s in spans(j, now)), default=now) for j in jobs)
    scale = (WIDTH - LABEL - 10) / max(t1 - t0, 1e-3)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{ROW * len(jobs) + 20}' "
        # Text and axis take JupyterLab's theme colours (light or dark), with plain fallbacks elsewhere.
        "class='swm-timeline' style='font:11px sans-serif;fill:var(--jp-ui-font-color1, currentColor)'>"
    ]
    for i, job in enumerate(jobs):
        y = i * ROW
        parts.append(
            f"<text x='0' y='{y + 12}'>{render.esc(str(job.get('name', ''))[:20])} "
            f"{render.esc(str(job.get('id', ''))[:6])}</text>"
        )
        for kind, start, end in spans(job, now):
            x = LABEL + (start - t0) * scale
            w = max((end - start) * scale, 1.0)
            color = render.STATE_COLORS.get(kind, "#607d8b")
            parts.append(
                f"<rect x='{x:.1f}' y='{y + 3}' width='{w:.1f}' height='{ROW - 6}' fill='{color}'>"
                f"<title>{kind} {render.format_duration(end - start)}</title></rect>"
            )
    axis = ROW * len(jobs) + 2
    parts.append(
        f"<line class='swm-timeline-axis' x1='{LABEL}' y1='{axis}' x2='{WIDTH - 10}' y2='{axis}' "
        "style='stroke:var(--jp-ui-font-color2, currentColor)' stroke-width='1'/>"
        f"<text x='{LABEL}' y='{ROW * len(jobs) + 14}'>0 s</text>"
        f"<text x='{WIDTH - 60}' y='{ROW * len(jobs) + 14}'>{render.format_duration(t1 - t0)}</text></svg>"
    )
    return "".join(parts)


class Timeline(SwmWidget):
    """The jobs of a session (by default those submitted through the client) as a live Gantt chart.

    ``job_ids`` lists the jobs drawn; ``jobs`` holds their summaries; updates come from events.
    """

    job_ids = List(Unicode(), help="The jobs drawn, in submission order.")
    jobs = Dict(help="id -> JobSummary of the jobs drawn.")
    svg = Unicode(help="The chart (SVG text).")

    def __init__(
        self, client: Client | None = None, job_ids: list[str] | None = None, *, follow: bool = True, **kwargs: Any
    ) -> None:
        """Draw ``job_ids`` (default: the client's session jobs, growing as it submits)."""
        super().__init__(client=client, **kwargs)
        self._fixed = job_ids is not None
        self._lock = threading.RLock()
        self.chart = widgets.HTML()
        self.children = [self.chart, self.status_html]
        self.job_ids = list(job_ids if job_ids is not None else self.client.session_jobs)
        if follow:
            self.client.events().add_listener(self._on_event)
        self.loaded = self.run_in_background(self._load, what="loading jobs")

    def _load(self) -> None:
        data = {i: self.client.job_data(i) for i in self.job_ids}
        with self._lock:
            self.jobs = {i: {k: v for k, v in d.items() if k not in ("spec", "history")} for i, d in data.items()}
            self.draw()

    def draw(self) -> None:
        """Redraw the chart from ``jobs``."""
        self.svg = gantt_svg([self.jobs[i] for i in self.job_ids if i in self.jobs])
        self.chart.value = self.svg

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        with self._lock:
            if not self._fixed and list(self.client.session_jobs) != self.job_ids:
                self.job_ids = list(self.client.session_jobs)
            if kind == "job" and isinstance(message.get("job"), dict):
                job = message["job"]
                if job.get("id") in self.job_ids:
                    self.jobs = {**self.jobs, job["id"]: {**self.jobs.get(job["id"], {}), **job}}
                    self.draw()
            elif kind == "tick" and any(
                self.jobs.get(i, {}).get("state") not in render.FINAL_STATES for i in self.job_ids
            ):
                self.draw()

    def stop(self) -> None:
        """Stop following events."""
        if self.client._events is not None:
            self.client._events.remove_listener(self._on_event)

    def html(self) -> str:
        """The chart as HTML (inline SVG)."""
        return self.svg or gantt_svg([])

    def text(self) -> str:
        """One line per job: name, queued and run durations."""
        now = time.time()
        lines = []
        for job_id in self.job_ids:
            job = self.jobs.get(job_id)
            if job is None:
                continue
            parts = ", ".join(f"{k} {render.format_duration(e - s)}" for k, s, e in spans(job, now))
            lines.append(f"{job.get('name', '')} {job_id[:8]}: {parts}")
        return "Timeline\n" + ("\n".join(lines) if lines else "(no jobs)")
