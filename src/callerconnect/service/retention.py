"""Phone numbers are kept only while they are needed to text.

Once every text of a call is final and ``privacy.phone_retention`` has passed since the
call's last activity, its phone number is removed everywhere it is stored: the call row,
its outbox rows and the raw events it came in. A call the CAD never closed is purged
after ``_UNCLOSED_GRACE`` of silence, so a lost ``call.cleared`` cannot keep a number
forever.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CadEventRow, CallRow, OutboxRow
from callerconnect.domain.messages import TextStatus
from callerconnect.logs import log_event

log = logging.getLogger("callerconnect.retention")

_UNCLOSED_GRACE = timedelta(days=30)
_PENDING = (TextStatus.SCHEDULED.value, TextStatus.SENDING.value)


def purge_phones(db: Database, vault: Vault, now: datetime, retention: timedelta) -> int:
    """Remove the phone numbers of finished calls; returns how many calls were purged."""
    cutoff = now - retention
    last_text = (
        select(func.max(OutboxRow.finished_at))
        .where(OutboxRow.call_id == CallRow.id)
        .scalar_subquery()
    )
    pending = exists().where(OutboxRow.call_id == CallRow.id, OutboxRow.status.in_(_PENDING))
    closed = (
        CallRow.cleared_at.is_not(None)
        | CallRow.cancelled_at.is_not(None)
        | CallRow.merged_into.is_not(None)
    )
    with db.transaction() as session:
        calls = session.scalars(
            select(CallRow)
            .where(
                CallRow.phone_encrypted.is_not(None),
                ~pending,
                CallRow.updated_at < cutoff,
                func.coalesce(last_text, CallRow.updated_at) < cutoff,
                closed | (CallRow.updated_at < now - _UNCLOSED_GRACE),
            )
            .with_for_update()
        ).all()
        for call in calls:
            call.phone_encrypted = None
            call.phone_hash = None
            call.phone_purged_at = now
            for row in session.scalars(select(OutboxRow).where(OutboxRow.call_id == call.id)):
                row.phone_encrypted = None
                row.phone_hash = None
            for event in session.scalars(
                select(CadEventRow).where(
                    CadEventRow.agency_id == call.agency_id,
                    CadEventRow.incident_id == call.incident_id,
                )
            ):
                event.payload_encrypted = vault.encrypt(
                    _without_phone(vault.decrypt(event.payload_encrypted))
                )
    if calls:
        log_event(log, "phones_purged", calls=len(calls))
    return len(calls)


def _without_phone(raw: str) -> str:
    payload = json.loads(raw)
    caller = payload.get("caller") if isinstance(payload, dict) else None
    if isinstance(caller, dict) and "phone" in caller:
        caller["phone"] = None
    return json.dumps(payload)
