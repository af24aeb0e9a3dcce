"""Figures per group of calls: what was received, texted, delivered and answered.

One module though over 500 lines: it is one computation, the scope of calls, one query
per table and the merge of their rows in one snapshot, whose private helpers (the
constants, the key normalisation, the confirmation percentiles) serve each other; parted,
they would only become a public surface that nothing else uses.

Counting rule (contract section 9): a call counts in the period of its first event's
``occurred_at`` (the earliest ``occurred_at`` among its CAD events, ``calls.first_fact_at``),
taken as a local date in the agency's time zone; its texts, survey and responses count
with it, whenever they happened. Filters (district, priority, call type) apply to the
call as it stands now (after any reclassification).

Everything is counted by the database (``GROUP BY``, one query per table, all in one
snapshot); PostgreSQL computes the percentiles of the seconds to confirmation too, while
SQLite, without a percentile aggregate, hands over one number per confirmed call.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    distinct,
    func,
    insert,
    select,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import (
    CallRow,
    InboundMessageRow,
    OutboxRow,
    SurveyAnswerRow,
    SurveyInvitationRow,
    SurveyResponseRow,
    UtcDateTime,
)
from callerconnect.domain.messages import CALL_TEXT_KINDS, TextKind, TextStatus
from callerconnect.queries.filters import Filters
from callerconnect.queries.local_time import BUCKETS, LocalTime

#: The ways figures can be grouped. ``month``, ``week``, ``day`` and ``hour`` are local to
#: the agency (of the call's first event); ``unit`` is the responding unit, when dispatched.
GROUPINGS = (*BUCKETS, "district", "priority", "call_type", "unit")

#: Scale questions of survey v1 (``data/survey-v1.json``); figures tally each of them.
SCALE_QUESTIONS = ("call_taker", "officer", "kept_informed", "respect", "overall")

#: Points of the 1-5 scales counted as a positive answer.
POSITIVE_FROM = 4

#: Outcomes of a text that never reached the phone after it was handed to the provider
#: (or was refused by it for good).
FAILED_STATUSES = (TextStatus.FAILED.value, TextStatus.UNDELIVERED.value)


#: Metric names of :meth:`FigureRow.metrics`, those of the dashboard's overview export
#: (contract section 9) among them.
METRICS = (
    "calls_received",
    "calls_eligible",
    "calls_texted",
    "confirmations_sent",
    "delay_notices_sent",
    "surveys_sent",
    "surveys_opened",
    "surveys_completed",
    "texts_sent",
    "texts_delivered",
    "texts_failed",
    "opt_outs",
    "median_seconds_to_confirmation",
    "p90_seconds_to_confirmation",
)


@dataclass(frozen=True)
class ScaleTally:
    """Answers to one scale question: enough to derive (and weight) a mean and the
    share of positive (4-5) answers."""

    answers: int = 0
    total: int = 0
    positive: int = 0

    @property
    def mean(self) -> float | None:
        return self.total / self.answers if self.answers else None

    @property
    def share_positive(self) -> float | None:
        return self.positive / self.answers if self.answers else None


@dataclass(frozen=True)
class FigureRow:
    """One group's figures. The grouping fields not asked for are ``None``.

    - ``calls_received``: calls whose first event falls in the period;
      ``calls_eligible``: of them, those that were eligible for texts at some point;
      ``calls_texted``: those with at least one text sent (confirmation, delay notice or
      survey; replies to a caller's own texts are not about a call and not counted).
    - ``confirmations_sent``, ``delay_notices_sent``, ``surveys_sent``, ``texts_sent``:
      texts handed to the provider (``sent_at`` set), by kind and in all;
      ``texts_delivered``: those the provider confirmed delivered; ``texts_failed``: those
      that ended ``failed`` or ``undelivered`` (never reached the phone).
    - ``surveys_opened``: survey links opened at least once; ``surveys_completed``:
      responses recorded for the calls (from the link or the landline feedback page).
    - ``opt_outs``: STOP replies, each counted with the call of the last text sent to that
      phone before it (opt-outs belong to a phone, not a call; a STOP that answers no text
      of this agency is counted in no group).
    - ``median_seconds_to_confirmation``, ``p90_seconds_to_confirmation``: seconds from the
      call's start (its ``call.received`` time, else its first event's ``occurred_at``) to
      the confirmation's ``sent_at``, over the confirmed calls (median and 90th percentile,
      linear interpolation between ranks, as PostgreSQL's ``percentile_cont``).
    - ``scores``: per scale question, its answers, their sum and the number of 4-5 answers.
    """

    month: str | None = None
    week: date | None = None
    day: date | None = None
    hour: int | None = None
    district: str | None = None
    priority: int | None = None
    call_type: str | None = None
    unit: str | None = None
    calls_received: int = 0
    calls_eligible: int = 0
    calls_texted: int = 0
    confirmations_sent: int = 0
    delay_notices_sent: int = 0
    surveys_sent: int = 0
    surveys_opened: int = 0
    surveys_completed: int = 0
    texts_sent: int = 0
    texts_delivered: int = 0
    texts_failed: int = 0
    opt_outs: int = 0
    confirmed_calls: int = 0
    median_seconds_to_confirmation: float | None = None
    p90_seconds_to_confirmation: float | None = None
    scores: Mapping[str, ScaleTally] = field(
        default_factory=lambda: {question: ScaleTally() for question in SCALE_QUESTIONS}
    )

    def key(self, group_by: Sequence[str]) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in group_by)

    def metrics(self) -> dict[str, int | float | None]:
        """The figures by metric name, in a stable order: the contract's overview metrics
        (section 9) first, then per scale question ``<q>_answers``, ``<q>_mean`` and
        ``<q>_share_positive`` (``None`` without answers)."""
        named: dict[str, int | float | None] = {name: getattr(self, name) for name in METRICS}
        for question in SCALE_QUESTIONS:
            tally = self.scores.get(question, ScaleTally())
            named[f"{question}_answers"] = tally.answers
            named[f"{question}_mean"] = tally.mean
            named[f"{question}_share_positive"] = tally.share_positive
        return named


def figures(
    db: Database,
    filters: Filters,
    tz: ZoneInfo,
    group_by: Sequence[str] = ("month", "district", "priority"),
) -> list[FigureRow]:
    """One :class:`FigureRow` per group of calls (groups without calls are absent; with
    ``group_by=()`` there is always exactly one row, the totals), ordered by group."""
    group_by = tuple(group_by)
    unknown = [name for name in group_by if name not in GROUPINGS]
    if unknown or len(set(group_by)) != len(group_by):
        raise ValueError(
            f"cannot group by {', '.join(group_by)}; choose distinct names among "
            f"{', '.join(GROUPINGS)}"
        )
    with db.reading() as connection:  # every count from one snapshot
        return _figures(connection, filters, tz, group_by)


def _figures(
    connection: Connection, filters: Filters, tz: ZoneInfo, group_by: tuple[str, ...]
) -> list[FigureRow]:
    scope: Any = _scoped_calls(connection.dialect.name, filters, tz, group_by)
    temporary = connection.dialect.name == "sqlite" and any(name in BUCKETS for name in group_by)
    if temporary:
        scope = _materialised(connection, scope, group_by)
    try:
        rows, scores, seconds = _counts(connection, scope, group_by, filters.agency_id)
    finally:
        if temporary:  # pooled connections outlive the query
            scope.drop(connection)

    if not group_by and not rows:
        rows[()] = {}
    figures_rows = []
    for key in sorted(rows, key=_sort_key):
        confirmations = seconds.get(key)
        figures_rows.append(
            replace(
                FigureRow(**dict(zip(group_by, key, strict=True)), **rows[key]),
                confirmed_calls=confirmations.count if confirmations else 0,
                median_seconds_to_confirmation=confirmations.median if confirmations else None,
                p90_seconds_to_confirmation=confirmations.p90 if confirmations else None,
                scores={q: scores.get((key, q), ScaleTally()) for q in SCALE_QUESTIONS},
            )
        )
    return figures_rows


def _counts(
    connection: Connection, scope: Any, group_by: tuple[str, ...], agency_id: str
) -> tuple[
    dict[tuple[Any, ...], dict[str, Any]],
    dict[tuple[tuple[Any, ...], str], ScaleTally],
    dict[tuple[Any, ...], _Confirmations],
]:
    keys = [scope.c[name] for name in group_by]
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge(query: Select[Any], names: Sequence[str]) -> None:
        for result in connection.execute(query):
            values = tuple(result)
            key = tuple(_normalise(name, v) for name, v in zip(group_by, values, strict=False))
            counts = rows.setdefault(key, {})
            counts.update(zip(names, (v or 0 for v in values[len(group_by) :]), strict=True))

    merge(
        select(*keys, func.count(), _count_if(scope.c.eligible_at.is_not(None))).group_by(*keys),
        ("calls_received", "calls_eligible"),
    )
    merge(*_text_counts(scope, keys))
    merge(*_survey_counts(scope, keys))
    merge(*_opt_out_counts(scope, keys, agency_id))
    scores = _score_tallies(connection, scope, keys, group_by)
    seconds = _confirmation_seconds(connection, scope, keys, group_by)
    return rows, scores, seconds


# --- the calls in scope ------------------------------------------------------------------


def _scoped_calls(
    dialect: str, filters: Filters, tz: ZoneInfo, group_by: Sequence[str]
) -> Subquery:
    """The agency's calls of the period and filters: their id, what the figures need
    from the call itself, and one column per grouping."""
    start, end = filters.utc_bounds(tz)
    local = LocalTime(dialect, tz, start, end, CallRow.first_fact_at)
    attributes: dict[str, Any] = {
        "district": CallRow.district,
        "priority": CallRow.priority,
        "call_type": CallRow.call_type_code,
        "unit": CallRow.unit_id,
    }
    groups = [
        (local.bucket(name) if name in BUCKETS else attributes[name]).label(name)
        for name in group_by
    ]
    query = select(
        CallRow.id.label("call_id"),
        CallRow.eligible_at,
        func.coalesce(CallRow.received_at, CallRow.first_fact_at).label("started_at"),
        *groups,
    ).where(*call_conditions(filters, start, end))
    return query.subquery("scoped_calls")


def call_conditions(filters: Filters, start: Any, end: Any) -> list[ColumnElement[bool]]:
    """The WHERE clauses that put a call in scope: agency, period (UTC bounds of the
    local dates), district, priority, call type."""
    conditions: list[ColumnElement[bool]] = [
        CallRow.agency_id == filters.agency_id,
        CallRow.first_fact_at >= start,
        CallRow.first_fact_at < end,
    ]
    if filters.districts:
        conditions.append(CallRow.district.in_(filters.districts))
    if filters.priorities:
        conditions.append(CallRow.priority.in_(filters.priorities))
    if filters.call_types:
        conditions.append(CallRow.call_type_code.in_(filters.call_types))
    return conditions


_KEY_TYPES: dict[str, Any] = {
    "month": String,
    "week": String,
    "day": String,
    "hour": Integer,
    "district": String,
    "priority": Integer,
    "call_type": String,
    "unit": String,
}


def _materialised(connection: Connection, scope: Subquery, group_by: Sequence[str]) -> Table:
    """The calls in scope copied once into a temporary table. SQLite works the local
    buckets out with date functions on text, slow enough that doing it once per call
    instead of once per joined text, answer and query roughly halves a year's figures.
    (A temporary table needs no lock on the database; PostgreSQL, whose own time-zone
    conversion is fast, keeps the subquery: its read-only snapshot may not create one.)"""
    table = Table(
        f"scoped_calls_{secrets.token_hex(4)}",
        MetaData(),
        Column("call_id", Integer, primary_key=True),
        Column("eligible_at", UtcDateTime()),
        Column("started_at", UtcDateTime()),
        *(Column(name, _KEY_TYPES[name]) for name in group_by),
        prefixes=["TEMPORARY"],
    )
    table.create(connection)
    connection.execute(insert(table).from_select([c.name for c in table.c], select(scope)))
    return table


# --- one query per table -----------------------------------------------------------------


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _text_counts(scope: Any, keys: list[Any]) -> tuple[Select[Any], tuple[str, ...]]:
    sent = OutboxRow.sent_at.is_not(None)
    query = (
        select(
            *keys,
            func.count(distinct(case((sent, OutboxRow.call_id)))),
            _count_if(and_(sent, OutboxRow.kind == TextKind.CONFIRMATION.value)),
            _count_if(and_(sent, OutboxRow.kind == TextKind.DELAY_NOTICE.value)),
            _count_if(and_(sent, OutboxRow.kind == TextKind.SURVEY_INVITATION.value)),
            _count_if(sent),
            _count_if(OutboxRow.status == TextStatus.DELIVERED.value),
            _count_if(OutboxRow.status.in_(FAILED_STATUSES)),
        )
        .select_from(scope.join(OutboxRow, OutboxRow.call_id == scope.c.call_id))
        .where(OutboxRow.kind.in_([kind.value for kind in CALL_TEXT_KINDS]))
        .group_by(*keys)
    )
    return query, (
        "calls_texted",
        "confirmations_sent",
        "delay_notices_sent",
        "surveys_sent",
        "texts_sent",
        "texts_delivered",
        "texts_failed",
    )


def _survey_counts(scope: Any, keys: list[Any]) -> tuple[Select[Any], tuple[str, ...]]:
    opened = (
        select(SurveyInvitationRow.call_id, func.count().label("opened"))
        .where(SurveyInvitationRow.opened_at.is_not(None))
        .group_by(SurveyInvitationRow.call_id)
        .subquery("opened")
    )
    responses = (
        select(SurveyResponseRow.call_id, func.count().label("responses"))
        .group_by(SurveyResponseRow.call_id)
        .subquery("responses")
    )
    query = (
        select(*keys, func.sum(opened.c.opened), func.sum(responses.c.responses))
        .select_from(
            scope.outerjoin(opened, opened.c.call_id == scope.c.call_id).outerjoin(
                responses, responses.c.call_id == scope.c.call_id
            )
        )
        .where((opened.c.call_id.is_not(None)) | (responses.c.call_id.is_not(None)))
        .group_by(*keys)
    )
    return query, ("surveys_opened", "surveys_completed")


def _opt_out_counts(
    scope: Any, keys: list[Any], agency_id: str
) -> tuple[Select[Any], tuple[str, ...]]:
    text = aliased(OutboxRow)
    answered_call = (
        select(text.call_id)
        .where(
            text.agency_id == InboundMessageRow.agency_id,
            text.phone_hash == InboundMessageRow.phone_hash,
            text.call_id.is_not(None),
            text.sent_at.is_not(None),
            text.sent_at <= InboundMessageRow.received_at,
        )
        .order_by(text.sent_at.desc(), text.id.desc())
        .limit(1)
        .correlate(InboundMessageRow)
        .scalar_subquery()
    )
    stops = (
        select(answered_call.label("call_id"))
        .where(
            InboundMessageRow.agency_id == agency_id,
            InboundMessageRow.classification == "opt_out",
        )
        .subquery("stops")
    )
    query = (
        select(*keys, func.count())
        .select_from(scope.join(stops, stops.c.call_id == scope.c.call_id))
        .group_by(*keys)
    )
    return query, ("opt_outs",)


def _score_tallies(
    connection: Connection, scope: Any, keys: list[Any], group_by: Sequence[str]
) -> dict[tuple[tuple[Any, ...], str], ScaleTally]:
    score = SurveyAnswerRow.score
    query = (
        select(
            *keys,
            SurveyAnswerRow.question_id,
            func.count(score),
            func.sum(score),
            _count_if(score >= POSITIVE_FROM),
        )
        .select_from(
            scope.join(SurveyResponseRow, SurveyResponseRow.call_id == scope.c.call_id).join(
                SurveyAnswerRow, SurveyAnswerRow.response_id == SurveyResponseRow.id
            )
        )
        .where(SurveyAnswerRow.question_id.in_(SCALE_QUESTIONS), score.is_not(None))
        .group_by(*keys, SurveyAnswerRow.question_id)
    )
    tallies = {}
    n = len(group_by)
    for result in connection.execute(query):
        values = tuple(result)
        key = tuple(_normalise(name, v) for name, v in zip(group_by, values[:n], strict=True))
        question, answers, total, positive = values[n:]
        tallies[(key, question)] = ScaleTally(int(answers), int(total or 0), int(positive or 0))
    return tallies


@dataclass(frozen=True)
class _Confirmations:
    count: int
    median: float
    p90: float


def _confirmation_seconds(
    connection: Connection, scope: Any, keys: list[Any], group_by: Sequence[str]
) -> dict[tuple[Any, ...], _Confirmations]:
    """Per group, the confirmed calls and the median and 90th percentile of the seconds
    from each one's start to its confirmation's sending, interpolated linearly between
    ranks. PostgreSQL computes them (``percentile_cont``); SQLite, which has no such
    aggregate, hands over the values (one number per confirmed call)."""
    sent, started = OutboxRow.sent_at, scope.c.started_at
    joined = scope.join(OutboxRow, OutboxRow.call_id == scope.c.call_id)
    confirmed = (OutboxRow.kind == TextKind.CONFIRMATION.value, sent.is_not(None))
    size = len(group_by)
    found: dict[tuple[Any, ...], _Confirmations] = {}
    if connection.dialect.name == "postgresql":
        seconds: ColumnElement[Any] = func.extract("epoch", sent - started)
        query = (
            select(
                *keys,
                func.count(),
                func.percentile_cont(0.5).within_group(seconds),
                func.percentile_cont(0.9).within_group(seconds),
            )
            .select_from(joined)
            .where(*confirmed)
            .group_by(*keys)
        )
        for result in connection.execute(query):
            values = tuple(result)
            key = tuple(_normalise(n, v) for n, v in zip(group_by, values[:size], strict=True))
            count, median, p90 = values[size:]
            if not count:  # no confirmation at all: without GROUP BY, one row of NULLs
                continue
            found[key] = _Confirmations(int(count), round(median, 3), round(p90, 3))
        return found
    seconds = (func.julianday(sent) - func.julianday(started)) * 86400.0
    query = select(*keys, cast(seconds, Float)).select_from(joined).where(*confirmed)
    grouped: dict[tuple[Any, ...], list[float]] = {}
    for result in connection.execute(query):
        grouped.setdefault(tuple(result[:size]), []).append(result[size])
    for raw_key, group in grouped.items():
        key = tuple(_normalise(n, v) for n, v in zip(group_by, raw_key, strict=True))
        group.sort()
        found[key] = _Confirmations(
            len(group), _interpolated(group, 1, 2), _interpolated(group, 9, 10)
        )
    return found


def _interpolated(ordered: list[float], numerator: int, denominator: int) -> float:
    """The value at ``numerator / denominator`` of the ranks of ``ordered``, linearly
    interpolated (``percentile_cont``; ``statistics.quantiles(method="inclusive")``),
    to the millisecond: julianday() carries about a millisecond of rounding."""
    rank, remainder = divmod(numerator * (len(ordered) - 1), denominator)
    value = ordered[rank]
    if remainder:
        value += (ordered[rank + 1] - value) * remainder / denominator
    return round(value, 3)


# --- keys --------------------------------------------------------------------------------


def _normalise(name: str, value: Any) -> Any:
    """One Python type per grouping, whatever the database returned."""
    if value is None:
        return None
    if name in ("week", "day"):
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if name in ("hour", "priority"):
        return int(value)
    return str(value)


def _sort_key(key: Iterable[Any]) -> tuple[Any, ...]:
    # None sorts last within its column; values of one column share a type.
    return tuple((value is None, value if value is not None else 0) for value in key)
