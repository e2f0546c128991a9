"""The environment a job starts from: the server's environment minus its secrets.

Jobs run as the server's user, but they must not inherit what authenticates the server: its
token (``JUPYTER_TOKEN``), JupyterHub's API tokens and secrets (``JUPYTERHUB_API_TOKEN``,
``JPY_*``), nor any variable the operator names in ``secret_env``. A job's environment is then,
in this order (later wins): the server's environment minus :data:`BUILTIN_SECRET_ENV` and
``secret_env``; the ``SWM_*`` variables of the job (:func:`~swm_jupyter.core.launch.job_environment`);
the job's own ``env``.
"""

from __future__ import annotations

import fnmatch
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


def secret_matcher(patterns: Iterable[str] = ()) -> re.Pattern[str]:
    """One regular expression matching the names of :data:`BUILTIN_SECRET_ENV` and ``patterns``."""
    names = [*BUILTIN_SECRET_ENV, *(p for p in patterns if p)]
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in names), re.IGNORECASE)


def without_secrets(environ: Mapping[str, str], patterns: Iterable[str] = ()) -> dict[str, str]:
    """A copy of ``environ`` without the variables a job must not see (see the module docstring)."""
    secret = secret_matcher(patterns)
    return {name: value for name, value in environ.items() if not secret.match(name)}
