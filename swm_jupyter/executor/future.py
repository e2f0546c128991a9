"""Futures of executor jobs, and the one watcher per client that completes them from the events websocket.

A :class:`Future` is a ``concurrent.futures.Future`` bound to one swm job (``.job``). It is
completed by its client's :class:`ResultWatcher`, which listens to the client's single events
websocket: when a job it waits for reaches a final state, a worker thread fetches the job's result
file once (``GET /jobs/{id}/files/swm-result.pickle``), checks the versions in its header, and
sets the value or the exception. Nothing polls per future; while the websocket is down, one
sweep every few seconds asks for the jobs still pending.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable
from concurrent.futures._base import CANCELLED  # the state a cancelled, not yet notified future is in
from typing import Any

from ..client import render
from ..client.errors import ConflictError, SwmError
from .serialization import RESULT_FILE, load_result

log = logging.getLogger("swm_jupyter.executor")

#: Seconds between two sweeps of pending jobs while the events websocket is not connected.
SWEEP_SECONDS = 3.0
#: States of a job whose inputs are surely in its job folder (so is a job the site gave an id).
STARTED_STATES = ("running", "transferring")
#: Threads that fetch result files at once (per client).
FETCH_THREADS = 8


class JobFailed(RuntimeError):
    """The job ended without a result (its interpreter failed, the site refused it, it was killed)."""


class Future(concurrent.futures.Future):  # type: ignore[type-arg]
    """The result of one Python call run as an swm job: ``result()``, ``exception()``, ``cancel()``,
    ``await future``; ``.job`` is the job handle. Shown in a notebook, it is the live job view.
    """

    def __init__(
        self,
        watcher: ResultWatcher,
        *,
        site: str,
        max_result_bytes: int,
        job_id: str | None = None,
        data: dict[str, Any] | None = None,
        array_parent: str | None = None,
        index: int | None = None,
    ) -> None:
        """A future of job ``job_id`` (or of task ``index`` of array ``array_parent``, id known later)."""
        super().__init__()
        self._watcher = watcher
        self.site = site
        self.max_result_bytes = max_result_bytes
        self.job_id = job_id
        self.array_parent = array_parent
        self.index = index
        self._data: dict[str, Any] = dict(data or {})
        self._handle: Any = None
        self._resolving = False
        #: Called once when the job has left the queue (its inputs are copied) or ended.
        self._on_launched: list[Callable[[], None]] = []
        self._launched = False

    # the job -------------------------------------------------------------------------------------
    @property
    def job(self) -> Any:
        """The :class:`~swm_jupyter.client.Job` handle of the job that runs this call."""
        if self._handle is None:
            if self.job_id is None:
                self._watcher.find_task_ids(self)
            client = self._watcher.client
            self._handle = client._handle(self._data) if self._data.get("id") else client.job(self.job_id)
        return self._handle

    def running(self) -> bool:
        """True while the job runs on its site (as last seen)."""
        return not self.done() and self._data.get("state") == "running"

    def cancel(self) -> bool:
        """Cancel the job (the site stops it) and this future; False if it already ended."""
        if self.done():
            return self.cancelled()
        if self.job_id is None:
            self._watcher.find_task_ids(self)
        try:
            self._watcher.client.cancel(self.job_id)
        except ConflictError:  # already final: its result is on the way
            return False
        return self._cancel_here()

    def _cancel_here(self) -> bool:
        """Mark this future cancelled (the job is already being canceled)."""
        if not concurrent.futures.Future.cancel(self):
            return False
        # As an executor's worker does: wait() and as_completed() count only notified cancellations.
        # Once only: the kernel's cancel() and the watcher that sees the job's ``canceled`` event both
        # come here, in either order, and a second notification raises "Future in unexpected state".
        with self._condition:
            if self._state == CANCELLED:
                self.set_running_or_notify_cancel()
        return True

    # completion (worker threads) --------------------------------------------------------------------
    def _finish(self, data: dict[str, Any]) -> None:
        """Complete the future from the final job ``data``: read the result file, or say why there is none."""
        self._data.update(data)
        if self.done():
            return
        state = data.get("state")
        if state == "canceled":
            self._cancel_here()
            return
        client = self._watcher.client
        try:
            raw = client.fetch_bytes(self.job_id, RESULT_FILE)
        except SwmError as exc:
            self._fail(self._without_result(data, exc))
            return
        try:
            outcome = load_result(raw, site_name=self.site, max_result_bytes=self.max_result_bytes)
        except Exception as exc:  # versions, size, or a file that is not a result
            self._fail(exc)
            return
        if self.done():
            return
        try:
            if outcome.ok:
                self.set_result(outcome.value)
            else:
                self.set_exception(outcome.error)
        except concurrent.futures.InvalidStateError:
            pass

    def _note_launched(self) -> None:
        if self._launched:
            return
        self._launched = True
        for callback in self._on_launched:
            try:
                callback()
            except Exception:
                log.exception("swm executor: a launch callback failed")

    def _fail(self, exc: BaseException) -> None:
        try:
            self.set_exception(exc)
        except concurrent.futures.InvalidStateError:
            pass

    def _without_result(self, data: dict[str, Any], exc: SwmError) -> JobFailed:
        details = data.get("state_details") or ""
        exit_code = data.get("exit_code")
        stderr = ""
        try:
            text, _, _ = self._watcher.client.log(self.job_id, "stderr", 0)
            stderr = "\n".join(text.strip().splitlines()[-10:])
        except SwmError:
            pass
        message = f"job {self.job_id} on site {self.site} ended {data.get('state')}"
        if exit_code is not None:
            message += f" with exit code {exit_code}"
        message += f" and left no result ({exc})"
        if details:
            message += f"; {details}"
        if stderr:
            message += f"\nstderr:\n{stderr}"
        return JobFailed(message)

    # notebooks -------------------------------------------------------------------------------------
    def __await__(self) -> Generator[Any, None, Any]:
        """``await future`` on the running loop (the kernel's)."""
        return asyncio.wrap_future(self).__await__()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled() else "done" if self.done() else self._data.get("state", "pending")
        where = self.job_id or f"{self.array_parent}[{self.index}]"
        return f"<swm Future job {where} on {self.site}: {state}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live job view (a widget), with text and HTML for places without widgets."""
        try:
            data = dict(self.job.view()._repr_mimebundle_(include=include, exclude=exclude) or {})
        except Exception as exc:  # no server, no widgets: say what the future is
            log.debug("no job view: %s", exc)
            data = {"text/html": render.job_html(self._data)} if self._data.get("id") else {}
        data["text/plain"] = repr(self)
        return data


class ResultWatcher:
    """Completes the futures of one client from its events websocket (one listener for all of them)."""

    def __init__(self, client: Any) -> None:
        """Follow ``client``'s events; nothing connects before the first :meth:`watch`."""
        self.client = client
        self._lock = threading.Lock()
        self._jobs: dict[str, Future] = {}
        self._arrays: dict[str, dict[int, Future]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="swm-result")
        self._listening = False
        self._sweeper: threading.Thread | None = None
        #: Jobs and arrays submitted before the websocket first connected: looked at once it is.
        self._unsure: set[str] = set()
        #: When the first connection said hello (later ones replay what they missed).
        self._hello_at: float | None = None

    # registration ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe to the client's events (once); call before submitting, so no end is missed."""
        if self._listening:
            return
        try:
            events = self.client.events()
            events.add_listener(self._on_event)
            if events.connected.is_set() and self._hello_at is None:
                self._hello_at = time.monotonic()  # its hello came before this listener did
        except Exception as exc:  # no websocket (old server, proxy): the sweep does the work
            log.info("swm executor: no events stream (%s); checking pending jobs every %.0f s", exc, SWEEP_SECONDS)
        self._listening = True
        self._sweeper = threading.Thread(target=self._sweep, name="swm-executor-sweep", daemon=True)
        self._sweeper.start()

    def watch(self, future: Future, data: dict[str, Any] | None = None, *, since: float | None = None) -> None:
        """Complete ``future`` when its job ends (``data``: its job as just seen; ``since``: the
        ``time.monotonic()`` before it was submitted, None if long ago).
        """
        assert future.job_id is not None
        with self._lock:
            self._jobs[future.job_id] = future
            if self._maybe_missed(since):
                self._unsure.add(future.job_id)
        if data is not None:
            self._seen(data)

    def watch_array(self, parent_id: str, futures: list[Future], *, since: float | None = None) -> None:
        """Complete ``futures`` (task ``i`` is ``futures[i]``) as the tasks of ``parent_id`` end."""
        with self._lock:
            self._arrays[parent_id] = {f.index: f for f in futures if f.index is not None}
            if self._maybe_missed(since):
                self._unsure.add(parent_id)
        self.find_tasks(parent_id)

    def find_task_ids(self, future: Future) -> None:
        """Learn the job id of an array task future (listing the array's tasks)."""
        if future.job_id is None and future.array_parent:
            self.find_tasks(future.array_parent)
        if future.job_id is None:
            raise SwmError(f"task {future.index} of array {future.array_parent} is not known to the server")

    def find_tasks(self, parent_id: str) -> None:
        """List the tasks of ``parent_id`` (pages of 1000) and settle those already final."""
        cursor = None
        while True:
            params: dict[str, Any] = {"array_parent": parent_id, "limit": 1000, "sort": "submit_time"}
            if cursor:
                params["cursor"] = cursor
            page = self.client._call(_list_call(params))
            for data in page.get("jobs", []):
                self._seen(data)
            cursor = page.get("next_cursor")
            if not cursor or not page.get("jobs"):
                return

    # events --------------------------------------------------------------------------------------
    def _future_of(self, data: dict[str, Any]) -> Future | None:
        with self._lock:
            future = self._jobs.get(str(data.get("id")))
            if future is None and data.get("array_parent") in self._arrays:
                index = data.get("array_index")
                future = self._arrays[data["array_parent"]].get(index) if isinstance(index, int) else None
                if future is not None and future.job_id is None:
                    future.job_id = str(data["id"])
                    self._jobs[future.job_id] = future
        return future

    def _seen(self, data: dict[str, Any]) -> None:
        future = self._future_of(data)
        if future is None:
            return
        state = data.get("state")
        future._data.update(data)
        if data.get("native_id") or state in STARTED_STATES or state in render.FINAL_STATES:
            future._note_launched()  # its inputs are in its job folder now: the staging folder may go
        if state not in render.FINAL_STATES:
            return
        self._forget(future)  # a final job changes no more
        if not future.done() and not future._resolving:
            future._resolving = True
            self._pool.submit(self._settle, future, dict(data))

    def _settle(self, future: Future, data: dict[str, Any]) -> None:
        try:
            future._finish(data)
        except Exception as exc:  # never leave a future hanging on an unexpected error
            log.exception("swm executor: completing job %s failed", future.job_id)
            future._fail(exc)

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("type") == "hello" and self._hello_at is None:
            self._hello_at = time.monotonic()
        elif message.get("type") == "job" and isinstance(message.get("job"), dict):
            self._seen(message["job"])

    def _forget(self, future: Future) -> None:
        with self._lock:
            if future.job_id is not None:
                self._jobs.pop(future.job_id, None)
            if future.array_parent in self._arrays:
                tasks = self._arrays[future.array_parent]
                tasks.pop(future.index, None)  # type: ignore[arg-type]
                if not tasks:
                    del self._arrays[future.array_parent]

    def _maybe_missed(self, since: float | None) -> bool:
        """True if events of a job submitted at ``since`` may have come before the first connection."""
        return self._hello_at is None or since is None or self._hello_at > since

    def _connected(self) -> bool:
        events = self.client._events
        return events is not None and bool(events.connected.is_set())

    def _sweep(self) -> None:
        """Ask for the pending jobs every few seconds while the websocket is not connected, and once
        for those registered before it connected (their end may have come before it did).
        """
        last = time.monotonic()
        while True:
            time.sleep(0.25)
            connected = self._connected()
            with self._lock:
                if connected:
                    if not self._unsure:
                        continue
                    wanted, self._unsure = self._unsure, set()
                elif time.monotonic() - last < SWEEP_SECONDS:
                    continue
                else:
                    wanted = set(self._jobs) | set(self._arrays)
                last = time.monotonic()
                singles = [i for i in wanted if i in self._jobs and self._jobs[i].array_parent is None]
                arrays = [i for i in wanted if i in self._arrays]
            try:
                for job_id in singles:
                    self._seen(self.client.job_data(job_id))
                for parent in arrays:
                    self.find_tasks(parent)
            except Exception as exc:
                log.debug("swm executor: sweep failed: %s", exc)


def _list_call(params: dict[str, Any]) -> Any:
    from ..client.api import _Call

    return _Call("GET", "/jobs", lambda r: r.json(), params=params)


def wait_all(futures: Iterable[Future], timeout: float | None = None) -> None:
    """Block until every future is done (or ``timeout`` seconds passed)."""
    concurrent.futures.wait(list(futures), timeout=timeout)


def on_all_launched(futures: list[Future], callback: Callable[[], None]) -> None:
    """Call ``callback()`` once, when the last of ``futures``' jobs has left the queue or ended."""
    left = [len(futures)]
    lock = threading.Lock()

    def one(_: Any) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            callback()

    for future in futures:
        future._on_launched.append(lambda: one(None))
