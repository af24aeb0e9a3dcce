"""Dead letters: list what was not accepted, look at one, replay it through the intake."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import DeadLetterRow
from callerconnect.logs import mask_phone_patterns, mask_phones_in_payload
from callerconnect.service.envelopes import Envelopes
from callerconnect.service.intake import Intake
from callerconnect.service.kept_payload import MAX_KEPT_BYTES


def list_letters(
    db: Database,
    status: str | None = None,
    *,
    ids: Sequence[int] = (),
    statuses: Sequence[str] = (),
) -> list[DeadLetterRow]:
    """Dead letters by id, filtered by one status, several, and/or the given ids."""
    with db.transaction() as session:
        query = select(DeadLetterRow).order_by(DeadLetterRow.id)
        if status:
            query = query.where(DeadLetterRow.status == status)
        if statuses:
            query = query.where(DeadLetterRow.status.in_(list(statuses)))
        if ids:
            query = query.where(DeadLetterRow.id.in_(list(ids)))
        return list(session.scalars(query).all())


def problem_text(letter: DeadLetterRow) -> str:
    """``field: error`` for a listing, the field once: the intake's messages often start
    with the field already (``priority: must be ...``)."""
    error = mask_phone_patterns(letter.error)
    field = letter.field or "-"
    if error.startswith(f"{field}:") or error.startswith(f"{field} "):
        return error
    return f"{field}: {error}"


def show_letter(db: Database, vault: Vault, letter_id: int) -> str | None:
    """The payload as received, with phone numbers masked (this goes to a terminal);
    None when there is no such letter."""
    with db.transaction() as session:
        letter = session.get(DeadLetterRow, letter_id)
        if letter is None:
            return None
        payload = mask_phones_in_payload(vault.decrypt(letter.payload_encrypted))
        received = letter.received_at.strftime("%Y-%m-%d %H:%M:%S")
        return (
            f"dead letter {letter.id} ({letter.status}), received {received} via {letter.source}\n"
            f"error: {problem_text(letter)}\n"
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
    db: Database,
    vault: Vault,
    intake: Intake,
    ids: Sequence[int],
    *,
    replay_all: bool = False,
    statuses: Sequence[str] = ("new",),
    agency_id: str | None = None,
    on_progress: Callable[[int, int], object] | None = None,
) -> dict[int, str]:
    """Submit each letter's payload again: the given ids, or with ``replay_all`` every
    letter whose status is in ``statuses`` (by default only ``new``: one that already
    failed a replay is retried only when asked). A letter that is accepted (or found to
    be a duplicate) is marked ``replayed``; one that fails again stays, marked ``failed``,
    without creating a second dead letter. ``on_progress(done, total)`` is told after
    each letter found."""
    with db.transaction() as session:
        query = select(DeadLetterRow).order_by(DeadLetterRow.id)
        if replay_all:
            query = query.where(DeadLetterRow.status.in_(list(statuses)))
        else:
            query = query.where(DeadLetterRow.id.in_(list(ids)))
        if agency_id is not None:
            query = query.where(DeadLetterRow.agency_id == agency_id)
        rows = list(session.scalars(query))
        letters = [(row.id, vault.decrypt(row.payload_encrypted), row.source) for row in rows]
        cut_short = {row.id for row in rows if row.payload_truncated}
    outcome: dict[int, str] = {}
    missing = set(ids) - {letter_id for letter_id, _, _ in letters}
    for letter_id in sorted(missing):
        outcome[letter_id] = "not found"
    for done, (letter_id, raw, source) in enumerate(letters, start=1):
        outcome[letter_id] = (
            f"failed: only the first {MAX_KEPT_BYTES} bytes were kept; ask the CAD to send it again"
            if letter_id in cut_short
            else _replay_one(intake, raw, source)
        )
        with db.transaction() as session:
            row = session.get(DeadLetterRow, letter_id)
            assert row is not None
            row.status = "replayed" if outcome[letter_id].startswith("replayed") else "failed"
            row.replayed_at = intake.clock.now()
            row.replay_result = outcome[letter_id]
        if on_progress is not None:
            on_progress(done, len(letters))
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
