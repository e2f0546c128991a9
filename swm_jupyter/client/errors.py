"""The one error type of the client side (Python client, CLI, magics, widgets) and its few kinds.

Every failure to talk to the server is a :class:`SwmError`: ``message`` is what to tell the user
(the server's own message for a refusal), ``status`` the HTTP status (0 when no answer came) and
``errors`` the per-field list of a ``400``. The kinds say what happened, for code that must tell
them apart (the CLI's exit statuses): :class:`JobNotFoundError` (``404``), :class:`ConflictError`
(``409``) and :class:`ServerNotFound` (no server found or reached, or what answered is not the swm API).
"""

from __future__ import annotations

#: Statuses after which a request sent with an ``Idempotency-Key`` is tried again (0: no answer).
RETRY_STATUSES = (0, 502, 503, 504)


class SwmError(Exception):
    """An error answered by the server, or the server could not be reached.

    ``str(error)`` is the message with the HTTP status, e.g. ``job 1a2b is already ended (HTTP 409)``.
    """

    def __init__(self, message: str, status: int = 0, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or []

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message

    @property
    def retryable(self) -> bool:
        """True if the request got no answer, or one saying the server (or a proxy) was not ready yet."""
        return self.status in RETRY_STATUSES


class JobNotFoundError(SwmError):
    """``404``: no such job, site or file."""


class ConflictError(SwmError):
    """``409``: the job is in a state that does not allow this (e.g. canceling a finished job)."""


class ServerNotFound(SwmError):
    """No swm server could be found or reached, or what answered is not the swm API; the message says what to do."""

    def __str__(self) -> str:
        return self.message  # it names what answered, status included


def error_for(status: int, message: str, errors: list[dict[str, str]] | None = None) -> SwmError:
    """The :class:`SwmError` kind for a refusal the server answered with ``status``."""
    kind = {404: JobNotFoundError, 409: ConflictError}.get(status, SwmError)
    return kind(message, status, errors)


__all__ = ["RETRY_STATUSES", "ConflictError", "JobNotFoundError", "ServerNotFound", "SwmError", "error_for"]
