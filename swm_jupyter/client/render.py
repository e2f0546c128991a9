"""HTML and text renderings of jobs and sites, shared by the client's reprs and the widgets."""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.states import ACTIONS, FAILED, Action, JobState, is_failed

#: Colour of each state, as in the sidebar (also used for the Gantt bars).
STATE_COLORS = {
    "queued": "#9e9e9e",
    "held": "#ff9800",
    "waiting": "#03a9f4",
    "transferring": "#673ab7",
    "running": "#2196f3",
    "finished": "#4caf50",
    "error": "#f44336",
    "canceled": "#795548",
    "failed": "#f44336",
}
FINAL_STATES = frozenset({"finished", "error", "canceled"})
#: The path a job takes through its states, drawn as a progress bar.
PROGRESS_STEPS = ("queued", "waiting", "transferring", "running", "finished")


def shown_state(job: Mapping[str, Any]) -> str:
    """The state to show: ``failed`` for a finished job with a non-zero exit code or a signal, else the state."""
    state = str(job.get("state", ""))
    if state == "finished" and is_failed(state, job.get("exit_code"), job.get("signal")):
        return FAILED
    return state


def state_text(job: Mapping[str, Any]) -> str:
    """The state with its letter for text output: ``R running``, ``F finished``, ``F failed``."""
    return f"{job.get('state_code', '')} {shown_state(job)}".strip()


def after_action(action: str, job: Mapping[str, Any]) -> str:
    """What ``action`` (cancel, hold, release, requeue) leads the job to, from the job as the server answered:
    its state if the action is done, else the state it goes to while its site carries the action out."""
    now = JobState(str(job.get("state")))
    target = ACTIONS[Action(action)].get(now)
    if target is None or target is now:
        return state_text(job)
    return f"{target.code} {target.value} (requested; {now.value} until its site has done it)"


def esc(value: Any) -> str:
    """HTML-escape ``value`` (None as an empty string)."""
    return "" if value is None else html.escape(str(value))


def format_duration(seconds: float | None) -> str:
    """``3725`` -> ``1:02:05``; ``None`` -> ``""``."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def elapsed(job: Mapping[str, Any], now: float | None = None) -> float | None:
    """Seconds the job has run (start to end, or to now while running); None before it starts."""
    start = job.get("start_time")
    if start is None:
        return None
    end = job.get("end_time")
    return (end if end is not None else (now or time.time())) - start


def state_badge(state: str) -> str:
    """A coloured HTML badge for ``state``."""
    color = STATE_COLORS.get(state, "#607d8b")
    return (
        f'<span class="swm-state swm-state-{esc(state)}" style="background:{color};color:white;'
        f'padding:1px 6px;border-radius:8px;font-size:90%">{esc(state)}</span>'
    )


def exit_text(job: Mapping[str, Any]) -> str:
    """``0``, ``1``, ``signal 9`` or ``""``."""
    if job.get("signal"):
        return f"signal {job['signal']}"
    code = job.get("exit_code")
    return "" if code is None else str(code)


JOB_COLUMNS = ("id", "name", "site", "state", "elapsed", "exit")


def job_row(job: Mapping[str, Any], now: float | None = None) -> dict[str, str]:
    """The plain-text cells of one job-table row."""
    return {
        "id": str(job.get("id", ""))[:8],
        "name": str(job.get("name", "")),
        "site": str(job.get("site", "")),
        "state": shown_state(job),
        "elapsed": format_duration(elapsed(job, now)),
        "exit": exit_text(job),
    }


def jobs_html(jobs: Iterable[Mapping[str, Any]], *, title: str = "") -> str:
    """An HTML table of job summaries (id, name, site, state with colour, elapsed, exit code)."""
    now = time.time()
    head = "".join(f"<th style='text-align:left'>{c}</th>" for c in JOB_COLUMNS)
    rows = []
    for job in jobs:
        cells = job_row(job, now)
        cells_html = [
            f"<td title='{esc(job.get('id'))}'><code>{esc(cells['id'])}</code></td>",
            f"<td>{esc(cells['name'])}</td>",
            f"<td>{esc(cells['site'])}</td>",
            f"<td title='{esc(job.get('state_details'))}'>{state_badge(cells['state'])}</td>",
            f"<td>{esc(cells['elapsed'])}</td>",
            f"<td>{esc(cells['exit'])}</td>",
        ]
        rows.append("<tr>" + "".join(cells_html) + "</tr>")
    if not rows:
        rows.append(f"<tr><td colspan='{len(JOB_COLUMNS)}'><i>no jobs</i></td></tr>")
    caption = f"<caption style='text-align:left'><b>{esc(title)}</b></caption>" if title else ""
    return f"<table class='swm-jobs'>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def jobs_text(jobs: Iterable[Mapping[str, Any]]) -> str:
    """The same table as :func:`jobs_html`, as aligned plain text."""
    now = time.time()
    rows = [dict(zip(JOB_COLUMNS, (c.upper() for c in JOB_COLUMNS), strict=False))]
    rows.extend(job_row(job, now) for job in jobs)
    widths = {c: max(len(r[c]) for r in rows) for c in JOB_COLUMNS}
    lines = ["  ".join(r[c].ljust(widths[c]) for c in JOB_COLUMNS).rstrip() for r in rows]
    if len(rows) == 1:
        lines.append("(no jobs)")
    return "\n".join(lines)


def job_text(job: Mapping[str, Any]) -> str:
    """One line: ``Job 1a2b3c4d 'train' on local: running (1:02)``."""
    line = f"Job {str(job.get('id', ''))[:8]} {job.get('name', '')!r} on {job.get('site', '')}: {shown_state(job)}"
    extra = [x for x in (format_duration(elapsed(job)), exit_text(job) and f"exit {exit_text(job)}") if x]
    if extra:
        line += f" ({', '.join(extra)})"
    if job.get("state_details"):
        line += f" - {job['state_details']}"
    return line


def progress_fraction(job: Mapping[str, Any]) -> tuple[int, int]:
    """How far along :data:`PROGRESS_STEPS` the job is: ``(step, total)``; final states are the end."""
    state = str(job.get("state", "queued"))
    total = len(PROGRESS_STEPS) - 1
    if state in FINAL_STATES:
        return total, total
    if state == "held":
        return 0, total
    return (PROGRESS_STEPS.index(state) if state in PROGRESS_STEPS else 0), total


def history_html(history: Iterable[Mapping[str, Any]]) -> str:
    """The job's history as a small table (time, state, details)."""
    rows = []
    for entry in history:
        when = time.strftime("%H:%M:%S", time.localtime(entry.get("time") or 0))
        rows.append(
            f"<tr><td>{when}</td><td>{state_badge(str(entry.get('state', '')))}</td>"
            f"<td>{esc(entry.get('details'))}</td></tr>"
        )
    return f"<table class='swm-history'>{''.join(rows)}</table>"


def job_html(job: Mapping[str, Any]) -> str:
    """A job's header, progress bar and spec summary as HTML."""
    step, total = progress_fraction(job)
    color = STATE_COLORS.get(shown_state(job), "#607d8b")
    bar = (
        f"<div style='background:#eee;width:240px;height:8px;border-radius:4px'>"
        f"<div style='background:{color};width:{int(240 * step / total)}px;height:8px;border-radius:4px'></div></div>"
    )
    spec = job.get("spec") or {}
    res = spec.get("resources") or {}
    what = (
        f"notebook {spec['notebook']}"
        if spec.get("notebook")
        else f"command {' '.join(spec['command'])}"
        if spec.get("command")
        else "script"
        if spec.get("script")
        else ""
    )
    res_text = ", ".join(f"{k} {v}" for k, v in res.items() if v not in (None, 0) or (k == "gpus" and v))
    details = f"<div><i>{esc(job.get('state_details'))}</i></div>" if job.get("state_details") else ""
    return (
        f"<div class='swm-job'><b>Job</b> <code>{esc(job.get('id'))}</code> <b>{esc(job.get('name'))}</b> "
        f"on <b>{esc(job.get('site'))}</b> {state_badge(shown_state(job))} "
        f"{esc(format_duration(elapsed(job)))} {('exit ' + esc(exit_text(job))) if exit_text(job) else ''}"
        f"{bar}{details}<div style='color:#666'>{esc(what)}{' · ' + esc(res_text) if res_text else ''}</div></div>"
    )


def sites_html(sites: Iterable[Mapping[str, Any]], default: str | None = None) -> str:
    """An HTML table of sites: name, kind, health, limits and job counts."""
    rows = []
    for site in sites:
        health = "ok" if site.get("healthy", True) else f"unhealthy: {site.get('health_message', '')}"
        limits = ", ".join(f"{k} {v}" for k, v in (site.get("limits") or {}).items() if v)
        counts = ", ".join(f"{k} {v}" for k, v in (site.get("counts") or {}).items() if v)
        mark = " (default)" if site.get("name") == default else ""
        rows.append(
            f"<tr><td><b>{esc(site.get('name'))}</b>{mark}</td><td>{esc(site.get('kind'))}</td><td>{esc(health)}</td>"
            f"<td>{esc(limits)}</td><td>{esc(counts)}</td><td>{len(site.get('flavors') or [])}</td></tr>"
        )
    names = ("site", "kind", "health", "limits", "jobs", "flavors")
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in names)
    return f"<table class='swm-sites'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def sites_text(sites: Iterable[Mapping[str, Any]], default: str | None = None) -> str:
    """One line per site: name, kind, health."""
    lines = []
    for site in sites:
        mark = " (default)" if site.get("name") == default else ""
        health = "ok" if site.get("healthy", True) else f"unhealthy: {site.get('health_message', '')}"
        lines.append(f"{site.get('name')}{mark}: {site.get('kind')}, {health}")
    return "\n".join(lines) or "(no sites)"


def flavors_html(flavors: Iterable[Mapping[str, Any]], selected: str | None = None) -> str:
    """A table of a cloud site's flavors with their prices."""
    rows = []
    for flavor in flavors:
        style = " style='background:#e3f2fd'" if selected and flavor.get("id") == selected else ""
        rows.append(
            f"<tr{style}><td>{esc(flavor.get('name'))}</td><td>{esc(flavor.get('cpus'))}</td>"
            f"<td>{esc(flavor.get('gpus'))}</td><td>{esc(flavor.get('mem'))}</td><td>{esc(flavor.get('storage'))}</td>"
            f"<td>{esc(flavor.get('price'))}</td></tr>"
        )
    names = ("flavor", "cpus", "gpus", "mem", "storage", "price/h")
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in names)
    return f"<table class='swm-flavors'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
