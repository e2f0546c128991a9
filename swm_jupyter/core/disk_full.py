"""Telling a full disk from other write failures, and saying which file system is full."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

#: SQLite's primary result code for "database or disk is full" (SQLITE_FULL).
_SQLITE_FULL = 13
#: ``errno`` values that mean the file system (or the user's quota on it) has no space left.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def is_disk_full(exc: BaseException) -> bool:
    """True if ``exc`` (an ``OSError`` or an SQLite error) says that no space is left to write."""
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == _SQLITE_FULL
        return "database or disk is full" in str(exc)
    return False


def mount_point(path: str | os.PathLike[str]) -> str:
    """The folder where the file system holding ``path`` (or its nearest existing parent) is mounted."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    try:
        device = current.stat().st_dev
        while current != current.parent and current.parent.stat().st_dev == device:
            current = current.parent
    except OSError:
        pass
    return str(current)


def no_space_text(path: str | os.PathLike[str]) -> str:
    """``no space left on <mount point>`` (plus the folder of ``path`` when that is elsewhere)."""
    where = mount_point(path)
    folder = os.path.dirname(os.path.abspath(path))
    return f"no space left on {where}" + (f" (which holds {folder})" if folder != where else "")
