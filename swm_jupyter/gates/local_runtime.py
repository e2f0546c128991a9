"""The local supervisor's private folder, the credentials of its socket's peer, files opened safely.

The gate and the supervisor talk over a UNIX socket. Whoever controls the socket's folder could
stand in for the supervisor (and receive jobs, report pids of their choice) or plant symlinks, so:

- the folder is ``$XDG_RUNTIME_DIR/swm-local`` when that runtime folder exists and is ours, else
  ``<temp dir>/swm-local-<uid>``; it is created with mode 0700 and verified after creation, through
  a descriptor opened without following a symlink: it must be a folder, owned by this user, with
  mode 0700. Anything else is refused with the reason (:class:`UnsafeFolder`);
- each end checks the other's uid (``SO_PEERCRED``): :func:`peer_uid`;
- files are created and appended to without following a symlink: :func:`open_append`.
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import stat
import struct
import tempfile

#: Flags of every file the gate or the supervisor appends to: a symlink in its place is refused (ELOOP).
APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFolder(Exception):
    """The supervisor's folder is not private to this user; the message says why and what to do."""


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def default_folder() -> str:
    """Where the supervisor's socket goes by default (see the module docstring)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        try:
            info = os.lstat(runtime)
        except OSError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            return os.path.join(runtime, "swm-local")
    return os.path.join(tempfile.gettempdir(), f"swm-local-{os.geteuid()}")


#: What an :class:`UnsafeFolder` message tells the operator to do, by default.
SOCKET_REMEDY = "set LocalGate.supervisor_socket to a socket in a folder only this user can write to"


def open_private_folder(path: str, *, create: bool, exact: bool, remedy: str = SOCKET_REMEDY) -> int:
    """A descriptor of the folder ``path`` after checking it is private to this user.

    With ``create`` it is made (mode 0700) if missing. With ``exact`` its mode must be 0700;
    otherwise (a folder the operator chose) group and others may not write to it. Raises
    :class:`UnsafeFolder` naming the problem: a symlink, not a folder, another owner, other modes
    (and ``remedy``: the option that chooses another folder).
    """
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise UnsafeFolder(f"the local supervisor's folder {path} cannot be created: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            why = "is a symlink"
        elif exc.errno == errno.ENOTDIR:
            why = "is not a folder"
        else:
            why = f"cannot be opened: {exc.strerror}"
        raise UnsafeFolder(f"the local supervisor's folder {path} {why}; remove it or choose another") from None
    info = os.fstat(fd)
    mode = stat.S_IMODE(info.st_mode)
    problem = ""
    if info.st_uid != os.geteuid():
        problem = f"belongs to {_user(info.st_uid)}, not to this server's user {_user(os.geteuid())}"
    elif exact and mode != 0o700:
        problem = f"has mode {mode:04o}, not 0700"
    elif not exact and mode & 0o022:
        problem = f"can be written by other users (mode {mode:04o})"
    if problem:
        os.close(fd)
        raise UnsafeFolder(
            f"the local supervisor's folder {path} {problem}: refusing to use it (another user could stand "
            f"in for the supervisor); remove it, or {remedy}"
        )
    return fd


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of the UNIX socket ``sock`` (``SO_PEERCRED``)."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", data)[1])


def open_append(path: str, mode: int = 0o600, *, exclusive: bool = False, dir_fd: int | None = None) -> int:
    """Open ``path`` to append to it, creating it with ``mode``; a symlink there raises OSError (ELOOP).

    With ``exclusive`` an existing file raises FileExistsError (a symlink too, dangling or not).
    """
    return os.open(path, APPEND_FLAGS | (os.O_EXCL if exclusive else 0), mode, dir_fd=dir_fd)
