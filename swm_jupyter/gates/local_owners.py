"""Local supervisors that run as the jobs' owners (a ``local`` site with ``run_as_owner``).

The service (usually root) starts one supervisor per OS account, through the owner's exec prefix
(``sudo -n -u alice <python> -m swm_jupyter.daemons.local_supervisor SOCKET --allow-uid <service uid>``).
Its socket must be reachable by the service and by no other account:

- ``<owners folder>`` (default ``<temp dir>/swm-local-<service uid>-owners``) belongs to the service,
  mode 0711: every account may pass through it, none may list or write it;
- ``<owners folder>/<uid>`` is made by the service and handed to the account, mode 0700: only that
  account (and root) may enter it. The supervisor, running as the account, checks it is its own
  before it listens, and serves its own uid plus the service's (``--allow-uid``);
- the gate talks to the socket in ``<owners folder>/<uid>`` only if the process serving it runs as
  that uid (``SO_PEERCRED``), checked before anything is sent: a link the account put in the
  socket's place leads nowhere else.

The supervisor imports swm_jupyter exactly as the service does: the same interpreter, and the
service's ``PYTHONPATH`` if it has one (passed as ``PYTHONPATH=…`` after the prefix; sudo keeps it
for root, a sudoers rule for another service account must allow it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile

from ..core.accounts import OwnerAccount, OwnerAccounts
from .local_runtime import UnsafeFolder, open_private_folder

#: What an :class:`~.local_runtime.UnsafeFolder` message about these folders tells the operator to do.
OWNERS_REMEDY = "set LocalGate.owners_folder to a folder only the service can write to"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def default_owners_folder() -> str:
    """Where the owners' supervisor folders go by default: ``<temp dir>/swm-local-<service uid>-owners``."""
    return os.path.join(tempfile.gettempdir(), f"swm-local-{os.geteuid()}-owners")


def open_owners_folder(path: str) -> int:
    """A descriptor of the service's folder of owner folders, made (mode 0711) if missing.

    Raises :class:`UnsafeFolder` unless it is a folder (not a link) of the service that no one else
    may write to. Every account may pass through it (the search bit is set), none may list it.
    """
    fd = open_private_folder(path, create=True, exact=False, remedy=OWNERS_REMEDY)
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o011 != 0o011:
        os.fchmod(fd, mode | 0o011)
    return fd


def open_owner_folder(owners_fd: int, account: OwnerAccount) -> int:
    """A descriptor of ``account``'s supervisor folder (``<uid>`` in the folder ``owners_fd``).

    Made for the account (mode 0700, handed over with ``fchown``: the service needs root's
    ``CAP_CHOWN``) if missing. Raises :class:`UnsafeFolder` unless it is a folder of that account
    that no one else may write to.
    """
    name = str(account.uid)
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=owners_fd)
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=owners_fd)
    except OSError as exc:
        why = "is a link or not a folder" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        raise UnsafeFolder(f"the supervisor folder of {account.username} ({name}) {why}") from None
    try:
        info = os.fstat(fd)
        if info.st_uid == os.geteuid() != account.uid:
            try:
                os.fchown(fd, account.uid, account.gid)
                os.fchmod(fd, 0o700)
            except PermissionError:
                raise UnsafeFolder(
                    f"the supervisor folder of {account.username} cannot be handed to that account: the "
                    "service needs root's rights (CAP_CHOWN) to run local jobs as their owners"
                ) from None
            info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid != account.uid or mode & 0o022:
            raise UnsafeFolder(
                f"the supervisor folder of {account.username} (uid {info.st_uid}, mode {mode:04o}) is not "
                f"that account's alone: refusing to use it; remove it (it is {name} in the owners folder)"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def supervisor_command(accounts: OwnerAccounts, account: OwnerAccount, socket_path: str) -> list[str]:
    """The command that starts ``account``'s supervisor on ``socket_path``, through the exec prefix."""
    argv = [sys.executable, "-m", "swm_jupyter.daemons.local_supervisor", socket_path, "--allow-uid", str(os.geteuid())]
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    return accounts.command(account, argv, env)


def log_tail(path: str, limit: int = 600) -> str:
    """The last lines (at most ``limit`` bytes) of a supervisor's log, on one line; "" if none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(fd).st_size
        handle.seek(max(0, size - limit))
        text = handle.read().decode("utf-8", errors="replace")
    return " | ".join(line.strip() for line in text.splitlines()[-3:] if line.strip())


__all__ = [
    "OWNERS_REMEDY",
    "default_owners_folder",
    "log_tail",
    "open_owner_folder",
    "open_owners_folder",
    "supervisor_command",
]
