"""Work queues: what needs a person. Shown on the dashboard's queue page and in the daily
report: replies flagged for a person, unknown call types, dead letters, failed texts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow, DeadLetterRow, InboundMessageRow, OutboxRow
from callerconnect.domain.messages import CALL_TEXT_KINDS
from callerconnect.queries.figures import FAILED_STATUSES, call_conditions
from callerconnect.queries.filters import Filters

UNKNOWN_CALL_TYPE = "ineligible:unknown_call_type"


@dataclass(frozen=True)
class FlaggedReply:
    """A caller's text that a person should read (it may speak of danger)."""

    id: int
    received_at: datetime
    phone_masked: str
    terms: str
    body: str
    reviewed_at: datetime | None


@dataclass(frozen=True)
class UnknownCallType:
    code: str | None
    description: str | None
    calls: int
    last_seen: datetime


@dataclass(frozen=True)
class DeadLetter:
    """A payload not accepted, without the payload (it may carry a phone)."""

    id: int
    received_at: datetime
    source: str
    error_code: str
    error: str
    field: str | None
    status: str


@dataclass(frozen=True)
class FailedText:
    id: int
    incident_id: str
    kind: str
    status: str
    error_code: str | None
    attempts: int
    finished_at: datetime | None


def flagged_replies(
    db: Database, vault: Vault, agency_id: str, *, include_reviewed: bool = False
) -> list[FlaggedReply]:
    """The agency's flagged replies, oldest first (the body decrypted, the number
    masked as it was stored)."""
    query = select(InboundMessageRow).where(
        InboundMessageRow.agency_id == agency_id, InboundMessageRow.flagged.is_(True)
    )
    if not include_reviewed:
        query = query.where(InboundMessageRow.reviewed_at.is_(None))
    with db.transaction() as session:
        rows = session.scalars(query.order_by(InboundMessageRow.received_at)).all()
        return [
            FlaggedReply(
                id=row.id,
                received_at=row.received_at,
                phone_masked=row.phone_masked,
                terms=row.flag_terms or "",
                body=vault.decrypt(row.body_encrypted),
                reviewed_at=row.reviewed_at,
            )
            for row in rows
        ]


def unknown_call_types(db: Database, agency_id: str) -> list[UnknownCallType]:
    """Codes that the agency's calls carry but the call-type table does not know (never
    texted until an administrator maps them), most calls first."""
    query = (
        select(
            CallRow.call_type_code,
            func.max(CallRow.call_type_description),
            func.count(CallRow.id),
            func.max(CallRow.updated_at),
        )
        .where(CallRow.agency_id == agency_id, CallRow.reason == UNKNOWN_CALL_TYPE)
        .group_by(CallRow.call_type_code)
        .order_by(func.count(CallRow.id).desc(), CallRow.call_type_code)
    )
    with db.transaction() as session:
        return [UnknownCallType(*row) for row in session.execute(query)]


def dead_letters(db: Database, agency_id: str, status: str | None = "new") -> list[DeadLetter]:
    """The agency's dead letters with ``status`` (``None``: all), oldest first."""
    query = select(DeadLetterRow).where(DeadLetterRow.agency_id == agency_id)
    if status is not None:
        query = query.where(DeadLetterRow.status == status)
    with db.transaction() as session:
        return [
            DeadLetter(
                row.id,
                row.received_at,
                row.source,
                row.error_code,
                row.error,
                row.field,
                row.status,
            )
            for row in session.scalars(query.order_by(DeadLetterRow.id))
        ]


def failed_texts(db: Database, filters: Filters, tz: ZoneInfo) -> list[FailedText]:
    """Texts about the calls in scope that ended ``failed`` or ``undelivered``."""
    start, end = filters.utc_bounds(tz)
    query = (
        select(OutboxRow, CallRow.incident_id)
        .join(CallRow, OutboxRow.call_id == CallRow.id)
        .where(
            *call_conditions(filters, start, end),
            OutboxRow.kind.in_([kind.value for kind in CALL_TEXT_KINDS]),
            OutboxRow.status.in_(FAILED_STATUSES),
        )
        .order_by(OutboxRow.id)
    )
    with db.transaction() as session:
        return [
            FailedText(
                id=text.id,
                incident_id=incident_id,
                kind=text.kind,
                status=text.status,
                error_code=text.error_code,
                attempts=text.attempts,
                finished_at=text.finished_at,
            )
            for text, incident_id in session.execute(query)
        ]
