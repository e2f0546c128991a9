"""Which names and values are secret, and how they are hidden: one matcher for API responses,
events, log lines, the Sky Port compat output, and the variables kept from jobs.

A name is secret when it matches one of :data:`DEFAULT_SECRET_PATTERNS` or of the patterns a
deployment adds (``SwmApp.secret_patterns``); patterns are shell-style globs matched against the
name in upper case with ``-`` and ``.`` read as ``_``. Values are also looked at, whatever their
name: the password of a URL (``scheme://user:password@host``, or ``user:password@host``) is hidden,
a secret-named query parameter of a URL (``?password=``, ``&access_token=``...) is hidden, and a
value that looks like a token (a JWT, a GitHub token, a PEM private key) is hidden whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate
from functools import lru_cache
from typing import Any

#: What a hidden value is replaced with.
REDACTED = "***"

#: Names whose values are never shown (environment variables, site options, notebook parameters).
DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    "*TOKEN*",
    "*SECRET*",
    "*PASS*",
    "*PWD*",
    "*KEY*",
    "*PAT",
    "*COOKIE*",
    "*CREDENTIAL*",
    "*AUTH*",
    "*PRIVATE*",
    "*SESSION*",
    "*SIGNATURE*",
    "*JWT*",
    "*_DSN",
    "*CONNECTION_STRING*",
)

#: The password of ``user:password@`` in a URL, or in a host given as ``user:password@host``
#: (linear time: a match can only start at a colon, and the password holds no colon).
_URL_PASSWORD = re.compile(r"(?<=[^\s:/@'\"]):[^\s:/@'\"]+@")
#: A secret given as a URL query parameter (``?password=...``, ``&access_token=...``).
_QUERY_SECRET = re.compile(
    r"(?i)(?<=[?&;])((?:password|passwd|pwd|secret|token|access_token|api_key|apikey|key|auth|sig|signature)=)[^&#\s]+"
)
#: Values that are tokens by their look, whatever their name.
_TOKEN_VALUE = re.compile(
    r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*"  # a JWT
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,})"  # GitHub tokens
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
)


def _normal(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


@lru_cache(maxsize=64)
def _name_matcher(extra_patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression for the default patterns and ``extra_patterns`` (each a glob, as
    ``fnmatch.fnmatchcase`` reads it)."""
    globs = (*DEFAULT_SECRET_PATTERNS, *extra_patterns)
    return re.compile("|".join(translate(_normal(p)) for p in globs))


@lru_cache(maxsize=4096)
def _is_secret_normal(normal: str, extra_patterns: tuple[str, ...]) -> bool:
    return _name_matcher(extra_patterns).match(normal) is not None


def is_secret_name(name: str, extra_patterns: Iterable[str] = ()) -> bool:
    """True if values named ``name`` are secret: it matches a default pattern or one of ``extra_patterns``."""
    # Names repeat (the same fields and variables in every job): the answer is cached.
    return _is_secret_normal(_normal(name), tuple(extra_patterns))


def redact_url(value: str) -> str:
    """``value`` with the password of every ``user:password@`` (in URLs or host names) replaced by ``***``."""
    if "@" not in value:
        return value
    return _URL_PASSWORD.sub(f":{REDACTED}@", value)


def redact_text(text: str) -> str:
    """Free text (a message, a log line) with URL passwords and token-looking values hidden."""
    text = redact_url(text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    return _TOKEN_VALUE.sub(REDACTED, text)


def redact(value: Any, extra_patterns: Iterable[str] = (), key: str = "") -> Any:
    """A copy of ``value`` (JSON-like) with secrets hidden: every entry whose name is secret is
    ``***`` (unless empty or a yes/no), and in every other string URL passwords and tokens are hidden.
    """
    extra = tuple(extra_patterns)
    if key and is_secret_name(key, extra) and value not in (None, "", [], {}) and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, extra, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, extra) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


__all__ = ["DEFAULT_SECRET_PATTERNS", "REDACTED", "is_secret_name", "redact", "redact_text", "redact_url"]
