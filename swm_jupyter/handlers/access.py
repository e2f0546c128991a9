"""Who may see which job: one rule for every handler, the events websocket and the Sky Port routes.

A user sees every job unless their identity says otherwise: a client-certificate user (the Sky Port
``/user/...`` routes) and a hub user without the ``custom:swm:admin`` scope (service mode, see
:mod:`swm_jupyter.hub.identity`) see only the jobs they own. Standalone, the server's own user
sees everything, as before. A job another user owns answers ``404``, exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from ..auth import is_certificate_user
from ..core.errors import JobNotFound
from ..core.model import Job


def visible_owner(user: Any) -> str | None:
    """The owner whose jobs ``user`` may see, or None when the user may see every job."""
    if is_certificate_user(user) or getattr(user, "swm_sees_all", None) is False:
        return str(getattr(user, "username", "") or "")
    return None


def may_see(user: Any, job: Job | dict[str, Any]) -> bool:
    """True if ``user`` may see and act on ``job`` (a :class:`Job` or a job's JSON form)."""
    owner = visible_owner(user)
    if owner is None:
        return True
    job_owner = job.get("owner") if isinstance(job, dict) else job.owner
    return job_owner == owner


def visible_job(user: Any, job: Job, job_id: str) -> Job:
    """``job`` if ``user`` may see it. Raises :class:`JobNotFound` (404) otherwise, as for a missing job."""
    if not may_see(user, job):
        raise JobNotFound(f"no job {job_id!r}; list jobs with `swm jobs` or GET /swm/api/v1/jobs")
    return job


__all__ = ["may_see", "visible_job", "visible_owner"]
