"""The overview's figures, as tables, from the read side (``callerconnect.queries``).

One call of :func:`build_overview` makes every table the overview page shows and every
CSV it exports; nothing here counts rows itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from callerconnect.adapters.db.engine import Database
from callerconnect.i18n.dashboard import _
from callerconnect.queries.figures import SCALE_QUESTIONS, FigureRow, ScaleTally, figures
from callerconnect.queries.filters import Filters
from callerconnect.queries.not_texted import not_texted_reasons
from callerconnect.web.dashboard.tables import MIN_RESPONSES, SUPPRESSED, Column, Table

#: The contract's overview metrics, in the order of the CSV.
CONTRACT_METRICS = (
    "calls_received",
    "calls_eligible",
    "calls_texted",
    "confirmations_sent",
    "delay_notices_sent",
    "surveys_sent",
    "surveys_opened",
    "surveys_completed",
    "texts_delivered",
    "texts_failed",
    "opt_outs",
    "median_seconds_to_confirmation",
    "p90_seconds_to_confirmation",
)

METRIC_LABELS = {
    "calls_received": _("Calls received"),
    "calls_eligible": _("Calls eligible for texts"),
    "calls_texted": _("Calls texted"),
    "confirmations_sent": _("Confirmations sent"),
    "delay_notices_sent": _("Delay notices sent"),
    "surveys_sent": _("Survey invitations sent"),
    "surveys_opened": _("Surveys opened"),
    "surveys_completed": _("Surveys completed"),
    "texts_sent": _("Texts sent"),
    "texts_delivered": _("Texts delivered"),
    "texts_failed": _("Texts failed"),
    "opt_outs": _("Opt-outs"),
    "median_seconds_to_confirmation": _("Median seconds from call to confirmation"),
    "p90_seconds_to_confirmation": _("90th percentile seconds from call to confirmation"),
    "response_rate": _("Response rate"),
}

QUESTION_LABELS = {
    "call_taker": _("Call-taker"),
    "officer": _("Officer"),
    "kept_informed": _("Kept informed"),
    "respect": _("Treated with respect"),
    "overall": _("Overall"),
}

QUESTION_SHARE_LABELS = {
    "call_taker": _("Call-taker: share of 4 or 5"),
    "officer": _("Officer: share of 4 or 5"),
    "kept_informed": _("Kept informed: share of 4 or 5"),
    "respect": _("Treated with respect: share of 4 or 5"),
    "overall": _("Overall: share of 4 or 5"),
}

QUESTION_MEAN_LABELS = {
    "call_taker": _("Call-taker: mean"),
    "officer": _("Officer: mean"),
    "kept_informed": _("Kept informed: mean"),
    "respect": _("Treated with respect: mean"),
    "overall": _("Overall: mean"),
}

GROUP_LABELS = {
    "district": _("District"),
    "priority": _("Priority"),
    "call_type": _("Call type"),
    "hour": _("Hour of the call"),
    "unit": _("Responding unit"),
    "week": _("Week of"),
}


def response_rate(row: FigureRow) -> float | None:
    return row.surveys_completed / row.surveys_sent if row.surveys_sent else None


def share(tally: ScaleTally) -> Any:
    return SUPPRESSED if tally.answers < MIN_RESPONSES else tally.share_positive


def mean(tally: ScaleTally) -> Any:
    return SUPPRESSED if tally.answers < MIN_RESPONSES else tally.mean


def _kind(metric: str) -> str:
    if metric.endswith("_rate") or metric.endswith("_share_positive"):
        return "rate"
    if metric.endswith("_mean"):
        return "mean"
    if "seconds" in metric:
        return "seconds"
    return "count"


@dataclass
class Overview:
    totals: FigureRow
    metrics: list[tuple[str, Any]]
    reasons: Table
    scores: Table
    trend: Table
    breakdowns: list[Table]

    @property
    def tables(self) -> dict[str, Table]:
        found = {t.name: t for t in (self.reasons, self.scores, self.trend, *self.breakdowns)}
        return found

    def metric(self, name: str) -> Any:
        return dict(self.metrics)[name]


def metric_kind(name: str) -> str:
    return _kind(name)


def build_overview(
    db: Database, filters: Filters, tz: ZoneInfo, language: str, *, unit_breakdown: bool
) -> Overview:
    totals = figures(db, filters, tz, group_by=())[0]
    metrics: list[tuple[str, Any]] = [(name, getattr(totals, name)) for name in CONTRACT_METRICS]
    metrics += [("texts_sent", totals.texts_sent), ("response_rate", response_rate(totals))]
    for question in SCALE_QUESTIONS:
        tally = totals.scores[question]
        metrics += [
            (f"{question}_answers", tally.answers),
            (f"{question}_share_positive", share(tally)),
            (f"{question}_mean", mean(tally)),
        ]

    reasons = Table(
        "reasons",
        _("Calls not texted, and why"),
        [
            Column("reason", _("Reason code"), "text"),
            Column("description", _("Reason"), "text"),
            Column("calls", _("Calls")),
        ],
        [[r.code, r.label(language), r.calls] for r in not_texted_reasons(db, filters, tz)],
        chart_value="calls",
        chart_label="description",
    )

    scores = Table(
        "scores",
        _("Survey answers by question"),
        [
            Column("question", _("Question"), "text"),
            Column("answers", _("Answers")),
            Column("share_positive", _("Share of 4 or 5"), "rate"),
            Column("mean", _("Mean (1 to 5)"), "mean"),
        ],
        [
            [q, totals.scores[q].answers, share(totals.scores[q]), mean(totals.scores[q])]
            for q in SCALE_QUESTIONS
        ],
        chart_value="share_positive",
        chart_label="question",
    )

    weekly = figures(db, filters, tz, group_by=("week",))
    trend_columns = [Column("week", _("Week of"), "text"), Column("responses", _("Responses"))]
    for q in SCALE_QUESTIONS:
        trend_columns.append(Column(f"{q}_share_positive", QUESTION_SHARE_LABELS[q], "rate"))
        trend_columns.append(Column(f"{q}_mean", QUESTION_MEAN_LABELS[q], "mean"))
    trend = Table(
        "trend",
        _("Survey answers by week"),
        trend_columns,
        [
            [row.week.isoformat() if row.week else None, row.surveys_completed]
            + [
                value
                for q in SCALE_QUESTIONS
                for value in (share(row.scores[q]), mean(row.scores[q]))
            ]
            for row in weekly
        ],
        chart_value="overall_share_positive",
        chart_label="week",
    )

    groupings = ["district", "priority", "call_type", "hour"] + (["unit"] if unit_breakdown else [])
    breakdowns = [_breakdown(db, filters, tz, grouping) for grouping in groupings]
    return Overview(totals, metrics, reasons, scores, trend, breakdowns)


_BREAKDOWN_TITLES = {
    "district": _("By district"),
    "priority": _("By priority"),
    "call_type": _("By call type"),
    "hour": _("By hour of the call (shift)"),
    "unit": _("By responding unit"),
}


def _breakdown(db: Database, filters: Filters, tz: ZoneInfo, grouping: str) -> Table:
    rows = figures(db, filters, tz, group_by=(grouping,))
    return Table(
        f"by_{grouping}",
        _BREAKDOWN_TITLES[grouping],
        [
            Column(grouping, GROUP_LABELS[grouping], "text"),
            Column("calls_received", METRIC_LABELS["calls_received"]),
            Column("calls_texted", METRIC_LABELS["calls_texted"]),
            Column("surveys_completed", METRIC_LABELS["surveys_completed"]),
            Column("response_rate", METRIC_LABELS["response_rate"], "rate"),
            Column("call_taker_share_positive", _("Call-taker: share of 4 or 5"), "rate"),
            Column("call_taker_mean", _("Call-taker: mean"), "mean"),
            Column("officer_share_positive", _("Officer: share of 4 or 5"), "rate"),
            Column("officer_mean", _("Officer: mean"), "mean"),
        ],
        [
            [
                _group_value(getattr(row, grouping)),
                row.calls_received,
                row.calls_texted,
                row.surveys_completed,
                response_rate(row),
                share(row.scores["call_taker"]),
                mean(row.scores["call_taker"]),
                share(row.scores["officer"]),
                mean(row.scores["officer"]),
            ]
            for row in rows
        ],
        chart_value="calls_received",
        chart_label=grouping,
    )


def _group_value(value: Any) -> Any:
    if value is None:
        return None
    return str(value) if not isinstance(value, str) else value
