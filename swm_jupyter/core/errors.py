"""Domain errors of the core; the REST layer maps each to one HTTP status in one place."""

from __future__ import annotations


class SwmError(Exception):
    """Base class of every error the core raises on purpose."""

    status = 500

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class ValidationError(SwmError):
    """Bad input: ``errors`` holds one ``{"field", "message"}`` entry per problem."""

    status = 400


class JobNotFound(SwmError):
    """No job with that id exists."""

    status = 404


class SiteNotFound(SwmError):
    """No site with that name is configured."""

    status = 404


class InvalidTransition(SwmError):
    """The requested state change is not allowed from the job's current state."""

    status = 409


class LimitExceeded(SwmError):
    """A per-user limit refuses the request (e.g. ``max_queued_per_user``); the message names it."""

    status = 429


class IdempotencyKeyReused(SwmError):
    """An ``Idempotency-Key`` already used for a different request."""

    status = 422


class SiteUnavailable(SwmError):
    """The site's gate cannot be loaded or reached right now."""

    status = 503


class StoreLocked(SwmError):
    """Another workload manager already drives this store."""

    status = 503


class StoreFull(SwmError):
    """The job store cannot be written: its file system has no space left.

    Nothing is lost: the manager keeps its unwritten changes and writes them once there is space.
    """

    status = 507


class GateError(SwmError):
    """A gate failed to do what it was asked (the message says what the site answered)."""

    status = 502


class PathNotAllowed(SwmError):
    """A user-supplied path would leave the folder it must stay in."""

    status = 400
