"""Safe access to the files of a job folder: no symbolic link, FIFO or device is ever followed.

A job can change its own folder while it runs (``rm stdout; ln -s /etc/passwd stdout``), and the
server may have more rights than the job. So every read (log endpoint, websocket log stream, files
endpoint, Sky Port ``/user/job/{id}/stdout``, the gates' own records) and every write into a job
folder (output collection) goes through this module, which walks the path one component at a
time with ``openat`` and ``O_NOFOLLOW`` from the job folder itself, and checks with ``fstat`` on
the opened descriptor that the last component is a regular file (or folder). A symbolic link at
any level, inside the folder or leading out of it, is refused with :class:`UnsafeJobFile`.

The job folder itself (the path the server made, e.g. ``<data_dir>/jobs/<id>``) may lie under
symbolic links of the machine's own set-up; only what is inside it is checked.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import BinaryIO

from .errors import PathNotAllowed

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Opening a FIFO for reading would block until a writer comes; with O_NONBLOCK it does not.
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS = os.O_RDONLY | _NOFOLLOW | _DIRECTORY | _CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC


class UnsafeJobFile(PathNotAllowed):
    """A file of a job folder that is a symbolic link, or not a regular file: it is never read or written."""

    status = 403


def job_path_parts(relpath: str | os.PathLike[str]) -> list[str]:
    """The components of a path relative to a job folder. Raises :class:`PathNotAllowed` for an
    empty or absolute path, a NUL byte, or a ``..`` component.
    """
    text = os.fspath(relpath)
    if not text or "\x00" in text:
        raise PathNotAllowed(f"the path {text!r} is empty or has a NUL byte")
    if os.path.isabs(text):
        raise PathNotAllowed(f"the path {text!r} must be relative to the job folder")
    parts = [p for p in PurePosixPath(text.replace(os.sep, "/")).parts if p not in ("", ".")]
    if not parts:
        raise PathNotAllowed(f"the path {text!r} names the job folder itself, not a file in it")
    if ".." in parts:
        raise PathNotAllowed(f"the path {text!r} leaves the job folder")
    return parts


def _refused(relpath: str, what: str) -> UnsafeJobFile:
    return UnsafeJobFile(
        f"the job's {relpath!r} is {what}; swm reads and writes only regular files inside the job folder",
        [{"field": "path", "message": f"{relpath} is {what}"}],
    )


def _open_component(dir_fd: int, name: str, flags: int, relpath: str, mode: int = 0o666) -> int:
    """``openat(dir_fd, name)`` without following a link; a link (or a non-folder where a folder is
    needed) is :class:`UnsafeJobFile`, a missing name ``FileNotFoundError``.
    """
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise _refused(relpath, "a symbolic link") from None
        if exc.errno == errno.ENOTDIR:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                raise exc from None
            what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a folder"
            raise _refused(relpath, what) from None
        raise


@contextmanager
def _parent_fd(folder: str | os.PathLike[str], parts: list[str], relpath: str, *, create: bool) -> Iterator[int]:
    """A descriptor of the folder that holds the last component, walked without following links.

    With ``create`` missing folders are made (mode 0700). Raises ``FileNotFoundError`` when the job
    folder or a folder on the way does not exist (and ``create`` is off).
    """
    fd = os.open(os.fspath(folder), os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for name in parts[:-1]:
            try:
                next_fd = _open_component(fd, name, _DIR_FLAGS, relpath)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
                next_fd = _open_component(fd, name, _DIR_FLAGS, relpath)
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def open_job_file(folder: str | os.PathLike[str], relpath: str | os.PathLike[str]) -> BinaryIO:
    """Open the regular file ``relpath`` of the job folder ``folder`` for reading (binary).

    Raises ``FileNotFoundError`` if it does not exist, :class:`UnsafeJobFile` (403) if it or a
    folder on its way is a symbolic link or it is not a regular file, :class:`PathNotAllowed`
    (400) for a path that is absolute or has ``..``.
    """
    relpath = os.fspath(relpath)
    parts = job_path_parts(relpath)
    with _parent_fd(folder, parts, relpath, create=False) as dir_fd:
        fd = _open_component(dir_fd, parts[-1], _READ_FLAGS, relpath)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refused(relpath, "not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_job_file(folder: str | os.PathLike[str], relpath: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
    """Up to ``limit`` bytes of the job file ``relpath`` from ``offset``; empty if it does not exist
    (yet). Raises :class:`UnsafeJobFile` as :func:`open_job_file` does.
    """
    try:
        handle = open_job_file(folder, relpath)
    except (FileNotFoundError, NotADirectoryError):
        return b""
    with handle:
        handle.seek(max(0, offset))
        return handle.read(limit)


def read_job_text(folder: str | os.PathLike[str], relpath: str, limit: int = 1 << 16) -> str | None:
    """The start of a small text record of the job folder (UTF-8, errors replaced); None if it is
    missing, a link, or not a regular file (a record the job replaced is not believed).
    """
    try:
        with open_job_file(folder, relpath) as handle:
            data = handle.read(limit)
    except (PathNotAllowed, OSError):
        return None
    return data.decode("utf-8", errors="replace")


def create_job_file(folder: str | os.PathLike[str], relpath: str | os.PathLike[str]) -> BinaryIO:
    """Create the regular file ``relpath`` in the job folder for writing (a file of that name is
    replaced, never written through: it may be a hard link), making the folders on its way.
    Never follows a link: a link in the way is :class:`UnsafeJobFile`, and the file written is
    always inside ``folder``.
    """
    relpath = os.fspath(relpath)
    parts = job_path_parts(relpath)
    with _parent_fd(folder, parts, relpath, create=True) as dir_fd:
        try:
            if not stat.S_ISDIR(os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.unlink(parts[-1], dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        fd = _open_component(dir_fd, parts[-1], _WRITE_FLAGS, relpath, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(relpath, "not a regular file")
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def job_output_exists(folder: str | os.PathLike[str], relpath: str | os.PathLike[str]) -> bool:
    """True if ``relpath`` is a regular file or a folder of the job folder, reached through no
    symbolic link (an output the job made a link is not an output).
    """
    relpath = os.fspath(relpath)
    try:
        parts = job_path_parts(relpath)
        with _parent_fd(folder, parts, relpath, create=False) as dir_fd:
            mode = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False).st_mode
    except (PathNotAllowed, OSError):
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def make_job_folder(folder: str | os.PathLike[str], relpath: str | os.PathLike[str]) -> None:
    """Make the folder ``relpath`` (and those on its way) inside the job folder, following no link."""
    relpath = os.fspath(relpath)
    parts = job_path_parts(relpath)
    with _parent_fd(folder, [*parts, ""], relpath, create=True):
        pass  # walking to the parent of a last, empty, component makes every folder of ``parts``


__all__ = [
    "UnsafeJobFile",
    "create_job_file",
    "job_output_exists",
    "job_path_parts",
    "make_job_folder",
    "open_job_file",
    "read_job_file",
    "read_job_text",
]
