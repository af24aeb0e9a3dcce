"""The two published tables, built from plain per-cell figures (pure).

``monthly_by_district`` has one row per month × district × priority, ``monthly`` one row
per month with the agency-wide totals (contract section 10). Every figure a reader could
use to learn what a respondent answered goes through :mod:`.suppression` first.

Values in a row are ``int``/``float`` figures, :data:`SUPPRESSED` (written ``x``) or
``None`` (not applicable, written empty). Rows come out in a stable order, so the same
data always gives the same bytes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from callerconnect.opendata.suppression import EMPTY, FIVE_POINTS, Protection, Scale, Tally, protect

SUPPRESSED = "x"

COUNT_COLUMNS = ("calls_texted", "delay_notices", "surveys_sent", "responses")

Value = int | float | str | None
Row = dict[str, Value]


@dataclass(frozen=True)
class CellFigures:
    """What happened in one month × district × priority (before any suppression)."""

    month: str
    district: str
    priority: int
    calls_texted: int = 0
    delay_notices: int = 0
    surveys_sent: int = 0
    responses: int = 0
    tallies: Mapping[str, Tally] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.district, self.priority)


@dataclass(frozen=True)
class SuppressionCount:
    """How many published figures (a question's mean or share in one row) are ``x``."""

    figures: int = 0
    primary: int = 0
    complementary: int = 0
    months: int = 0


@dataclass(frozen=True)
class Tables:
    by_district: list[Row]
    monthly: list[Row]
    count: SuppressionCount


def figure_columns(questions: Sequence[str]) -> list[str]:
    """The ratio columns, in the contract's order."""
    columns = ["response_rate"]
    for question in questions:
        columns += [f"{question}_share_positive", f"{question}_mean"]
    return columns


def by_district_columns(questions: Sequence[str]) -> list[str]:
    return ["month", "district", "priority", *COUNT_COLUMNS, *figure_columns(questions)]


def monthly_columns(questions: Sequence[str]) -> list[str]:
    return ["month", *COUNT_COLUMNS, *figure_columns(questions)]


def build_tables(
    months: Sequence[str],
    cells: Sequence[CellFigures],
    questions: Sequence[str],
    min_responses: int,
    scale: Scale = FIVE_POINTS,
    on_month: Callable[[int], None] | None = None,
) -> Tables:
    """Both tables for ``months`` (each gets a ``monthly`` row, even an empty one)."""
    per_month: dict[str, list[CellFigures]] = defaultdict(list)
    for cell in cells:
        per_month[cell.month].append(cell)
    by_district: list[Row] = []
    monthly: list[Row] = []
    primary = complementary = months_hidden = figures = 0
    for done, month in enumerate(sorted(set(months) | set(per_month)), start=1):
        month_cells = sorted(per_month.get(month, []), key=lambda c: c.key)
        protections: dict[str, Protection[tuple[str, int]]] = {
            question: protect(
                {c.key: c.tallies.get(question, EMPTY) for c in month_cells},
                min_responses,
                scale,
            )
            for question in questions
        }
        for cell in month_cells:
            row: Row = {"month": month, "district": cell.district, "priority": cell.priority}
            row.update(_counts(cell))
            for question in questions:
                hidden = cell.key in protections[question].suppressed
                row.update(_question(question, cell.tallies.get(question, EMPTY), hidden))
                if cell.tallies.get(question, EMPTY).answers:
                    figures += 2
            by_district.append(row)
        total = CellFigures(
            month,
            "",
            0,
            calls_texted=sum(c.calls_texted for c in month_cells),
            delay_notices=sum(c.delay_notices for c in month_cells),
            surveys_sent=sum(c.surveys_sent for c in month_cells),
            responses=sum(c.responses for c in month_cells),
        )
        month_row: Row = {"month": month, **_counts(total)}
        for question in questions:
            tally = sum((c.tallies.get(question, EMPTY) for c in month_cells), EMPTY)
            protection = protections[question]
            month_row.update(_question(question, tally, protection.month_suppressed))
            primary += 2 * len(protection.primary)
            complementary += 2 * len(protection.complementary)
            months_hidden += 2 * protection.month_suppressed
        monthly.append(month_row)
        if on_month is not None:
            on_month(done)
    return Tables(
        by_district,
        monthly,
        SuppressionCount(figures, primary, complementary, months_hidden),
    )


def _counts(cell: CellFigures) -> Row:
    # The response rate is the ratio of two published counts: hiding it would hide nothing.
    rate = cell.responses / cell.surveys_sent if cell.surveys_sent else None
    return {
        "calls_texted": cell.calls_texted,
        "delay_notices": cell.delay_notices,
        "surveys_sent": cell.surveys_sent,
        "responses": cell.responses,
        "response_rate": rate,
    }


def _question(question: str, tally: Tally, hidden: bool) -> Row:
    if hidden:
        return {f"{question}_share_positive": SUPPRESSED, f"{question}_mean": SUPPRESSED}
    return {f"{question}_share_positive": tally.share_positive, f"{question}_mean": tally.mean}
