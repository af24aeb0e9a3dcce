"""One call's whole story, for ``calls show`` and the dashboard: its CAD events, every
decision with its reason, every text with each status change, and its survey.

The caller's phone never appears: the call shows it masked (``+1613***0142``), and the
fields shown for each event are read back from the stored event without its caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callerconnect.adapters.cad.native import EventRejected, parse_event
from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import (
    CadEventRow,
    CallRow,
    DecisionRow,
    OutboxRow,
    SurveyInvitationRow,
    SurveyResponseRow,
    TextStatusChangeRow,
)
from callerconnect.adapters.sms.phone import mask_phone
from callerconnect.domain.facts import CallFact

#: Event fields worth showing, in this order (never the caller's phone or language).
_EVENT_FIELDS = (
    "case_number",
    "priority",
    "call_type_code",
    "call_type_description",
    "district",
    "in_progress",
    "risk_flag",
    "sms_opt_out",
    "unit_id",
    "eta_minutes",
    "disposition_code",
    "disposition_description",
    "merged_into",
    "hold",
)


@dataclass(frozen=True)
class EventLine:
    event_id: str
    type: str
    occurred_at: datetime
    received_at: datetime
    source: str
    #: What the event said, phone left out; ``None`` when the stored event cannot be read.
    fields: tuple[tuple[str, str], ...] | None


@dataclass(frozen=True)
class DecisionLine:
    code: str
    kind: str | None
    decided_at: datetime
    event_at: datetime | None
    event_id: str | None


@dataclass(frozen=True)
class StatusChange:
    status: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class TextLine:
    id: int
    kind: str
    sequence: int
    status: str
    reason: str | None
    error_code: str | None
    attempts: int
    sent_at: datetime | None
    changes: tuple[StatusChange, ...]


@dataclass(frozen=True)
class SurveyState:
    """``sent`` (invited), ``opened``, ``completed`` or ``expired``; ``completed`` also
    for a response from the landline page without an invitation."""

    state: str
    invited_at: datetime | None
    expires_at: datetime | None
    opened_at: datetime | None
    answered_at: datetime | None
    channel: str | None


@dataclass(frozen=True)
class CallHistory:
    agency_id: str
    incident_id: str
    case_number: str | None
    priority: int | None
    call_type_code: str | None
    call_type_description: str | None
    district: str | None
    unit_id: str | None
    #: The phone masked to its last digits, ``None`` without one, ``purged`` once erased.
    phone_masked: str | None
    language: str | None
    reason: str
    blocked_reason: str | None
    first_event_at: datetime | None
    received_at: datetime | None
    eligible_at: datetime | None
    dispatched_at: datetime | None
    cleared_at: datetime | None
    events: tuple[EventLine, ...]
    decisions: tuple[DecisionLine, ...]
    texts: tuple[TextLine, ...]
    survey: SurveyState | None


def call_history(
    db: Database, vault: Vault, agency_id: str, incident_id: str, now: datetime
) -> CallHistory | None:
    """The agency's call ``incident_id``, or ``None`` if this agency has no such call."""
    with db.transaction() as session:
        call = session.scalar(
            select(CallRow).where(
                CallRow.agency_id == agency_id, CallRow.incident_id == incident_id
            )
        )
        if call is None:
            return None
        return CallHistory(
            agency_id=call.agency_id,
            incident_id=call.incident_id,
            case_number=call.case_number,
            priority=call.priority,
            call_type_code=call.call_type_code,
            call_type_description=call.call_type_description,
            district=call.district,
            unit_id=call.unit_id,
            phone_masked=_masked_phone(call, vault),
            language=call.language,
            reason=call.reason,
            blocked_reason=call.blocked_reason,
            first_event_at=call.first_fact_at,
            received_at=call.received_at,
            eligible_at=call.eligible_at,
            dispatched_at=call.dispatched_at,
            cleared_at=call.cleared_at,
            events=_events(session, vault, agency_id, incident_id),
            decisions=_decisions(session, call.id),
            texts=_texts(session, call.id),
            survey=_survey(session, call.id, now),
        )


def _masked_phone(call: CallRow, vault: Vault) -> str | None:
    if call.phone_purged_at is not None:
        return "purged"
    if call.phone_encrypted is None:
        return None
    return mask_phone(vault.decrypt(call.phone_encrypted))


def _events(
    session: Session, vault: Vault, agency_id: str, incident_id: str
) -> tuple[EventLine, ...]:
    rows = session.scalars(
        select(CadEventRow)
        .where(CadEventRow.agency_id == agency_id, CadEventRow.incident_id == incident_id)
        .order_by(CadEventRow.received_at, CadEventRow.id)
    )
    return tuple(
        EventLine(
            event_id=row.event_id,
            type=row.type,
            occurred_at=row.occurred_at,
            received_at=row.received_at,
            source=row.source,
            fields=_event_fields(vault, row.payload_encrypted),
        )
        for row in rows
    )


def _event_fields(vault: Vault, payload_encrypted: str) -> tuple[tuple[str, str], ...] | None:
    """The stored event read back through the same parser the intake used, so that the
    fields shown are exactly what the call was told; the phone is dropped here."""
    try:
        fact: CallFact = parse_event(json.loads(vault.decrypt(payload_encrypted)))
    except (EventRejected, ValueError):
        return None
    shown = []
    for name in _EVENT_FIELDS:
        value = getattr(fact, name)
        if value is not None and value is not False:
            shown.append((name, str(value)))
    if fact.phone is not None or fact.phone_invalid:
        shown.append(("phone", "given" if fact.phone is not None else "unusable"))
    return tuple(shown)


def _decisions(session: Session, call_id: int) -> tuple[DecisionLine, ...]:
    rows = session.scalars(
        select(DecisionRow).where(DecisionRow.call_id == call_id).order_by(DecisionRow.id)
    )
    return tuple(
        DecisionLine(row.code, row.kind, row.decided_at, row.event_at, row.event_id) for row in rows
    )


def _texts(session: Session, call_id: int) -> tuple[TextLine, ...]:
    texts = session.scalars(
        select(OutboxRow).where(OutboxRow.call_id == call_id).order_by(OutboxRow.id)
    ).all()
    changes: dict[int, list[StatusChange]] = {}
    if texts:
        for change in session.scalars(
            select(TextStatusChangeRow)
            .where(TextStatusChangeRow.outbox_id.in_([t.id for t in texts]))
            .order_by(TextStatusChangeRow.id)
        ):
            changes.setdefault(change.outbox_id, []).append(
                StatusChange(change.status, change.reason, change.at)
            )
    return tuple(
        TextLine(
            id=text.id,
            kind=text.kind,
            sequence=text.sequence,
            status=text.status,
            reason=text.reason,
            error_code=text.error_code,
            attempts=text.attempts,
            sent_at=text.sent_at,
            changes=tuple(changes.get(text.id, [])),
        )
        for text in texts
    )


def _survey(session: Session, call_id: int, now: datetime) -> SurveyState | None:
    invitation = session.scalar(
        select(SurveyInvitationRow)
        .where(SurveyInvitationRow.call_id == call_id)
        .order_by(SurveyInvitationRow.id.desc())
        .limit(1)
    )
    response = session.scalar(select(SurveyResponseRow).where(SurveyResponseRow.call_id == call_id))
    if invitation is None and response is None:
        return None
    if response is not None:
        state = "completed"
    elif invitation is not None and now >= invitation.expires_at:
        state = "expired"
    elif invitation is not None and invitation.opened_at is not None:
        state = "opened"
    else:
        state = "sent"
    return SurveyState(
        state=state,
        invited_at=invitation.created_at if invitation else None,
        expires_at=invitation.expires_at if invitation else None,
        opened_at=invitation.opened_at if invitation else None,
        answered_at=response.answered_at if response else None,
        channel=response.channel if response else None,
    )
