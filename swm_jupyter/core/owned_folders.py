"""Job folders that belong to the job's owner (sites with ``run_as_owner``), made and filled by a core
that runs as root (or another account that may ``chown``).

The owner controls the folders above and in the job folder, and may race the core, so nothing here
follows a symbolic link the owner could have made: folders are walked one component at a time with
``O_NOFOLLOW`` from the account's anchor (its home), each folder made is handed to the owner (mode
0700) before anything is written into it, and files are written under a fresh name (``O_EXCL``),
handed to the owner, then renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import PurePosixPath

from .accounts import OwnerAccount
from .errors import PathNotAllowed

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20


@contextlib.contextmanager
def owned_folder(path: str, account: OwnerAccount) -> Iterator[int]:
    """Open (making what is missing) the folder ``path`` inside ``account.data_root``; yield its fd.

    Each folder made below the anchor belongs to the account with mode 0700; ``path`` itself is
    then handed to the account and set to 0700 whether it was made now or not. Raises
    :class:`PathNotAllowed` when ``path`` is outside the data root or a component is a symbolic
    link or not a folder, :class:`FileNotFoundError` when the anchor does not exist.
    """
    fd = _open_folder(path, account)
    try:
        yield fd
    finally:
        os.close(fd)


def _open_folder(path: str, account: OwnerAccount) -> int:
    target = os.path.normpath(path)
    root = os.path.normpath(account.data_root)
    if target != root and not target.startswith(root.rstrip("/") + "/"):
        raise PathNotAllowed(f"the job folder {path!r} is not inside {account.username}'s data root {root!r}")
    parts = PurePosixPath(os.path.relpath(target, account.anchor)).parts
    fd = os.open(account.anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts:
            fd = _step(fd, name, account, what=target, close_parent=True)
        os.fchown(fd, account.uid, account.gid)
        os.fchmod(fd, 0o700)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _step(parent: int, name: str, account: OwnerAccount, *, what: str, close_parent: bool = False) -> int:
    """Open (or make for the account) the folder ``name`` in ``parent`` and return its fd.

    With ``close_parent``, ``parent`` is closed once the child is open (and left open on an error,
    for the caller to close).
    """
    try:
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
                # Handed over at once (still empty): the owner may rename it, never put a link in its place
                # that we would follow (the open below refuses links).
                os.chown(name, account.uid, account.gid, dir_fd=parent, follow_symlinks=False)
            child = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PathNotAllowed(f"{name!r} on the way to {what!r} is a symbolic link or not a folder") from None
        raise
    if close_parent:
        os.close(parent)
    return child


def write_owned_file(folder_fd: int, name: str, data: bytes, mode: int, account: OwnerAccount) -> None:
    """Write ``data`` to the file ``name`` of the open folder ``folder_fd``, owned by the account.

    Whatever ``name`` was (a file, a symbolic link) is replaced, never written through.
    """
    fd, temp = _new_file(folder_fd, name, account)
    try:
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    _rename_into_place(folder_fd, temp, name)


def copy_into_owned(source: str, folder_fd: int, relative: str, account: OwnerAccount) -> None:
    """Copy the file or folder ``source`` to ``relative`` (a checked relative path) in the open folder
    ``folder_fd``, every copy owned by the account; folders on the way are made for it.

    Symbolic links inside a copied folder are copied as links (as ``shutil.copytree(symlinks=True)``).
    Raises :class:`PathNotAllowed` when the account itself could not read what is copied.
    """
    parts = PurePosixPath(relative).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or PurePosixPath(relative).is_absolute():
        raise PathNotAllowed(f"the path {relative!r} must stay inside the job folder")
    groups = set(os.getgrouplist(account.username, account.gid))
    ancestor = os.path.dirname(os.path.abspath(source))
    while True:
        _check_access(ancestor, os.stat(ancestor), account, groups, stat.S_IXUSR)
        if ancestor == os.path.dirname(ancestor):
            break
        ancestor = os.path.dirname(ancestor)
    parent = os.dup(folder_fd)
    try:
        for name in parts[:-1]:
            parent = _step(parent, name, account, what=relative, close_parent=True)
        _copy_entry(source, parent, parts[-1], account, groups)
    finally:
        os.close(parent)


def _check_access(path: str, info: os.stat_result, account: OwnerAccount, groups: set[int], bit: int) -> None:
    """Raise :class:`PathNotAllowed` unless the account itself could read (``S_IRUSR``) or search
    (``S_IXUSR``) ``path``: the core copies inputs with its own rights, never more than the owner's.
    """
    if info.st_uid == account.uid:
        allowed = info.st_mode & bit
    elif info.st_gid in groups:
        allowed = info.st_mode & (bit >> 3)
    else:
        allowed = info.st_mode & (bit >> 6)
    if not allowed:
        raise PathNotAllowed(
            f"the input {path!r} is not {'readable' if bit == stat.S_IRUSR else 'reachable'} by {account.username}"
        )


def _copy_entry(source: str, parent: int, name: str, account: OwnerAccount, groups: set[int]) -> None:
    info = os.lstat(source)
    if not stat.S_ISLNK(info.st_mode):
        _check_access(source, info, account, groups, stat.S_IRUSR)
        if stat.S_ISDIR(info.st_mode):
            _check_access(source, info, account, groups, stat.S_IXUSR)
    if stat.S_ISLNK(info.st_mode):
        temp = _temp_name(name)
        os.symlink(os.readlink(source), temp, dir_fd=parent)
        os.chown(temp, account.uid, account.gid, dir_fd=parent, follow_symlinks=False)
        _rename_into_place(parent, temp, name)
    elif stat.S_ISDIR(info.st_mode):
        child = _step(parent, name, account, what=name)
        try:
            for entry in sorted(os.listdir(source)):
                _copy_entry(os.path.join(source, entry), child, entry, account, groups)
        finally:
            os.close(child)
    elif stat.S_ISREG(info.st_mode):
        fd, temp = _new_file(parent, name, account)
        try:
            with open(source, "rb") as src:
                while chunk := src.read(_COPY_CHUNK):
                    _write_all(fd, chunk)
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o777)
            os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(fd)
        _rename_into_place(parent, temp, name)
    else:
        raise PathNotAllowed(f"the input {source!r} is neither a file, a folder nor a symbolic link")


def unlink_owned(folder: str, name: str, account: OwnerAccount) -> None:
    """Remove the entry ``name`` (not a folder) of the account's folder ``folder``, if it is there."""
    with owned_folder(folder, account) as fd, contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _temp_name(name: str) -> str:
    return f".{name}.swm-{secrets.token_hex(6)}"


def _new_file(folder_fd: int, name: str, account: OwnerAccount) -> tuple[int, str]:
    """A new empty file (never an existing one, never through a link), already the account's."""
    temp = _temp_name(name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder_fd)
    try:
        os.fchown(fd, account.uid, account.gid)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder_fd)
        raise
    return fd, temp


def _rename_into_place(folder_fd: int, temp: str, name: str) -> None:
    try:
        os.rename(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder_fd)
        raise


__all__ = ["copy_into_owned", "owned_folder", "unlink_owned", "write_owned_file"]
