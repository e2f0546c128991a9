"""A warm Python for executor calls: forks each call's process with cloudpickle already imported.

The local supervisor (:mod:`.fast_start`) starts this file by its path with the interpreter and the
start-up environment (``PYTHON*``, ``HOME``, the locale, ``TZ``) of the jobs it serves, in a
session of its own, single-threaded. It imports what the executor's runner imports (``json``,
``typing``, ``cloudpickle``, ``traceback``), then waits on its socket (the file descriptor named
by its one argument, a ``SOCK_SEQPACKET`` socket to the supervisor). Messages are JSON:

- to the supervisor, once: ``{"ready": pid, "env", "path", "user_site", "modules"}`` (its
  environment after start-up, ``sys.path`` without its own folder, the user site folder, and
  the top-level modules it has imported);
- from the supervisor: ``"fork"`` with five descriptors (SCM_RIGHTS): a pipe the job's details
  come through, the job's stdin, stdout and stderr, and its working folder (an ``O_PATH``
  descriptor). Answered ``{"pid"}`` (or ``{"error"}``);
- to the supervisor, when a forked process ends: ``{"exit": pid, "status": <raw wait status>}``.

The forked process reads ``{"argv", "env"}`` from the pipe (nothing: it leaves at once, having
run nothing), so a job's environment never passes through this process. It then makes itself
what ``posix_spawn`` of ``python runner.py call`` would have made: a session of its own, the
job's working folder, exactly the job's environment, descriptors 0 - 2 and no others, fresh
``sys.stdin``/``stdout``/``stderr`` built as the interpreter builds them, ``sys.argv``,
``sys.path[0]`` (the script's folder) and a fresh ``__main__``; runs the script there; and ends
as the interpreter ends (non-daemon threads joined, ``atexit`` functions, streams flushed; exit
status 1 and the traceback for an uncaught exception; SIGINT for an uncaught
KeyboardInterrupt). Signal dispositions and mask are this process's, which are those a spawned
job gets (this process changes none). Differences left: its parent is this process, its
command line (``/proc/<pid>/cmdline``, ``ps``) is this process's, the hash seed of ``str`` is this
process's (as with multiprocessing's forkserver), objects still alive at the end are not
finalized, and modules this file imported for its own work are dropped from ``sys.modules``.

When the supervisor closes the socket, this process waits for its forked processes and leaves.
Standard library only (it is run by path, like the runner; nothing of swm-jupyter is imported).
"""

import os  # no "from __future__ import annotations": a spawned runner imports __future__ itself
import sys

if not getattr(sys.flags, "safe_path", False):
    del sys.path[0]  # this file's folder: a job gets its script's folder there instead

import json  # noqa: E402  (the runner's imports, made once here)
import traceback  # noqa: E402, F401
import typing  # noqa: E402, F401

try:
    import cloudpickle  # noqa: F401
except Exception:  # the runner finds it missing as a spawned one would (its version check says so)
    pass

_PRELOADED = set(sys.modules)

import _socket  # noqa: E402  (this file's own work: dropped from sys.modules in a forked job)
import select  # noqa: E402
import struct  # noqa: E402

_OWN_MODULES = set(sys.modules) - _PRELOADED
_FDS_PER_FORK = 5


def _send(ctl: _socket.socket, message: dict[str, object]) -> None:
    try:
        ctl.send(json.dumps(message, separators=(",", ":")).encode())
    except OSError:
        pass  # the supervisor is gone: its jobs' ends are lost with it, as for spawned ones


def _receive(ctl: _socket.socket) -> tuple[bytes, list[int]]:
    """One message and the descriptors it carries."""
    size = struct.calcsize("i") * _FDS_PER_FORK
    data, ancillary, _, _ = ctl.recvmsg(4096, _socket.CMSG_SPACE(size))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            count = len(payload) // struct.calcsize("i")
            fds.extend(struct.unpack(f"{count}i", payload[: count * struct.calcsize("i")]))
    return data, fds


def main() -> None:
    """Serve fork requests on the socket ``sys.argv[1]`` until it closes and every child has ended."""
    ctl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, int(sys.argv[1]))
    site = sys.modules.get("site")
    user_site = getattr(site, "USER_SITE", None) if getattr(site, "ENABLE_USER_SITE", False) else None
    top = sorted({name.partition(".")[0] for name in _PRELOADED})
    ready = {"ready": os.getpid(), "env": dict(os.environ), "path": sys.path, "user_site": user_site, "modules": top}
    _send(ctl, ready)
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    children: dict[int, int] = {}  # pidfd -> pid
    open_ = True
    while open_ or children:
        for fd, _ in poller.poll():
            if fd == ctl.fileno():
                data, fds = _receive(ctl)
                if not data:  # the supervisor closed: finish the children, then leave
                    poller.unregister(fd)
                    open_ = False
                elif data == b"fork" and len(fds) == _FDS_PER_FORK:
                    _fork(ctl, fds, poller, children)
                else:
                    for extra in fds:
                        os.close(extra)
                    _send(ctl, {"error": "bad request"})
            else:
                pid = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                _send(ctl, {"exit": pid, "status": status})


def _fork(ctl: _socket.socket, fds: list[int], poller: select.poll, children: dict[int, int]) -> None:
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        _send(ctl, {"error": f"fork: {exc}"})
        return
    if pid == 0:
        try:
            ctl.detach()  # its descriptor is closed below; the object must never close a reused number
            _child(fds)
        finally:
            os._exit(70)  # never reached: _child ends the process
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    children[pidfd] = pid
    poller.register(pidfd, select.POLLIN)
    _send(ctl, {"pid": pid})


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _child(fds: list[int]) -> None:
    """Become the job's process (see the module docstring) and run its script; never returns."""
    details, stdin, stdout, stderr, cwd = fds
    data = _read_all(details)
    if not data:  # the supervisor gave up on this start: nothing was run
        os._exit(0)
    job = json.loads(data)
    argv, env = [str(a) for a in job["argv"]], {str(k): str(v) for k, v in job["env"].items()}
    os.setsid()
    os.fchdir(cwd)
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)  # inheritable, as posix_spawn's opens are
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.environ.clear()
    os.environ.update(env)
    for name in _OWN_MODULES:
        sys.modules.pop(name, None)
    _fresh_stdio()
    script = argv[1]
    sys.argv = argv[1:]
    sys.orig_argv = list(argv)
    if not getattr(sys.flags, "safe_path", False):
        sys.path.insert(0, os.path.dirname(os.path.realpath(script)))
    _run_main(script)


def _fresh_stdio() -> None:
    """``sys.stdin``/``stdout``/``stderr`` on descriptors 0 - 2, built as the interpreter's start-up does."""
    import io

    originals = (sys.stdin, sys.stdout, sys.stderr)  # made at this process's start-up, like a job's
    buffered = not getattr(sys.stdout, "write_through", False)  # -u / PYTHONUNBUFFERED: write-through, no buffer
    streams = []
    for fd, original in enumerate(originals):
        name, writing = ("<stdin>", "<stdout>", "<stderr>")[fd], fd > 0
        encoding, errors = original.encoding, original.errors
        buffering = -1 if (buffered or not writing) else 0
        binary = io.open(  # noqa: UP020 (io's, as the interpreter's start-up calls it)
            fd, "wb" if writing else "rb", buffering=buffering, closefd=False
        )
        raw = binary.raw if buffering else binary
        raw.name = name
        line_buffering = buffered and (raw.isatty() or fd == 2)
        text = io.TextIOWrapper(
            binary, encoding, errors, newline="\n", line_buffering=line_buffering, write_through=not buffered
        )
        text.mode = "w" if writing else "r"
        streams.append(text)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams


def _run_main(script: str) -> None:
    """Run ``script`` as ``__main__`` and end the process as the interpreter would; never returns."""
    import builtins
    import types
    from importlib.machinery import SourceFileLoader

    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=script,
        __cached__=None,
        __builtins__=builtins,
        __loader__=SourceFileLoader("__main__", script),
        __annotations__={},
    )
    sys.modules["__main__"] = main
    status, interrupted = 0, False
    try:
        with open(script, "rb") as source:
            text = source.read()
    except OSError as exc:  # the interpreter's own words and status for a script it cannot open
        print(f"{sys.orig_argv[0]}: can't open file {script!r}: [Errno {exc.errno}] {exc.strerror}", file=sys.stderr)
        _finish(2, False)
    try:
        exec(compile(text, script, "exec", dont_inherit=True), main.__dict__)
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:  # what the interpreter prints, then exit status 1
        interrupted = isinstance(exc, KeyboardInterrupt)
        if exc.__traceback__ is not None and exc.__traceback__.tb_frame is sys._getframe():
            exc.__traceback__ = exc.__traceback__.tb_next  # the script's frames only, as the interpreter shows
        try:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        except BaseException:
            pass
        status = 1
    _finish(status, interrupted)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _finish(status: int, interrupted: bool) -> None:
    """The interpreter's end: wait for non-daemon threads, run atexit functions, flush the streams."""
    threading = sys.modules.get("threading")
    try:
        if threading is not None:
            threading._shutdown()  # type: ignore[attr-defined]
    except BaseException:
        pass
    atexit = sys.modules.get("atexit")
    if atexit is not None:
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            status = status or 120  # as the interpreter: flushing the standard streams failed
    if interrupted:  # an uncaught KeyboardInterrupt ends the interpreter by SIGINT
        import _signal

        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGINT)
    os._exit(status)


if __name__ == "__main__":
    main()
