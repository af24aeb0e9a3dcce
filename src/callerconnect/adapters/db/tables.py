"""The tables. One place for the schema; Alembic migrations are checked against it.

Timestamps are stored in UTC (``timestamptz`` on PostgreSQL; ISO text on SQLite) and read
back timezone-aware. Every moment the reports and benchmarks will need is kept: when an
event was received, when a call became eligible, each status change of each text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        utc = value.astimezone(UTC)
        # SQLite compares timestamps as text: store one uniform, offset-free form.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime()}  # noqa: RUF012 (SQLAlchemy reads it)


class CadEventRow(Base):
    """Every accepted CAD event, as received (the raw payload), deduplicated by id."""

    __tablename__ = "cad_events"
    __table_args__ = (UniqueConstraint("agency_id", "event_id", name="uq_cad_events_agency_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(128))
    incident_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    # The event as received, encrypted (it carries the caller's phone).
    payload_encrypted: Mapped[str] = mapped_column(Text)


class DeadLetterRow(Base):
    """A payload we could not accept, kept verbatim so that nothing a CAD sent is lost."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(16))
    # Verbatim, encrypted: it may carry a phone number and cannot be trusted to parse.
    payload_encrypted: Mapped[str] = mapped_column(Text)
    error_code: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="new")
    replayed_at: Mapped[datetime | None]
    replay_result: Mapped[str | None] = mapped_column(Text)


class CallRow(Base):
    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("agency_id", "incident_id", name="uq_calls_agency_incident"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[str] = mapped_column(String(128))
    case_number: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[int | None]
    call_type_code: Mapped[str | None] = mapped_column(String(32), index=True)
    call_type_description: Mapped[str | None] = mapped_column(String(200))
    call_category: Mapped[str | None] = mapped_column(String(64))
    district: Mapped[str | None] = mapped_column(String(64))
    # The phone, encrypted; its keyed hash finds opt-outs and counts texts per phone.
    phone_encrypted: Mapped[str | None] = mapped_column(Text)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_invalid: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_purged_at: Mapped[datetime | None]
    language: Mapped[str | None] = mapped_column(String(8))
    caller_opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    in_progress: Mapped[bool] = mapped_column(Boolean, default=False)
    risk_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    unit_id: Mapped[str | None] = mapped_column(String(32))
    eta_minutes: Mapped[int | None]
    disposition_code: Mapped[str | None] = mapped_column(String(32))
    disposition_description: Mapped[str | None] = mapped_column(String(200))
    merged_into: Mapped[str | None] = mapped_column(String(128))
    first_fact_at: Mapped[datetime | None]
    received_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    arrived_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    merged_at: Mapped[datetime | None]
    eligible_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(String(64), index=True)
    blocked_reason: Mapped[str | None] = mapped_column(String(64))
    texts_scheduled: Mapped[str] = mapped_column(String(128), default="")
    field_times: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DecisionRow(Base):
    """Why: every eligibility change and every text not made, with its reason code."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    event_id: Mapped[str | None] = mapped_column(String(128))
    event_at: Mapped[datetime | None]
    decided_at: Mapped[datetime]
    code: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str | None] = mapped_column(String(32))


class OutboxRow(Base):
    """One text: the transactional outbox row, its durable timer and its history head.

    ``dedupe_key`` (agency, incident, kind, sequence) makes a second confirmation for
    the same incident impossible by construction.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "send_rank", "not_before"),
        Index("ix_outbox_phone_sent", "phone_hash", "sent_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    send_rank: Mapped[int] = mapped_column(Integer)
    not_before: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    # Replies carry their own phone (they answer a number, not a call).
    phone_encrypted: Mapped[str | None] = mapped_column(Text)
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    # The body as sent, except a survey link's token, which is kept only as a hash.
    body: Mapped[str | None] = mapped_column(Text)
    encoding: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[int | None]
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class TextStatusChangeRow(Base):
    """Each status a text went through, and when."""

    __tablename__ = "text_status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]


class OptOutRow(Base):
    """A phone (by keyed hash only) that answered STOP, or came back with START."""

    __tablename__ = "opt_outs"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))


class RateLimitRow(Base):
    """The next free sending slot, shared by every worker process."""

    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_slot_at: Mapped[datetime]


class SurveyInvitationRow(Base):
    """A survey link. The token itself is never stored, only its SHA-256."""

    __tablename__ = "survey_invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
