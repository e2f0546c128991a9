"""``Executor``: a ``concurrent.futures.Executor`` whose calls run as swm jobs on any site.

``submit(fn, *args, **kwargs)`` pickles the call with cloudpickle into a staging folder next to
the kernel (``.swm-executor/<id>/``, below the server's root), and submits a job whose
``input_files`` are that call file and the small runner module (:mod:`.runner`); the gates copy
them into the job folder (and to remote sites) like any input. The runner writes the result file
into the job folder, which the gates bring back like any output. ``map`` submits one array job,
whose task ``i`` runs call ``i``. The staging folder is removed once every job of the call has left
the queue (its inputs are copied into its job folder) or ended. When the server cannot read that
folder, the call travels inside the job's script instead (:mod:`.inline`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shlex
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..client.api import build_spec
from ..client.errors import SwmError
from .future import Future, ResultWatcher, on_all_launched
from .inline import inline_script, inputs_unreadable
from .serialization import CALL_FILE, RESULT_FILE, dump_call

#: Default largest pickled result brought back (bytes): 100 MiB.
DEFAULT_MAX_RESULT_BYTES = 100 * 1024 * 1024
#: Folder (below the kernel's folder) where call files wait to be copied into job folders.
STAGING_FOLDER = ".swm-executor"
RUNNER_FILE = "swm_runner.py"
#: Site-specific sections a job spec may carry (``slurm={"partition": "gpu"}``).
SITE_SECTIONS = ("local", "slurm", "ssh", "cloud")
#: Other job fields passed through as given.
JOB_FIELDS = ("account", "flavor", "cloud_image", "container_image", "priority", "nodes")
#: Every keyword ``Executor()`` knows, for the error that names them.
KNOWN_OPTIONS = (
    "site",
    "cpus",
    "memory",
    "gpus",
    "walltime",
    "name",
    "env",
    "python",
    "max_result_bytes",
    "client",
    *JOB_FIELDS,
    *SITE_SECTIONS,
)

_watchers: dict[int, ResultWatcher] = {}
_watchers_lock = threading.Lock()


_default: list[Any] = []
#: Clients (by id, with the client to tell a reused id) whose server cannot read this kernel's folder.
_inline_clients: dict[int, Any] = {}


def sends_inline(client: Any) -> bool:
    """True once the server of ``client`` was found unable to read this kernel's folder."""
    with _watchers_lock:
        return _inline_clients.get(id(client)) is client


def send_inline(client: Any) -> None:
    """From now on, send the calls of ``client`` inside their job scripts."""
    with _watchers_lock:
        _inline_clients[id(client)] = client


def default_client() -> Any:
    """The one :class:`~swm_jupyter.client.Client` of executors given none (found like ``Client()``)."""
    with _watchers_lock:
        if not _default:
            from ..client import Client

            _default.append(Client())
        return _default[0]


def watcher_of(client: Any) -> ResultWatcher:
    """The one :class:`ResultWatcher` of ``client`` (made and started on first use)."""
    with _watchers_lock:
        watcher = _watchers.get(id(client))
        if watcher is None or watcher.client is not client:
            watcher = ResultWatcher(client)
            _watchers[id(client)] = watcher
    watcher.start()
    return watcher


class Executor(concurrent.futures.Executor):
    """Run Python calls as swm jobs on a site: ``with Executor(site="hpc", cpus=4) as ex: ex.submit(f, x)``.

    Options: ``site`` (default: the server's default site), ``cpus``, ``memory`` (``"4G"``), ``gpus``,
    ``walltime``, ``name`` (of the jobs), ``env`` (variables of the jobs), ``python`` (the
    interpreter on the site, overriding the site's ``python`` option: a path or a shell line ending
    with one), ``max_result_bytes`` (largest pickled result brought back), ``client`` (a
    :class:`~swm_jupyter.client.Client`; by default one found like ``Client()``, shared by the
    executors of this process, with its one events websocket), the job fields
    ``account``, ``flavor``, ``cloud_image``, ``container_image``, ``priority``, ``nodes``, and
    site sections (``slurm={"partition": "gpu"}``). Any other keyword raises ``TypeError``.
    """

    def __init__(
        self,
        site: str | None = None,
        cpus: int = 1,
        memory: str | int | None = None,
        gpus: int = 0,
        walltime: str | int | None = None,
        name: str | None = None,
        env: dict[str, str] | None = None,
        python: str | None = None,
        **site_extras: Any,
    ) -> None:
        """Check the options (``TypeError`` for unknown ones); nothing is sent before the first call."""
        unknown = sorted(set(site_extras) - set(KNOWN_OPTIONS))
        if unknown:
            raise TypeError(
                f"Executor() got unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"known options are {', '.join(KNOWN_OPTIONS)}"
            )
        for section in SITE_SECTIONS:
            if section in site_extras and not isinstance(site_extras[section], dict):
                raise TypeError(
                    f"Executor({section}=...) must be a dict of {section} options, e.g. {{'partition': 'gpu'}}"
                )
        if env is not None and not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise TypeError("Executor(env=...) must be a dict of str to str")
        max_result_bytes = site_extras.pop("max_result_bytes", DEFAULT_MAX_RESULT_BYTES)
        if isinstance(max_result_bytes, bool) or not isinstance(max_result_bytes, int) or max_result_bytes < 1:
            raise TypeError("Executor(max_result_bytes=...) must be a positive number of bytes")
        client = site_extras.pop("client", None)
        self.client = client if client is not None else default_client()
        self.site = site
        self.python = python
        self.name = name
        self.max_result_bytes = max_result_bytes
        self._fields: dict[str, Any] = {"cpus": cpus, "memory": memory, "gpus": gpus or None, "walltime": walltime}
        if env:
            self._fields["env"] = dict(env)
        self._fields.update(site_extras)
        self._site_info: dict[str, Any] | None = None
        self._futures: set[Future] = set()
        self._arrays: dict[str, list[Future]] = {}
        self._lock = threading.Lock()
        self._shutdown = False

    # the site ------------------------------------------------------------------------------------
    def site_info(self) -> dict[str, Any]:
        """The description of the site the calls run on (``GET /sites``), asked once."""
        if self._site_info is None:
            if self.site:  # one site: GET /sites/{name} (describing every site may reach remote hosts)
                try:
                    self._site_info = dict(self.client.site(self.site))
                except SwmError as exc:
                    if exc.status == 404:
                        raise ValueError(exc.message) from None  # names the configured sites
                    raise
                return self._site_info
            sites = self.client.sites()
            for info in sites:
                if info.get("name") == sites.default:
                    self._site_info = dict(info)
                    break
            else:
                raise ValueError("the server has no default site; give Executor(site=...)")
        return self._site_info

    def interpreter(self) -> str:
        """The line that starts Python on the site: ``python=``, else the site's ``python`` option, else python3."""
        return self.python or str(self.site_info().get("python") or "python3")

    # submitting ----------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` as one job; returns its :class:`Future` at once."""
        self._check_open()
        watcher = watcher_of(self.client)  # listening before the job exists
        since = time.monotonic()
        folder, handle = self._submit(fn, [(args, kwargs)], chunked=False)
        future = Future(watcher, site=handle.site, max_result_bytes=self.max_result_bytes, job_id=handle.id)
        future._handle = handle
        self._keep([future], folder)
        watcher.watch(future, handle.data, since=since)
        return future

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None, chunksize: int = 1
    ) -> Iterator[Any]:
        """``fn`` over the items of ``iterables`` as ONE array job; yields the results in order.

        ``chunksize`` items run in each task. ``timeout`` (seconds from this call) raises
        ``TimeoutError`` when a result is not there in time. Closing the iterator early cancels
        the tasks not yet done.
        """
        self._check_open()
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        end = None if timeout is None else time.monotonic() + timeout
        items = [(args, {}) for args in zip(*iterables, strict=False)]  # as the standard map: the shortest
        if not items:
            return iter(())
        chunked = chunksize > 1
        calls: list[Any] = [items[i : i + chunksize] for i in range(0, len(items), chunksize)] if chunked else items
        watcher = watcher_of(self.client)
        since = time.monotonic()
        folder, parent = self._submit(fn, calls, chunked=chunked, array=f"0-{len(calls) - 1}")
        futures = [
            Future(
                watcher,
                site=parent.site,
                max_result_bytes=self.max_result_bytes,
                array_parent=parent.id,
                index=i,
            )
            for i in range(len(calls))
        ]
        self._keep(futures, folder, parent_id=parent.id)
        watcher.watch_array(parent.id, futures, since=since)
        return self._results(futures, end, chunked, parent.id)

    def _results(self, futures: list[Future], end: float | None, chunked: bool, parent_id: str) -> Iterator[Any]:
        pending = list(reversed(futures))
        try:
            while pending:
                future = pending[-1]
                value = future.result(None if end is None else max(0.0, end - time.monotonic()))
                pending.pop()
                if chunked:
                    yield from value
                else:
                    yield value
        finally:
            if any(not f.done() for f in pending):
                self._cancel_array(parent_id, pending)

    def _cancel_array(self, parent_id: str, futures: list[Future]) -> None:
        """Cancel the array job once (all its tasks) and the futures not done."""
        try:
            self.client.cancel(parent_id)
        except SwmError:
            pass
        for future in futures:
            if not future.done():
                future._cancel_here()

    def _submit(
        self, fn: Callable[..., Any], calls: list[Any], *, chunked: bool, array: str | None = None
    ) -> tuple[Path | None, Any]:
        """Submit the job of ``calls``; returns its staging folder (None if the call is in the script) and handle.

        The call goes as input files of a staging folder, unless the server cannot read that folder
        (it is outside the server's root, or the server refuses the files): then, and for every
        later call of this client, it goes inside the job's script (:mod:`.inline`).
        """
        interpreter = self.interpreter()
        data = dump_call(fn, calls, chunked=chunked, max_result_bytes=self.max_result_bytes)
        fields: dict[str, Any] = {"name": self.name or _label(fn), "output_files": [RESULT_FILE]}
        if array:
            fields["array"] = array
        if not sends_inline(self.client):
            try:
                folder, run = self._stage(data, interpreter)
            except (SwmError, OSError):  # outside the server's root, or not writable: the server cannot read it
                send_inline(self.client)
                with contextlib.suppress(OSError):
                    (Path.cwd() / STAGING_FOLDER).rmdir()  # if this kernel made it for nothing
            else:
                try:
                    return folder, self.client.submit(self._spec({**fields, **run}))
                except BaseException as exc:
                    shutil.rmtree(folder, ignore_errors=True)
                    if not inputs_unreadable(exc):
                        raise
                send_inline(self.client)  # the server cannot read the kernel's folder: nothing was stored
                with contextlib.suppress(OSError):
                    folder.parent.rmdir()  # the staging folder, if this kernel made it for nothing
        runner = files(__package__).joinpath("runner.py").read_bytes()
        script = inline_script(interpreter, runner, RUNNER_FILE, data, CALL_FILE)
        return None, self.client.submit(self._spec({**fields, "script": script}))

    def _stage(self, data: bytes, interpreter: str) -> tuple[Path, dict[str, Any]]:
        """Write the call file and the runner into a new staging folder; return it and the job's run fields."""
        relative = Path(STAGING_FOLDER) / uuid.uuid4().hex
        folder = Path.cwd() / relative  # removed later by this path, whatever the folder then
        folder.mkdir(parents=True)
        try:
            (folder / CALL_FILE).write_bytes(data)
            (folder / RUNNER_FILE).write_bytes(files(__package__).joinpath("runner.py").read_bytes())
            call = self.client.resolve_input(relative / CALL_FILE)
            runner = self.client.resolve_input(relative / RUNNER_FILE)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        words = shlex.split(interpreter)
        run: dict[str, Any] = (
            {"command": [words[0], runner, call]}  # an interpreter: run it directly (no shell to start)
            if len(words) == 1
            else {"script": f"#!/bin/bash\n{interpreter} {shlex.quote(runner)} {shlex.quote(call)}\n"}
        )
        return folder, {**run, "input_files": [runner, call]}

    def _spec(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The job spec of ``fields`` with this executor's resources, options and site."""
        spec: dict[str, Any] = build_spec(fields, **self._fields)
        if self.site:
            spec["site"] = self.site
        return spec

    def _keep(self, futures: list[Future], folder: Path | None, parent_id: str | None = None) -> None:
        """Track ``futures`` until done; remove the staging ``folder`` (if any) once every job has copied it."""
        with self._lock:
            self._futures.update(futures)
            if parent_id:
                self._arrays[parent_id] = futures

        def launched() -> None:  # every job copied its inputs (or ended): the staging folder may go
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

        def done(_: Any) -> None:
            with self._lock:
                self._futures.discard(_)
                if parent_id and all(f.done() for f in futures):
                    self._arrays.pop(parent_id, None)

        on_all_launched(futures, launched)
        for future in futures:
            future.add_done_callback(done)

    def _check_open(self) -> None:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    # the end ---------------------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; ``cancel_futures`` cancels the jobs not done, ``wait`` waits for the others."""
        self._shutdown = True
        with self._lock:
            futures = list(self._futures)
            arrays = dict(self._arrays)
        if cancel_futures:
            in_arrays = set()
            for parent_id, tasks in arrays.items():
                left = [f for f in tasks if not f.done()]
                in_arrays.update(left)
                if left:
                    self._cancel_array(parent_id, left)
            for future in futures:
                if future not in in_arrays and not future.done():
                    future.cancel()
        if wait:
            concurrent.futures.wait(futures)

    # after a restart ---------------------------------------------------------------------------------
    @classmethod
    def attach(
        cls, job_id: str, *, client: Any = None, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    ) -> Future | list[Future]:
        """The Future of an executor job submitted earlier (e.g. before a kernel restart).

        For the id of a ``map`` array, the list of its tasks' futures in order. Works as long as the
        job's record exists; raises :class:`~swm_jupyter.client.JobNotFoundError` otherwise.
        """
        if client is None:
            client = default_client()
        data = client.job_data(job_id)
        watcher = watcher_of(client)
        spec = data.get("spec") or {}
        if spec.get("array") and data.get("array_parent") is None:
            from ..core.model import ArraySpec

            indices = ArraySpec.parse(str(spec["array"])).indices
            futures = [
                Future(watcher, site=data["site"], max_result_bytes=max_result_bytes, array_parent=job_id, index=i)
                for i in indices
            ]
            watcher.watch_array(job_id, futures)
            return futures
        future = Future(watcher, site=data["site"], max_result_bytes=max_result_bytes, job_id=job_id, data=data)
        watcher.watch(future, data)
        return future


def _label(fn: Callable[..., Any]) -> str:
    """A job name from the function: its name, ``lambda`` for lambdas (letters the API accepts)."""
    name = getattr(fn, "__name__", type(fn).__name__)
    name = "lambda" if name == "<lambda>" else name
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name).strip("-") or "call"
    return f"py-{cleaned}"[:128]


__all__ = ["DEFAULT_MAX_RESULT_BYTES", "KNOWN_OPTIONS", "Executor", "watcher_of"]
