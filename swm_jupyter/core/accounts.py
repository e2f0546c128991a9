"""Jobs under their owner's OS account: how a job's owner maps to an account, where that account's job
folders live, and how a command is run as that account (for sites with ``run_as_owner``).

Nothing here runs a command: :meth:`OwnerAccounts.command` only builds the argument list (no shell).
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from traitlets import Dict, Int, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from .errors import ValidationError

#: Placeholders ``data_root`` may use.
DATA_ROOT_FIELDS = ("{home}", "{username}", "{uid}")
#: What an account name may look like (POSIX portable names, as ``useradd`` accepts by default); a
#: leading ``-`` or ``#`` would be read by ``sudo -u`` as an option or a numeric uid.
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")
#: The uid of ``nobody``, a system account whatever ``min_uid`` says.
NOBODY_UID = 65534


@dataclass(frozen=True)
class OwnerAccount:
    """The OS account a job's owner maps to, and where its job folders live.

    ``data_root`` is the folder holding the account's job folders; ``anchor`` is the folder above it
    that the core may create folders under (the account's home, or the part of ``data_root`` before
    the first per-user component): the core never creates anything above the anchor.
    """

    owner: str
    username: str
    uid: int
    gid: int
    home: str
    data_root: str
    anchor: str


class OwnerAccounts(LoggingConfigurable):
    """Maps job owners to OS accounts and builds commands that run as them.

    Used by gates whose site has ``run_as_owner`` set (configure it with ``c.OwnerAccounts.*``;
    the options are the same for every such site).
    """

    username_map = Dict(
        value_trait=Unicode(),
        help="OS account names of owners whose account is not named as they are, e.g. "
        '{"alice@example.org": "alice"}. Owners not listed use their own name (default: {}).',
    ).tag(config=True)
    min_uid = Int(
        1000,
        help="Smallest uid a job may run as (default 1000, Debian's first regular user). Accounts below it "
        "(root and system accounts) and nobody are refused.",
    ).tag(config=True)
    exec_prefix = List(
        Unicode(),
        ["sudo", "-n", "-u", "{username}"],
        help="Arguments put before a command to run it as the job's owner; {username} is replaced by the "
        "account name (no shell is involved). The prefix must accept NAME=value words before the command, "
        "as sudo and env do (default: sudo -n -u {username}).",
    ).tag(config=True)
    data_root = Unicode(
        "{home}/.swm/jobs",
        help="Folder of each account's job folders; {home} (the account's home from the passwd database), "
        "{username} and {uid} are replaced (default {home}/.swm/jobs). Folders below the account's home, "
        "or from the first component with {username} or {uid} on, are created for the account (mode 0700); "
        "the folders above must exist.",
    ).tag(config=True)

    @validate("exec_prefix")
    def _check_exec_prefix(self, proposal: Any) -> list[str]:
        value = list(proposal["value"])
        if not value or not any("{username}" in arg for arg in value):
            raise TraitError("OwnerAccounts.exec_prefix must be a non-empty list that contains {username}")
        return value

    @validate("data_root")
    def _check_data_root(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not any(field in value for field in DATA_ROOT_FIELDS):
            raise TraitError("OwnerAccounts.data_root must contain {home}, {username} or {uid}, one folder per account")
        if not (value.startswith("/") or value.startswith("{home}")):
            raise TraitError("OwnerAccounts.data_root must be an absolute path (or start with {home})")
        leftover = value
        for field in DATA_ROOT_FIELDS:
            leftover = leftover.replace(field, "")
        if "{" in leftover or "}" in leftover:
            raise TraitError("OwnerAccounts.data_root may only use the placeholders {home}, {username} and {uid}")
        return value

    def resolve(self, owner: str, site: str = "") -> OwnerAccount:
        """The account ``owner``'s jobs run as. Reads the passwd database; no other I/O.

        Raises :class:`ValidationError` (field ``owner``) when the job has no owner, when the
        account does not exist, or when it is root or a system account.
        """
        where = f"the site {site!r} runs each job under its owner's OS account" if site else "jobs run as their owner"
        if not owner:
            raise _refused(f"{where}, and this request has no owner; submit it as an authenticated user")
        username = self.username_map.get(owner, owner)
        if not _ACCOUNT_NAME.match(username):
            raise _refused(
                f"{where}, and the owner {owner!r} is not a valid account name; an administrator can map it "
                "to an account in OwnerAccounts.username_map"
            )
        try:
            entry = pwd.getpwnam(username)
        except KeyError:
            raise _refused(
                f"{where}, and there is no OS account {username!r} for the owner {owner!r}; an administrator "
                "must create it (or map the owner to an account in OwnerAccounts.username_map)"
            ) from None
        if entry.pw_uid == 0 or entry.pw_uid < self.min_uid or entry.pw_uid == NOBODY_UID:
            raise _refused(
                f"{where}, and the account {username!r} (uid {entry.pw_uid}) is root or a system account "
                f"(uid below OwnerAccounts.min_uid = {self.min_uid}); jobs never run as those"
            )
        home = entry.pw_dir
        root, anchor = self._data_root(entry.pw_name, entry.pw_uid, home)
        return OwnerAccount(owner, entry.pw_name, entry.pw_uid, entry.pw_gid, home, root, anchor)

    def _data_root(self, username: str, uid: int, home: str) -> tuple[str, str]:
        """The rendered ``data_root`` and its anchor (see :class:`OwnerAccount`)."""
        template = self.data_root
        root = os.path.normpath(
            template.replace("{home}", home).replace("{username}", username).replace("{uid}", str(uid))
        )
        home = os.path.normpath(home)
        if template.startswith("{home}") and home != "/":
            return root, home
        parts = template.split("/")
        for index, part in enumerate(parts):
            if any(field in part for field in DATA_ROOT_FIELDS):
                anchor = "/".join(parts[:index]) or "/"
                return root, os.path.normpath(anchor.replace("{home}", home))
        return root, os.path.dirname(root)

    def command(self, account: OwnerAccount, argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        """``argv`` run as ``account``: the exec prefix with ``{username}`` replaced, then ``NAME=value``
        words for ``env`` (which a prefix like sudo resets otherwise), then ``argv``.
        """
        prefix = [arg.replace("{username}", account.username) for arg in self.exec_prefix]
        return [*prefix, *(f"{key}={value}" for key, value in (env or {}).items()), *argv]


def _refused(message: str) -> ValidationError:
    return ValidationError(message, [{"field": "owner", "message": message}])


__all__ = ["OwnerAccount", "OwnerAccounts"]
