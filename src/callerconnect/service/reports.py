"""Read-only questions operators ask: unknown call types, what was sent and why not."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow, OutboxRow


class UnknownCallType(NamedTuple):
    code: str | None
    description: str | None
    calls: int
    last_seen: datetime


class TextOutcome(NamedTuple):
    kind: str
    status: str
    reason: str | None
    texts: int


class CallsWithReason(NamedTuple):
    reason: str
    calls: int


def unknown_call_types(db: Database) -> list[UnknownCallType]:
    """Codes that calls carried but the call-type table does not know (never texted
    until an administrator maps them)."""
    with db.transaction() as session:
        query = (
            select(
                CallRow.call_type_code,
                func.max(CallRow.call_type_description),
                func.count(CallRow.id),
                func.max(CallRow.updated_at),
            )
            .where(CallRow.reason == "ineligible:unknown_call_type")
            .group_by(CallRow.call_type_code)
            .order_by(func.count(CallRow.id).desc())
        )
        return [UnknownCallType(*row) for row in session.execute(query)]


def texts_by_outcome(db: Database) -> list[TextOutcome]:
    with db.transaction() as session:
        query = (
            select(OutboxRow.kind, OutboxRow.status, OutboxRow.reason, func.count(OutboxRow.id))
            .group_by(OutboxRow.kind, OutboxRow.status, OutboxRow.reason)
            .order_by(OutboxRow.kind, OutboxRow.status)
        )
        return [TextOutcome(*row) for row in session.execute(query)]


def calls_by_reason(db: Database) -> list[CallsWithReason]:
    with db.transaction() as session:
        query = (
            select(CallRow.reason, func.count(CallRow.id))
            .group_by(CallRow.reason)
            .order_by(func.count(CallRow.id).desc())
        )
        return [CallsWithReason(*row) for row in session.execute(query)]
