"""Bar charts drawn on the server as SVG (no script): the geometry here, the markup in
``templates/dashboard/chart.html``. Each chart sits beside the table it draws, which
carries the same figures for screen readers and keyboard users; the SVG itself is
``role="img"`` with a title and a one-sentence summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callerconnect.web.dashboard.tables import SUPPRESSED, Table

WIDTH = 640
LABEL_WIDTH = 230
BAR_SPACE = 330
ROW_HEIGHT = 26
MAX_BARS = 30
MAX_LABEL = 30


@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    y: int
    width: int
    suppressed: bool


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    summary: str
    height: int
    bars: list[Bar]
    label_x: int = LABEL_WIDTH - 8
    bar_x: int = LABEL_WIDTH


def bar_chart(
    table: Table,
    title: str,
    format_value: Callable[[Any, str], str],
    format_label: Callable[[Any], str],
    summarise: Callable[[str, str, str, str], str],
) -> Chart | None:
    """A chart of ``table.chart_value`` per ``table.chart_label``, or ``None`` when the
    table has no row to draw."""
    if not table.chart_value or not table.chart_label or not table.rows:
        return None
    value_at = table.column_index(table.chart_value)
    label_at = table.column_index(table.chart_label)
    kind = table.columns[value_at].kind
    rows = table.rows[:MAX_BARS]
    numbers = [float(row[value_at]) for row in rows if row[value_at] not in (None, SUPPRESSED)]
    top = max(numbers, default=0.0) or 1.0
    if kind == "rate":
        top = 1.0
    bars = []
    for i, row in enumerate(rows):
        value = row[value_at]
        label = format_label(row[label_at])
        if len(label) > MAX_LABEL:
            label = label[: MAX_LABEL - 1] + "…"
        drawable = value not in (None, SUPPRESSED)
        bars.append(
            Bar(
                label=label,
                value_text=format_value(value, kind),
                y=i * ROW_HEIGHT + 4,
                width=round(float(value) / top * BAR_SPACE) if drawable else 0,
                suppressed=value is SUPPRESSED,
            )
        )
    drawn = [(row, float(row[value_at])) for row in rows if row[value_at] not in (None, SUPPRESSED)]
    if drawn:
        highest = max(drawn, key=lambda pair: pair[1])
        lowest = min(drawn, key=lambda pair: pair[1])
        summary = summarise(
            format_label(highest[0][label_at]),
            format_value(highest[1], kind),
            format_label(lowest[0][label_at]),
            format_value(lowest[1], kind),
        )
    else:
        summary = ""
    return Chart(
        id=f"chart-{table.name}",
        title=title,
        summary=summary,
        height=len(rows) * ROW_HEIGHT + 8,
        bars=bars,
    )
