"""Dead letters: list what was not accepted, look at one, replay it through the intake."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import DeadLetterRow
from callerconnect.logs import mask_phone_patterns, mask_phones_in_payload
from callerconnect.service.intake import Intake
from callerconnect.service.kept_payload import MAX_KEPT_BYTES


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
            f"{_received(letter)}\n"
            f"payload: {payload}"
        )


def _received(letter: DeadLetterRow) -> str:
    """How much was received and how much of it is kept (service/kept_payload.py)."""
    size = "size unknown" if letter.payload_bytes is None else f"{letter.payload_bytes} bytes"
    sha = letter.payload_sha256 or "-"
    kept = (
        f"only the first {MAX_KEPT_BYTES} bytes kept" if letter.payload_truncated else "kept whole"
    )
    return f"received: {size}, sha256 {sha}; {kept}"


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
        rows = list(session.scalars(query))
        letters = [(row.id, vault.decrypt(row.payload_encrypted)) for row in rows]
        cut_short = {row.id for row in rows if row.payload_truncated}
    outcome: dict[int, str] = {}
    missing = set(ids) - {letter_id for letter_id, _ in letters}
    for letter_id in sorted(missing):
        outcome[letter_id] = "not found"
    for letter_id, raw in letters:
        outcome[letter_id] = (
            f"failed: only the first {MAX_KEPT_BYTES} bytes were kept; ask the CAD to send it again"
            if letter_id in cut_short
            else _replay_one(intake, raw)
        )
        with db.transaction() as session:
            row = session.get(DeadLetterRow, letter_id)
            assert row is not None
            row.status = "replayed" if outcome[letter_id].startswith("replayed") else "failed"
            row.replayed_at = intake.clock.now()
            row.replay_result = outcome[letter_id]
    return outcome


def _replay_one(intake: Intake, raw: str) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return "failed: still not valid JSON"
    events = (
        body["events"]
        if isinstance(body, dict) and isinstance(body.get("events"), list)
        else [body]
    )
    results = intake.submit_many(events, "replay", keep_rejected=False)
    rejected = [r for r in results if r.status == "rejected"]
    if rejected:
        return f"failed: {rejected[0].field}: {rejected[0].error}"
    accepted = sum(r.status == "accepted" for r in results)
    return f"replayed: {accepted} accepted, {len(results) - accepted} duplicate"
