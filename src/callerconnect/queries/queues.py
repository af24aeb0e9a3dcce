"""Work queues: what needs a person. Shown on the dashboard's queue page and in the daily
report: replies flagged for a person, unknown call types, dead letters, failed texts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow, DeadLetterRow, InboundMessageRow, OutboxRow
from callerconnect.domain.messages import CALL_TEXT_KINDS
from callerconnect.domain.redaction import redact
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
    db: Database, vault: Vault, agency_id: str | None, *, include_reviewed: bool = False
) -> list[FlaggedReply]:
    """The agency's flagged replies, oldest first (the body decrypted as the caller sent
    it, the number masked as it was stored); every agency's for ``None`` (the operator's
    ``inbound flagged`` without ``--agency``). Not reviewed yet only, unless
    ``include_reviewed``."""
    message = InboundMessageRow
    query = select(
        message.id,
        message.received_at,
        message.phone_masked,
        message.flag_terms,
        message.body_encrypted,
        message.reviewed_at,
    ).where(message.flagged.is_(True))
    if agency_id is not None:
        query = query.where(message.agency_id == agency_id)
    if not include_reviewed:
        query = query.where(message.reviewed_at.is_(None))
    with db.reading() as connection:
        rows = connection.execute(query.order_by(message.received_at, message.id)).all()
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


def flagged_replies_redacted(
    db: Database, vault: Vault, agency_id: str | None, *, include_reviewed: bool = False
) -> list[FlaggedReply]:
    """:func:`flagged_replies` with each body redacted (``domain/redaction.py``): the
    texts are kept as they arrived (a STOP must be read exactly), and shown to a person
    reviewing them without the names, numbers, addresses and e-mails they carry."""
    return [
        replace(reply, body=redact(reply.body))
        for reply in flagged_replies(db, vault, agency_id, include_reviewed=include_reviewed)
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
    with db.reading() as connection:
        return [UnknownCallType(*row) for row in connection.execute(query)]


def dead_letters(db: Database, agency_id: str, status: str | None = "new") -> list[DeadLetter]:
    """The agency's dead letters with ``status`` (``None``: all), oldest first."""
    letter = DeadLetterRow
    query = select(
        letter.id,
        letter.received_at,
        letter.source,
        letter.error_code,
        letter.error,
        letter.field,
        letter.status,
    ).where(letter.agency_id == agency_id)
    if status is not None:
        query = query.where(letter.status == status)
    with db.reading() as connection:
        return [DeadLetter(*row) for row in connection.execute(query.order_by(letter.id))]


def failed_texts(db: Database, filters: Filters, tz: ZoneInfo) -> list[FailedText]:
    """Texts about the calls in scope that ended ``failed`` or ``undelivered``."""
    start, end = filters.utc_bounds(tz)
    query = (
        select(
            OutboxRow.id,
            CallRow.incident_id,
            OutboxRow.kind,
            OutboxRow.status,
            OutboxRow.error_code,
            OutboxRow.attempts,
            OutboxRow.finished_at,
        )
        .join(CallRow, OutboxRow.call_id == CallRow.id)
        .where(
            *call_conditions(filters, start, end),
            OutboxRow.kind.in_([kind.value for kind in CALL_TEXT_KINDS]),
            OutboxRow.status.in_(FAILED_STATUSES),
        )
        .order_by(OutboxRow.id)
    )
    with db.reading() as connection:
        return [FailedText(*row) for row in connection.execute(query)]
