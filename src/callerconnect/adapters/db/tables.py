"""The tables. One place for the schema; Alembic migrations are checked against it.

One module though over 500 lines, on purpose: it is the whole schema, declarations only
(one class a table on one ``MetaData``, and the one column type for UTC moments), read as
one when a migration is written or compared against it; its length grows with the
tables, not with logic.

Timestamps are stored in UTC (``timestamptz`` on PostgreSQL; ISO text on SQLite) and read
back timezone-aware. Every moment the reports and benchmarks will need is kept: when an
event was received, when a call became eligible, each status change of each text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


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
    # At most its first 64 KiB (service/kept_payload.py).
    payload_encrypted: Mapped[str] = mapped_column(Text)
    # The payload's length in bytes and the SHA-256 of all of it, so a letter cut short
    # can still be matched with what was sent; unknown for a body not read to its end.
    # The hash is cleared with the phone numbers (retention), as it could confirm one.
    payload_bytes: Mapped[int | None] = mapped_column(BigInteger)
    payload_sha256: Mapped[str | None] = mapped_column(String(64))
    # True when only a prefix is kept (it cannot be replayed); NULL before 0008: whole.
    payload_truncated: Mapped[bool | None] = mapped_column(Boolean)
    error_code: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="new")
    replayed_at: Mapped[datetime | None]
    replay_result: Mapped[str | None] = mapped_column(Text)
    # Set when the retention job masked the phone numbers in the payload.
    phone_purged_at: Mapped[datetime | None]


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
    # {field: [occurred_at ISO, event id, first seen ISO]}: each field's version.
    field_times: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DecisionRow(Base):
    """Why: every eligibility change and every text not made, with its reason code."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    # Write-only link: a decision about a call inserted in the same flush gets its id
    # there, so a batch of events needs no flush per new call (service/intake.py).
    call: Mapped[CallRow] = relationship(lazy="raise")
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
    call: Mapped[CallRow | None] = relationship(lazy="raise")  # write-only, as above
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
    outbox: Mapped[OutboxRow] = relationship(lazy="raise")  # write-only, as above
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]


class OptOutRow(Base):
    """A phone (by keyed hash only) that answered STOP to an agency's number, or came
    back with START. Agency ``*`` (OPT_OUT_EVERY_AGENCY): recorded before agencies were
    told apart, it holds for every agency without a row of its own."""

    __tablename__ = "opt_outs"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))


class VaultKeyRow(Base):
    """A key of our own, stored encrypted under ``secret_key`` like any other value: the
    phone lookup key, which must outlive every rotation of the secret."""

    __tablename__ = "vault_keys"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ProtectedPhoneRow(Base):
    """A phone (by keyed hash only) seen on a call that puts someone at risk: no text
    about any other call goes to it until ``protected_until``."""

    __tablename__ = "protected_phones"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    protected_until: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime]


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


class SurveyResponseRow(Base):
    """One response per call, from its survey link or the landline feedback page.

    Tied to the call (district, priority and call type for the reports), never to the
    phone number. The comment may hold personal details despite the form's note, so it
    is encrypted at rest like a phone number (``Vault``) and only ever shown redacted.
    """

    __tablename__ = "survey_responses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), unique=True)
    invitation_id: Mapped[int | None] = mapped_column(
        ForeignKey("survey_invitations.id", ondelete="SET NULL"), unique=True
    )
    # "link" (the texted survey link) or "landline" (the case-number page).
    channel: Mapped[str] = mapped_column(String(16))
    survey_version: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    answered_at: Mapped[datetime] = mapped_column(index=True)
    comment_encrypted: Mapped[str | None] = mapped_column(Text)


class SurveyAnswerRow(Base):
    """One answered question of a response: a scale point or an extra choice."""

    __tablename__ = "survey_answers"
    __table_args__ = (
        UniqueConstraint("response_id", "question_id", name="uq_survey_answers_response_question"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id"), index=True)
    question_id: Mapped[str] = mapped_column(String(32))
    # A scale point (1-5), or None when the answer is a choice such as "no_officer".
    score: Mapped[int | None]
    choice: Mapped[str | None] = mapped_column(String(32))


class WebRateHitRow(Base):
    """Hits per client and fixed window on the public pages' guessable inputs (unknown
    survey tokens, landline case numbers), shared by every ``serve`` process. The client
    is a keyed hash of its address: no address is stored."""

    __tablename__ = "web_rate_hits"

    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True, index=True)
    hits: Mapped[int] = mapped_column(Integer)


# --- SMS providers: message parts, early receipts, inbound texts (issue 3) ----------------


class SmsPartRow(Base):
    """One message as the provider knows it: a whole text (Twilio), or one part of a
    long text that an SMPP link sent as several messages, each with its own id and
    its own delivery receipt. ``message_id`` is normalised (lower case, no leading
    zeros) so that ids written in different cases or paddings still match."""

    __tablename__ = "sms_parts"
    __table_args__ = (Index("ix_sms_parts_provider_message", "provider", "message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(64))
    part_number: Mapped[int] = mapped_column(Integer)
    parts: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_retryable: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PendingReceiptRow(Base):
    """A receipt for a message id the dispatcher has not recorded yet (it can arrive
    before the provider's answer is committed); applied when the id is recorded, and
    forgotten after a day if it never is."""

    __tablename__ = "sms_pending_receipts"
    __table_args__ = (Index("ix_sms_pending_receipts_provider_message", "provider", "message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_retryable: Mapped[bool | None] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(index=True)


class InboundMessageRow(Base):
    """A text a caller sent to our number: kept (number masked, body encrypted), with
    what we made of it and whether a person should read it."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint(
            "provider", "provider_message_id", name="uq_inbound_messages_provider_message"
        ),
        Index("ix_inbound_messages_flagged", "flagged", "reviewed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(16))
    provider_message_id: Mapped[str] = mapped_column(String(64))
    phone_masked: Mapped[str] = mapped_column(String(32))
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # The text itself may hold personal details: encrypted at rest like a phone number.
    body_encrypted: Mapped[str] = mapped_column(Text)
    # opt_out, opt_in, help or other
    classification: Mapped[str] = mapped_column(String(16))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_terms: Mapped[str | None] = mapped_column(String(200))
    reply_outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    received_at: Mapped[datetime] = mapped_column(index=True)
    reviewed_at: Mapped[datetime | None]


class PublicationRow(Base):
    """One open-data publication of an agency: every month up to ``period``. Unique per
    agency and period, so that of several workers exactly one publishes a month; a
    ``partial`` one (the month as it stood so far) is replaced once the month is over."""

    __tablename__ = "publications"
    __table_args__ = (
        UniqueConstraint("agency_id", "period", name="uq_publications_agency_period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))
    partial: Mapped[bool] = mapped_column(Boolean)
    published_at: Mapped[datetime]


class PublicationFileRow(Base):
    """A file of a publication, as served at ``/open-data/<name>``."""

    __tablename__ = "publication_files"

    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


# --- the internal dashboard: accounts, sessions, login throttling, audit log ---------------


class DashboardUserRow(Base):
    """An account of the internal dashboard. ``agency_id`` is ``*`` for an administrator
    who sees every agency."""

    __tablename__ = "dashboard_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    agency_id: Mapped[str] = mapped_column(String(64))
    # argon2id, in its own self-describing PHC string.
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class DashboardSessionRow(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is kept,
    so a copy of the table cannot be used to sign in."""

    __tablename__ = "dashboard_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class LoginThrottleRow(Base):
    """Failed logins per e-mail address (by SHA-256, known account or not, so a lockout
    says nothing about whether the address has an account)."""

    __tablename__ = "dashboard_login_throttle"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime]
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None]


class AuditLogRow(Base):
    """Who saw or changed what in the dashboard, with which filters, when and from where.
    Only ever inserted: nothing in the application updates or deletes a row."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    # The agency whose data was seen ("*" for an all-agency view).
    agency_id: Mapped[str] = mapped_column(String(64), index=True)
    user_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(254))
    filters: Mapped[str | None] = mapped_column(Text)
    client_address: Mapped[str | None] = mapped_column(String(64))
