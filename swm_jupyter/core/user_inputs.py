"""A job owner's input files, read from the owner's own folder with the owner's rights (the hub service).

In the hub's swm service every job has an owner (a hub user) and the service runs as root (or an
account that may read every user's files). ``input_files``, ``notebook`` and a relative ``workdir``
are then paths in the owner's own root folder (``SwmApp.user_root``, the owner's home by default),
never in the service's, and are read only as far as the owner could read them:

- a path is relative to the owner's root (an absolute path must lie inside it); it never leaves it,
  neither with ``..`` nor through a symbolic link: every component is opened with ``O_NOFOLLOW``
  from the root, one at a time, so a link swapped in meanwhile is refused, not followed;
- every folder on the way must be searchable, and every file and folder copied readable, by the
  owner's account (its uid, its groups, and the POSIX ACLs of the entry), checked on the open
  file descriptors before anything is read.

Links inside a copied folder are copied as links (never followed), as ``copytree(symlinks=True)``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from .accounts import OwnerAccount
from .errors import PathNotAllowed
from .owned_folders import _rename_into_place, _temp_name, _write_all

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CHUNK = 1 << 20
#: Tags of a POSIX ACL entry (linux/posix_acl_xattr.h).
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF
READ, SEARCH = 4, 1


@dataclass(frozen=True)
class Reader:
    """Whose rights an input is read with: an OS account and its groups."""

    username: str
    uid: int
    groups: frozenset[int]

    @classmethod
    def of(cls, account: OwnerAccount) -> Reader:
        """The reader of ``account`` (its groups from the group database)."""
        return cls(account.username, account.uid, frozenset(os.getgrouplist(account.username, account.gid)))


def render_root(template: str, account: OwnerAccount) -> str:
    """``template`` (``{home}``, ``{username}``, ``{uid}``) for ``account``, as a normalised absolute path."""
    path = template.replace("{home}", account.home).replace("{username}", account.username)
    return os.path.normpath(path.replace("{uid}", str(account.uid)))


def relative_to_root(root: str, path: str) -> str:
    """``path`` as a path relative to ``root`` (an absolute path must lie inside ``root``).

    Raises :class:`PathNotAllowed` for an empty path, a NUL byte, or a path that leaves ``root``.
    """
    if not path or "\x00" in path:
        raise PathNotAllowed(f"the path {path!r} is empty or has a NUL byte")
    if os.path.isabs(path):
        normal = os.path.normpath(path)
        if normal != root and not normal.startswith(root.rstrip("/") + "/"):
            raise PathNotAllowed(f"the path {path!r} is outside your folder {root}")
        path = os.path.relpath(normal, root)
    parts = PurePosixPath(os.path.normpath(path)).parts
    if not parts or parts == (".",) or ".." in parts:
        raise PathNotAllowed(f"the path {path!r} leaves your folder {root}")
    return "/".join(parts)


def may(info: os.stat_result, reader: Reader, want: int, acl: bytes | None) -> bool:
    """True if ``reader`` has the ``want`` bits (READ 4, SEARCH 1) on a file with ``info`` and POSIX
    access ACL ``acl`` (the raw ``system.posix_acl_access`` value, or None), as the kernel decides."""
    if reader.uid == 0:
        return True
    mode = info.st_mode
    if not acl:
        if info.st_uid == reader.uid:
            return (mode >> 6) & want == want
        if info.st_gid in reader.groups:
            return (mode >> 3) & want == want
        return mode & want == want
    entries = [struct.unpack_from("<HHI", acl, offset) for offset in range(4, len(acl) - 7, 8)]
    mask = next((perm for tag, perm, _ in entries if tag == _MASK), 7)
    if info.st_uid == reader.uid:
        return next((perm for tag, perm, _ in entries if tag == _USER_OBJ), 0) & want == want
    for tag, perm, ident in entries:
        if tag == _USER and ident == reader.uid:
            return perm & mask & want == want
    matched = False
    for tag, perm, ident in entries:
        if (tag == _GROUP_OBJ and info.st_gid in reader.groups) or (tag == _GROUP and ident in reader.groups):
            matched = True
            if perm & mask & want == want:
                return True
    if matched:
        return False
    return next((perm for tag, perm, _ in entries if tag == _OTHER), 0) & want == want


def access_acl(fd: int) -> bytes | None:
    """The POSIX access ACL of the open file ``fd``, or None if it has none (or the file system has none)."""
    try:
        return os.getxattr(fd, "system.posix_acl_access")
    except OSError:
        return None


def _require(fd: int, reader: Reader, want: int, shown: str) -> os.stat_result:
    info = os.fstat(fd)
    if not may(info, reader, want, access_acl(fd)):
        what = "readable" if want == READ else "reachable"
        raise PathNotAllowed(f"{shown!r} is not {what} by {reader.username}")
    return info


def _open_step(parent: int, name: str, flags: int, shown: str) -> int:
    try:
        return os.open(name, flags, dir_fd=parent)
    except FileNotFoundError:
        raise PathNotAllowed(f"{shown!r} does not exist") from None
    except OSError as exc:
        if exc.errno in (40, 20):  # ELOOP, ENOTDIR: a symbolic link or a file on the way
            raise PathNotAllowed(f"{shown!r} is or goes through a symbolic link or a file") from None
        raise PathNotAllowed(f"{shown!r} cannot be opened: {exc.strerror}") from None


@contextlib.contextmanager
def open_input(root: str, relative: str, reader: Reader) -> Iterator[tuple[int, os.stat_result]]:
    """Open ``relative`` (checked by :func:`relative_to_root`) inside ``root`` as ``reader`` may; yield its
    fd and stat. Raises :class:`PathNotAllowed` (the path, and why) when it cannot be used."""
    parts = relative.split("/")
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise PathNotAllowed(f"your folder {root} cannot be opened: {exc.strerror}") from None
    try:
        _require(fd, reader, SEARCH, root)
        for index, name in enumerate(parts):
            last = index == len(parts) - 1
            shown = "/".join(parts[: index + 1])
            if last:
                child = _open_step(fd, name, _FILE, shown)
            else:
                child = _open_step(fd, name, _DIR, shown)
            os.close(fd)
            fd = child
            if not last:
                _require(fd, reader, SEARCH, shown)
        info = _require(fd, reader, READ, relative)
        if stat.S_ISDIR(info.st_mode):
            _require(fd, reader, SEARCH, relative)
        elif not stat.S_ISREG(info.st_mode):
            raise PathNotAllowed(f"{relative!r} is neither a file nor a folder")
        yield fd, info
    finally:
        os.close(fd)


def check_input(root: str, path: str, reader: Reader) -> str:
    """``path`` relative to ``root`` once it is known to exist and be readable by ``reader``; raises
    :class:`PathNotAllowed` otherwise (at submission: nothing is stored)."""
    relative = relative_to_root(root, path)
    with open_input(root, relative, reader):
        return relative


def copy_input(
    root: str, relative: str, reader: Reader, folder_fd: int, target: str, give: OwnerAccount | None
) -> None:
    """Copy the input ``relative`` of ``root`` (read as ``reader`` may) to ``target`` (a checked relative
    path) in the open folder ``folder_fd``; with ``give``, every copy belongs to that account (mode kept).

    Raises :class:`PathNotAllowed` when the input, or anything in a copied folder, cannot be used.
    """
    parts = PurePosixPath(target).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or PurePosixPath(target).is_absolute():
        raise PathNotAllowed(f"the path {target!r} must stay inside the job folder")
    with open_input(root, relative, reader) as (fd, info):
        parent = os.dup(folder_fd)
        try:
            for name in parts[:-1]:
                child = _made_folder(parent, name, give)
                os.close(parent)
                parent = child
            _copy_open(fd, info, parent, parts[-1], reader, give, relative)
        finally:
            os.close(parent)


def _made_folder(parent: int, name: str, give: OwnerAccount | None) -> int:
    """The folder ``name`` of ``parent`` (made, for ``give``, if missing), opened without following links."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent)
        if give is not None:
            os.chown(name, give.uid, give.gid, dir_fd=parent, follow_symlinks=False)
    try:
        return os.open(name, _DIR, dir_fd=parent)
    except OSError:
        raise PathNotAllowed(f"{name!r} in the job folder is a symbolic link or not a folder") from None


def _copy_open(
    fd: int, info: os.stat_result, parent: int, name: str, reader: Reader, give: OwnerAccount | None, shown: str
) -> None:
    """Copy the open file or folder ``fd`` to ``name`` in ``parent``."""
    if stat.S_ISDIR(info.st_mode):
        folder = _made_folder(parent, name, give)
        try:
            os.fchmod(folder, stat.S_IMODE(info.st_mode) & 0o777 | 0o700)
            for entry in sorted(os.listdir(fd)):
                _copy_entry(fd, entry, folder, reader, give, f"{shown}/{entry}")
        finally:
            os.close(folder)
        return
    temp = _temp_name(name)
    out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
    try:
        if give is not None:
            os.fchown(out, give.uid, give.gid)
        while chunk := os.read(fd, _CHUNK):
            _write_all(out, chunk)
        os.fchmod(out, stat.S_IMODE(info.st_mode) & 0o777)
        os.utime(out, ns=(info.st_atime_ns, info.st_mtime_ns))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=parent)
        raise
    finally:
        os.close(out)
    _rename_into_place(parent, temp, name)


def _copy_entry(source_dir: int, name: str, parent: int, reader: Reader, give: OwnerAccount | None, shown: str) -> None:
    """Copy the entry ``name`` of the open folder ``source_dir``: a link as a link, else opened and checked."""
    info = os.stat(name, dir_fd=source_dir, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        temp = _temp_name(name)
        os.symlink(os.readlink(name, dir_fd=source_dir), temp, dir_fd=parent)
        if give is not None:
            os.chown(temp, give.uid, give.gid, dir_fd=parent, follow_symlinks=False)
        _rename_into_place(parent, temp, name)
        return
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise PathNotAllowed(f"{shown!r} is neither a file, a folder nor a symbolic link")
    fd = _open_step(source_dir, name, _DIR if stat.S_ISDIR(info.st_mode) else _FILE, shown)
    try:
        opened = _require(fd, reader, READ, shown)
        if stat.S_ISDIR(opened.st_mode):
            _require(fd, reader, SEARCH, shown)
        elif not stat.S_ISREG(opened.st_mode):
            raise PathNotAllowed(f"{shown!r} is neither a file nor a folder")
        _copy_open(fd, opened, parent, name, reader, give, shown)
    finally:
        os.close(fd)


__all__ = [
    "READ",
    "SEARCH",
    "Reader",
    "access_acl",
    "check_input",
    "copy_input",
    "may",
    "open_input",
    "relative_to_root",
    "render_root",
]
