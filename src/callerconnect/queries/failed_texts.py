"""Texts that never reached the phone, and why: the supervisors' "failed texts" queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow, OutboxRow
from callerconnect.queries.figures import FAILED_STATUSES


@dataclass(frozen=True)
class FailedText:
    outbox_id: int
    incident_id: str | None
    kind: str
    status: str
    reason: str | None
    error_code: str | None
    attempts: int
    finished_at: datetime | None


def failed_texts(db: Database, agency_id: str, *, limit: int = 200) -> list[FailedText]:
    """The agency's failed or undelivered texts, newest first (no phone, no body)."""
    query = (
        select(
            OutboxRow.id,
            CallRow.incident_id,
            OutboxRow.kind,
            OutboxRow.status,
            OutboxRow.reason,
            OutboxRow.error_code,
            OutboxRow.attempts,
            OutboxRow.finished_at,
        )
        .outerjoin(CallRow, CallRow.id == OutboxRow.call_id)
        .where(OutboxRow.agency_id == agency_id, OutboxRow.status.in_(FAILED_STATUSES))
        .order_by(OutboxRow.updated_at.desc(), OutboxRow.id.desc())
        .limit(limit)
    )
    with db.transaction() as session:
        return [FailedText(*row) for row in session.execute(query)]
