"""The one cost estimate of a job: price per node-hour x nodes x walltime hours."""

from __future__ import annotations

from .units import parse_walltime_seconds


def estimate_cost(price_per_hour: float | None, nodes: int, walltime_seconds: float | None) -> float | None:
    """``price_per_hour`` x ``nodes`` (at least 1) x hours of ``walltime_seconds``, rounded to 6 digits.

    None when the price or the walltime is unknown (or zero).
    """
    if price_per_hour is None or not walltime_seconds:
        return None
    return round(float(price_per_hour) * max(1, int(nodes)) * float(walltime_seconds) / 3600, 6)


def estimate_cost_of_text(price_per_hour: float | None, nodes: int, walltime: object) -> float | None:
    """:func:`estimate_cost` of a walltime as people write it (``"1:00:00"``, ``"90m"``, ``"2-00:00:00"``).

    None when the walltime is empty or unreadable (the job's own validation says why).
    """
    if walltime is None or (isinstance(walltime, str) and not walltime.strip()):
        return None
    try:
        seconds = parse_walltime_seconds(walltime)
    except ValueError:
        return None
    return estimate_cost(price_per_hour, nodes, seconds)
