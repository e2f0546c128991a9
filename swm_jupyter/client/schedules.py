"""Schedules from the client side: the REST calls (``/schedules``) and the text shown for them.

Used by the ``swm schedule`` command line and the ``%swm schedule`` magics; like every client part
it speaks only the REST API (:class:`~swm_jupyter.client.connection.Connection`).
"""

from __future__ import annotations

import time
from typing import Any

from .connection import Connection


class ScheduleApi:
    """The schedule calls of one server (synchronous; raises :class:`~swm_jupyter.client.errors.SwmError`)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def list(self) -> list[dict[str, Any]]:
        """Every schedule the caller may see."""
        return list(self.connection.get_json("schedules")["schedules"])

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        """Create a schedule (``{"job": {...}, "cron"|"every": ..., options}``); returns it."""
        return dict(self.connection.post_json("schedules", request))

    def show(self, schedule_id: str) -> dict[str, Any]:
        """One schedule, with its last run."""
        return dict(self.connection.get_json(f"schedules/{schedule_id}"))

    def update(self, schedule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some fields; returns the schedule."""
        return dict(self.connection.request("PATCH", f"schedules/{schedule_id}", json_body=changes).json())

    def pause(self, schedule_id: str) -> dict[str, Any]:
        """Pause; returns the schedule."""
        return dict(self.connection.post_json(f"schedules/{schedule_id}/pause"))

    def resume(self, schedule_id: str) -> dict[str, Any]:
        """Resume; returns the schedule."""
        return dict(self.connection.post_json(f"schedules/{schedule_id}/resume"))

    def run(self, schedule_id: str) -> dict[str, Any]:
        """Launch a run now; returns the run."""
        return dict(self.connection.post_json(f"schedules/{schedule_id}/run"))

    def delete(self, schedule_id: str) -> None:
        """Delete the schedule (its jobs stay)."""
        self.connection.request("DELETE", f"schedules/{schedule_id}")

    def runs(self, schedule_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs, newest first."""
        return list(self.connection.get_json(f"schedules/{schedule_id}/runs", limit=limit)["runs"])


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table with columns padded to their widest cell."""
    cells = [header, *rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def when_text(schedule: dict[str, Any]) -> str:
    """When a schedule is due, in words: ``every 10m`` or ``cron 0 9 * * * (Europe/Berlin)``."""
    if schedule.get("cron"):
        return f"cron {schedule['cron']} ({schedule.get('timezone') or 'UTC'})"
    return f"every {schedule.get('every')}" + ("" if isinstance(schedule.get("every"), str) else "s")


def last_run_text(schedule: dict[str, Any]) -> str:
    """The last run's outcome in a few words (``finished 0``, ``skipped``, ``-``)."""
    run = schedule.get("last_run")
    if not run:
        return "-"
    if run.get("status") != "launched":
        return str(run.get("status"))
    state = run.get("state") or "?"
    return f"{state} {run['exit_code']}" if run.get("exit_code") is not None else state


def schedule_rows(schedules: list[dict[str, Any]]) -> list[list[str]]:
    """Table rows: id, name, when, next due, last run, paused."""
    return [
        [
            s["id"][:8],
            str(s.get("name", ""))[:30],
            when_text(s),
            _when(s.get("next_due")),
            last_run_text(s),
            "paused" if s.get("paused") else "",
        ]
        for s in schedules
    ]


SCHEDULE_HEADER = ["ID", "NAME", "WHEN", "NEXT", "LAST RUN", ""]
RUN_HEADER = ["DUE", "STATUS", "JOB", "STATE", "EXIT", "DETAILS"]


def run_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """Table rows of runs: due time, status, job, state, exit code, details."""
    return [
        [
            _when(r.get("due_time")),
            str(r.get("status")) + (" (manual)" if r.get("manual") else ""),
            (r.get("job_id") or "-")[:8],
            r.get("state") or "-",
            "" if r.get("exit_code") is None else str(r["exit_code"]),
            str(r.get("details") or "")[:60],
        ]
        for r in runs
    ]


def show_text(schedule: dict[str, Any], runs: list[dict[str, Any]] | None = None) -> str:
    """A schedule in a few lines, with its newest runs if given."""
    job = schedule.get("job") or {}
    what = job.get("notebook") or (job.get("command") and " ".join(job["command"])) or "script"
    hook = schedule.get("webhook") or {}
    status = schedule.get("webhook_status") or {}
    lines = [
        f"id:        {schedule['id']}",
        f"name:      {schedule.get('name')}    owner: {schedule.get('owner') or '-'}",
        f"when:      {when_text(schedule)}" + ("   PAUSED" if schedule.get("paused") else ""),
        f"runs:      {what}",
        f"next due:  {_when(schedule.get('next_due'))}    last run: {last_run_text(schedule)}",
        f"options:   max_concurrent {schedule.get('max_concurrent')} ({schedule.get('overlap')}), "
        f"catch_up {schedule.get('catch_up')}, keep_last {schedule.get('keep_last') or 'all'}, "
        f"notify on {schedule.get('notify_on')}",
    ]
    if hook:
        lines.append(
            f"webhook:   {hook.get('url')}"
            + (f"   last error: {status['last_error']}" if status.get("last_error") else "")
        )
    if schedule.get("email"):
        lines.append(f"e-mail:    {', '.join(schedule['email'])}")
    if runs is not None:
        lines.append("runs (newest first):")
        lines.extend("  " + line for line in table(run_rows(runs), RUN_HEADER).splitlines())
    return "\n".join(lines)
