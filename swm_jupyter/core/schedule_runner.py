"""The schedule runner: keeps schedules, launches their runs exactly once per due time, notifies ends.

Headless like the manager it drives (the server extension, tests and scripts use it the same
way)::

    runner = ScheduleRunner(manager=wm)
    await runner.start()          # after wm.start()
    schedule = runner.create({"job": {"command": ["date"]}, "every": "10m"}, owner="ana")
    await runner.stop()           # before wm.stop()

**Exactly once.** A due time is handled by one synchronous step that stores, in one transaction,
the run's record ``(schedule_id, due_time)`` (UNIQUE), its job (when it runs) and the schedule's
``last_due``. A crash before the commit leaves none of them: the next server finds the due time
still due and handles it by ``catch_up``; a crash after it leaves all of them: the due time is at
or before ``last_due`` and is never looked at again. Due times found at start that passed while no
server ran go by ``catch_up`` (see :func:`~.schedules.plan_due`).

**Ends.** Each pass looks at the runs launched and not yet ended; a run whose job is final is
marked ended (with its ``schedule_run`` event, in one transaction), then notified (webhook,
e-mail; browser notifications come from the event) and ``keep_last`` prunes older runs.
"""

from __future__ import annotations

import asyncio
import copy
import math
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Enum, Float, Instance, Int, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from ..notifications import SmtpSettings, deliver_webhook, send_email
from ..notifications.addresses import ALLOW_OPTION, literal_private_host
from . import schedule_store as runs_db
from .directives import sbatch_job_name
from .errors import InvalidTransition, JobNotFound, StoreFull, SwmError
from .model import SCHEDULE_SECTION, Job
from .retention import _remove_folders
from .schedules import Schedule, apply_update, plan_due, schedule_from_request
from .secrets import redact
from .states import JobState
from .store import WriteStep
from .wakeup import Wakeup

if TYPE_CHECKING:
    from .manager import WorkloadManager


class ScheduleNotFound(JobNotFound):
    """No schedule with that id (or the caller may not see it): 404."""


class ScheduleRunner(LoggingConfigurable):
    """Runs the schedules of one :class:`WorkloadManager` (see the module docstring)."""

    manager = Instance("swm_jupyter.core.manager.WorkloadManager", allow_none=True)

    tick = Float(
        1.0, help="Most seconds between two passes over the schedules (due times wake it sooner). Default: 1."
    ).tag(config=True)
    webhook_attempts = Int(5, help="Tries of one webhook delivery before it is recorded as failed. Default: 5.").tag(
        config=True
    )
    webhook_backoff = Float(
        2.0,
        help="Seconds before the second try of a webhook delivery, doubled for each next one (at most 60). Default: 2.",
    ).tag(config=True)
    webhook_timeout = Float(10.0, help="Seconds one webhook request may take. Default: 10.").tag(config=True)
    webhook_allow_private = Bool(
        False,
        help="Let webhooks reach addresses that are not public (loopback, private networks, link-local such as "
        "a cloud's metadata address). Off: such a URL is refused (400) and a host name resolving to one is not "
        "called. Default: False.",
    ).tag(config=True)
    smtp_host = Unicode("", help="SMTP server for schedules' e-mail notifications. Default: none (no e-mail).").tag(
        config=True
    )
    smtp_port = Int(25, help="Port of the SMTP server. Default: 25.").tag(config=True)
    smtp_security = Enum(
        ["none", "starttls", "ssl"],
        "none",
        help="How to talk to the SMTP server: none, starttls or ssl. Default: none.",
    ).tag(config=True)
    smtp_username = Unicode("", help="Login name at the SMTP server. Default: none (no login).").tag(config=True)
    smtp_password = Unicode("", help="Password at the SMTP server; never shown or logged. Default: none.").tag(
        config=True
    )
    email_from = Unicode("swm-jupyter@localhost", help="Sender address of notification e-mail.").tag(config=True)
    email_domains = List(
        Unicode(),
        [],
        help="Domains a schedule's e-mail addresses must be in (a subdomain counts), e.g. ['example.org'], so that "
        "users cannot mail anyone through the server's SMTP server. Default: [] (any address).",
    ).tag(config=True)

    @validate("tick", "webhook_timeout")
    def _check_positive(self, proposal: Any) -> float:
        if not proposal["value"] > 0:
            raise TraitError(f"{proposal['trait'].name} must be more than 0 seconds, not {proposal['value']}")
        return float(proposal["value"])

    @validate("webhook_attempts")
    def _check_attempts(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"webhook_attempts must be 1 or more, not {proposal['value']}")
        return int(proposal["value"])

    @validate("webhook_backoff")
    def _check_backoff(self, proposal: Any) -> float:
        if proposal["value"] < 0:
            raise TraitError(f"webhook_backoff must be 0 seconds or more, not {proposal['value']}")
        return float(proposal["value"])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedules: dict[str, Schedule] = {}
        #: Launched runs whose end is not handled yet.
        self._open: list[runs_db.RunRecord] = []
        self._wake = Wakeup()
        self._task: asyncio.Task[None] | None = None
        self._notifying: set[asyncio.Task[None]] = set()
        #: Schedules whose old runs are being pruned.
        self._pruning: set[str] = set()
        self._running = False
        #: When this runner started: due times before it passed while no server ran.
        self.started_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def wm(self) -> WorkloadManager:
        """The manager (started)."""
        manager: WorkloadManager | None = self.manager
        assert manager is not None
        return manager

    async def start(self) -> None:
        """Load the schedules and the open runs, then start the loop (call after the manager's start)."""
        store = self.wm._require_store()
        self.started_at = time.time()
        self.schedules = {s.id: s for s in runs_db.load_schedules(store)}
        self._open = runs_db.open_runs(store)
        self._running = True
        self._task = asyncio.create_task(self._loop(), name="swm-schedules")
        self.log.info("swm: %d schedules, %d runs in progress", len(self.schedules), len(self._open))

    async def stop(self) -> None:
        """Stop the loop and pending notifications (call before the manager's stop)."""
        self._running = False
        tasks = [t for t in (self._task, *self._notifying) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._notifying.clear()

    async def _loop(self) -> None:
        while self._running:
            self._wake.clear()
            try:
                self.run_pass(time.time())
            except asyncio.CancelledError:
                raise
            except StoreFull as exc:
                self.log.warning("swm: schedules wait for space in the store: %s", exc.message)
            except Exception:
                self.log.exception("swm: schedules pass failed")
            await self._wake.sleep(self._sleep_time(time.time()))

    def _sleep_time(self, now: float) -> float:
        soonest = now + self.tick
        for schedule in self.schedules.values():
            if schedule.paused:
                continue
            due = schedule.next_due(max(schedule.last_due, now - 1e-3))
            if due is not None:
                soonest = min(soonest, due)
        return max(0.01, soonest - now + 0.005)

    # -- one pass ----------------------------------------------------------------------------------

    def run_pass(self, now: float) -> None:
        """Handle the ends of runs, then every due time up to ``now`` (synchronous: see the module docstring)."""
        self._check_ends()
        for schedule in list(self.schedules.values()):
            if schedule.paused or schedule.id not in self.schedules:
                continue
            due = schedule.due_times(schedule.last_due, now)
            if not due:
                continue
            plan = plan_due(due, schedule.catch_up, self.started_at)
            try:
                if plan.missed:
                    self._record_missed(schedule, plan.missed)
                for due_time in plan.run:
                    self._launch(schedule, due_time)
            except StoreFull:
                raise  # nothing can be stored: the pass ends, these due times stay due
            except Exception:  # one schedule's failure does not hold up the others
                self.log.exception("swm: schedule %s: its due times could not be handled", schedule.id)

    def _record_missed(self, schedule: Schedule, missed: list[float]) -> None:
        now = time.time()
        updated = copy.copy(schedule)
        updated.last_due = max(schedule.last_due, missed[-1])
        details = f"passed while no server ran (catch_up {schedule.catch_up})"

        def step(db: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            for due_time in missed:
                runs_db.record_run(db, schedule.id, due_time, runs_db.MISSED, created=now, details=details)
            runs_db.save_schedule(db, updated)
            return [
                (
                    "",
                    self._run_event(
                        schedule,
                        {
                            "due_time": missed[-1],
                            "status": runs_db.MISSED,
                            "details": f"{len(missed)} due times {details}",
                        },
                    ),
                )
            ]

        self.wm._publish(self.wm._require_store().write(step))
        schedule.last_due = updated.last_due
        self.log.info("swm: schedule %s: %d due times missed (%s)", schedule.id, len(missed), details)

    def _active_runs(self, schedule_id: str) -> list[runs_db.RunRecord]:
        """Launched runs of the schedule whose job has not ended, oldest due time first."""
        out = []
        for run in self._open:
            if run.schedule_id == schedule_id and run.job_id:
                job = self._job(run.job_id)
                if job is not None and not job.state.final:
                    out.append(run)
        return sorted(out, key=lambda r: r.due_time)

    def _job(self, job_id: str) -> Job | None:
        try:
            return self.wm.get(job_id)
        except JobNotFound:
            return None

    def _launch(self, schedule: Schedule, due_time: float, *, manual: bool = False) -> dict[str, Any]:
        """Handle one due time (or a manual run at ``due_time``): skip it, or submit its job; return the run."""
        now = time.time()
        active = self._active_runs(schedule.id)
        updated = copy.copy(schedule)
        if not manual:
            updated.last_due = max(schedule.last_due, due_time)
        after = None
        if len(active) >= schedule.max_concurrent and not manual:
            if schedule.overlap == "skip":
                details = (
                    f"skipped: {len(active)} run(s) still active (max_concurrent {schedule.max_concurrent}): "
                    + ", ".join(r.job_id or "" for r in active)
                )
                run = {"due_time": due_time, "status": runs_db.SKIPPED, "details": details, "job_id": None}
                self._store_run(schedule, updated, run, notify=schedule.notify_on == "end")
                self.log.info("swm: schedule %s: run of %s %s", schedule.id, _iso(due_time), details)
                return run
            after = active[-schedule.max_concurrent].job_id
        request = copy.deepcopy(schedule.job)
        if "name" not in request and not _script_names_itself(request.get("script")):
            request["name"] = schedule.name
        section = {"id": schedule.id, "name": schedule.name, "due_time": due_time, "manual": manual}
        launched: dict[str, Any] = {}

        def also(db: sqlite3.Connection, job: Job) -> list[tuple[str, dict[str, Any]]]:
            runs_db.record_run(db, schedule.id, due_time, runs_db.LAUNCHED, created=now, job_id=job.id, manual=manual)
            runs_db.save_schedule(db, updated)
            launched.update(due_time=due_time, status=runs_db.LAUNCHED, job_id=job.id, details="", manual=manual)
            return [(job.id, self._run_event(schedule, {**launched, "state": job.state.value}))]

        try:
            job = self.wm.submit_with(
                request, owner=schedule.owner, extras={SCHEDULE_SECTION: section}, also=also, after=after
            )
        except StoreFull:
            raise  # the due time stays due: the next pass tries again
        except sqlite3.IntegrityError:
            # Recorded already (cannot happen with one runner per store): never run it twice.
            self.log.warning("swm: schedule %s: due time %s was already handled", schedule.id, _iso(due_time))
            schedule.last_due = updated.last_due
            return {"due_time": due_time, "status": "duplicate"}
        except (SwmError, ValueError, TypeError, KeyError) as exc:
            # A job the scheduler cannot submit (its site went away, its notebook was deleted...):
            # recorded as failed, never retried for ever.
            message = exc.message if isinstance(exc, SwmError) else "the job could not be submitted; see the server log"
            if not isinstance(exc, SwmError):
                self.log.exception("swm: schedule %s: submitting a run failed", schedule.id)
            run = {"due_time": due_time, "status": runs_db.FAILED, "details": message, "job_id": None}
            self._store_run(schedule, updated, run, notify=schedule.notify_on != "never", manual=manual)
            self._notify_external(schedule, run, failed=True)
            self.log.warning(
                "swm: schedule %s: run of %s could not be submitted: %s", schedule.id, _iso(due_time), message
            )
            return run
        schedule.last_due = updated.last_due
        self._open.append(runs_db.RunRecord(0, schedule.id, due_time, runs_db.LAUNCHED, job.id, "", now, False, manual))
        self._refresh_open_seqs()
        self.log.info("swm: schedule %s: run of %s is job %s", schedule.id, _iso(due_time), job.id)
        return {**launched, "state": job.state.value}

    def _refresh_open_seqs(self) -> None:
        """Give runs appended in memory their stored ``seq`` (needed to mark them ended)."""
        if any(run.seq == 0 for run in self._open):
            self._open = runs_db.open_runs(self.wm._require_store())

    def _store_run(
        self, schedule: Schedule, updated: Schedule, run: dict[str, Any], *, notify: bool, manual: bool = False
    ) -> None:
        """Record a run that has no job (skipped, failed) with its event, and the new ``last_due``."""
        now = time.time()

        def step(db: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            runs_db.record_run(
                db, schedule.id, run["due_time"], run["status"], created=now, details=run["details"], manual=manual
            )
            runs_db.save_schedule(db, updated)
            return [("", self._run_event(schedule, run, notify=notify))]

        self.wm._publish(self.wm._require_store().write(step))
        schedule.last_due = updated.last_due

    # -- ends --------------------------------------------------------------------------------------

    def _check_ends(self) -> None:
        """Mark launched runs whose job is final as ended; notify and prune."""
        still: list[runs_db.RunRecord] = []
        ended: list[tuple[runs_db.RunRecord, Job | None]] = []
        for run in self._open:
            job = self._job(run.job_id) if run.job_id else None
            if job is None or (job.state.final and job.wanted is None):
                ended.append((run, job))
            else:
                still.append(run)
        if not ended:
            return
        self._open = still
        for run, job in ended:
            schedule = self.schedules.get(run.schedule_id)
            if schedule is None:
                self.wm._require_store().write(_no_events(runs_db.mark_ended, run.seq))
                continue
            failed = job is None or _failed(job)
            notify = schedule.notify_on == "end" or (schedule.notify_on == "failure" and failed)
            data = {
                "due_time": run.due_time,
                "status": run.status,
                "job_id": run.job_id,
                "details": "" if job is not None else "its job was deleted",
                "manual": run.manual,
                "state": job.state.value if job else None,
                "exit_code": job.exit_code if job else None,
                "state_details": job.state_details if job else "",
                "failed": failed,
            }

            def step(
                db: sqlite3.Connection,
                seq: int = run.seq,
                data: dict[str, Any] = data,
                notify: bool = notify,
                schedule: Schedule = schedule,
            ) -> list[tuple[str, dict[str, Any]]]:
                runs_db.mark_ended(db, seq)
                return [(data["job_id"] or "", self._run_event(schedule, data, notify=notify, ended=True))]

            self.wm._publish(self.wm._require_store().write(step))
            if notify:
                self._notify_external(schedule, data, failed=failed)
            if schedule.keep_last:
                self._start_prune(schedule.id)

    def _start_prune(self, schedule_id: str) -> None:
        """Prune a schedule's old runs in the background (one pruning per schedule at a time)."""
        if schedule_id not in self._pruning:
            self._pruning.add(schedule_id)
            self._spawn(self._prune(schedule_id))

    async def _prune(self, schedule_id: str) -> None:
        """Delete the ended runs of a schedule beyond its newest ``keep_last``, with their jobs and folders.

        Folders first, in a worker thread (the loop goes on); then the rows. A server stopped in between
        leaves rows whose folders are gone: the next pruning deletes them.
        """
        try:
            schedule = self.schedules.get(schedule_id)
            if schedule is None or not schedule.keep_last:
                return
            store = self.wm._require_store()
            old = runs_db.prunable_runs(store, schedule.id, schedule.keep_last)
            if not old:
                return
            jobs = [(job_id, folder) for _, job_id, folder in old if job_id and job_id not in self.wm.jobs]
            await asyncio.to_thread(_remove_folders, jobs)
            self.wm.delete_jobs(job_id for job_id, _ in jobs)
            store = self.wm._require_store()
            store.write(_no_events(runs_db.delete_runs, [seq for seq, _, _ in old]))
            self.log.info(
                "swm: schedule %s: pruned %d old runs (keep_last %d)", schedule.id, len(old), schedule.keep_last
            )
        finally:
            self._pruning.discard(schedule_id)

    # -- notifications -----------------------------------------------------------------------------

    def _notify_external(self, schedule: Schedule, run: dict[str, Any], *, failed: bool) -> None:
        """Send the webhook and the e-mail of a run's end, in the background."""
        if schedule.notify_on == "never" or (schedule.notify_on == "failure" and not failed):
            return
        payload = {
            "event": "schedule_run",
            "schedule": {"id": schedule.id, "name": schedule.name, "owner": schedule.owner},
            "run": {k: v for k, v in run.items() if k != "state_details"},
            "failed": failed,
            "time": time.time(),
        }
        if schedule.webhook:
            self._spawn(self._send_webhook(schedule.id, payload))
        if schedule.email and self.smtp_host:
            self._spawn(self._send_email(schedule, run, failed))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def _send_webhook(self, schedule_id: str, payload: dict[str, Any]) -> None:
        schedule = self.schedules.get(schedule_id)
        if schedule is None or not schedule.webhook:
            return
        hook = schedule.webhook
        result = await deliver_webhook(
            hook["url"],
            payload,
            token=hook.get("token"),
            headers=hook.get("headers"),
            attempts=self.webhook_attempts,
            backoff=self.webhook_backoff,
            timeout=self.webhook_timeout,
            allow_private=self.webhook_allow_private,
        )
        schedule = self.schedules.get(schedule_id)
        if schedule is None:
            return
        status = dict(schedule.webhook_status)
        status["last_attempts"] = result.attempts
        if result.ok:
            status["last_ok_time"] = result.time
        else:
            status.update(last_error=result.error, last_error_time=result.time, failures=status.get("failures", 0) + 1)
            self.log.warning("swm: schedule %s: webhook delivery failed: %s", schedule_id, result.error)
        schedule.webhook_status = status
        self._save(schedule, "webhook")

    async def _send_email(self, schedule: Schedule, run: dict[str, Any], failed: bool) -> None:
        settings = SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            security=self.smtp_security,
            username=self.smtp_username,
            password=self.smtp_password,
            sender=self.email_from,
        )
        outcome = "failed" if failed else "ended"
        subject = f"[swm] schedule {schedule.name}: run of {_iso(run['due_time'])} {outcome}"
        text = (
            f"Schedule {schedule.name} ({schedule.id}), owner {schedule.owner or '-'}\n"
            f"Due time: {_iso(run['due_time'])}\nJob: {run.get('job_id') or '-'}\n"
            f"State: {run.get('state') or run.get('status')}  exit code: {run.get('exit_code')}\n"
            f"{run.get('details') or ''}\n"
        )
        error = await send_email(settings, list(schedule.email), subject, text)
        if error:
            self.log.warning("swm: schedule %s: e-mail not sent: %s", schedule.id, error)
            current = self.schedules.get(schedule.id)
            if current is not None:
                current.webhook_status = {
                    **current.webhook_status,
                    "email_error": error,
                    "email_error_time": time.time(),
                }
                self._save(current, "email")

    # -- events ------------------------------------------------------------------------------------

    def _run_event(
        self, schedule: Schedule, run: dict[str, Any], *, notify: bool = False, ended: bool = False
    ) -> dict[str, Any]:
        """The ``schedule_run`` event of a run (stored with the write that records it)."""
        return {
            "type": "schedule_run",
            "time": time.time(),
            "schedule": {
                "id": schedule.id,
                "name": schedule.name,
                "owner": schedule.owner,
                "next_due": None
                if schedule.paused
                else schedule.next_due(max(schedule.last_due, run["due_time"], time.time())),
            },
            "run": dict(run),
            "ended": ended,
            "notify": notify,
        }

    def _schedule_event(self, schedule: Schedule, action: str) -> dict[str, Any]:
        return {"type": "schedule", "time": time.time(), "action": action, "schedule": self.describe(schedule)}

    def _save(self, schedule: Schedule, action: str) -> None:
        """Store a changed schedule with its ``schedule`` event."""
        event = self._schedule_event(schedule, action)

        def step(db: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            runs_db.save_schedule(db, schedule)
            return [("", event)]

        self.wm._publish(self.wm._require_store().write(step))

    # -- the API (used by the REST handlers, the same for every client) ----------------------------

    def describe(self, schedule: Schedule, last_run: dict[str, Any] | None = None) -> dict[str, Any]:
        """The public form of a schedule: secrets hidden, with its next due time and active runs."""
        out = schedule.public()
        out["job"] = redact(out["job"], list(getattr(self.manager, "secret_patterns", []) or []))
        out["next_due"] = None if schedule.paused else schedule.next_due(max(schedule.last_due, time.time()))
        out["active_runs"] = len(self._active_runs(schedule.id))
        if last_run is not None:
            out["last_run"] = last_run
        return out

    def get(self, schedule_id: str, owner: str | None = None) -> Schedule:
        """The schedule with that id, if ``owner`` (None: anyone) owns it. Raises :class:`ScheduleNotFound`."""
        schedule = self.schedules.get(schedule_id)
        if schedule is None and len(schedule_id) >= 4:  # a unique prefix of at least 4 characters
            found = [s for s in self.schedules.values() if s.id.startswith(schedule_id) and owner in (None, s.owner)]
            schedule = found[0] if len(found) == 1 else None
        if schedule is None or (owner is not None and schedule.owner != owner):
            raise ScheduleNotFound(f"no schedule {schedule_id!r}; list schedules with `swm schedule list`")
        return schedule

    def list_schedules(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Public forms of the schedules of ``owner`` (None: every one), each with its last run."""
        mine = [s for s in self.schedules.values() if owner is None or s.owner == owner]
        last = runs_db.last_runs(self.wm._require_store(), [s.id for s in mine])
        return [self.describe(s, last.get(s.id)) for s in mine]

    def show(self, schedule_id: str, owner: str | None = None) -> dict[str, Any]:
        """The public form of one schedule with its last run."""
        schedule = self.get(schedule_id, owner)
        return self.describe(schedule, runs_db.last_runs(self.wm._require_store(), [schedule.id]).get(schedule.id))

    def _check_job(self, schedule: Schedule) -> None:
        """Validate the schedule's job as a submission of its owner (nothing stored)."""
        from .errors import ValidationError

        try:
            self.wm.dry_run(copy.deepcopy(schedule.job), owner=schedule.owner)
        except ValidationError as exc:
            errors = [{"field": f"job.{e['field']}".rstrip("."), "message": e["message"]} for e in exc.errors]
            raise ValidationError(f"the schedule's job is not valid: {exc.message}", errors) from None

    def _check_email(self, schedule: Schedule) -> None:
        """Refuse e-mail addresses outside :attr:`email_domains`, when it is set (nothing stored)."""
        from .errors import ValidationError

        domains = [d.lower().strip(".") for d in self.email_domains if d.strip(".")]
        if not domains:
            return
        outside = [
            address
            for address in schedule.email
            if not any(
                (host := address.rsplit("@", 1)[-1].lower().rstrip(".")) == d or host.endswith("." + d) for d in domains
            )
        ]
        if outside:
            message = f"{', '.join(outside)}: this server mails only addresses in {', '.join(domains)}"
            raise ValidationError(
                f"the schedule is not valid: email: {message}", [{"field": "email", "message": message}]
            )

    def _check_webhook(self, schedule: Schedule) -> None:
        """Refuse a webhook URL naming an address that is not public, unless allowed (nothing stored)."""
        from .errors import ValidationError

        if schedule.webhook and not self.webhook_allow_private:
            host = literal_private_host(str(schedule.webhook.get("url", "")))
            if host is not None:
                message = f"{host} is not a public address; webhooks to it need {ALLOW_OPTION} = True on the server"
                raise ValidationError(
                    f"the schedule is not valid: webhook.url: {message}", [{"field": "webhook.url", "message": message}]
                )

    def create(self, request: Any, *, owner: str) -> Schedule:
        """Validate and store a new schedule (with its ``schedule`` event). Raises :class:`ValidationError`."""
        schedule = schedule_from_request(request, owner=owner)
        self._check_webhook(schedule)
        self._check_email(schedule)
        self._check_job(schedule)
        self._save(schedule, "created")
        self.schedules[schedule.id] = schedule
        self._wake.set()
        return schedule

    def update(self, schedule_id: str, request: Any, *, owner: str | None = None) -> Schedule:
        """Change a schedule's fields (due times already passed never run). Raises 404 / 400."""
        schedule = self.get(schedule_id, owner)
        updated = apply_update(schedule, request)
        if "webhook" in request:
            self._check_webhook(updated)
        if "email" in request:
            self._check_email(updated)
        if "job" in request:
            self._check_job(updated)
        if updated.paused and not schedule.paused:
            return self.pause(schedule.id, owner=owner, changes=updated)
        if not updated.paused and schedule.paused:
            updated.last_due = max(updated.last_due, time.time())
        self._save(updated, "updated")
        self.schedules[updated.id] = updated
        self._wake.set()
        return updated

    def pause(self, schedule_id: str, *, owner: str | None = None, changes: Schedule | None = None) -> Schedule:
        """Pause: no due time runs until it is resumed (active runs go on)."""
        schedule = changes or copy.copy(self.get(schedule_id, owner))
        schedule.paused = True
        schedule.updated = time.time()
        self._save(schedule, "paused")
        self.schedules[schedule.id] = schedule
        return schedule

    def resume(self, schedule_id: str, *, owner: str | None = None) -> Schedule:
        """Resume: the due times that passed while paused do not run; the next one does."""
        schedule = copy.copy(self.get(schedule_id, owner))
        if not schedule.paused:
            raise InvalidTransition(f"the schedule {schedule_id} is not paused")
        schedule.paused = False
        schedule.updated = time.time()
        schedule.last_due = max(schedule.last_due, time.time())
        self._save(schedule, "resumed")
        self.schedules[schedule.id] = schedule
        self._wake.set()
        return schedule

    def delete(self, schedule_id: str, *, owner: str | None = None) -> None:
        """Delete a schedule and its run records; its jobs stay (running ones go on)."""
        schedule = self.get(schedule_id, owner)
        event = self._schedule_event(schedule, "deleted")

        def step(db: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            runs_db.delete_schedule(db, schedule.id)
            return [("", event)]

        self.wm._publish(self.wm._require_store().write(step))
        self.schedules.pop(schedule.id, None)
        self._open = [run for run in self._open if run.schedule_id != schedule.id]

    def run_now(self, schedule_id: str, *, owner: str | None = None) -> dict[str, Any]:
        """Launch a run now (even when paused or while other runs are active); return it."""
        schedule = self.get(schedule_id, owner)
        due = time.time()
        while any(abs(r.due_time - due) < 1e-9 for r in self._open if r.schedule_id == schedule.id):
            due = math.nextafter(due, math.inf)
        return self._launch(schedule, due, manual=True)

    def runs(self, schedule_id: str, *, owner: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """A page of a schedule's runs, newest due time first."""
        schedule = self.get(schedule_id, owner)
        self.wm._flush(retry_now=True)
        runs, total = runs_db.list_runs(self.wm._require_store(), schedule.id, limit, offset)
        return {"runs": runs, "total": total}


def _no_events(write: Callable[[sqlite3.Connection, Any], None], arg: Any) -> WriteStep:
    """A store step that makes ``write(db, arg)`` and stores no event."""

    def step(db: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
        write(db, arg)
        return []

    return step


def _script_names_itself(script: Any) -> bool:
    """True if a job script names its job (``#SWM name`` or ``#SBATCH --job-name``/``-J``)."""
    if not isinstance(script, str):
        return False
    if any(line.split()[:2] == ["#SWM", "name"] for line in script.splitlines() if line.startswith("#SWM")):
        return True
    return sbatch_job_name(script) is not None


def _failed(job: Job) -> bool:
    """True if a final job did not succeed."""
    return job.state is not JobState.FINISHED or (job.exit_code or 0) != 0 or job.signal is not None


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


__all__ = ["ScheduleNotFound", "ScheduleRunner"]
