"""Phone numbers are kept only while they are needed to text.

Once every text of a call is final and ``privacy.phone_retention`` has passed since the
call's last activity, its phone number is removed everywhere it is stored: the call row,
its outbox rows and the raw events it came in. A call the CAD never closed is purged
after ``_UNCLOSED_GRACE`` of silence, so a lost ``call.cleared`` cannot keep a number
forever. Replies to callers' texts (no call behind them) lose their number on the same
terms. Dead letters keep theirs ``_REPLAY_GRACE`` longer, for an operator to fix and
replay them; then every phone-looking number in the payload is masked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select

from callerconnect.adapters.crypto import Vault, VaultError
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import (
    CadEventRow,
    CallRow,
    DeadLetterRow,
    OutboxRow,
    ProtectedPhoneRow,
)
from callerconnect.domain.messages import TextStatus
from callerconnect.logs import log_event, mask_phone_patterns, mask_phones_in_payload

log = logging.getLogger("callerconnect.retention")

_UNCLOSED_GRACE = timedelta(days=30)
_REPLAY_GRACE = timedelta(days=7)
_LETTERS_PER_PASS = 500
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
    unreadable = 0
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
                rewritten = _rewritten(vault, event.payload_encrypted, _without_phone)
                if rewritten is None:
                    unreadable += 1
                else:
                    event.payload_encrypted = rewritten
        replies = session.scalars(
            select(OutboxRow)
            .where(
                OutboxRow.call_id.is_(None),
                OutboxRow.phone_encrypted.is_not(None),
                OutboxRow.status.not_in(_PENDING),
                func.coalesce(OutboxRow.finished_at, OutboxRow.created_at) < cutoff,
            )
            .with_for_update()
        ).all()
        for reply in replies:
            reply.phone_encrypted = None
            reply.phone_hash = None
        letters = session.scalars(
            select(DeadLetterRow)
            .where(
                DeadLetterRow.phone_purged_at.is_(None),
                DeadLetterRow.received_at < cutoff - _REPLAY_GRACE,
            )
            .order_by(DeadLetterRow.id)
            .limit(_LETTERS_PER_PASS)  # after an upgrade, years of letters: a few passes
            .with_for_update()
        ).all()
        for letter in letters:
            rewritten = _rewritten(vault, letter.payload_encrypted, mask_phones_in_payload)
            if rewritten is None:
                unreadable += 1  # marked all the same, or every pass would try again
            else:
                letter.payload_encrypted = rewritten
            letter.error = mask_phone_patterns(letter.error)
            # The hash of the payload with its number could confirm a guess of the number.
            letter.payload_sha256 = None
            letter.phone_purged_at = now
        # A protection that has run out has no reason to keep the number's hash.
        session.execute(delete(ProtectedPhoneRow).where(ProtectedPhoneRow.protected_until < now))
    if calls or replies or letters:
        log_event(
            log, "phones_purged", calls=len(calls), replies=len(replies), dead_letters=len(letters)
        )
    if unreadable:
        # Under a key no longer configured (keys rotate leaves such values as they are):
        # one value must not stop the purge of the others, nor the worker.
        log_event(
            log,
            "purge_unreadable_values",
            logging.WARNING,
            count=unreadable,
            hint="callerconnect keys check",
        )
    return len(calls)


def _rewritten(vault: Vault, token: str, change: Callable[[str], str]) -> str | None:
    """``token``'s plaintext changed and encrypted again, or None if it cannot be read."""
    try:
        return vault.encrypt(change(vault.decrypt(token)))
    except VaultError:
        return None


def _without_phone(raw: str) -> str:
    payload = json.loads(raw)
    caller = payload.get("caller") if isinstance(payload, dict) else None
    if isinstance(caller, dict) and "phone" in caller:
        caller["phone"] = None
    return json.dumps(payload)
