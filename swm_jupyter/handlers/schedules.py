"""REST handlers of schedules: create, list, show, update, delete, pause, resume, run now, list runs.

Each schedule belongs to the user who created it; a user who may see only their own jobs (see
:mod:`.access`) sees and acts only on their own schedules, and another user's schedule answers 404
exactly like a missing one. Webhook tokens and secrets of the job request are never answered.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import SiteUnavailable
from ..core.schedule_runner import ScheduleRunner
from .base import API_PREFIX, SwmHandler

SCHEDULE_ACTIONS = ("pause", "resume", "run")
MAX_RUNS_PAGE = 1000


class ScheduleHandlerBase(SwmHandler):
    """The runner at hand, and the owner filter of the caller."""

    @property
    def runner(self) -> ScheduleRunner:
        """The running schedule runner. Raises :class:`SiteUnavailable` (503) if it is not running."""
        self.manager  # noqa: B018 - 503 while the manager is not running
        runner: ScheduleRunner | None = self.settings.get("swm_schedules")
        if runner is None:
            raise SiteUnavailable("schedules are not running on this server")
        return runner


class SchedulesHandler(ScheduleHandlerBase):
    """``GET /schedules`` lists the caller's schedules; ``POST /schedules`` creates one (``201``)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every schedule the caller may see, with its next due time and last run."""
        self.write_json({"schedules": self.runner.list_schedules(self.visible_owner)})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Create a schedule from ``{"job": {...}, "cron": ... | "every": ..., options}``."""
        runner = self.runner
        schedule = runner.create(self.json_body(), owner=self.owner)
        self.set_header("Location", f"{self.base_url.rstrip('/')}{API_PREFIX}/schedules/{schedule.id}")
        self.write_json(runner.describe(schedule), 201)


class ScheduleHandler(ScheduleHandlerBase):
    """``GET``, ``PATCH`` and ``DELETE /schedules/{id}``."""

    @web.authenticated
    @authorized
    async def get(self, schedule_id: str) -> None:
        """The schedule with its last run."""
        self.write_json(self.runner.show(schedule_id, self.visible_owner))

    @web.authenticated
    @authorized
    async def patch(self, schedule_id: str) -> None:
        """Change some fields; the due times already passed never run."""
        runner = self.runner
        body = self.json_body()
        schedule = runner.update(schedule_id, body, owner=self.visible_owner)
        self.write_json(runner.describe(schedule))

    @web.authenticated
    @authorized
    async def delete(self, schedule_id: str) -> None:
        """Delete the schedule and its run records (its jobs stay): ``204``."""
        self.runner.delete(schedule_id, owner=self.visible_owner)
        self.set_status(204)
        self.finish()


class ScheduleActionHandler(ScheduleHandlerBase):
    """``POST /schedules/{id}/{pause,resume,run}``."""

    @web.authenticated
    @authorized
    async def post(self, schedule_id: str, action: str) -> None:
        """``pause`` and ``resume`` answer the schedule; ``run`` launches a run now and answers it (``201``)."""
        runner = self.runner
        if action == "run":
            self.write_json(runner.run_now(schedule_id, owner=self.visible_owner), 201)
            return
        change = runner.pause if action == "pause" else runner.resume
        self.write_json(runner.describe(change(schedule_id, owner=self.visible_owner)))


class ScheduleRunsHandler(ScheduleHandlerBase):
    """``GET /schedules/{id}/runs``: the runs, newest due time first, each with its job's state."""

    @web.authenticated
    @authorized
    async def get(self, schedule_id: str) -> None:
        """A page of runs (``limit``, ``offset``)."""
        limit = self.int_argument("limit", 100, minimum=1, maximum=MAX_RUNS_PAGE)
        offset = self.int_argument("offset", 0, minimum=0, maximum=1_000_000_000)
        page: dict[str, Any] = self.runner.runs(schedule_id, owner=self.visible_owner, limit=limit, offset=offset)
        self.write_json(page)


_SID = r"(?P<schedule_id>[^/]+)"

#: (pattern, handler) pairs of the schedules API, relative to the server's base URL.
schedule_handlers: list[tuple[str, Any]] = [
    (rf"{API_PREFIX}/schedules/?", SchedulesHandler),
    (rf"{API_PREFIX}/schedules/{_SID}/?", ScheduleHandler),
    (rf"{API_PREFIX}/schedules/{_SID}/(?P<action>{'|'.join(SCHEDULE_ACTIONS)})", ScheduleActionHandler),
    (rf"{API_PREFIX}/schedules/{_SID}/runs/?", ScheduleRunsHandler),
]

__all__ = ["schedule_handlers"]
