"""Dead letters: list what was not accepted, look at one, replay it through the intake."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import DeadLetterRow
from callerconnect.logs import mask_phone_patterns, mask_phones_in_payload
from callerconnect.service.envelopes import Envelopes
from callerconnect.service.intake import Intake


def list_letters(db: Database, status: str | None = None) -> list[DeadLetterRow]:
    with db.transaction() as session:
        query = select(DeadLetterRow).order_by(DeadLetterRow.id)
        if status:
            query = query.where(DeadLetterRow.status == status)
        return list(session.scalars(query).all())


def show_letter(db: Database, vault: Vault, letter_id: int) -> str:
    """The payload as received, with phone numbers masked (this goes to a terminal)."""
    with db.transaction() as session:
        letter = session.get(DeadLetterRow, letter_id)
        if letter is None:
            return f"no dead letter {letter_id}"
        payload = mask_phones_in_payload(vault.decrypt(letter.payload_encrypted))
        received = letter.received_at.strftime("%Y-%m-%d %H:%M:%S")
        return (
            f"dead letter {letter.id} ({letter.status}), received {received} via {letter.source}\n"
            f"error: {letter.field or '-'}: {mask_phone_patterns(letter.error)}\n"
            f"payload: {payload}"
        )


def replay(
    db: Database, vault: Vault, intake: Intake, ids: Sequence[int], *, replay_all: bool = False
) -> dict[int, str]:
    """Submit each letter's payload again. A letter that is accepted (or found to be a
    duplicate) is marked ``replayed``; one that fails again stays, marked ``failed``,
    without creating a second dead letter."""
    with db.transaction() as session:
        query = select(DeadLetterRow)
        if replay_all:
            query = query.where(DeadLetterRow.status.in_(["new", "failed"]))
        else:
            query = query.where(DeadLetterRow.id.in_(list(ids)))
        letters = [
            (row.id, vault.decrypt(row.payload_encrypted), row.source)
            for row in session.scalars(query)
        ]
    outcome: dict[int, str] = {}
    missing = set(ids) - {letter_id for letter_id, _, _ in letters}
    for letter_id in sorted(missing):
        outcome[letter_id] = "not found"
    for letter_id, raw, source in letters:
        outcome[letter_id] = _replay_one(intake, raw, source)
        with db.transaction() as session:
            row = session.get(DeadLetterRow, letter_id)
            assert row is not None
            row.status = "replayed" if outcome[letter_id].startswith("replayed") else "failed"
            row.replayed_at = intake.clock.now()
            row.replay_result = outcome[letter_id]
    return outcome


def _replay_one(intake: Intake, raw: str, source: str) -> str:
    delivery = Envelopes(intake).replay(raw, source)
    refusal = delivery.refusal
    if refusal is not None and refusal.kind == "malformed":
        return f"failed: {refusal.rejected.message}"
    if refusal is not None and refusal.kind == "envelope":
        return f"failed: {refusal.rejected.field}: {refusal.rejected.message}"
    results = delivery.results
    rejected = [r for r in results if r.status == "rejected"]
    if rejected:
        return f"failed: {rejected[0].field}: {rejected[0].error}"
    accepted = sum(r.status == "accepted" for r in results)
    return f"replayed: {accepted} accepted, {len(results) - accepted} duplicate"
