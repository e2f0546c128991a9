"""Sky Port accounts: each site has one, and a job's ``account`` chooses the site when it names none.

In Sky Port a remote site belongs to an account, and ``#SWM account NAME`` sends the job to the
site whose account is NAME. Here every site has an ``account`` option (default: the site's name).
A job that names its site keeps its account as that site's own business (Slurm charges it with
``--account``); a job that names no site but an account goes to the site of that account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ValidationError


def site_account(name: str, options: Mapping[str, Any]) -> str:
    """The account of site ``name``: its ``account`` option, else the site's name.

    Raises ``ValueError`` (the site is then misconfigured) unless the option is a non-empty string.
    """
    account = options.get("account")
    if account is None:
        return name
    if not isinstance(account, str) or not account.strip():
        raise ValueError(f"account of site {name!r} must be a non-empty string (default: the site's name)")
    return account


def site_accounts(sites: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Every site's account, by site, in configuration order (a misconfigured account counts as the site's name)."""
    out: dict[str, str] = {}
    for name, options in sites.items():
        try:
            out[name] = site_account(name, options if isinstance(options, Mapping) else {})
        except ValueError:
            out[name] = name
    return out


def site_for_account(account: str, sites: Mapping[str, Mapping[str, Any]], default_site: str) -> str:
    """The site whose account is ``account``: the default site if it has that account, else the first.

    Raises :class:`ValidationError` (400) naming the known accounts when no site has it.
    """
    accounts = site_accounts(sites)
    matching = [name for name, value in accounts.items() if value == account]
    if not matching:
        known = ", ".join(dict.fromkeys(accounts.values()))
        raise ValidationError(
            f"no site has the account {account!r}; known accounts: {known} (or name the site with #SWM site)",
            [{"field": "account", "message": f"use one of {known}, or name the site"}],
        )
    return default_site if default_site in matching else matching[0]


__all__ = ["site_account", "site_accounts", "site_for_account"]
