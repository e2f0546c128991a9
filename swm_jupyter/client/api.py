"""Sync and async clients of the REST API (``/swm/api/v1/``) and the ``Job`` handles they return.

Every call builds one request description (:class:`_Call`) in :class:`_Api`; :class:`Client`
runs it with ``httpx.Client`` and :class:`AsyncClient` with ``httpx.AsyncClient``, so the two
stay the same API. Errors answered by the server raise :class:`SwmError` with its message.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from . import render
from .events import EventStream

API_PATH = "/swm/api/v1"
#: Seconds to wait before each new try of a submission whose answer was lost (same Idempotency-Key).
SUBMIT_RETRY_DELAYS = (0.5, 1.0, 2.0)
#: Answers after which a submission is tried again: the server or a proxy in front was not ready.
RETRY_STATUSES = (502, 503, 504)
RESOURCE_KEYS = ("nodes", "cpus", "memory", "gpus", "walltime")


class SwmError(Exception):
    """An error answered by the server (or the server could not be reached).

    ``message`` is the server's message, ``status`` the HTTP status (0 when unreachable) and
    ``errors`` the per-field list of a ``400``.
    """

    def __init__(self, message: str, status: int = 0, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or []


class JobNotFoundError(SwmError):
    """``404``: no such job, site or file."""


class ConflictError(SwmError):
    """``409``: the job is in a state that does not allow this (e.g. canceling a finished job)."""


def _error_from(response: httpx.Response) -> SwmError:
    try:
        body = response.json()
        message = body.get("message") or response.reason_phrase
        errors = body.get("errors") or []
    except ValueError:
        message, errors = (response.text.strip()[:500] or response.reason_phrase), []
    cls = {404: JobNotFoundError, 409: ConflictError}.get(response.status_code, SwmError)
    return cls(f"{message} (HTTP {response.status_code})", response.status_code, errors)


def find_server() -> tuple[str, str | None]:
    """(base_url, token) of the server to talk to: ``SWM_URL``/``SWM_TOKEN``, else Jupyter's runtime files.

    Raises :class:`SwmError` when no server can be found.
    """
    from .connection import ServerNotFound
    from .connection import find_server as discover

    try:
        url, token = discover()
    except ServerNotFound as exc:
        raise SwmError(str(exc)) from None
    return url, token


def server_root_dir(base_url: str) -> str | None:
    """The ``root_dir`` of the running Jupyter server at ``base_url`` (from its runtime file), or None."""
    if os.environ.get("SWM_ROOT_DIR"):
        return os.environ["SWM_ROOT_DIR"]
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:  # pragma: no cover
        return None
    want = base_url.rstrip("/")
    for info in list_running_servers():
        if str(info.get("url", "")).rstrip("/") == want:
            return info.get("root_dir")
    return None


def build_spec(
    spec: Mapping[str, Any] | None = None,
    *,
    resources: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Merge a spec dict, keyword fields and resource shortcuts (``cpus=4``) into one request body.

    ``None`` values are dropped, so optional arguments can be passed through unconditionally.
    """
    body: dict[str, Any] = dict(spec or {})
    res: dict[str, Any] = dict(body.get("resources") or {})
    res.update({k: v for k, v in (resources or {}).items() if v is not None})
    for key in (*RESOURCE_KEYS, "mem"):
        value = fields.pop(key, None)
        if value is not None:
            res["memory" if key == "mem" else key] = value
    body.update({k: v for k, v in fields.items() if v is not None})
    if res:
        body["resources"] = res
    return body


@dataclass
class _Call:
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    params: Any = None
    json: Any = None
    content: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """Pauses before each new try: only a request with an ``Idempotency-Key`` may be sent again."""
        return SUBMIT_RETRY_DELAYS if "Idempotency-Key" in self.headers else ()

    def should_retry(self, response: httpx.Response | None) -> bool:
        """True if the request got no answer (``None``) or one that says to try again later."""
        return response is None or response.status_code in RETRY_STATUSES

    def request_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx``'s ``request`` (sync and async alike)."""
        return {"params": self.params, "json": self.json, "content": self.content, "headers": self.headers}

    def answer(self, response: httpx.Response) -> Any:
        """The parsed answer; an error status raises the server's message as an exception."""
        if response.status_code >= 400:
            raise _error_from(response)
        return self.parse(response)


class JobList(list):  # type: ignore[type-arg]
    """A list of job summaries (dicts) that shows as a table in notebooks."""

    total: int | None = None
    counts: dict[str, int] | None = None

    def _repr_html_(self) -> str:
        return render.jobs_html(self)

    def __repr__(self) -> str:
        return render.jobs_text(self)


class SiteList(list):  # type: ignore[type-arg]
    """A list of site descriptions (dicts) that shows as a table in notebooks."""

    default: str | None = None

    def _repr_html_(self) -> str:
        return render.sites_html(self, self.default)

    def __repr__(self) -> str:
        return render.sites_text(self, self.default)


class _Api:
    """The API calls, independent of how requests are sent."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0) -> None:
        if url is None:
            url, found_token = find_server()
            token = token if token is not None else found_token
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.created = time.time()
        #: Ids of the jobs submitted through this client, in order (what a ``Timeline`` shows).
        self.session_jobs: list[str] = []
        self._handles: weakref.WeakValueDictionary[str, _JobBase] = weakref.WeakValueDictionary()
        self._events: EventStream | None = None
        self._root_dir: str | bool | None = False

    def _unreachable(self, exc: Exception) -> SwmError:
        return SwmError(f"cannot reach the swm server at {self.url}: {exc}")

    @property
    def headers(self) -> dict[str, str]:
        """Headers sent with every request (the token)."""
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # what the calls are --------------------------------------------------------------------
    def _call(self, call: _Call) -> Any:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _remember(self, data: dict[str, Any]) -> None:
        if data.get("id") and data["id"] not in self.session_jobs:
            self.session_jobs.append(data["id"])

    def _submit_call(
        self, body: Any, *, dry_run: bool = False, script: bool = False, params: dict[str, str] | None = None
    ) -> _Call:
        query = dict(params or {})
        if dry_run:
            query["dry_run"] = "1"

        def parse(response: httpx.Response) -> Any:
            data = response.json()
            if dry_run:
                return data
            if "jobs" in data:
                for job in data["jobs"]:
                    self._remember(job)
                return [self._handle(job) for job in data["jobs"]]
            self._remember(data)
            return self._handle(data)

        # One key per logical submission, sent again on each retry: the server makes its jobs once.
        key = {} if dry_run else {"Idempotency-Key": str(uuid.uuid4())}
        if script:
            return _Call(
                "POST",
                "/jobs",
                parse,
                params=query,
                content=body.encode(),
                headers={"Content-Type": "text/x-shellscript", **key},
            )
        return _Call("POST", "/jobs", parse, params=query, json=body, headers=key)

    def _handle(self, data: dict[str, Any]) -> Any:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def submit(self, spec: Mapping[str, Any] | None = None, *, dry_run: bool = False, **fields: Any) -> Any:
        """Submit a job from a spec dict and/or fields (``script=``, ``command=``, ``notebook=``, ``site=``,
        ``cpus=``, ``mem=``, ...). Returns a job handle (a list of handles for a list of specs), or for
        ``dry_run`` the server's ``{"job", "cost_estimate"}``. Raises :class:`SwmError` on a refusal.
        """
        if isinstance(spec, list):
            return self._call(self._submit_call([build_spec(s) for s in spec], dry_run=dry_run))
        return self._call(self._submit_call(build_spec(spec, **fields), dry_run=dry_run))

    def submit_script(
        self, text: str, *, site: str | None = None, name: str | None = None, dry_run: bool = False
    ) -> Any:
        """Submit a raw job script (``#SWM`` lines read by the server); ``site``/``name`` override them."""
        params = {k: v for k, v in (("site", site), ("name", name)) if v}
        return self._call(self._submit_call(text, dry_run=dry_run, script=True, params=params))

    def resolve_input(self, path: str | os.PathLike[str]) -> str:
        """``path`` (relative to this process's folder, or absolute) as the server's input path.

        The server reads notebooks and input files relative to its root folder; a kernel runs in the
        notebook's folder below it. Without a known root, ``path`` is returned as given.
        """
        if self._root_dir is False:
            self._root_dir = server_root_dir(self.url)
        root = self._root_dir
        full = Path(path).expanduser()
        if not isinstance(root, str) or not root:
            return str(path)
        full = full if full.is_absolute() else Path.cwd() / full
        try:
            return str(full.resolve().relative_to(Path(root).expanduser().resolve()))
        except ValueError:
            raise SwmError(f"{path} is outside the server's folder {root}; copy it there first") from None

    def submit_notebook(
        self, path: str | os.PathLike[str], parameters: Mapping[str, Any] | None = None, **fields: Any
    ) -> Any:
        """Submit the notebook at ``path`` as a notebook job with ``parameters`` (papermill's convention)."""
        return self.submit(notebook=self.resolve_input(path), parameters=dict(parameters or {}), **fields)

    def jobs(
        self,
        *,
        state: str | Iterable[str] | None = None,
        site: str | None = None,
        name: str | None = None,
        since: float | str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Any:
        """Job summaries matching the filters, newest first, as a :class:`JobList` (``.total``, ``.counts``)."""
        params: dict[str, Any] = {}
        if state:
            params["state"] = state if isinstance(state, str) else ",".join(state)
        for key, value in (
            ("site", site),
            ("name", name),
            ("since", since),
            ("sort", sort),
            ("limit", limit),
            ("offset", offset),
        ):
            if value is not None:
                params[key] = value

        def parse(response: httpx.Response) -> JobList:
            data = response.json()
            out = JobList(data.get("jobs", []))
            out.total = data.get("total")
            out.counts = data.get("counts")
            return out

        return self._call(_Call("GET", "/jobs", parse, params=params))

    def job_data(self, job_id: str) -> Any:
        """The full Job document (dict) of ``job_id``; :class:`JobNotFoundError` if there is none."""
        return self._call(_Call("GET", f"/jobs/{job_id}", lambda r: r.json()))

    def job(self, job_id: str) -> Any:
        """A handle on the existing job ``job_id`` (its data fetched now)."""
        return self._call(_Call("GET", f"/jobs/{job_id}", lambda r: self._handle(r.json())))

    def act(self, job_id: str, action: str) -> Any:
        """Run ``action`` (``cancel``, ``hold``, ``release``, ``requeue``) on one job; returns its Job dict."""
        if action not in ("cancel", "hold", "release", "requeue"):
            raise ValueError(f"unknown action {action!r}")
        return self._call(_Call("POST", f"/jobs/{job_id}/{action}", lambda r: self._merge(r.json())))

    def cancel(self, job_id: str) -> Any:
        """Ask the server to cancel ``job_id`` (``DELETE``); returns its Job dict. A final job: ConflictError."""
        return self._call(_Call("DELETE", f"/jobs/{job_id}", lambda r: self._merge(r.json())))

    def bulk(self, action: str, ids: Iterable[str] | None = None, filter: Mapping[str, Any] | None = None) -> Any:
        """Run ``action`` on many jobs; returns ``{"done": [ids], "failed": [{"id", "message"}]}``."""
        body: dict[str, Any] = {"ids": list(ids)} if ids is not None else {"filter": dict(filter or {})}
        return self._call(_Call("POST", f"/jobs/actions/{action}", lambda r: r.json(), json=body))

    def log(self, job_id: str, stream: str = "stdout", offset: int = 0, limit: int | None = None) -> Any:
        """``(text, next_offset, state)``: log bytes of ``stream`` from ``offset``, decoded as UTF-8."""
        params: dict[str, Any] = {"stream": stream, "offset": offset}
        if limit is not None:
            params["limit"] = limit

        def parse(response: httpx.Response) -> tuple[str, int, str]:
            data = response.content
            next_offset = int(response.headers.get("X-Log-Offset", offset + len(data)))
            return data.decode("utf-8", "replace"), next_offset, response.headers.get("X-Job-State", "")

        return self._call(_Call("GET", f"/jobs/{job_id}/log", parse, params=params))

    def files(self, job_id: str) -> Any:
        """The files of the job folder: a list of ``{"path", "size", "mtime"}``."""
        return self._call(_Call("GET", f"/jobs/{job_id}/files", lambda r: r.json().get("files", [])))

    def fetch_bytes(self, job_id: str, path: str) -> Any:
        """The bytes of ``path`` in the job folder."""
        return self._call(_Call("GET", f"/jobs/{job_id}/files/{path.lstrip('/')}", lambda r: r.content))

    def sites(self) -> Any:
        """The configured sites as a :class:`SiteList` (``.default`` is the default site's name)."""

        def parse(response: httpx.Response) -> SiteList:
            data = response.json()
            out = SiteList(data.get("sites", []))
            out.default = data.get("default")
            return out

        return self._call(_Call("GET", "/sites", parse))

    def site(self, name: str) -> Any:
        """One site's description (limits, flavors with prices, images, counts)."""
        return self._call(_Call("GET", f"/sites/{name}", lambda r: r.json()))

    # events ------------------------------------------------------------------------------------
    def events(self) -> EventStream:
        """The client's one events subscription, started on first use; job handles follow it."""
        if self._events is None:
            self._events = EventStream(self.url, self.token)
            self._events.add_listener(self._on_event)
        if not self._events.running:
            self._events.start()
        return self._events

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("type") == "job" and isinstance(message.get("job"), dict):
            self._merge(message["job"])

    def _merge(self, data: dict[str, Any]) -> dict[str, Any]:
        handle = self._handles.get(str(data.get("id")))
        if handle is not None:
            handle._update(data)
        return data


class Client(_Api):
    """Synchronous client: ``Client()`` finds the server (``SWM_URL``/``SWM_TOKEN`` or Jupyter's runtime files).

    Safe to use from a kernel: it never touches the kernel's event loop.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0) -> None:
        """Connect to ``url`` with ``token`` (found automatically when ``url`` is None)."""
        super().__init__(url, token, timeout=timeout)
        self._http = httpx.Client(base_url=self.url + API_PATH, headers=self.headers, timeout=timeout)

    def _call(self, call: _Call) -> Any:
        for delay in (*call.retry_delays, None):
            try:
                response: httpx.Response | None = self._http.request(call.method, call.path, **call.request_kwargs())
            except httpx.TransportError as exc:
                if delay is None:
                    raise self._unreachable(exc) from None
                response = None
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            if delay is None or not call.should_retry(response):
                break
            time.sleep(delay)
        assert response is not None
        return call.answer(response)

    def _handle(self, data: dict[str, Any]) -> Job:
        handle = self._handles.get(data["id"])
        if isinstance(handle, Job):
            handle._update(data)
            return handle
        job = Job(self, data)
        self._handles[job.id] = job
        return job

    def close(self) -> None:
        """Close the HTTP connections and the events stream."""
        if self._events is not None:
            self._events.close()
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Api):
    """Asynchronous client (``await client.submit(...)``), for asyncio code and kernels' top-level await."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0) -> None:
        """Connect to ``url`` with ``token`` (found automatically when ``url`` is None)."""
        super().__init__(url, token, timeout=timeout)
        self._http = httpx.AsyncClient(base_url=self.url + API_PATH, headers=self.headers, timeout=timeout)

    async def _call(self, call: _Call) -> Any:
        for delay in (*call.retry_delays, None):
            try:
                response: httpx.Response | None = await self._http.request(
                    call.method, call.path, **call.request_kwargs()
                )
            except httpx.TransportError as exc:
                if delay is None:
                    raise self._unreachable(exc) from None
                response = None
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            if delay is None or not call.should_retry(response):
                break
            await asyncio.sleep(delay)
        assert response is not None
        return call.answer(response)

    def _handle(self, data: dict[str, Any]) -> AsyncJob:
        handle = self._handles.get(data["id"])
        if isinstance(handle, AsyncJob):
            handle._update(data)
            return handle
        job = AsyncJob(self, data)
        self._handles[job.id] = job
        return job

    async def aclose(self) -> None:
        """Close the HTTP connections and the events stream."""
        if self._events is not None:
            await asyncio.to_thread(self._events.close)
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _JobBase:
    """What sync and async handles share: the last known data and how it shows."""

    def __init__(self, client: _Api, data: dict[str, Any]) -> None:
        self.client = client
        self.id: str = data["id"]
        self.data: dict[str, Any] = dict(data)
        self._seen = time.monotonic()

    def _update(self, data: dict[str, Any]) -> None:
        self.data.update(data)
        self._seen = time.monotonic()

    @property
    def name(self) -> str:
        """The job's name."""
        return str(self.data.get("name", ""))

    @property
    def site(self) -> str:
        """The site the job runs on."""
        return str(self.data.get("site", ""))

    @property
    def exit_code(self) -> int | None:
        """The exit code once the job ended (None before)."""
        return self.data.get("exit_code")

    @property
    def state_details(self) -> str:
        """Why the job is in its state (e.g. the failing cell of a notebook job)."""
        return str(self.data.get("state_details", ""))

    @property
    def done(self) -> bool:
        """True once the job is final (finished, error, canceled) as last known."""
        return self.data.get("state") in render.FINAL_STATES

    def __repr__(self) -> str:
        return f"<{render.job_text(self.data)}>"

    def _repr_html_(self) -> str:
        return render.job_html(self.data)


class Job(_JobBase):
    """A handle on one job: ``.state``, ``.refresh()``, ``.wait()``, ``.cancel()``, ``.logs()``, ``.tail()``,
    ``.files()``, ``.fetch(path)``. Shown in a notebook it is a live :class:`~swm_jupyter.widgets.JobView`.
    """

    client: Client

    @property
    def state(self) -> str:
        """The job's state; asks the server when what is known is over half a second old and not final."""
        events = self.client._events
        following = events is not None and events.connected.is_set()
        if not self.done and not following and time.monotonic() - self._seen > 0.5:
            self.refresh()
        return str(self.data.get("state", ""))

    def refresh(self) -> Job:
        """Fetch the job's full document from the server; returns self."""
        self._update(self.client.job_data(self.id))
        return self

    def cancel(self) -> Job:
        """Ask the server to cancel the job (the job ends as ``canceled`` shortly after); returns self."""
        self._update(self.client.cancel(self.id))
        return self

    def hold(self) -> Job:
        """Hold a queued job; returns self."""
        self._update(self.client.act(self.id, "hold"))
        return self

    def release(self) -> Job:
        """Release a held job; returns self."""
        self._update(self.client.act(self.id, "release"))
        return self

    def requeue(self) -> Job:
        """Run an ended job again; returns self."""
        self._update(self.client.act(self.id, "requeue"))
        return self

    def wait(self, timeout: float | None = None, *, progress: bool | None = None) -> Job:
        """Block until the job is final and return self; raise ``TimeoutError`` after ``timeout`` seconds.

        Follows the client's events stream (with a slow poll as a safety net). In a notebook it shows
        a progress display unless ``progress=False``. Interrupting the kernel stops waiting, not the job.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        show = _in_kernel() if progress is None else progress
        view = None
        if show:
            view = _progress_view(self)
        try:
            try:
                events = self.client.events()
            except Exception:
                events = None
            self.refresh()
            poll_every = 2.0 if events is not None and events.connected.is_set() else 0.5
            last_poll = time.monotonic()
            while not self.done:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"job {self.id} is still {self.data.get('state')} after {timeout} s")
                time.sleep(0.1)
                if time.monotonic() - last_poll >= poll_every:
                    self.refresh()
                    last_poll = time.monotonic()
                if view is not None:
                    view(self.data)
            self.refresh()
        finally:
            if view is not None:
                view(self.data)
        return self

    def logs(self, stream: str = "stdout") -> str:
        """The whole of the job's ``stdout`` (or ``stderr``) so far."""
        chunks, offset = [], 0
        while True:
            text, next_offset, _ = self.client.log(self.id, stream, offset)
            chunks.append(text)
            if next_offset <= offset or not text:
                break
            offset = next_offset
        return "".join(chunks)

    def tail(
        self,
        follow: bool = True,
        *,
        lines: int | None = 20,
        stream: str = "stdout",
        write: Callable[[str], Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Print the last ``lines`` lines of the log (None: all of it), then (``follow``) new output until it ends.

        ``write`` receives the text (default: print). Interrupting stops following, not the job.
        """
        out = write or (lambda s: print(s, end="", flush=True))
        text = self.logs(stream)
        offset = len(text.encode())
        last = text.splitlines(keepends=True)[-lines:] if lines else ([text] if lines is None else [])
        if last:
            out("".join(last))
        deadline = None if timeout is None else time.monotonic() + timeout
        while follow:
            chunk, offset_after, state = self.client.log(self.id, stream, offset)
            if chunk:
                out(chunk)
            offset = max(offset, offset_after)
            if state in render.FINAL_STATES and not chunk:
                self.refresh()
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not chunk:
                time.sleep(0.3)

    def files(self) -> list[dict[str, Any]]:
        """The files in the job folder: ``[{"path", "size", "mtime"}]``."""
        return list(self.client.files(self.id))

    def fetch(self, path: str, to: str | os.PathLike[str] | None = None) -> bytes | Path:
        """The bytes of ``path`` in the job folder; with ``to`` (a file or folder), saved there, returning its path."""
        data: bytes = self.client.fetch_bytes(self.id, path)
        if to is None:
            return data
        target = Path(to)
        if target.is_dir():
            target = target / Path(path).name
        target.write_bytes(data)
        return target

    def view(self) -> Any:
        """A live :class:`~swm_jupyter.widgets.JobView` of this job."""
        from ..widgets import JobView

        return JobView(self)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.view())


class AsyncJob(_JobBase):
    """The async twin of :class:`Job`: ``await job.refresh()``, ``await job.wait()``, ..."""

    client: AsyncClient

    @property
    def state(self) -> str:
        """The last known state (call :meth:`refresh` to ask the server)."""
        return str(self.data.get("state", ""))

    async def refresh(self) -> AsyncJob:
        """Fetch the job's document from the server; returns self."""
        self._update(await self.client.job_data(self.id))
        return self

    async def cancel(self) -> AsyncJob:
        """Ask the server to cancel the job; returns self."""
        self._update(await self.client.cancel(self.id))
        return self

    async def wait(self, timeout: float | None = None, *, interval: float = 0.5) -> AsyncJob:
        """Wait (without blocking the loop) until the job is final; ``TimeoutError`` after ``timeout`` s."""

        async def loop() -> AsyncJob:
            await self.refresh()
            while not self.done:
                await asyncio.sleep(interval)
                await self.refresh()
            return self

        return await asyncio.wait_for(loop(), timeout)

    async def logs(self, stream: str = "stdout") -> str:
        """The whole of the job's ``stdout`` (or ``stderr``) so far."""
        chunks, offset = [], 0
        while True:
            text, next_offset, _ = await self.client.log(self.id, stream, offset)
            chunks.append(text)
            if next_offset <= offset or not text:
                break
            offset = next_offset
        return "".join(chunks)

    async def files(self) -> list[dict[str, Any]]:
        """The files in the job folder."""
        return list(await self.client.files(self.id))

    async def fetch(self, path: str) -> bytes:
        """The bytes of ``path`` in the job folder."""
        data: bytes = await self.client.fetch_bytes(self.id, path)
        return data


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _progress_view(job: _JobBase) -> Callable[[dict[str, Any]], None]:
    """Show a small progress display of ``job`` and return the function that updates it."""
    import ipywidgets as widgets
    from IPython.display import display

    class WaitProgress(widgets.HBox):  # type: ignore[misc]
        """A progress bar and a one-line account of the job, printed as that line without widgets."""

        def __repr__(self) -> str:
            return f"waiting for {render.job_text(job.data)}"

        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
            data = dict(super()._repr_mimebundle_(**kwargs) or {})
            data["text/plain"] = repr(self)
            data["text/html"] = render.job_html({**job.data, "spec": None})
            return data

    bar = widgets.IntProgress(min=0, max=render.progress_fraction(job.data)[1], description="queued")
    label = widgets.HTML()
    box = WaitProgress([bar, label])
    display(box)

    def update(data: dict[str, Any]) -> None:
        step, _total = render.progress_fraction(data)
        bar.value = step
        bar.description = str(data.get("state", ""))
        state = data.get("state")
        bar.bar_style = (
            "success"
            if state == "finished" and not data.get("exit_code")
            else "danger"
            if state in render.FINAL_STATES
            else "info"
        )
        label.value = render.job_html({**data, "spec": None})

    update(job.data)
    return update
