"""The base handler of the swm API: authentication, the manager, JSON bodies, and error mapping.

Every error an swm handler answers goes through :meth:`SwmHandler.write_error`: a
:class:`~swm_jupyter.core.errors.SwmError` becomes its ``.status`` with ``{"message", "errors"}``;
an HTTP error keeps its status; anything else is logged with its traceback and answered ``500``
with a generic message. No traceback ever reaches a client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http.client import responses
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..auth import owner_name, server_user_name
from ..core import secrets
from ..core.errors import SiteUnavailable, SwmError, ValidationError
from ..core.manager import WorkloadManager
from ..core.model import Job
from .access import visible_job, visible_owner

AUTH_RESOURCE = "swm"
API_PREFIX = "/swm/api/v1"
#: Media type of a JSON body.
JSON_TYPES = ("application/json",)
#: Media types a raw job script may be sent as.
SCRIPT_TYPES = ("text/x-shellscript", "text/x-sh", "application/x-sh", "text/plain")
#: Deepest nesting of arrays and objects a JSON body may have (a job spec needs a handful).
MAX_JSON_DEPTH = 64


class PayloadTooLarge(SwmError):
    """The request body is over ``SwmApp.max_body_bytes``."""

    status = 413


def redact(value: Any, key: str = "", extra_patterns: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with secrets hidden (see :func:`swm_jupyter.core.secrets.redact`)."""
    return secrets.redact(value, extra_patterns, key)


class UnsupportedMediaType(SwmError):
    """The request body's ``Content-Type`` is missing or not one the route reads (answered ``415``)."""

    status = 415


def json_depth(data: Any) -> int:
    """How deeply arrays and objects nest in ``data`` (``0`` for a scalar), counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((item, depth + 1) for item in value)
    return deepest


def load_json(text: str | bytes) -> Any:
    """Parse JSON text from a client. Raises :class:`ValidationError` (400) saying what is wrong.

    Refuses invalid JSON, nesting deeper than :data:`MAX_JSON_DEPTH`, numbers out of range (``1e999``)
    and text that is not valid Unicode (an unpaired ``\\u`` surrogate), so that nothing later fails on it.
    """
    try:
        data = json.loads(text)
    except RecursionError:
        data, error = None, f"nested deeper than {MAX_JSON_DEPTH} levels"
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(
            f"the body is not valid JSON: {exc}", [{"field": "", "message": f"invalid JSON: {exc}"}]
        ) from None
    else:
        error = f"nested deeper than {MAX_JSON_DEPTH} levels" if json_depth(data) > MAX_JSON_DEPTH else ""
    if error:
        raise ValidationError(f"the body's JSON is {error}", [{"field": "", "message": error}])
    try:
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            "the body has text that is not valid Unicode (an unpaired \\u surrogate escape)",
            [{"field": "", "message": "send valid UTF-8 text"}],
        ) from None
    except ValueError:  # out-of-range numbers such as 1e999 read as infinity
        raise ValidationError(
            "the body has a number out of range", [{"field": "", "message": "numbers must be finite"}]
        ) from None
    return data


def public_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A job's short form (lists, events) with secrets in its ``state_details`` hidden."""
    details = summary.get("state_details")
    if isinstance(details, str) and details:
        hidden = secrets.redact_text(details)
        if hidden != details:
            return {**summary, "state_details": hidden}
    return summary


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event for clients: a job event's summary as :func:`public_summary` shows it."""
    job = event.get("job")
    if isinstance(job, dict):
        shown = public_summary(job)
        if shown is not job:
            return {**event, "job": shown}
    return event


def public_job(job_dict: dict[str, Any], extra_patterns: Iterable[str] = ()) -> dict[str, Any]:
    """A job's JSON form for clients: secrets in its spec (environment, site extras, parameters,
    URL passwords in any text) and in its state details are hidden.
    """
    out = dict(job_dict)
    if isinstance(out.get("spec"), dict):
        out["spec"] = secrets.redact(out["spec"], extra_patterns)
    if isinstance(out.get("state_details"), str):
        out["state_details"] = secrets.redact_text(out["state_details"])
    if isinstance(out.get("history"), list):
        out["history"] = secrets.redact(out["history"])
    return out


class SwmHandler(APIHandler):
    """Base of every swm REST handler: JSON in and out, the manager at hand, errors in one place."""

    auth_resource = AUTH_RESOURCE

    @property
    def swm_app(self) -> Any:
        """The :class:`~swm_jupyter.app.SwmApp` serving this request."""
        return self.settings["swm_app"]

    @property
    def manager(self) -> WorkloadManager:
        """The running workload manager. Raises :class:`SiteUnavailable` (503) if it is not running."""
        app = self.settings.get("swm_app")
        manager: WorkloadManager | None = self.settings.get("swm_manager")
        error = getattr(app, "start_error", None)
        if manager is None or error:
            raise SiteUnavailable(error or "the workload manager is not running")
        return manager

    @property
    def secret_patterns(self) -> list[str]:
        """The deployment's own secret name patterns (``SwmApp.secret_patterns``), beside the defaults."""
        manager = self.settings.get("swm_manager")
        return list(getattr(manager, "secret_patterns", []) or [])

    def public_job(self, job_dict: dict[str, Any]) -> dict[str, Any]:
        """:func:`public_job` with this deployment's secret patterns."""
        return public_job(job_dict, self.secret_patterns)

    def redact(self, value: Any) -> Any:
        """:func:`redact` with this deployment's secret patterns."""
        return redact(value, extra_patterns=self.secret_patterns)

    @property
    def owner(self) -> str:
        """The owner name of the authenticated user (recorded on the jobs they submit): see :func:`owner_name`."""
        return request_owner(self)

    @property
    def visible_owner(self) -> str | None:
        """The owner whose jobs the caller may see, or None for every job (see :mod:`.access`)."""
        return visible_owner(self.current_user)

    def visible_job(self, job_id: str) -> Job:
        """The job with that id if the caller may see it. Raises :class:`JobNotFound` (404) otherwise."""
        return visible_job(self.current_user, self.manager.get(job_id), job_id)

    # -- request helpers ---------------------------------------------------------------------------

    def check_body_size(self) -> None:
        """Raise :class:`PayloadTooLarge` (413) if the body is over ``SwmApp.max_body_bytes``."""
        limit = int(getattr(self.settings.get("swm_app"), "max_body_bytes", 16 << 20))
        if len(self.request.body) > limit:
            raise PayloadTooLarge(
                f"the request body has {len(self.request.body)} bytes, more than the limit of {limit} "
                "(SwmApp.max_body_bytes); put large inputs in files and list them in input_files",
                [{"field": "", "message": f"at most {limit} bytes"}],
            )

    def media_type(self) -> str:
        """The request's ``Content-Type`` without parameters, lower-case (``""`` when there is none)."""
        return self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def require_media_type(self, accepted: tuple[str, ...]) -> str:
        """The request's media type if it is one of ``accepted``; else :class:`UnsupportedMediaType` (415).

        A ``charset`` parameter is allowed when it says UTF-8 (or its subset US-ASCII).
        """
        header = self.request.headers.get("Content-Type", "")
        media_type = self.media_type()
        params = dict(
            (key.strip().lower(), value.strip().strip('"').lower())
            for key, _, value in (part.partition("=") for part in header.split(";")[1:])
        )
        charset = params.get("charset", "utf-8")
        if media_type in accepted and charset in ("utf-8", "utf8", "us-ascii"):
            return media_type
        got = f"Content-Type {header.strip()!r}" if header.strip() else "no Content-Type"
        hint = "charset=utf-8" if media_type in accepted else ", ".join(accepted)
        raise UnsupportedMediaType(
            f"cannot read a body sent with {got}; send one of: {', '.join(accepted)} (UTF-8)",
            [{"field": "Content-Type", "message": f"use {hint}"}],
        )

    def json_body(self) -> Any:
        """The request body parsed as JSON (``Content-Type: application/json`` required).

        Raises :class:`UnsupportedMediaType` (415) for another content type, :class:`PayloadTooLarge`
        (413) and :class:`ValidationError` (400) for a body that is empty or not usable JSON.
        """
        self.require_media_type(JSON_TYPES)
        self.check_body_size()
        if not self.request.body.strip():
            raise ValidationError(
                "the request has no body; send a JSON object", [{"field": "", "message": "expected JSON"}]
            )
        return load_json(self.request.body)

    def int_argument(self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        """A whole-number query argument within bounds. Raises :class:`ValidationError` (400)."""
        text = self.get_argument(name, None)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ValidationError(
                f"{name} must be a whole number {bounds} (got {text!r})",
                [{"field": name, "message": f"a whole number {bounds}"}],
            )
        return value

    def bool_argument(self, name: str, default: bool = False) -> bool:
        """A yes/no query argument (``1``, ``true``, ``yes`` / ``0``, ``false``, ``no``)."""
        text = self.get_argument(name, None)
        if text is None or text == "":
            return default
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValidationError(
            f"{name} must be true or false (got {text!r})", [{"field": name, "message": "true or false"}]
        )

    def write_json(self, data: Any, status: int = 200) -> None:
        """Answer ``data`` as JSON with ``status``."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    # -- errors ------------------------------------------------------------------------------------

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log expected errors in one line; unexpected ones with their traceback."""
        if isinstance(value, SwmError):
            self.log.info("swm: %s %s -> %d: %s", self.request.method, self.request.path, value.status, value.message)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer every error as ``{"message", "errors"}`` with the status its class maps to."""
        status, reply = error_reply(status_code, kwargs.get("exc_info", (None, None, None))[1])
        self.set_status(status)
        self.clear_header("Content-Disposition")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(reply))


def request_owner(handler: Any) -> str:
    """The owner name of a request's authenticated user (REST handlers and the events websocket alike)."""
    app = handler.settings.get("swm_app")
    server_owner = str(getattr(app, "server_owner", "") or "") or server_user_name()
    return owner_name(handler.current_user, handler.identity_provider, server_owner)


def error_reply(status_code: int, exc: BaseException | None) -> tuple[int, dict[str, Any]]:
    """The one mapping of errors to answers: ``(status, {"message", "errors"})``, never a traceback."""
    errors: list[dict[str, str]] = []
    if isinstance(exc, SwmError):
        status_code = exc.status
        message = exc.message
        errors = exc.errors
    elif isinstance(exc, web.HTTPError):
        status_code = exc.status_code
        try:
            message = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message or ""
        except (TypeError, ValueError):
            message = exc.log_message or ""
        message = message or exc.reason or responses.get(status_code, "error")
    elif exc is not None:
        status_code = 500
        message = "internal error in the swm API; the server log has the details"
    else:
        message = responses.get(status_code, "error")
    return status_code, {"message": message, "errors": errors}
