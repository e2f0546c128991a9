"""The local supervisor: a small process that queues local jobs, starts them, records how they end.

The local gate does not make jobs children of the Jupyter server: when the server died, the exit
status of its children would be lost. It hands them to this supervisor instead, over a UNIX socket
that only its user can open. The supervisor runs in its own session, so it outlives the server.
Like a batch system it keeps a queue per pool (one pool per local site), in the order the server
gives (priority, then submission), and starts the next job the moment cpus come free, without
waiting for the server, which only keeps the queue a little ahead.
For each job it appends to the job's status record (``.swm-status``, see
:mod:`swm_jupyter.gates.status_record`) a ``start <epoch> <pid>`` line when the job starts and an
``exit <code> <epoch>`` line when it ends (``signal <n> <epoch>`` if a signal killed it), and tells
connected servers at once. It leaves when it has had no job and no client for ``IDLE_SECONDS``. A
client that reads none of its news for ``SEND_TIMEOUT`` is dropped: a stuck server holds up the
jobs of the others for that long at most.

Only its own user reaches it: its socket is made in a folder private to that user (it refuses to
listen in another), and it serves only clients of its own uid (``SO_PEERCRED``), plus those of
``--allow-uid``. It alone signals jobs, and only the processes of jobs it started (or whose status
record names a session leader started at the recorded time): by pid and start time, never a pid a
client names. It writes no file through a symlink.

Protocol: one JSON object per line.

- ``{"op": "spawn", "id", "pool", "capacity", "cpus", "order", "argv", "cwd", "env", "stdout",
  "stderr", "status_file", "fast_start"}`` (``order``: a list; smaller starts first; ``fast_start``,
  default true: an executor call may start from a warm interpreter, :mod:`.fast_start`) is answered
  ``{"op", "reply": id, "pid", "started"}`` if the job started at once, ``{"op", "reply": id,
  "queued": true}`` if it waits for cpus, or ``{"op", "reply": id, "error"}``. Spawning a job the
  supervisor already has, or one that already has a status record, starts nothing: the answer says
  where that job is (a server that lost its connection can safely send its jobs again); for the
  latter it says ``"recorded": true``, and no end of that job will be reported.
- ``{"op": "env", "pool", "env"}`` sets the environment the pool's jobs start from (each
  spawn's ``env`` is added to it); a server sends it when it connects, without its secrets
  (:mod:`swm_jupyter.core.job_env`).
- ``{"op": "hold" | "release", "id"}`` are answered ``{"op", "reply": id, "done": bool}`` (hold acts
  on queued jobs only).
- ``{"op": "cancel", "id", "grace", "status_file"}`` takes a queued or held job out of the queue, or
  kills a running one: TERM to every process of the job (:mod:`.process_tree`), KILL ``grace``
  seconds later. Answered ``{"op", "reply": id, "done": bool}`` with
  ``"killing": true`` when it signalled a running job, and ``"child": true`` when that job is one of
  its own (whose end it will report). ``status_file`` lets it kill a job started by
  an earlier supervisor of this user, checked by the pid and start time the record gives.
- Every client receives ``{"started": id, "pid", "at"}`` when a queued job starts and
  ``{"exit": id, "rc", "end"}`` when a job ends (with ``"signal": n`` and ``rc`` 128 + n when a
  signal killed it).

Run as ``python -m swm_jupyter.daemons.local_supervisor SOCKET [--allow-uid UID]``.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import errno
import os
import selectors
import shutil
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core.jsoncodec import parse, to_bytes
from ..gates.job_cgroup import JobCgroups
from ..gates.local_runtime import UnsafeFolder, open_append, open_private_folder, peer_uid
from ..gates.process_tree import job_processes, process_info, signal_processes
from ..gates.status_record import STATUS_FILE, StatusRecord, read_job_file, read_status_file
from .fast_start import FastStarter, Zygote, ZygoteError

IDLE_SECONDS = 20.0
#: How long the supervisor waits for a client that does not read its news before dropping it
#: (that client learns each job's state from the status records, and connects anew when it next
#: sends a request).
SEND_TIMEOUT = 10.0
#: Version of the protocol below; part of the socket's name (see ``LocalGate.supervisor_socket``).
PROTOCOL = 4
#: Seconds between TERM and KILL when a cancel request names none.
DEFAULT_GRACE = 5.0

#: A job's stdout and stderr, opened in the child by posix_spawn: appended to, never through a symlink
#: (no O_CLOEXEC: they are the job's descriptors 1 and 2).
_OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW


#: Where protocols 1 and 2 kept a job's records (``pid``, ``rc``): read for jobs they started.
LEGACY_DIR = ".swm"


def read_job_record(folder: str) -> StatusRecord | None:
    """The status record of the job in ``folder``, or None if it never started.

    A job started by the supervisor of an older swm-jupyter (protocols 1 and 2, before an
    upgrade) has ``.swm/pid`` and later ``.swm/rc`` instead: they are read into the same form.
    """
    record = read_status_file(os.path.join(folder, STATUS_FILE))
    if record is not None:
        return record
    pid_path = os.path.join(folder, LEGACY_DIR, "pid")
    pid_text = _read_line(pid_path)
    if not pid_text:
        return None
    record = StatusRecord(start=_mtime(pid_path), run_id=pid_text)
    rc_path = os.path.join(folder, LEGACY_DIR, "rc")
    rc_text = _read_line(rc_path)
    if rc_text.lstrip("-").isdigit():
        record.exit_code, record.end = int(rc_text), _mtime(rc_path)
    return record


def _read_line(path: str) -> str:
    """A one-line record, or "" while it is missing or half-written (no newline yet); never read
    through a link or from a FIFO (:func:`~.status_record.read_job_file`)."""
    text = read_job_file(path) or ""
    return text.strip() if text.endswith("\n") else ""


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


@dataclass
class Kill:
    """A job being killed: TERM was sent; at ``deadline`` every process of it still there gets KILL."""

    deadline: float
    leader: int | None  # None: only processes of the job's cgroup were left
    leader_start: float
    processes: dict[int, float]


@dataclass
class Pool:
    """The jobs of one local site: at most ``capacity`` cpus in use, the rest wait in order."""

    capacity: int = 1
    used: int = 0
    base_env: dict[str, str] = field(default_factory=dict)
    queue: list[tuple[list[Any], int, dict[str, Any]]] = field(default_factory=list)  # (order, arrival, job)
    held: dict[str, dict[str, Any]] = field(default_factory=dict)


class Supervisor:
    """Accepts jobs, starts them in their own sessions as cpus allow, reports their exit status."""

    def __init__(self, socket_path: str, allowed_uids: Iterable[int] = ()) -> None:
        self.socket_path = socket_path
        #: Clients of these uids are served (this user's, plus ``--allow-uid``); others are dropped.
        self.allowed_uids = {os.geteuid(), *allowed_uids}
        self.kills: dict[str, Kill] = {}  # job id -> its kill in progress
        self.selector = selectors.DefaultSelector()
        self.clients: dict[socket.socket, bytearray] = {}
        self.pools: dict[str, Pool] = {}
        self.children: dict[int, dict[str, Any]] = {}  # pidfd -> the job
        self.programs: dict[tuple[str, str | None], str] = {}
        self.arrivals = 0
        self.running: dict[str, tuple[int, float]] = {}  # job id -> pid, start time (from /proc)
        self.outbox: dict[socket.socket, list[dict[str, Any]]] = {}  # sent once per turn of the loop
        self.idle_since = time.monotonic()
        #: Each job's own cgroup, where this process may make them (:mod:`.job_cgroup`); else None.
        self.cgroups = JobCgroups.open()
        #: Jobs that ended leaving processes in their cgroup: removed once those are gone.
        self.lingering: set[str] = set()
        if self.cgroups is not None:
            self.lingering.update(self.cgroups.leftovers())
        #: Warm interpreters that start executor calls (:mod:`.fast_start`).
        self.fast = FastStarter(self.selector)

    def listen(self) -> None:
        """Bind the socket (replacing a stale one) with permissions for this user only.

        Raises :class:`~.local_runtime.UnsafeFolder` if the socket's folder is not this user's or
        others may write to it, and OSError if something other than a socket has the socket's name.
        """
        folder_fd = open_private_folder(os.path.dirname(os.path.abspath(self.socket_path)), create=False, exact=False)
        try:
            name = os.path.basename(self.socket_path)
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISSOCK(os.lstat(name, dir_fd=folder_fd).st_mode):
                    raise FileExistsError(errno.EEXIST, "not a socket: not replaced", self.socket_path)
                os.unlink(name, dir_fd=folder_fd)
        finally:
            os.close(folder_fd)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_mask = os.umask(0o077)
        try:
            listener.bind(self.socket_path)
        finally:
            os.umask(old_mask)
        listener.listen(64)
        listener.setblocking(False)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, "accept")

    def run(self) -> None:
        """Serve until idle for :data:`IDLE_SECONDS`."""
        while True:
            timeout = 1.0
            if self.kills:
                timeout = max(0.0, min(timeout, min(k.deadline for k in self.kills.values()) - time.monotonic()))
            for key, _ in self.selector.select(timeout=timeout):
                if key.data == "accept":
                    self._accept()
                elif key.data == "client":
                    self._read(key.fileobj)  # type: ignore[arg-type]
                elif isinstance(key.data, Zygote):
                    self._zygote_news(key.data)
                else:
                    self._exited(key.data)
            while pending := self.fast.pending():  # ends read while a fork's answer was awaited
                for zygote in pending:
                    self._zygote_news(zygote)
            self._send_outbox()
            self._finish_kills()
            self.fast.reap()
            for zygote in self.fast.idle_zygotes():
                self.fast.discard(zygote)
            busy = self.kills or self.children or self.clients or any(z.jobs for z in self.fast.by_fd.values())
            if busy or any(p.queue or p.held for p in self.pools.values()):
                self.idle_since = time.monotonic()
            elif time.monotonic() - self.idle_since > IDLE_SECONDS:
                break
        self.fast.close()
        self.selector.unregister(self.listener)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        uid = peer_uid(conn)
        if uid not in self.allowed_uids:  # never another user's requests, nor news to them
            print(f"swm supervisor: refused a client of uid {uid}", file=sys.stderr, flush=True)
            conn.close()
            return
        conn.setblocking(False)
        self.clients[conn] = bytearray()
        self.selector.register(conn, selectors.EVENT_READ, "client")

    def _drop(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        self.clients.pop(conn, None)
        conn.close()

    def _read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        buffer = self.clients[conn]
        buffer.extend(data)
        if b"\n" not in buffer:
            return
        *lines, rest = bytes(buffer).split(b"\n")
        buffer[:] = rest
        replies = []
        for line in lines:
            if line.strip():
                try:
                    replies.append(self._handle(parse(line)))
                except Exception as exc:  # one bad request never takes the queue and the running jobs down
                    replies.append({"op": None, "reply": None, "error": f"bad request: {exc!r}"[:300]})
        self._send(conn, replies)

    def _send(self, conn: socket.socket, messages: list[dict[str, Any]]) -> None:
        """Queue ``messages`` for ``conn``; they leave, in order, at the end of this turn of the loop
        (one write for all that a turn says to a client: replies, starts and exits).
        """
        if messages:
            self.outbox.setdefault(conn, []).extend(messages)

    def _send_outbox(self) -> None:
        outbox, self.outbox = self.outbox, {}
        for conn, messages in outbox.items():
            if conn not in self.clients:
                continue
            payload = b"".join(to_bytes(m) + b"\n" for m in messages)
            try:
                try:
                    sent = conn.send(payload)
                except BlockingIOError:
                    sent = 0
                if sent < len(payload):  # the client reads slowly: wait a while for it rather than drop news
                    conn.settimeout(SEND_TIMEOUT)
                    conn.sendall(payload[sent:])
                    conn.setblocking(False)
            except OSError:  # gone, or stuck (TimeoutError): the other clients and the jobs go on
                self._drop(conn)

    def _broadcast(self, message: dict[str, Any]) -> None:
        for conn in self.clients:
            self._send(conn, [message])

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"op": request.get("op"), **self._answer(request)}

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        job_id = str(request.get("id"))
        if op == "spawn":
            return {"reply": job_id, **self._enqueue(request)}
        if op == "env":
            self.pools.setdefault(str(request.get("pool", "")), Pool()).base_env = dict(request.get("env") or {})
            return {"reply": job_id}
        if op in ("cancel", "hold"):
            for pool in self.pools.values():
                for entry in pool.queue:
                    if entry[2]["id"] == job_id:
                        pool.queue.remove(entry)
                        if op == "hold":
                            pool.held[job_id] = entry[2]
                        return {"reply": job_id, "done": True}
                if op == "cancel" and pool.held.pop(job_id, None) is not None:
                    return {"reply": job_id, "done": True}
            if op == "cancel":
                grace = float(request.get("grace", DEFAULT_GRACE))
                child = job_id in self.running  # its end will be reported
                killing = self._kill(job_id, str(request.get("status_file") or ""), grace)
                return {"reply": job_id, "done": killing, "killing": killing, "child": child}
            return {"reply": job_id, "done": False}
        if op == "release":
            for name, pool in self.pools.items():
                held = pool.held.pop(job_id, None)
                if held is not None:
                    self._insert(pool, held)
                    self._start_ready(name)
                    return {"reply": job_id, "done": True}
            return {"reply": job_id, "done": False}
        return {"reply": job_id, "error": f"unknown op {op!r}"}

    def _enqueue(self, request: dict[str, Any]) -> dict[str, Any]:
        """Queue a job, start what fits; answer where the job is now."""
        job_id = str(request["id"])
        if job_id in self.running:
            return {"pid": self.running[job_id][0], "started": None}
        name = str(request.get("pool", ""))
        pool = self.pools.setdefault(name, Pool())
        pool.capacity = max(1, int(request.get("capacity", 1)))
        if any(entry[2]["id"] == job_id for entry in pool.queue) or job_id in pool.held:
            return {"queued": True}
        record = read_job_record(os.path.dirname(request["status_file"]))
        if record is not None:  # it started before (under an earlier supervisor): never twice
            if record.start is not None and record.run_id.isdigit():
                # "recorded": not one of this supervisor's children, so it reports no end of it
                return {"pid": int(record.run_id), "started": record.start, "recorded": True}
            return {"error": "the job was launched before, but its status record has no start: not run again"}
        request["env"] = {**pool.base_env, **(request.get("env") or {})}
        self._insert(pool, request)
        for started_id, answer in self._start_ready(name, announce_except=job_id):
            if started_id == job_id:
                return answer
        return {"queued": True}

    def _insert(self, pool: Pool, request: dict[str, Any]) -> None:
        self.arrivals += 1
        bisect.insort(pool.queue, (list(request.get("order") or []), self.arrivals, request), key=lambda e: e[:2])

    def _start_ready(self, name: str, announce_except: str = "") -> list[tuple[str, dict[str, Any]]]:
        """Start queued jobs of pool ``name`` in order while their cpus fit; tell clients of each."""
        pool = self.pools[name]
        started = []
        while pool.queue:
            request = pool.queue[0][2]
            cpus = max(1, int(request.get("cpus", 1)))
            if pool.used and pool.used + cpus > pool.capacity:
                break  # strict order: a big job is not overtaken by later small ones
            pool.queue.pop(0)
            answer = self._start(request, name, cpus)
            started.append((str(request["id"]), answer))
            if str(request["id"]) == announce_except:
                continue
            if "error" in answer:
                self._broadcast({"exit": str(request["id"]), "rc": 127, "end": time.time(), "error": answer["error"]})
            else:
                self._broadcast({"started": str(request["id"]), "pid": answer["pid"], "at": answer["started"]})
        return started

    def _start(self, request: dict[str, Any], pool_name: str, cpus: int) -> dict[str, Any]:
        """Start one job in a session of its own, its output appended to its files; record its pid.

        ``posix_spawn`` (vfork and exec, no Python in the child) opens the output files in the
        child, never through a symlink; the working folder is entered around the call (this
        process has one thread).
        """
        argv = [str(a) for a in request["argv"]]
        env = request["env"]
        status_file = request["status_file"]
        cwd = str(request["cwd"])
        here = os.getcwd()
        status_fd = -1
        stage = "program"
        try:
            program = self._program(argv[0], env.get("PATH"))
            stage = "record"
            status_fd = open_append(status_file, 0o644, exclusive=True)  # before the spawn: never two runs
            stage = "workdir"
            os.chdir(cwd)
            stage = "spawn"
            try:
                started = time.time()
                forked = self._fast_start(request, argv, env) if request.get("fast_start", True) else None
                if forked is not None:
                    pid, zygote = forked
                else:
                    pid, zygote = self._spawn(request, program, argv, env), None
            finally:
                os.chdir(here)
        except (OSError, ValueError, TypeError) as exc:  # ValueError: e.g. a NUL character in an argument
            if status_fd >= 0:  # nothing ran: leave no record that says it might have
                os.close(status_fd)
                with contextlib.suppress(OSError):
                    os.unlink(status_file)
            return {"error": self._start_error(exc, stage, argv[0], cwd, request)}
        with contextlib.suppress(OSError):  # a full disk must not take the supervisor down
            os.write(status_fd, f"start {started:.3f} {pid}\n".encode())
        info = process_info(pid)
        job = {"id": str(request["id"]), "pool": pool_name, "cpus": cpus, "status_fd": status_fd, "pid": pid}
        if zygote is not None:
            zygote.jobs[pid] = job  # its end comes from the zygote, its parent
        else:
            pidfd = os.pidfd_open(pid)
            self.children[pidfd] = job
            self.selector.register(pidfd, selectors.EVENT_READ, pidfd)
        self.running[job["id"]] = (pid, info.start if info is not None else started)
        self.pools[pool_name].used += cpus
        return {"pid": pid, "started": started}

    def _spawn(self, request: dict[str, Any], program: str, argv: list[str], env: dict[str, str]) -> int:
        """posix_spawn the job (in this process's folder, which is the job's), in its cgroup; its pid."""
        in_group = self._enter_job_cgroup(str(request["id"]))
        try:
            return os.posix_spawn(
                program,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, request["stdout"], _OUTPUT_FLAGS, 0o644),
                    (os.POSIX_SPAWN_OPEN, 2, request["stderr"], _OUTPUT_FLAGS, 0o644),
                ],
                setsid=True,
            )
        finally:
            if in_group:
                self._leave_job_cgroup()

    def _fast_start(self, request: dict[str, Any], argv: list[str], env: dict[str, str]) -> tuple[int, Zygote] | None:
        """Start an executor call from a warm interpreter (:mod:`.fast_start`); None: spawn it instead.

        Runs in the job's folder. The job's files are opened here as posix_spawn opens them (an
        OSError there is the job's own, raised as the spawn's would be); the forked process gets
        them, and the job's argv and environment through a pipe once it is in the job's cgroup.
        """
        key = self.fast.key(argv, env)
        zygote = self.fast.zygote_for(key) if key is not None else None
        if zygote is None or self.fast.shadowed(zygote, argv[1]):
            return None
        fds: list[int] = []
        try:
            fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            fds.append(os.open(request["stdout"], _OUTPUT_FLAGS | os.O_CLOEXEC, 0o644))
            fds.append(os.open(request["stderr"], _OUTPUT_FLAGS | os.O_CLOEXEC, 0o644))
            fds.append(os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
            details, writer = os.pipe()
            fds.insert(0, details)
            try:
                pid = self.fast.fork(zygote, fds)
            except ZygoteError as exc:
                os.close(writer)
                self.fast.warn("fork", str(exc))
                self.fast.discard(zygote, broken=True)
                self._zygote_gone(zygote)
                return None
        finally:
            for fd in fds:
                os.close(fd)
        try:
            if self.cgroups is not None:
                with contextlib.suppress(OSError, ValueError):  # as when entering it fails: no cgroup
                    self.cgroups.place(str(request["id"]), pid)
            payload = to_bytes({"argv": argv, "env": {**env, **zygote.additions()}})
            with os.fdopen(writer, "wb", closefd=False) as pipe:
                pipe.write(payload)
        except OSError as exc:  # it never runs anything without its details: spawn the job
            self.fast.warn("details", f"a warm Python's process did not take its job ({exc})")
            return None
        finally:
            os.close(writer)
        return pid, zygote

    def _zygote_news(self, zygote: Zygote) -> None:
        """Jobs a zygote saw end; if it went away, its running jobs are watched until they end."""
        news, gone = self.fast.read(zygote)
        for pid, status in news:
            job = zygote.jobs.pop(pid, None)
            if job is not None:
                self._ended(job, status)
        if gone:
            if not zygote.retired:
                self.fast.warn("gone", "a warm Python that starts executor calls went away")
            self.fast.discard(zygote, broken=not zygote.retired)
            self._zygote_gone(zygote)

    def _zygote_gone(self, zygote: Zygote) -> None:
        """The jobs of a zygote that is gone: their ends are watched here, reported as lost."""
        news, zygote.news = zygote.news, []
        for pid, status in news:  # ends it told before it went
            job = zygote.jobs.pop(pid, None)
            if job is not None:
                self._ended(job, status)
        for pid, job in list(zygote.jobs.items()):
            del zygote.jobs[pid]
            job["lost"] = True
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                self._ended(job, None)
                continue
            self.children[pidfd] = job
            self.selector.register(pidfd, selectors.EVENT_READ, pidfd)

    def _enter_job_cgroup(self, job_id: str) -> bool:
        """Enter the job's own cgroup (what is spawned next is born there), if this supervisor makes them."""
        if self.cgroups is None:
            return False
        try:
            self.cgroups.enter(job_id)
        except (OSError, ValueError):
            return False
        return True

    def _leave_job_cgroup(self) -> None:
        """Go back to the supervisor's own cgroup; if that fails, stop using cgroups at all, so that no
        job's KILL can ever reach the supervisor (jobs are then reached through the process tree only)."""
        try:
            self.cgroups.leave()  # type: ignore[union-attr]
        except OSError as exc:
            print(
                f"swm supervisor: cannot leave a job's cgroup ({exc}); job cgroups are no longer used", file=sys.stderr
            )
            self.cgroups = None

    def _start_error(self, exc: BaseException, stage: str, program: str, cwd: str, request: dict[str, Any]) -> str:
        """Why a job could not start, in words that say what to fix."""
        if not isinstance(exc, OSError):
            return f"could not start {program!r}: {exc}"
        self.programs.clear()  # a program may have moved: look it up again next time
        if stage == "record":
            if exc.errno == errno.EEXIST:
                return "the job was launched before (it has a status record): not run again"
            return f"could not write the job's status record {request['status_file']}: {exc.strerror or exc}"
        if stage == "workdir":
            if exc.errno == errno.ENOENT:
                return f"workdir {cwd} does not exist"
            if exc.errno == errno.ENOTDIR:
                return f"workdir {cwd} is not a folder"
            return f"workdir {cwd} cannot be entered: {exc.strerror or exc}"
        links = [str(request[n]) for n in ("stdout", "stderr") if os.path.islink(str(request[n]))]
        if stage == "spawn" and exc.errno == errno.ELOOP and links:
            return f"refused to write the job's output through a symlink: {', '.join(links)}"
        return f"could not start {program!r}: {exc.strerror or exc}"

    def _program(self, name: str, path: str | None) -> str:
        """The file ``name`` runs: as given if it has a slash, else found on the job's ``PATH``."""
        if "/" in name:
            return name
        key = (name, path)
        found = self.programs.get(key)
        if found is None:
            found = shutil.which(name, path=path if path is not None else os.defpath)
            if found is None:
                raise FileNotFoundError(errno.ENOENT, "no such program on the job's PATH", name)
            self.programs[key] = found
        return found

    def _exited(self, pidfd: int) -> None:
        self.selector.unregister(pidfd)
        os.close(pidfd)
        job = self.children.pop(pidfd)
        if job.get("lost"):  # a zygote's job whose zygote went away: not this process's child
            self._ended(job, None)
            return
        _, status = os.waitpid(job["pid"], 0)
        self._ended(job, status)

    def _ended(self, job: dict[str, Any], status: int | None) -> None:
        """Record and report the end of ``job`` (``status``: its raw wait status; None if lost)."""
        end = time.time()
        news: dict[str, Any] = {"exit": job["id"], "end": end}
        line = ""
        if status is None:
            news.update(rc=255, error="the job's exit status was lost: the warm Python that started it went away")
        elif os.WIFSIGNALED(status):  # killed by signal N: reported as such, with 128 + N as shells do
            signum = os.WTERMSIG(status)
            news.update(rc=128 + signum, signal=signum)
            line = f"signal {signum} {end:.3f}\n"
        else:
            news["rc"] = os.waitstatus_to_exitcode(status)
            line = f"exit {news['rc']} {end:.3f}\n"
        if line:
            with contextlib.suppress(OSError):
                os.write(job["status_fd"], line.encode())
        os.close(job["status_fd"])
        self.running.pop(job["id"], None)
        if self.cgroups is not None and not self.cgroups.remove(job["id"]):
            self.lingering.add(job["id"])  # it left processes behind: removed once they are gone
        pool = self.pools[job["pool"]]
        pool.used -= job["cpus"]
        self._start_ready(job["pool"])  # the next job starts before anyone is told of this one
        self._broadcast(news)

    def _kill(self, job_id: str, status_file: str, grace: float) -> bool:
        """TERM every process of a running job; KILL follows after ``grace`` seconds. False if it runs not.

        The job is one this supervisor started, or one whose status record (``status_file``) names
        a session leader that still runs and started when the record says (an earlier supervisor's).
        Where jobs have cgroups, every process in the job's cgroup is signalled too, whatever its
        session or parent.
        """
        in_group = self.cgroups.signal(job_id, signal.SIGTERM) if self.cgroups is not None else 0
        leader: int | None = None
        leader_start = 0.0
        if job_id in self.running:
            leader, leader_start = self.running[job_id]
        else:
            record = read_job_record(os.path.dirname(status_file)) if status_file else None
            if record is not None and not record.ended and record.start is not None and record.run_id.isdigit():
                info = process_info(int(record.run_id))
                # the pid must still be the job's session leader started at the recorded time
                if info is not None and info.session == info.pid and abs(info.start - record.start) <= 2.0:
                    leader, leader_start = info.pid, info.start
        kill = self.kills.get(job_id)
        processes: dict[int, float] = {}
        if leader is not None:
            processes = job_processes(leader, leader_start, kill.processes if kill else None)
            signal_processes(processes, signal.SIGTERM)
        if not processes and not in_group:
            return False
        deadline = time.monotonic() + max(0.0, grace)
        if kill is None or deadline < kill.deadline:
            self.kills[job_id] = Kill(deadline, leader, leader_start, processes)
        else:
            kill.processes.update(processes)
        return True

    def _finish_kills(self) -> None:
        """KILL what is left of each job whose grace period is over; remove cgroups that have emptied."""
        now = time.monotonic()
        for job_id, kill in list(self.kills.items()):
            if kill.deadline > now:
                continue
            del self.kills[job_id]
            if kill.leader is not None:
                signal_processes(job_processes(kill.leader, kill.leader_start, kill.processes), signal.SIGKILL)
            if self.cgroups is not None:
                self.cgroups.kill(job_id)
                self.lingering.add(job_id)
        if self.cgroups is not None and self.lingering:
            self.lingering = {job_id for job_id in self.lingering if not self.cgroups.remove(job_id)}


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m swm_jupyter.daemons.local_supervisor SOCKET [--allow-uid UID]``."""
    parser = argparse.ArgumentParser(prog="swm-local-supervisor", description=__doc__.split("\n")[0])
    parser.add_argument("socket", help="path of the UNIX socket to listen on (its folder: this user's only)")
    parser.add_argument(
        "--allow-uid", type=int, action="append", default=[], help="also serve clients of this uid (repeatable)"
    )
    args = parser.parse_args(argv)
    supervisor = Supervisor(args.socket, allowed_uids=args.allow_uid)
    try:
        supervisor.listen()
    except (UnsafeFolder, OSError) as exc:
        sys.exit(f"swm supervisor: not started: {exc}")
    supervisor.run()


if __name__ == "__main__":
    main()
