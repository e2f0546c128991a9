"""REST handlers of jobs: submit, list, show, cancel, hold/release/requeue, logs and files."""

from __future__ import annotations

import asyncio
import mimetypes
import os
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import JobNotFound, SwmError, ValidationError
from ..core.states import FAILED, JobState
from ..core.store import SORTS, JobQuery
from .access import visible_job
from .base import API_PREFIX, JSON_TYPES, SCRIPT_TYPES, SwmHandler, public_summary

ACTIONS = ("hold", "release", "requeue", "cancel")
MAX_PAGE = 1000
MAX_OFFSET = 1_000_000_000
MAX_LOG_CHUNK = 16 << 20
#: Largest log offset accepted (1 TiB): file systems refuse to seek much further.
MAX_LOG_OFFSET = 1 << 40
#: Content types a job's file is served as; anything else is sent as bytes to download.
SAFE_TYPES = {
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "application/json",
    "text/plain",
    "text/csv",
}


def parse_states(values: list[str]) -> tuple[tuple[JobState, ...], bool]:
    """Read ``state`` arguments (names or letters, repeated or comma-separated, and ``failed``): the states
    and whether failed jobs are asked for. Raises 400."""
    states: list[JobState] = []
    failed = False
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            if part.strip().lower() == FAILED:
                failed = True
                continue
            try:
                state = JobState.parse(part)
            except ValueError as exc:
                message = f"{exc}, or {FAILED} (ended in error, or finished with a non-zero exit)"
                raise ValidationError(message, [{"field": "state", "message": message}]) from None
            if state not in states:
                states.append(state)
    return tuple(states), failed


def parse_since(text: str | None) -> float | None:
    """Read a time as epoch seconds or ISO 8601 (naive times are local). Raises 400."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        message = "give epoch seconds or an ISO time such as 2025-11-25T10:00:00"
        raise ValidationError(
            f"cannot read since={text!r}: {message}", [{"field": "since", "message": message}]
        ) from None


FILTER_TEXTS = ("site", "name", "array_parent", "owner")


def _is_text(value: Any) -> bool:
    """True for a string that is valid UTF-8 (no lone surrogates, which the store cannot hold)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def job_query(filters: dict[str, Any], **paging: Any) -> JobQuery:
    """A :class:`JobQuery` from filter values (``state``, ``site``, ``name``, ``since``, ...). Raises 400."""
    state = filters.get("state")
    state_values = state if isinstance(state, list) else [state] if state is not None else []
    for key, value in [*(("state", v) for v in state_values), *((k, filters.get(k)) for k in FILTER_TEXTS)]:
        if value is not None and not _is_text(value):
            raise ValidationError(f"{key} must be a string", [{"field": key, "message": "a string (UTF-8 text)"}])
    states, failed = parse_states(state_values)
    since = filters.get("since")
    if since is not None and (isinstance(since, bool) or not (isinstance(since, int | float) or _is_text(since))):
        raise ValidationError("since must be epoch seconds or an ISO time", [{"field": "since", "message": "a time"}])
    return JobQuery(
        states=states,
        site=filters.get("site") or None,
        name=filters.get("name") or None,
        since=parse_since(str(since)) if since is not None else None,
        array_parent=filters.get("array_parent") or None,
        owner=filters.get("owner") or None,
        top_level=bool(filters.get("top_level", False)),
        failed=failed,
        **paging,
    )


class JobsHandler(SwmHandler):
    """``GET /jobs`` lists jobs; ``POST /jobs`` submits one job, a script, or a list of jobs."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """A page of jobs with the total, counts per state and the next page's cursor."""
        sort = self.get_argument("sort", "-submit_time") or "-submit_time"
        if sort not in SORTS:
            raise ValidationError(
                f"cannot sort by {sort!r}", [{"field": "sort", "message": f"use one of {', '.join(SORTS)}"}]
            )
        filters: dict[str, Any] = {
            "state": self.get_arguments("state"),
            "site": self.get_argument("site", None),
            "name": self.get_argument("name", None),
            "since": self.get_argument("since", None),
            "array_parent": self.get_argument("array_parent", None),
            "owner": self.get_argument("owner", None),
            "top_level": self.bool_argument("top_level", False),
        }
        own = self.visible_owner
        if own is not None:
            if filters["owner"] not in (None, "", own):
                self.write_json({"jobs": [], "total": 0, "counts": {}, "next_cursor": None})
                return
            filters["owner"] = own
        query = job_query(
            filters,
            sort=sort,
            limit=self.int_argument("limit", 100, minimum=1, maximum=MAX_PAGE),
            offset=self.int_argument("offset", 0, minimum=0, maximum=MAX_OFFSET),
            cursor=self.get_argument("cursor", None) or None,
        )
        page = await self.manager.query_jobs(query)
        self.write_json(
            {
                "jobs": [public_summary(job.summary()) for job in page.jobs],
                "total": page.total,
                "counts": page.counts,
                "next_cursor": page.next_cursor,
            }
        )

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Submit: JSON object or list, ``{"script": ...}``, or a raw script (``text/x-shellscript``)."""
        manager = self.manager
        content_type = self.require_media_type(JSON_TYPES + SCRIPT_TYPES)
        dry_run = self.bool_argument("dry_run", False)
        if content_type in SCRIPT_TYPES:
            self.check_body_size()
            try:
                script = self.request.body.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError(
                    "the script is not UTF-8 text", [{"field": "script", "message": "send UTF-8 text"}]
                ) from None
            request: Any = {"script": script}
            for key in ("site", "name"):
                value = self.get_argument(key, None)
                if value:
                    request[key] = value
        else:
            request = self.json_body()
        self.check_dependencies(request if isinstance(request, list) else [request])
        if dry_run:
            if not isinstance(request, dict):
                raise ValidationError(
                    "a dry run checks one job: send a JSON object", [{"field": "", "message": "expected an object"}]
                )
            result = manager.dry_run(request, owner=self.owner)
            self.write_json(
                {
                    "job": self.public_job(result["job"]),
                    "cost_estimate": result["cost_estimate"],
                    "tasks": result.get("tasks", 0),
                    "warnings": result["job"].get("warnings", []),
                }
            )
            return
        if isinstance(request, list):
            if not request:
                raise ValidationError("the list of jobs is empty", [{"field": "", "message": "give at least one job"}])
        elif not isinstance(request, dict):
            raise ValidationError(
                "a job must be a JSON object (or a list of them)", [{"field": "", "message": "expected an object"}]
            )
        key = self.request.headers.get("Idempotency-Key")
        if key is not None:  # a retry of a submission already stored gets the same jobs, as the first time
            jobs, replayed = await manager.submit_once(key, request, owner=self.owner)
            if replayed:
                self.set_header("Idempotent-Replayed", "true")
        elif isinstance(request, list):
            jobs = await manager.submit_many(request, owner=self.owner)
        else:
            jobs = [await manager.submit(request, owner=self.owner)]
        if isinstance(request, list):
            self.write_json({"jobs": [self.public_job(job.to_dict()) for job in jobs]}, 201)
            return
        self.set_header("Location", f"{self.base_url.rstrip('/')}{API_PREFIX}/jobs/{jobs[0].id}")
        self.write_json(self.public_job(jobs[0].to_dict()), 201)


    def check_dependencies(self, requests: list[Any]) -> None:
        """Refuse a dependency on a job the caller may not see, exactly as one on a missing job (400)."""
        if self.visible_owner is None:
            return
        for request in requests:
            if not isinstance(request, dict) or not (request.get("depends_on") or request.get("script")):
                continue
            try:
                spec = self.manager.prepare(request, owner=self.owner)[0].spec
            except SwmError:
                continue  # the submission itself reports what is wrong
            for dep in spec.depends_on:
                try:
                    visible_job(self.current_user, self.manager.get(dep.job_id), dep.job_id)
                except JobNotFound:
                    raise ValidationError(
                        f"the job cannot run: depends_on: no job {dep.job_id!r} to depend on",
                        [{"field": "depends_on", "message": f"no job {dep.job_id!r} to depend on"}],
                    ) from None


class JobHandler(SwmHandler):
    """``GET /jobs/{id}`` shows a job; ``DELETE /jobs/{id}`` cancels it (``202``)."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """The full job: spec, history and folder."""
        self.write_json(self.public_job(self.visible_job(job_id).to_dict()))

    @web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        """Ask for the job to be canceled; ``409`` if it already ended. With ``purge=1``: delete a final
        job's record and folder (``{"deleted": id, "jobs": count}``); ``409`` if it has not ended."""
        job = self.visible_job(job_id)
        if self.bool_argument("purge", False):
            count = await self.manager.purge(job.id)
            self.write_json({"deleted": job.id, "jobs": count})
            return
        job = await self.manager.cancel(job.id)
        self.write_json(self.public_job(job.to_dict()), 202)


class JobActionHandler(SwmHandler):
    """``POST /jobs/{id}/{hold,release,requeue,cancel}``."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str, action: str) -> None:
        """Apply the action: ``200`` once done, ``202`` while the site still carries it out; ``409`` if
        the job's state does not allow it (nothing changed), ``503`` if its site's gate did not load.
        """
        job = await getattr(self.manager, action)(self.visible_job(job_id).id)
        self.write_json(self.public_job(job.to_dict()), 202 if job.wanted else 200)


class BulkActionHandler(SwmHandler):
    """``POST /jobs/actions/{action}`` with ``{"ids": [...]}`` or ``{"filter": {...}}``."""

    @web.authenticated
    @authorized
    async def post(self, action: str) -> None:
        """Apply the action to each job; report which succeeded and why the others failed."""
        manager = self.manager
        body = self.json_body()
        if not isinstance(body, dict) or ("ids" in body) == ("filter" in body) or set(body) - {"ids", "filter"}:
            raise ValidationError(
                'give either {"ids": [...]} or {"filter": {"state": ..., "site": ..., "name": ...}}',
                [{"field": "", "message": "exactly one of ids or filter"}],
            )
        if "ids" in body:
            ids = body["ids"]
            if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
                raise ValidationError(
                    "ids must be a list of job ids", [{"field": "ids", "message": "a list of strings"}]
                )
        else:
            ids = self._ids_matching(body["filter"])
        done: list[str] = []
        failed: list[dict[str, str]] = []
        for job_id in dict.fromkeys(ids):
            try:
                job = await getattr(manager, action)(self.visible_job(job_id).id)
            except SwmError as exc:
                failed.append({"id": job_id, "message": exc.message})
            else:
                done.append(job.id)
        self.write_json({"done": done, "failed": failed})

    def _ids_matching(self, filters: Any) -> list[str]:
        if not isinstance(filters, dict):
            raise ValidationError("filter must be an object", [{"field": "filter", "message": "an object"}])
        known = {"state", "site", "name", "since", "array_parent", "owner"}
        unknown = sorted(set(filters) - known)
        if unknown:
            raise ValidationError(
                f"unknown filter {', '.join(unknown)}",
                [{"field": f"filter.{k}", "message": f"known filters: {', '.join(sorted(known))}"} for k in unknown],
            )
        own = self.visible_owner
        if own is not None:
            if filters.get("owner") not in (None, "", own):
                return []
            filters = {**filters, "owner": own}
        query = job_query({"top_level": "array_parent" not in filters, **filters}, limit=MAX_PAGE)
        ids: list[str] = []
        while True:
            page = self.manager.list_jobs(query)
            ids.extend(job.id for job in page.jobs)
            if not page.next_cursor:
                return ids
            query.cursor = page.next_cursor


class LogHandler(SwmHandler):
    """``GET /jobs/{id}/log?stream=stdout&offset=N&limit=M``: bytes of a job's output from an offset."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Answer the bytes; ``X-Log-Offset`` is where the next read starts, ``X-Job-State`` the state."""
        stream = self.get_argument("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            raise ValidationError(
                f"stream must be stdout or stderr (got {stream!r})",
                [{"field": "stream", "message": "stdout or stderr"}],
            )
        offset = self.int_argument("offset", 0, minimum=0, maximum=MAX_LOG_OFFSET)
        limit = self.int_argument("limit", 1 << 20, minimum=1, maximum=MAX_LOG_CHUNK)
        manager = self.manager
        job = self.visible_job(job_id)
        data = await manager.read_output(job.id, stream, offset, limit)
        self.set_header("X-Log-Offset", str(offset + len(data)))
        self.set_header("X-Job-State", job.state.value)
        self.set_header("Cache-Control", "no-store")
        self.finish(data, set_content_type="text/plain; charset=utf-8")


class FilesHandler(SwmHandler):
    """``GET /jobs/{id}/files``: the files of the job folder."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """``{"files": [{"path", "size", "mtime"}]}``."""
        self.write_json({"files": self.manager.list_files(self.visible_job(job_id).id)})


class FileHandler(SwmHandler):
    """``GET /jobs/{id}/files/{path}``: one regular file of the job folder (paths outside it and
    symbolic links are refused)."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str, path: str) -> None:
        """Stream the file; types that a browser could run are sent as a download."""
        handle = await self.manager.open_file(self.visible_job(job_id).id, path)
        try:
            name = PurePosixPath(path).name
            kind, _ = mimetypes.guess_type(name)
            if kind not in SAFE_TYPES:
                kind = "text/plain" if kind and kind.startswith("text/") else "application/octet-stream"
            content_type = kind + ("; charset=utf-8" if kind.startswith("text/") else "")
            self.set_header("Content-Type", content_type)
            self.set_header("X-Content-Type-Options", "nosniff")
            if kind == "application/octet-stream":
                self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
            self.set_header("Content-Length", str(os.fstat(handle.fileno()).st_size))
            while chunk := await asyncio.to_thread(handle.read, 1 << 20):
                self.write(chunk)
                await self.flush()
        finally:
            handle.close()
        self.finish(set_content_type=content_type)

    @property
    def content_security_policy(self) -> str:
        """Files from jobs are sandboxed: nothing in them runs with the server's origin."""
        return super().content_security_policy + "; sandbox"
