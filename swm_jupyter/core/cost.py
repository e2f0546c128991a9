"""The one cost formula of a job: price per node-hour x nodes x hours (of its walltime for the estimate,
of its run for the actual cost)."""

from __future__ import annotations

from .units import parse_walltime_seconds


def cost_of(price_per_hour: float, nodes: int, seconds: float) -> float:
    """``price_per_hour`` x ``nodes`` (at least 1) x hours of ``seconds``, rounded to 6 digits."""
    return round(float(price_per_hour) * max(1, int(nodes)) * float(seconds) / 3600, 6)


def estimate_cost(price_per_hour: float | None, nodes: int, walltime_seconds: float | None) -> float | None:
    """:func:`cost_of` the walltime; None when the price or the walltime is unknown (or zero)."""
    if price_per_hour is None or not walltime_seconds:
        return None
    return cost_of(price_per_hour, nodes, walltime_seconds)


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
