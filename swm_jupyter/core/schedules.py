"""Schedules: a job request plus a cron expression (with a time zone) or an interval, and when it is due.

A :class:`Schedule` is validated from a JSON request by :func:`schedule_from_request` (every bad
field named, nothing stored) and updated by :func:`apply_update`. :meth:`Schedule.due_times` lists
the due times after a given time, computed from the cron expression (``croniter``, in the
schedule's ``timezone``, so "9:00 Europe/Berlin" follows daylight saving) or from the interval
anchored at ``start`` (or at the creation time). :func:`plan_due` decides, for the due times found
in one pass, which run and which were missed, by ``catch_up``. No I/O here: the runner
(:mod:`.schedule_runner`) and the store (:mod:`.schedule_store`) use these.
"""

from __future__ import annotations

import copy
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .errors import ValidationError
from .secrets import REDACTED, redact_text

#: How a run of a schedule may overlap the previous ones when ``max_concurrent`` runs are active.
OVERLAPS = ("skip", "queue")
#: What happens to due times that passed while no server ran (see :func:`plan_due`).
CATCH_UPS = ("none", "last", "all")
#: Which ends of runs notify (browser notification, webhook, e-mail).
NOTIFY_ON = ("failure", "end", "never")
#: Shortest and longest interval between two due times, in seconds.
MIN_EVERY = 1.0
MAX_EVERY = 10 * 366 * 86400.0
#: Times (start, end) must fall between 1970 and 9999.
MAX_TIME = 253402300799.0
#: Most due times looked at in one pass of one schedule (catch-up after a long downtime).
MAX_DUE_PER_PASS = 1000
#: Fields of a schedule request.
FIELDS = (
    "name",
    "job",
    "cron",
    "timezone",
    "every",
    "max_concurrent",
    "overlap",
    "catch_up",
    "paused",
    "start",
    "end",
    "keep_last",
    "notify_on",
    "webhook",
    "email",
)
#: Fields of the ``webhook`` object.
WEBHOOK_FIELDS = ("url", "token", "headers")
_NAME = re.compile(r"^[A-Za-z0-9_.@+=:,-][A-Za-z0-9_.@+=:, -]{0,127}$")
_EVERY = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s?)?\s*$"
)
#: Header values: printable ASCII and tabs (no CR, LF, NUL or other control characters).
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]{0,4096}$")
#: Headers of a webhook that its own ``headers`` may not set (the request's framing and routing).
FRAMING_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def parse_every(value: Any) -> float:
    """Seconds of an interval: a number of seconds, or text such as ``"10m"``, ``"1h30m"``, ``"2s"``, ``"1d"``.

    Raises ``ValueError`` saying what to write.
    """
    hint = 'give seconds (e.g. 30) or text such as "10m", "1h30m", "2s", "1d"'
    if isinstance(value, bool):
        raise ValueError(hint)
    if isinstance(value, int | float):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str) and value.strip():
        match = _EVERY.match(value)
        if not match or not any(match.groups()):
            raise ValueError(f"cannot read {value!r}: {hint}")
        days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError(hint)
    if not math.isfinite(seconds) or not MIN_EVERY <= seconds <= MAX_EVERY:
        raise ValueError(f"an interval must be from {MIN_EVERY:g} second to 10 years ({hint})")
    return seconds


def parse_time(value: Any, field_name: str) -> float:
    """Epoch seconds from a number or an ISO 8601 time (naive times are UTC). Raises ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"{field_name} must be epoch seconds or an ISO time such as 2026-01-31T09:00:00Z")
    if isinstance(value, int | float) and 0 <= value <= MAX_TIME:
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):  # epoch seconds as text (the CLI)
        return parse_time(float(value), field_name)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=ZoneInfo("UTC"))
            stamp = parsed.timestamp()
        except (ValueError, OverflowError, OSError):
            pass
        else:
            if 0 <= stamp <= MAX_TIME:
                return stamp
    raise ValueError(f"{field_name} must be epoch seconds or an ISO time such as 2026-01-31T09:00:00Z")


@dataclass
class Schedule:
    """One schedule: what to run (``job``, a request as ``POST /jobs`` takes) and when.

    ``last_due`` is the newest due time already handled (run, skipped or missed): due times at or
    before it never run again. It is stored in the same transaction as the run it handles.
    """

    id: str
    owner: str
    name: str
    job: dict[str, Any]
    cron: str | None = None
    timezone: str = "UTC"
    every: float | None = None
    every_text: str | None = None
    max_concurrent: int = 1
    overlap: str = "skip"
    catch_up: str = "last"
    paused: bool = False
    start: float | None = None
    end: float | None = None
    keep_last: int | None = None
    notify_on: str = "failure"
    webhook: dict[str, Any] | None = None
    email: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    last_due: float = 0.0
    #: What became of the last webhook deliveries: ``{"last_error", "last_error_time", "last_ok_time", "failures"}``.
    webhook_status: dict[str, Any] = field(default_factory=dict)

    # -- due times ---------------------------------------------------------------------------------

    def due_times(self, after: float, until: float, limit: int = MAX_DUE_PER_PASS) -> list[float]:
        """Due times ``t`` with ``after < t <= until`` (and within ``start``/``end``), oldest first.

        At most ``limit`` of them: the newest ones when there are more.
        """
        if self.end is not None:
            until = min(until, self.end)
        if self.start is not None:
            after = max(after, self.start - 1e-6)
        if until <= after:
            return []
        if self.every is not None:
            anchor = self.start if self.start is not None else self.created
            # k-th due time is anchor + k * every; with no start, the first one is one interval on.
            first_k = 0 if self.start is not None else 1
            k = max(first_k, math.floor((after - anchor) / self.every) + 1)
            while anchor + k * self.every <= after:
                k += 1
            last_k = math.floor((until - anchor) / self.every)
            if last_k < k:
                return []
            k = max(k, last_k - limit + 1)
            return [anchor + i * self.every for i in range(k, last_k + 1)]
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        out: list[float] = []
        try:
            it = croniter(self.cron, datetime.fromtimestamp(after, zone))
            while True:
                due = float(it.get_next(float))
                if due > until:
                    return out
                if due > after:
                    out.append(due)
                    if len(out) > limit:
                        out.pop(0)
        except Exception:  # croniter gives up on dates that never come (e.g. 30 February)
            return out

    def next_due(self, after: float) -> float | None:
        """The first due time after ``after``, or None (past ``end``)."""
        if self.end is not None and after >= self.end:
            return None
        if self.every is not None:
            found = self.due_times(after, after + self.every * 2 + (max(0.0, (self.start or 0) - after)), limit=10)
            return found[0] if found else None
        start = max(after, (self.start or 0) - 1e-6)
        try:
            due = float(croniter(self.cron, datetime.fromtimestamp(start, ZoneInfo(self.timezone))).get_next(float))
        except Exception:  # no next date (e.g. 30 February)
            return None
        if self.end is not None and due > self.end:
            return None
        return due

    # -- JSON forms --------------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """Everything, secrets included: what the store keeps."""
        return {
            "id": self.id,
            "owner": self.owner,
            "name": self.name,
            "job": self.job,
            "cron": self.cron,
            "timezone": self.timezone,
            "every": self.every,
            "every_text": self.every_text,
            "max_concurrent": self.max_concurrent,
            "overlap": self.overlap,
            "catch_up": self.catch_up,
            "paused": self.paused,
            "start": self.start,
            "end": self.end,
            "keep_last": self.keep_last,
            "notify_on": self.notify_on,
            "webhook": self.webhook,
            "email": list(self.email),
            "created": self.created,
            "updated": self.updated,
            "last_due": self.last_due,
            "webhook_status": self.webhook_status,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Schedule:
        """Rebuild a schedule kept by the store (trusted input)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def public(self) -> dict[str, Any]:
        """The form shown to clients: the webhook's token and secret-looking headers hidden.

        The job request's secrets are hidden by the REST layer with the job's own rules.
        """
        out = self.to_record()
        out["job"] = copy.deepcopy(self.job)
        if self.webhook is not None:
            hook = dict(self.webhook)
            if hook.get("token"):
                hook["token"] = REDACTED
            if hook.get("headers"):
                hook["headers"] = {name: REDACTED for name in hook["headers"]}
            hook["url"] = _hide_url_secret(str(hook.get("url", "")))
            out["webhook"] = hook
        out["every"] = self.every_text if self.every_text is not None else self.every
        return out


def _hide_url_secret(url: str) -> str:
    """A URL with its password and query string hidden (a webhook URL often carries its token there)."""
    base, sep, _query = url.partition("?")
    return redact_text(base) + (f"?{REDACTED}" if sep else "")


def new_schedule_id() -> str:
    """A new schedule id (a UUID4 string, like job ids)."""
    return str(uuid.uuid4())


def schedule_from_request(data: Any, *, owner: str, now: float | None = None) -> Schedule:
    """Validate a create request and return the schedule (not stored; ``job`` is checked by the caller).

    Raises :class:`ValidationError` listing every bad field.
    """
    if not isinstance(data, dict):
        raise ValidationError("a schedule must be a JSON object", [{"field": "", "message": "expected an object"}])
    now = time.time() if now is None else now
    schedule = Schedule(id=new_schedule_id(), owner=owner, name="", job={}, created=now, updated=now, last_due=now)
    _apply(schedule, data, creating=True)
    return schedule


def apply_update(schedule: Schedule, data: Any, *, now: float | None = None) -> Schedule:
    """A copy of ``schedule`` with the fields of an update request changed. Raises :class:`ValidationError`.

    Changing when it is due (``cron``, ``every``, ``timezone``, ``start``) never runs the due times
    already passed: ``last_due`` stays.
    """
    if not isinstance(data, dict):
        raise ValidationError("an update must be a JSON object", [{"field": "", "message": "expected an object"}])
    updated = Schedule.from_record(copy.deepcopy(schedule.to_record()))
    _apply(updated, data, creating=False)
    updated.updated = time.time() if now is None else now
    return updated


def _apply(schedule: Schedule, data: dict[str, Any], *, creating: bool) -> None:
    errors: list[dict[str, str]] = []

    def bad(path: str, message: str) -> None:
        errors.append({"field": path, "message": message})

    for key in data:
        if key not in FIELDS:
            bad(key, f"unknown field; known fields are {', '.join(FIELDS)}")
    if "name" in data:
        if not isinstance(data["name"], str) or not _NAME.match(data["name"]):
            bad("name", "use up to 128 letters, digits, spaces and _.@+=:,-")
        else:
            schedule.name = data["name"]
    if "job" in data:
        if not isinstance(data["job"], dict) or not data["job"]:
            bad("job", "must be a job request (a JSON object, as POST /jobs takes)")
        elif "private_env" in data["job"]:
            bad(
                "job.private_env",
                "a schedule keeps its job request in the store, and private_env is never stored: "
                "give the job its secrets another way (env, hidden in answers when its name looks secret, or a file)",
            )
        else:
            # values sent back as shown ("***", or a text with its secrets hidden) keep the stored ones
            schedule.job = _keep_hidden(copy.deepcopy(data["job"]), schedule.job)
    elif creating:
        bad("job", "required: the job request to run (as POST /jobs takes)")
    if creating and not schedule.name:
        job_name = schedule.job.get("name") if schedule.job else None
        schedule.name = job_name if isinstance(job_name, str) and _NAME.match(job_name) else "schedule"
    # when: cron or every, exactly one
    has_cron = data.get("cron") is not None
    has_every = data.get("every") is not None
    if has_cron and has_every:
        bad("cron", "give either cron or every, not both")
    if "timezone" in data:
        zone = data["timezone"]
        try:
            if not isinstance(zone, str) or not zone:
                raise ZoneInfoNotFoundError
            ZoneInfo(zone)
            schedule.timezone = zone
        except Exception:  # ZoneInfoNotFoundError, ValueError, and odd names zoneinfo chokes on
            bad("timezone", f"unknown time zone {zone!r}; use an IANA name such as UTC or Europe/Berlin")
    if has_cron:
        expr = data["cron"]
        if not isinstance(expr, str) or not _valid_cron(expr):
            bad("cron", f"not a cron expression: {expr!r} (five fields, e.g. '0 9 * * 1-5')")
        else:
            schedule.cron, schedule.every, schedule.every_text = expr, None, None
    if has_every:
        try:
            schedule.every = parse_every(data["every"])
            schedule.every_text = data["every"] if isinstance(data["every"], str) else None
            schedule.cron = None
        except ValueError as exc:
            bad("every", str(exc))
    if has_cron and schedule.cron is not None and not errors and schedule.next_due(time.time()) is None:
        if schedule.end is None or schedule.end > time.time():
            bad("cron", f"the cron expression {schedule.cron!r} is never due")
    if creating and not has_cron and not has_every:
        bad("cron", "give when it runs: cron (with timezone) or every")
    if "max_concurrent" in data:
        value = data["max_concurrent"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            bad("max_concurrent", "a whole number from 1 to 1000")
        else:
            schedule.max_concurrent = value
    for key, choices in (("overlap", OVERLAPS), ("catch_up", CATCH_UPS), ("notify_on", NOTIFY_ON)):
        if key in data:
            if data[key] not in choices:
                bad(key, f"one of {', '.join(choices)}")
            else:
                setattr(schedule, key, data[key])
    if "paused" in data:
        if not isinstance(data["paused"], bool):
            bad("paused", "true or false")
        else:
            schedule.paused = data["paused"]
    for key in ("start", "end"):
        if key in data:
            if data[key] is None:
                setattr(schedule, key, None)
                continue
            try:
                setattr(schedule, key, parse_time(data[key], key))
            except ValueError as exc:
                bad(key, str(exc))
    if schedule.start is not None and schedule.end is not None and schedule.end <= schedule.start:
        bad("end", "must be after start")
    if "keep_last" in data:
        value = data["keep_last"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            bad("keep_last", "a whole number of runs, at least 1 (or null: keep every run)")
        else:
            schedule.keep_last = value
    if "webhook" in data:
        _apply_webhook(schedule, data["webhook"], bad)
    if "email" in data:
        emails = data["email"]
        if isinstance(emails, str):
            emails = [emails]
        if not isinstance(emails, list) or not all(isinstance(e, str) and _EMAIL.match(e) for e in emails):
            bad("email", "a list of e-mail addresses (name@example.org)")
        elif len(emails) > 20:
            bad("email", "at most 20 addresses")
        else:
            schedule.email = list(emails)
    if errors:
        raise ValidationError(
            "the schedule is not valid: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors
        )


def _keep_hidden(new: Any, old: Any) -> Any:
    """``new`` (a job request) with every value that is the shown form of the value at the same place
    in ``old`` (``***``, or a text whose secrets :func:`~.secrets.redact_text` hides) replaced by the
    stored one, so that a request sent back as shown keeps its secrets."""
    if isinstance(new, str) and isinstance(old, str) and new != old:
        return old if new == REDACTED or new == redact_text(old) else new
    if new == REDACTED and old not in (None, REDACTED):
        return copy.deepcopy(old)
    if isinstance(new, dict) and isinstance(old, dict):
        return {key: _keep_hidden(value, old.get(key)) for key, value in new.items()}
    if isinstance(new, list) and isinstance(old, list):
        return [_keep_hidden(a, old[i] if i < len(old) else None) for i, a in enumerate(new)]
    return new


def _valid_cron(expr: str) -> bool:
    """True for a cron expression croniter reads (five or six fields, no NUL)."""
    if "\0" in expr or len(expr) > 200:
        return False
    try:
        return bool(croniter.is_valid(expr))
    except Exception:
        return False


def _origin(url: str) -> tuple[str, str, int | None]:
    """Where a URL sends to: its scheme, host and port (``("", "", None)`` if it cannot be read)."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", "", None


def _apply_webhook(schedule: Schedule, hook: Any, bad: Any) -> None:
    if hook is None:
        schedule.webhook = None
        return
    if isinstance(hook, str):
        hook = {"url": hook}
    if not isinstance(hook, dict):
        bad("webhook", 'an object {"url": "https://...", "token": "...", "headers": {...}} or a URL')
        return
    for key in hook:
        if key not in WEBHOOK_FIELDS:
            bad(f"webhook.{key}", f"unknown field; known fields are {', '.join(WEBHOOK_FIELDS)}")
    url = hook.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url) or not _origin(url)[1]:
        bad("webhook.url", "an http:// or https:// URL with a host (and a port from 1 to 65535, if any)")
        return
    old = schedule.webhook or {}
    if old.get("url") and url == _hide_url_secret(str(old["url"])):  # sent back as shown: keep the stored one
        url = str(old["url"])
    moved = bool(old.get("url")) and _origin(url) != _origin(str(old["url"]))
    kept = "a stored secret is never sent to a new address: give it again with the new URL"
    token = hook.get("token")
    if token == REDACTED:  # sent back as shown: keep the stored one
        token = old.get("token")
        if token and moved:
            bad("webhook.token", f"the webhook's address changed; {kept}")
            return
    if token is not None and (not isinstance(token, str) or not token):
        bad("webhook.token", "a non-empty string (sent as Authorization: Bearer <token>)")
        return
    headers = hook.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and re.match(r"^[A-Za-z0-9-]{1,64}$", k) and isinstance(v, str) and _HEADER_VALUE.match(v)
        for k, v in headers.items()
    ):
        bad("webhook.headers", "an object of header names and values of printable ASCII text (no control characters)")
        return
    framing = sorted(k for k in headers if k.lower() in FRAMING_HEADERS)
    if framing:
        bad("webhook.headers", f"{', '.join(framing)} cannot be set: the server sets it for each delivery")
        return
    old_headers = old.get("headers") or {}
    if moved and any(v == REDACTED and old_headers.get(k) for k, v in headers.items()):
        bad("webhook.headers", f"the webhook's address changed; {kept}")
        return
    headers = {k: (old_headers.get(k, "") if v == REDACTED else v) for k, v in headers.items()}
    out: dict[str, Any] = {"url": url}
    if token:
        out["token"] = token
    if headers:
        out["headers"] = headers
    schedule.webhook = out


@dataclass(frozen=True)
class DuePlan:
    """What one pass does with the due times it found: ``run`` them, record the ``missed`` ones."""

    run: list[float]
    missed: list[float]


def plan_due(due: list[float], catch_up: str, started_at: float) -> DuePlan:
    """Split due times found in one pass into those to run and those missed.

    Due times at or after ``started_at`` (when this server's runner started) came while a server
    ran: they all run. Those before it passed while no server ran (a stop, a crash): ``catch_up``
    decides: ``none`` runs none of them, ``last`` the newest one, ``all`` every one.
    """
    late = [d for d in due if d < started_at]
    on_time = [d for d in due if d >= started_at]
    if catch_up == "all":
        return DuePlan(run=late + on_time, missed=[])
    if catch_up == "last" and late:
        return DuePlan(run=late[-1:] + on_time, missed=late[:-1])
    return DuePlan(run=on_time, missed=late)


__all__ = [
    "CATCH_UPS",
    "NOTIFY_ON",
    "OVERLAPS",
    "DuePlan",
    "Schedule",
    "apply_update",
    "new_schedule_id",
    "parse_every",
    "parse_time",
    "plan_due",
    "schedule_from_request",
]
