"""Parsing of the units people write: memory sizes and walltimes."""

from __future__ import annotations

import re

_MEM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*$", re.IGNORECASE)
_MEM_FACTORS = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024, "p": 1024**3}
#: Largest memory a job may ask for: 1 PiB, in MB (far beyond any node; a typo, not a request).
MAX_MEMORY_MB = 1024**3
#: Longest walltime a job may ask for: 365 days, in seconds.
MAX_WALLTIME_SECONDS = 365 * 86400


def parse_memory_mb(value: object) -> int:
    """Return megabytes from ``4096``, ``"4096"``, ``"512M"``, ``"4G"``, ``"1.5GB"``, ``"2T"`` or ``"1P"``.

    A bare number means megabytes, as in Slurm's ``--mem``. Raises ``ValueError`` with a hint, also
    for sizes above :data:`MAX_MEMORY_MB`.
    """
    if isinstance(value, bool):
        raise ValueError("memory must be a number of MB or a size such as 4G")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _MEM.match(str(value))
        if not match:
            raise ValueError(f"cannot read memory {value!r}: write MB as a number, or a size such as 512M or 4G")
        number = float(match.group(1)) * _MEM_FACTORS[match.group(2).lower()]
    if not number > 0:
        raise ValueError("memory must be positive")
    if number > MAX_MEMORY_MB:
        raise ValueError(f"memory must be at most {MAX_MEMORY_MB} MB (1P)")
    return max(1, int(number))


def parse_storage_mb(value: object) -> int:
    """Megabytes of disk, written as memory is (``20G``, see :func:`parse_memory_mb`). Raises
    ``ValueError`` naming storage."""
    try:
        return parse_memory_mb(value)
    except ValueError as exc:
        raise ValueError(str(exc).replace("memory", "storage")) from None


def parse_walltime_seconds(value: object) -> int:
    """Return seconds from ``90``, ``"90"`` (minutes, as in Slurm), ``"MM:SS"``, ``"HH:MM:SS"``,
    ``"D-HH:MM:SS"``, or ``"30s"``, ``"10m"``, ``"1.5h"``, ``"1d"``. A number is taken as seconds.

    Raises ``ValueError`` with a hint for anything else, for a time that is not a whole number of
    seconds (``1.5`` is refused, not cut to 1) and for times above :data:`MAX_WALLTIME_SECONDS`.
    """
    if isinstance(value, bool):
        raise ValueError("walltime must be seconds or a time such as 01:30:00")
    if isinstance(value, int | float):
        seconds: float = value
    else:
        seconds = _walltime_text(value)
    if not seconds > 0:
        raise ValueError("walltime must be positive")
    if seconds > MAX_WALLTIME_SECONDS:
        raise ValueError(
            f"walltime must be at most {MAX_WALLTIME_SECONDS} seconds ({format_walltime(MAX_WALLTIME_SECONDS)})"
        )
    if seconds != int(seconds):
        raise ValueError(f"walltime must be a whole number of seconds (got {value!r})")
    return int(seconds)


def _walltime_text(value: object) -> float:
    """Seconds from a walltime written as text. Raises ``ValueError`` with the accepted forms."""
    text = str(value).strip()
    try:
        suffix = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text, re.IGNORECASE)
        if suffix:
            return float(suffix.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[suffix.group(2).lower()]
        if re.fullmatch(r"\d+", text):
            return int(text) * 60
        days = 0
        if "-" in text:
            day_text, text = text.split("-", 1)
            days = int(day_text)
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 2:
            parts = [0, *parts]
        if len(parts) != 3 or any(p < 0 for p in parts) or parts[1] > 59 or parts[2] > 59:
            raise ValueError
        return days * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
    except ValueError:
        raise ValueError(
            f"cannot read walltime {value!r}: write HH:MM:SS, D-HH:MM:SS, minutes, or 30s/10m/2h/1d"
        ) from None


def format_walltime(seconds: int) -> str:
    """Format seconds as Slurm's ``D-HH:MM:SS`` (days only when needed)."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock
