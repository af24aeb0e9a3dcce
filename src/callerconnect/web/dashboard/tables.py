"""A table the dashboard shows: one structure for the page, its chart and its CSV, so
the figures in the three cannot disagree."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: A figure that stands on fewer than MIN_RESPONSES answers: shown "too few to show".
SUPPRESSED = object()
MIN_RESPONSES = 5


@dataclass(frozen=True)
class Column:
    key: str
    label: str  # msgid of the dashboard catalog
    kind: str = "count"  # text, count, rate, mean, seconds


@dataclass
class Table:
    name: str
    title: str  # msgid
    columns: Sequence[Column]
    rows: list[list[Any]] = field(default_factory=list)
    #: which column a chart draws (its key), and which labels its bars
    chart_value: str | None = None
    chart_label: str | None = None

    def column_index(self, key: str) -> int:
        return [c.key for c in self.columns].index(key)


def csv_value(value: Any, kind: str) -> str:
    if value is SUPPRESSED:
        return "suppressed"
    if value is None:
        return ""
    if kind == "rate":
        return f"{float(value):.4f}"
    if kind in ("mean", "seconds"):
        return f"{float(value):.2f}" if kind == "mean" else f"{float(value):.1f}"
    return str(value)


def to_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """UTF-8 with a byte-order mark (what spreadsheet programs need to read accents)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_defuse(cell) for cell in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _defuse(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (a CAD-given district or call type
    starting with ``=``, ``+``, ``-``, ``@``) is written with a leading apostrophe."""
    if (cell and cell[0] in "=+@\t\r") or (cell.startswith("-") and not _is_number(cell)):
        return "'" + cell
    return cell


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def table_csv(table: Table) -> bytes:
    return to_csv(
        [c.key for c in table.columns],
        [
            [csv_value(v, c.kind) for v, c in zip(row, table.columns, strict=True)]
            for row in table.rows
        ],
    )
