"""Dead-letter replay opens a payload as what it was sent as (service/envelopes.py)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from callerconnect.adapters.cad.native import EventRejected
from callerconnect.adapters.db.tables import CadEventRow
from callerconnect.bootstrap import Application
from callerconnect.service.deadletters import replay

EIDO = Path(__file__).resolve().parents[1] / "fixtures" / "eido"


def test_eido_documents_replay_as_eido_and_events_as_events(app: Application) -> None:
    document = (EIDO / "theft-2001-1-received.json").read_text()
    native = json.dumps(
        {
            "event_id": "kept-1",
            "incident_id": "I-KEPT",
            "occurred_at": "2026-01-16T13:55:00Z",
            "type": "call.received",
            "priority": 4,
            "call_type": {"code": "THEFT"},
            "caller": {"phone": "613-555-0142", "language": "en"},
        }
    )
    failed = EventRejected("(event)", "internal", "processing failed; replay it")
    letters = [
        app.intake.dead_letter(document, "eido:0a1b2c3d", failed),  # a refused snapshot
        app.intake.dead_letter(native, "eido:0a1b2c3d", failed),  # one converted event
        app.intake.dead_letter(document, "nats:eido", failed),  # the same, from NATS
        app.intake.dead_letter(document, "native:0a1b2c3d", failed),  # not an event
    ]
    outcome = replay(app.db, app.vault, app.intake, letters)
    assert outcome[letters[0]].startswith("replayed: "), outcome
    assert not outcome[letters[0]].startswith("replayed: 0 accepted")
    assert outcome[letters[1]] == "replayed: 1 accepted, 0 duplicate"
    assert outcome[letters[2]].startswith("replayed: 0 accepted")  # all duplicates now
    assert outcome[letters[3]].startswith("failed: "), outcome
    with app.db.transaction() as session:
        stored = list(session.scalars(select(CadEventRow.event_id)))
    assert "kept-1" in stored and len(stored) > 1
