"""The environment a job starts from: the server's environment minus its secrets.

Jobs run as the server's user, but they must not inherit what authenticates the server: its
token (``JUPYTER_TOKEN``), JupyterHub's API tokens and secrets (``JUPYTERHUB_API_TOKEN``,
``JPY_*``), nor any variable the operator names in ``secret_env``. A job's environment is then,
in this order (later wins): the server's environment minus :data:`BUILTIN_SECRET_ENV` and
``secret_env``; the ``SWM_*`` variables of the job (:func:`~swm_jupyter.core.launch.job_environment`);
the job's own ``env``.

A job that runs under its owner's OS account (``run_as_owner``) gets that account's own ``HOME``,
``USER``, ``LOGNAME`` and ``SHELL`` (from the passwd database) instead of the service's, and none of
the variables that name the service's session (:data:`SERVICE_ACCOUNT_ENV`): :func:`for_account`.
"""

from __future__ import annotations

import fnmatch
import pwd
import re
from collections.abc import Iterable, Mapping

#: Names (shell-style patterns, matched without regard to case) never passed on to a job.
BUILTIN_SECRET_ENV: tuple[str, ...] = (
    "JUPYTER_TOKEN",
    "JUPYTER_PASSWORD",
    "JPY_*",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_*TOKEN*",
    "JUPYTERHUB_*SECRET*",
)
#: Names that describe the service's own account and session: replaced or dropped for another account.
SERVICE_ACCOUNT_ENV: tuple[str, ...] = (
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "MAIL",
    "PWD",
    "OLDPWD",
    "XDG_RUNTIME_DIR",
    "XDG_SESSION_*",
    "DBUS_SESSION_BUS_ADDRESS",
    "SUDO_*",
)


def secret_matcher(patterns: Iterable[str] = ()) -> re.Pattern[str]:
    """One regular expression matching the names of :data:`BUILTIN_SECRET_ENV` and ``patterns``."""
    names = [*BUILTIN_SECRET_ENV, *(p for p in patterns if p)]
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in names), re.IGNORECASE)


def without_secrets(environ: Mapping[str, str], patterns: Iterable[str] = ()) -> dict[str, str]:
    """A copy of ``environ`` without the variables a job must not see (see the module docstring)."""
    secret = secret_matcher(patterns)
    return {name: value for name, value in environ.items() if not secret.match(name)}


def for_account(environ: Mapping[str, str], account: pwd.struct_passwd) -> dict[str, str]:
    """``environ`` (already without secrets) for a job of ``account``: the service's own account and
    session variables (:data:`SERVICE_ACCOUNT_ENV`) dropped, the account's ``HOME``, ``USER``,
    ``LOGNAME`` and ``SHELL`` set."""
    own = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in SERVICE_ACCOUNT_ENV))
    env = {name: value for name, value in environ.items() if not own.match(name)}
    env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name, SHELL=account.pw_shell or "/bin/sh")
    return env
