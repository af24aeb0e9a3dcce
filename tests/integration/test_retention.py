"""Phone numbers are purged once a call's texts are finished and the retention passed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from callerconnect.adapters.db.tables import CadEventRow, CallRow, DeadLetterRow, OutboxRow
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.retention import purge_phones

PHONE = "613-555-0142"


def received(incident: str, event_id: str, **fields: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "incident_id": incident,
        "occurred_at": "2026-01-16T09:00:00-05:00",
        "type": "call.received",
        "priority": 4,
        "case_number": "26-00001",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": PHONE, "language": "en"},
        **fields,
    }


def cleared(incident: str, event_id: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "incident_id": incident,
        "occurred_at": "2026-01-16T09:30:00-05:00",
        "type": "call.cleared",
    }


def test_phone_is_purged_after_the_last_text_and_the_retention(
    app: Application, clock: VirtualClock
) -> None:
    app.intake.submit(received("I-1", "e-1"), "test")
    app.intake.submit(cleared("I-1", "e-2"), "test")
    retention = app.settings.privacy.phone_retention

    # The survey invitation is still to come: nothing may be purged yet.
    assert purge_phones(app.db, app.vault, clock.now() + retention * 2, retention) == 0

    clock.advance(timedelta(hours=1))
    app.dispatcher.run_due()
    with app.db.transaction() as session:
        statuses = {r.kind: r.status for r in session.scalars(select(OutboxRow))}
    assert statuses["survey_invitation"] == "sent"

    assert purge_phones(app.db, app.vault, clock.now() + retention / 2, retention) == 0
    assert purge_phones(app.db, app.vault, clock.now() + retention * 2, retention) == 1
    with app.db.transaction() as session:
        call = session.scalars(select(CallRow)).one()
        assert call.phone_encrypted is None and call.phone_hash is None
        assert call.phone_purged_at is not None
        assert all(r.phone_hash is None for r in session.scalars(select(OutboxRow)))
        for event in session.scalars(select(CadEventRow)):
            assert "555-0142" not in app.vault.decrypt(event.payload_encrypted)
    # Purging again finds nothing; the call's other facts stay for reports.
    assert purge_phones(app.db, app.vault, clock.now() + retention * 3, retention) == 0


def test_open_call_keeps_its_phone_until_long_silence(
    app: Application, clock: VirtualClock
) -> None:
    app.intake.submit(received("I-2", "e-1"), "test")
    clock.advance(timedelta(days=1))
    app.dispatcher.run_due()
    retention = app.settings.privacy.phone_retention
    assert purge_phones(app.db, app.vault, clock.now() + retention * 2, retention) == 0
    assert purge_phones(app.db, app.vault, clock.now() + timedelta(days=40), retention) == 1


def test_a_dead_letters_hash_goes_with_its_phone_number(
    app: Application, clock: VirtualClock
) -> None:
    """With the rest of a payload known, the SHA-256 of the payload as received would
    confirm a guessed number: the purge that masks the number clears the hash too."""
    result = app.intake.submit(received("I-3", "e-1", priority=12), "test")  # rejected
    assert result.dead_letter_id is not None
    with app.db.transaction() as session:
        letter = session.get(DeadLetterRow, result.dead_letter_id)
        assert letter is not None and letter.payload_sha256 is not None
    retention = app.settings.privacy.phone_retention
    purge_phones(app.db, app.vault, clock.now() + retention + timedelta(days=30), retention)
    with app.db.transaction() as session:
        letter = session.get(DeadLetterRow, result.dead_letter_id)
        assert letter is not None and letter.phone_purged_at is not None
        assert "555-0142" not in app.vault.decrypt(letter.payload_encrypted)
        assert letter.payload_sha256 is None
        assert letter.payload_bytes is not None  # the length tells nothing of the number
