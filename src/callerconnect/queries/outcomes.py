"""Texts by outcome (kind, status, reason) and calls by eligibility reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow, OutboxRow
from callerconnect.queries.figures import call_conditions
from callerconnect.queries.filters import Filters


@dataclass(frozen=True)
class TextOutcome:
    kind: str
    status: str
    reason: str | None
    texts: int


@dataclass(frozen=True)
class CallsWithReason:
    reason: str
    calls: int


def _outcomes() -> Any:  # a Select of four typed columns
    return (
        select(OutboxRow.kind, OutboxRow.status, OutboxRow.reason, func.count(OutboxRow.id))
        .group_by(OutboxRow.kind, OutboxRow.status, OutboxRow.reason)
        .order_by(OutboxRow.kind, OutboxRow.status, OutboxRow.reason)
    )


def texts_by_outcome(db: Database, agency_id: str) -> list[TextOutcome]:
    """Every text of the agency (replies included), ever, by kind, status and reason."""
    query = _outcomes().where(OutboxRow.agency_id == agency_id)
    with db.reading() as connection:
        return [TextOutcome(*row) for row in connection.execute(query)]


def texts_by_outcome_in(db: Database, filters: Filters, tz: ZoneInfo) -> list[TextOutcome]:
    """The texts about the calls in scope (they count with their call, like every figure)."""
    start, end = filters.utc_bounds(tz)
    query = _outcomes().join(CallRow, OutboxRow.call_id == CallRow.id)
    query = query.where(*call_conditions(filters, start, end))
    with db.reading() as connection:
        return [TextOutcome(*row) for row in connection.execute(query)]


def calls_by_reason(db: Database, agency_id: str) -> list[CallsWithReason]:
    """Every call of the agency, ever, by its current eligibility reason."""
    query = (
        select(CallRow.reason, func.count(CallRow.id))
        .where(CallRow.agency_id == agency_id)
        .group_by(CallRow.reason)
        .order_by(func.count(CallRow.id).desc(), CallRow.reason)
    )
    with db.reading() as connection:
        return [CallsWithReason(*row) for row in connection.execute(query)]
