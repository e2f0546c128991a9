"""How ``swm sites NAME`` shows one site: its facts as lines, and its flavors, images and partitions as tables."""

from __future__ import annotations

from typing import Any


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table with columns padded to their widest cell."""
    cells = [header, *rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def site_text(site: dict[str, Any]) -> str:
    """A site's description for people: ``key: value`` lines, then a table for each list of records."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in site.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for record in value for k in record))
            rows = [[_cell(record.get(c)) for c in columns] for record in value]
            tables.append(f"{key}:\n" + table(rows, [c.upper() for c in columns]))
        else:
            lines.append(f"{key}: {_cell(value)}")
    return "\n\n".join(["\n".join(lines), *tables])
