"""Resolve paths a user gives (input/output files, notebooks) inside a job folder, never outside it."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PathNotAllowed


def safe_path(root: str | os.PathLike[str], user_path: str, *, must_exist: bool = False) -> Path:
    """Resolve ``user_path`` inside ``root`` and return it; raise :class:`PathNotAllowed` otherwise.

    Refuses absolute paths, ``..`` segments that leave ``root``, and symlinks that point outside.
    """
    if not user_path or "\x00" in user_path:
        raise PathNotAllowed(f"the path {user_path!r} is empty or has a NUL byte")
    if os.path.isabs(user_path):
        raise PathNotAllowed(f"the path {user_path!r} must be relative to the job folder")
    base = Path(root).resolve()
    target = (base / user_path).resolve()
    if target != base and base not in target.parents:
        raise PathNotAllowed(f"the path {user_path!r} leaves the job folder")
    if must_exist and not target.exists():
        raise PathNotAllowed(f"the path {user_path!r} does not exist")
    return target
