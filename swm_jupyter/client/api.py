"""Sync and async clients of the REST API (``/swm/api/v1/``) and the ``Job`` handles they return.

Every call builds one request description (:class:`_Call`) in :class:`_Api` and sends it through the
client side's one HTTP stack (:class:`~swm_jupyter.client.connection.Connection`, which also retries
a lost submission): :class:`Client` directly, :class:`AsyncClient` in a worker thread so the event
loop never blocks; the two stay the same API. Errors raise :class:`SwmError` with the server's message.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..core.jobfields import spec_from_options
from . import render
from .connection import Connection, Response
from .discovery import find_server as find_server  # re-exported (with the errors) for code importing them here
from .discovery import server_path, server_root_dir
from .errors import ConflictError as ConflictError
from .errors import JobNotFoundError as JobNotFoundError
from .errors import ServerNotFound as ServerNotFound
from .errors import SwmError as SwmError
from .events import EventStream
from .schedules import ScheduleApi

_Handle = TypeVar("_Handle", bound="_JobBase")


def build_spec(
    spec: Mapping[str, Any] | None = None,
    *,
    resources: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Merge a spec dict, keyword fields and resource shortcuts (``cpus=4``, ``mem="4G"``) into one request body.

    The keywords are the job's fields (:mod:`swm_jupyter.core.jobfields`), as ``swm submit``'s options;
    ``None`` values are dropped, so optional arguments can be passed through unconditionally.
    """
    return spec_from_options({"resources": resources, **fields}, base=spec)


@dataclass
class _Call:
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Response], Any]
    params: Any = None
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    idempotency_key: str | None = None

    def send(self, connection: Connection) -> Response:
        """Send the request (tried again if it carries an ``Idempotency-Key`` and its answer was lost)."""
        return connection.request(
            self.method,
            self.path,
            params=self.params,
            json_body=self.json,
            data=self.content,
            content_type=self.content_type,
            idempotency_key=self.idempotency_key,
        )


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
        self._connection = Connection(url, token, timeout=timeout)
        self.timeout = timeout
        self.created = time.time()
        #: Ids of the jobs submitted through this client, in order (what a ``Timeline`` shows).
        self.session_jobs: list[str] = []
        self._handles: weakref.WeakValueDictionary[str, _JobBase] = weakref.WeakValueDictionary()
        self._events: EventStream | None = None
        self._root_dir: str | bool | None = False

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash (``http://127.0.0.1:8888``)."""
        return self._connection.base_url.rstrip("/")

    @property
    def token(self) -> str | None:
        """The token sent with every request (None: none)."""
        return self._connection.token

    @property
    def headers(self) -> dict[str, str]:
        """Headers sent with every request (the token)."""
        return self._connection.headers()

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

        def parse(response: Response) -> Any:
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
        key = None if dry_run else str(uuid.uuid4())
        if script:
            return _Call(
                "POST",
                "/jobs",
                parse,
                params=query,
                content=body.encode(),
                content_type="text/x-shellscript",
                idempotency_key=key,
            )
        return _Call("POST", "/jobs", parse, params=query, json=body, idempotency_key=key)

    def _handle(self, data: dict[str, Any]) -> Any:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _handle_of(self, kind: type[_Handle], data: dict[str, Any]) -> _Handle:
        """The one ``kind`` handle of job ``data["id"]`` (made now, or the known one brought up to date)."""
        handle = self._handles.get(data["id"])
        if isinstance(handle, kind):
            handle._update(data)
            return handle
        made = kind(self, data)
        self._handles[made.id] = made
        return made

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
        return server_path(path, self._root_dir if isinstance(self._root_dir, str) else None)

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

        def parse(response: Response) -> JobList:
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

        def parse(response: Response) -> tuple[str, int, str]:
            data = response.body
            next_offset = int(response.headers.get("x-log-offset", offset + len(data)))
            return data.decode("utf-8", "replace"), next_offset, response.headers.get("x-job-state", "")

        return self._call(_Call("GET", f"/jobs/{job_id}/log", parse, params=params))

    def files(self, job_id: str) -> Any:
        """The files of the job folder: a list of ``{"path", "size", "mtime"}``."""
        return self._call(_Call("GET", f"/jobs/{job_id}/files", lambda r: r.json().get("files", [])))

    def fetch_bytes(self, job_id: str, path: str) -> Any:
        """The bytes of ``path`` in the job folder."""
        return self._call(_Call("GET", f"/jobs/{job_id}/files/{path.lstrip('/')}", lambda r: r.body))

    def sites(self) -> Any:
        """The configured sites as a :class:`SiteList` (``.default`` is the default site's name)."""

        def parse(response: Response) -> SiteList:
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
        kind = message.get("type")
        if kind == "job" and isinstance(message.get("job"), dict):
            self._merge(message["job"])
        elif kind == "job_deleted" and isinstance(message.get("job"), dict):
            handle = self._handles.get(str(message["job"].get("id")))
            if handle is not None:
                handle.deleted = True

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

    def _call(self, call: _Call) -> Any:
        return call.parse(call.send(self._connection))

    def _handle(self, data: dict[str, Any]) -> Job:
        return self._handle_of(Job, data)

    @property
    def schedules(self) -> ScheduleApi:
        """The schedule calls: ``client.schedules.create({"job": {...}, "every": "1h"})``, ``.list()``,
        ``.show(id)``, ``.pause(id)``, ``.resume(id)``, ``.run(id)``, ``.runs(id)``, ``.delete(id)``."""
        return ScheduleApi(self._connection)

    def close(self) -> None:
        """Close the HTTP connections and the events stream."""
        if self._events is not None:
            self._events.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Api):
    """Asynchronous client (``await client.submit(...)``), for asyncio code and kernels' top-level await."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0) -> None:
        """Connect to ``url`` with ``token`` (found automatically when ``url`` is None)."""
        super().__init__(url, token, timeout=timeout)

    async def _call(self, call: _Call) -> Any:
        response = await asyncio.to_thread(call.send, self._connection)  # the loop goes on meanwhile
        return call.parse(response)

    def _handle(self, data: dict[str, Any]) -> AsyncJob:
        return self._handle_of(AsyncJob, data)

    async def aclose(self) -> None:
        """Close the HTTP connections and the events stream."""
        if self._events is not None:
            await asyncio.to_thread(self._events.close)

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
        #: True once the events stream said the job's record was deleted (``swm rm``, retention).
        self.deleted = False

    def _update(self, data: dict[str, Any]) -> None:
        """Take a newer account of the job; an older one (fewer ``changes``: a late event) is ignored."""
        known, told = self.data.get("changes"), data.get("changes")
        if isinstance(known, int) and isinstance(told, int) and told < known:
            return
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

    @property
    def failed(self) -> bool:
        """True if the job failed as last known: it ended in error, or finished with a non-zero exit or a signal."""
        return render.shown_state(self.data) in ("failed", "error")

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

    def result(self, timeout: float | None = None) -> Any:
        """The value returned by the Python call this job ran (an :class:`~swm_jupyter.Executor` job).

        Raises what the call raised, or why there is no value (see :meth:`Executor.attach`); for a
        ``map`` array, the list of its tasks' values.
        """
        from ..executor import Executor

        future = Executor.attach(self.id, client=self.client)
        if isinstance(future, list):
            return [f.result(timeout) for f in future]
        return future.result(timeout)

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
        # One line beside the bar: job_html would add a second bar and a whole job view.
        label.value = f"{render.state_badge(str(data.get('state', '')))} {render.esc(render.job_text(data))}"

    update(job.data)
    return update


__all__ = ["AsyncClient", "AsyncJob", "Client", "Job", "JobList", "SiteList", "build_spec"]
