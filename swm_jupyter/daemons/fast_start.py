"""Executor calls started from a warm interpreter: the local supervisor's side of :mod:`.python_zygote`.

A local job that runs the executor's runner with the site's default interpreter (the supervisor's
own, ``sys.executable``: a site with a ``python`` option runs another command line and is never
concerned) costs one interpreter start and one import of cloudpickle per call, three times what
a bare ``python -c`` costs. For such a job the supervisor asks a zygote (one per interpreter and
start-up environment) to fork the job's process instead; everything the job sees is what a
spawned job sees (see :mod:`.python_zygote`). Only what must be the same at an interpreter's
start-up decides which zygote serves a job: the ``PYTHON*`` variables (a job with one not in
:data:`STARTUP_PYTHON_VARS` is spawned), ``HOME`` (the user site), the locale and ``TZ``. A
zygote whose ``sys.path`` folders (or user site) changed since it started (a package installed
or removed) is retired and a new one started.

Any trouble (the zygote cannot start, does not answer, goes away) makes the job spawn the usual
way, and is logged once. The zygote is the forked processes' parent: it sends each one's raw wait
status, which the supervisor reports exactly as for its own children. Should a zygote die while
its jobs run, their ends are reported as errors (their exit status is lost), as when a supervisor
is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

#: The executor's runner as it is copied into a job (``swm_jupyter.executor.executor.RUNNER_FILE``).
RUNNER_FILE = "swm_runner.py"
ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_zygote.py")
#: ``PYTHON*`` variables that only shape the interpreter's start-up; a job with any other is spawned.
STARTUP_PYTHON_VARS = frozenset(
    {
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONNOUSERSITE",
        "PYTHONUSERBASE",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONPYCACHEPREFIX",
        "PYTHONUNBUFFERED",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONCOERCECLOCALE",
        "PYTHONWARNINGS",
        "PYTHONWARNDEFAULTENCODING",
        "PYTHONSAFEPATH",
        "PYTHONHASHSEED",
        "PYTHONOPTIMIZE",
        "PYTHONINTMAXSTRDIGITS",
        "PYTHONPLATLIBDIR",
        "PYTHONBREAKPOINT",
    }
)
#: Other variables the interpreter reads while it starts (user site, locale, time zone).
STARTUP_VARS = frozenset({"HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ"})
#: The largest message a zygote sends (its first, with its start-up environment and modules, is a few kB).
MESSAGE_SIZE = 1 << 16
#: Seconds a zygote has to answer a fork request before it is given up.
REPLY_TIMEOUT = 5.0
#: Seconds a zygote has to start (import cloudpickle) before it is given up.
START_TIMEOUT = 60.0

Key = tuple[str, tuple[tuple[str, str], ...]]


class ZygoteError(Exception):
    """The fast path failed for a reason of its own (not the job's): the job is spawned instead."""


@dataclass
class Zygote:
    """One warm interpreter: its process, its socket, what it said when ready, the jobs it forked."""

    pid: int
    sock: socket.socket
    key: Key
    given_env: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    ready: dict[str, Any] | None = None
    marks: dict[str, int | None] = field(default_factory=dict)  # sys.path folder -> mtime_ns (None: absent)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)  # pid -> the supervisor's job
    news: list[tuple[int, int]] = field(default_factory=list)  # (pid, status) read while waiting for a reply
    retired: bool = False

    def additions(self) -> dict[str, str]:
        """Variables the interpreter's start-up added to its environment (PEP 538's ``LC_CTYPE``)."""
        env = (self.ready or {}).get("env") or {}
        return {k: v for k, v in env.items() if self.given_env.get(k) != v}


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class FastStarter:
    """The supervisor's zygotes: which jobs they start, and how (see the module docstring)."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector  # the supervisor's: each zygote's socket is read with the clients
        self.zygotes: dict[Key, Zygote] = {}
        self.by_fd: dict[int, Zygote] = {}
        self.warned: set[str] = set()
        self.python = sys.executable
        self.leaving: set[int] = set()  # pids of zygotes told to leave, reaped once they have
        self.broken: set[Key] = set()  # keys whose zygote failed: spawned for the rest of this process's life

    # which jobs ------------------------------------------------------------------------------------
    def key(self, argv: list[str], env: dict[str, str]) -> Key | None:
        """The zygote key of a job, or None if it must be spawned (not a runner call of this interpreter)."""
        if len(argv) != 3 or argv[0] != self.python or not self.python or os.path.basename(argv[1]) != RUNNER_FILE:
            return None
        startup = []
        for name, value in env.items():
            if name.startswith("PYTHON"):
                if name not in STARTUP_PYTHON_VARS:
                    return None
                startup.append((name, value))
            elif name in STARTUP_VARS:
                startup.append((name, value))
        return (argv[0], tuple(sorted(startup)))

    def warn(self, reason: str, detail: str) -> None:
        """Log ``detail`` once per ``reason`` (the supervisor's log is its stderr)."""
        if reason not in self.warned:
            self.warned.add(reason)
            print(f"swm supervisor: {detail}; such jobs are spawned instead", file=sys.stderr, flush=True)

    def zygote_for(self, key: Key) -> Zygote | None:
        """The ready zygote of ``key``; starts one (ready later) if there is none. None: spawn this job."""
        zygote = self.zygotes.get(key)
        if zygote is not None and zygote.ready is not None and not self._fresh(zygote):
            zygote.retired = True  # packages changed: a new interpreter would see them
            del self.zygotes[key]
            zygote = None
        if zygote is None:
            if key in self.broken:
                return None
            try:
                zygote = self._start(key)
            except OSError as exc:
                self.broken.add(key)
                self.warn("start", f"cannot start a warm Python for executor calls ({exc})")
                return None
            self.zygotes[key] = zygote
            self.by_fd[zygote.sock.fileno()] = zygote
            self.selector.register(zygote.sock, selectors.EVENT_READ, zygote)
            return None  # it imports cloudpickle meanwhile; this job is spawned
        if zygote.ready is None:
            if time.monotonic() - zygote.started > START_TIMEOUT:
                self.warn("start", "a warm Python for executor calls did not start in time")
                self.broken.add(key)
                self.discard(zygote)
            return None
        return zygote

    def _fresh(self, zygote: Zygote) -> bool:
        return all(_mtime(path) == mark for path, mark in zygote.marks.items())

    def shadowed(self, zygote: Zygote, script: str) -> bool:
        """True if the script's folder (relative to this process's folder) holds a module the zygote
        has imported from elsewhere: a spawned interpreter would import that one instead."""
        modules = set((zygote.ready or {}).get("modules") or ())
        try:
            names = os.listdir(os.path.dirname(script) or ".")
        except OSError:
            return True
        for name in names:
            stem = name.partition(".")[0]
            if stem in modules and (name == stem or name.endswith((".py", ".pyc", ".so"))):
                return True
        return False

    # the zygote processes --------------------------------------------------------------------------
    def _start(self, key: Key) -> Zygote:
        python, startup = key
        env = dict(startup)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            theirs.set_inheritable(True)  # this process has one thread: no other spawn sees it
            pid = os.posix_spawn(
                python,
                [python, ZYGOTE, str(theirs.fileno())],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
            )
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        mine.setblocking(False)
        return Zygote(pid=pid, sock=mine, key=key, given_env=env)

    def read(self, zygote: Zygote) -> tuple[list[tuple[int, int]], bool]:
        """What waits on a zygote's socket: the (pid, raw status) of processes that ended, and
        whether the zygote is gone (its socket closed)."""
        news, zygote.news = zygote.news, []
        while True:
            try:
                data = zygote.sock.recv(MESSAGE_SIZE)
            except (BlockingIOError, InterruptedError):
                return news, False
            except OSError:
                data = b""
            if not data:
                return news, True
            try:
                message = json.loads(data)
            except ValueError:
                return news, True  # not a zygote's words: given up like one that went away
            if "exit" in message:
                news.append((int(message["exit"]), int(message["status"])))
            elif "ready" in message:
                self._on_ready(zygote, message)

    def _on_ready(self, zygote: Zygote, message: dict[str, Any]) -> None:
        zygote.ready = message
        folders = [p for p in message.get("path") or [] if isinstance(p, str)]
        if message.get("user_site"):
            folders.append(str(message["user_site"]))
        zygote.marks = {path: _mtime(path) for path in folders}

    def fork(self, zygote: Zygote, fds: list[int]) -> int:
        """Ask ``zygote`` for a process that will take ``fds`` (see :mod:`.python_zygote`); its pid.

        Raises :class:`ZygoteError` if the zygote does not answer in time or refuses.
        """
        try:
            zygote.sock.sendmsg([b"fork"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(_pack(fds)))])
        except OSError as exc:
            raise ZygoteError(f"the warm Python does not take requests ({exc})") from None
        deadline = time.monotonic() + REPLY_TIMEOUT
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ZygoteError("the warm Python did not answer")
                ready, _, _ = select.select([zygote.sock], [], [], left)
                if not ready:
                    continue
                try:
                    data = zygote.sock.recv(MESSAGE_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                if not data:
                    raise ZygoteError("the warm Python went away")
                message = json.loads(data)
                if "exit" in message:  # handed to the supervisor by its next turn (see pending)
                    zygote.news.append((int(message["exit"]), int(message["status"])))
                elif "pid" in message:
                    return int(message["pid"])
                elif "error" in message:
                    raise ZygoteError(f"the warm Python could not fork: {message['error']}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ZygoteError(f"the warm Python answered badly ({exc!r})") from None

    def pending(self) -> list[Zygote]:
        """Zygotes with ends of jobs read (while waiting for a fork's answer) but not yet reported."""
        return [z for z in self.by_fd.values() if z.news]

    def discard(self, zygote: Zygote, broken: bool = False) -> None:
        """Stop using ``zygote``: close its socket (it leaves once its processes have ended) and reap it.
        ``broken``: it failed; its key's jobs are spawned from now on."""
        if broken:
            self.broken.add(zygote.key)
        if self.zygotes.get(zygote.key) is zygote:
            del self.zygotes[zygote.key]
        if self.by_fd.pop(zygote.sock.fileno(), None) is not None:
            self.selector.unregister(zygote.sock)
        zygote.sock.close()
        if zygote.jobs:  # it died with jobs running: make sure it is gone
            with contextlib.suppress(OSError):
                os.kill(zygote.pid, 9)
        self.leaving.add(zygote.pid)
        self.reap()

    def reap(self) -> None:
        """Reap the zygotes that have left."""
        for pid in list(self.leaving):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.leaving.discard(pid)

    def idle_zygotes(self) -> list[Zygote]:
        """Retired zygotes with no job left: to be discarded."""
        return [z for z in self.by_fd.values() if z.retired and not z.jobs]

    def close(self) -> None:
        """Close every zygote's socket (each leaves once its processes have ended)."""
        for zygote in list(self.by_fd.values()):
            self.by_fd.pop(zygote.sock.fileno(), None)
            self.selector.unregister(zygote.sock)
            zygote.sock.close()
            self.leaving.add(zygote.pid)
        self.zygotes.clear()
        self.reap()


def _pack(fds: list[int]) -> bytes:
    import array

    return array.array("i", fds).tobytes()
