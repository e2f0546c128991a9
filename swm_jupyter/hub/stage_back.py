"""Files a spawned server changed on a site without the user's home, written back into that home as the user's.

SwmSpawner stages the paths a user chose (``stage`` in the spawn form, or ``SwmSpawner.stage_paths``)
into the server's job on sites that do not see the user's home (SSH hosts, clouds); when the server
has stopped, the job's copies come back through the swm service's job files API and are written
here. The hub writes into a user's home, so nothing the user controls can redirect it:

- the path is relative to the home and never leaves it; every folder is opened from the home with
  ``O_NOFOLLOW`` (a link is refused, never followed) and must be one the user may write in;
- a file is written under a fresh name, given to the user, then renamed over the old one (a link in
  its place is replaced, never written through), but never over another user's file in a sticky
  folder (which the user could not replace either); folders made on the way are the user's (0700);
- a file the user changed at home after the server started is not overwritten: the server's copy
  is written beside it (``<name>.swm-<job>``), and both are kept.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from dataclasses import dataclass

from ..core.errors import PathNotAllowed
from ..core.user_inputs import Reader, access_acl, may

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
WRITE_AND_SEARCH = 3


@dataclass(frozen=True)
class HomeAccount:
    """The OS account whose home files come back to: its name, uid, gid and home folder."""

    username: str
    uid: int
    gid: int
    home: str

    def reader(self) -> Reader:
        """The account as a :class:`~swm_jupyter.core.user_inputs.Reader` (its groups)."""
        return Reader(self.username, self.uid, frozenset(os.getgrouplist(self.username, self.gid)))


def _folder(parent: int, name: str, account: HomeAccount, shown: str) -> int:
    """Open (or make, the account's, 0700) the folder ``name`` in ``parent``; the account must be able to
    write in it."""
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
        os.chown(name, account.uid, account.gid, dir_fd=parent, follow_symlinks=False)
    except FileExistsError:
        pass
    try:
        fd = os.open(name, _DIR, dir_fd=parent)
    except OSError:
        raise PathNotAllowed(f"{shown!r} in {account.username}'s home is a symbolic link or not a folder") from None
    if not may(os.fstat(fd), account.reader(), WRITE_AND_SEARCH, access_acl(fd)):
        os.close(fd)
        raise PathNotAllowed(f"{account.username} may not write in {shown!r}")
    return fd


def write_back(account: HomeAccount, relative: str, data: bytes, *, since: float, tag: str) -> str:
    """Write ``data`` to ``relative`` (a path in the account's home) as the account's file; return the path
    written (relative to the home): ``relative``, or ``<relative>.swm-<tag>`` when the file there was changed
    after ``since`` (a Unix time) and differs. Raises :class:`PathNotAllowed` when it may not be written."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or relative.startswith("/"):
        raise PathNotAllowed(f"{relative!r} is not a path inside {account.username}'s home")
    home = os.open(account.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    parent = home
    try:
        if not may(os.fstat(home), account.reader(), WRITE_AND_SEARCH, access_acl(home)):
            raise PathNotAllowed(f"{account.username} may not write in their home {account.home}")
        for index, name in enumerate(parts[:-1]):
            child = _folder(parent, name, account, "/".join(parts[: index + 1]))
            os.close(parent)
            parent = child
        name = parts[-1]
        mode = 0o600
        try:
            old = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and stat.S_ISDIR(old.st_mode):
            raise PathNotAllowed(f"{relative!r} in {account.username}'s home is a folder, not a file")
        if old is not None and not _may_replace(os.fstat(parent), old, account):
            raise PathNotAllowed(
                f"{relative!r} in {account.username}'s home belongs to another user in a sticky folder"
            )
        if old is not None and stat.S_ISREG(old.st_mode):
            mode = stat.S_IMODE(old.st_mode)
            if old.st_size == len(data) and _content(parent, name) == data:
                return relative
            if old.st_mtime > since:
                name = f"{name}.swm-{tag}"
                parts[-1] = name
        temp = f".{name}.swm-{secrets.token_hex(6)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            os.fchown(fd, account.uid, account.gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        return "/".join(parts)
    finally:
        os.close(parent)


def _may_replace(folder: os.stat_result, old: os.stat_result, account: HomeAccount) -> bool:
    """True if the account could itself replace an entry with ``old``'s stat in a folder with ``folder``'s:
    in a sticky folder (mode ``+t``, as ``/tmp``), only the entry's or the folder's owner may."""
    if account.uid == 0 or not folder.st_mode & stat.S_ISVTX:
        return True
    return account.uid in (old.st_uid, folder.st_uid)


def _content(parent: int, name: str) -> bytes | None:
    """The bytes of the regular file ``name`` of ``parent`` (not through a link), or None."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def under(path: str, staged: list[str]) -> bool:
    """True if the job-folder ``path`` is one of the ``staged`` paths or inside one of them."""
    return any(path == s or path.startswith(s.rstrip("/") + "/") for s in staged)


__all__ = ["HomeAccount", "under", "write_back"]
