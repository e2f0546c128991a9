"""The base handler of the swm API: authentication, the manager, JSON bodies, and error mapping.

Every error an swm handler answers goes through :meth:`SwmHandler.write_error`: a
:class:`~swm_jupyter.core.errors.SwmError` becomes its ``.status`` with ``{"message", "errors"}``;
an HTTP error keeps its status; anything else is logged with its traceback and answered ``500``
with a generic message. No traceback ever reaches a client.
"""

from __future__ import annotations

import json
import re
from http.client import responses
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..core.errors import SiteUnavailable, SwmError, ValidationError
from ..core.manager import WorkloadManager
from ..core.model import Job
from .access import visible_job, visible_owner

AUTH_RESOURCE = "swm"
API_PREFIX = "/swm/api/v1"

#: Names whose values are never shown (site options, environment variables of a job).
_SECRET_NAME = re.compile(r"pass(word|phrase)?|secret|token|credential|private|api[_-]?key|(^|_)key(_|$)|auth", re.I)
REDACTED = "***"


class PayloadTooLarge(SwmError):
    """The request body is over ``SwmApp.max_body_bytes``."""

    status = 413


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with every entry whose name looks secret replaced by ``"***"``."""
    if key and _SECRET_NAME.search(key) and value not in (None, "", [], {}) and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def public_job(job_dict: dict[str, Any]) -> dict[str, Any]:
    """A job's JSON form for clients: environment values with secret-looking names are hidden."""
    spec = job_dict.get("spec")
    if isinstance(spec, dict) and spec.get("env"):
        spec = dict(spec)
        spec["env"] = {k: (REDACTED if _SECRET_NAME.search(k) else v) for k, v in spec["env"].items()}
        job_dict = {**job_dict, "spec": spec}
    return job_dict


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
    def owner(self) -> str:
        """The user name of the authenticated user (recorded as the owner of jobs they submit)."""
        user = self.current_user
        return str(getattr(user, "username", "") or "")

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

    def json_body(self) -> Any:
        """The request body parsed as JSON. Raises :class:`ValidationError` (400) if it is not JSON."""
        self.check_body_size()
        if not self.request.body.strip():
            raise ValidationError(
                "the request has no body; send a JSON object", [{"field": "", "message": "expected JSON"}]
            )
        try:
            data = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(
                f"the body is not valid JSON: {exc}", [{"field": "", "message": f"invalid JSON: {exc}"}]
            ) from None
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
