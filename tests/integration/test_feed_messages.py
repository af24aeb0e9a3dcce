"""One NATS message through the envelopes (service/feed_messages.py): which subjects are
ours, what is refused and kept, and that our own failure is never acknowledged."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from callerconnect.adapters.db.tables import CadEventRow, DeadLetterRow
from callerconnect.bootstrap import Application
from callerconnect.service.envelopes import Envelopes
from callerconnect.service.feed_messages import Addressed, handle_message, read_subject
from tests.conftest import PG_ADMIN_URL


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("cad.ottawa.events", Addressed("ottawa", "native")),
        ("cad.ottawa.eido", Addressed("ottawa", "eido")),
        ("cad.ottawa.other", None),
        ("cad..events", None),
        ("other.ottawa.events", None),
        ("cad.ottawa.events.more", None),
        ("cad.events", None),
    ],
)
def test_a_subject_names_the_agency_and_the_format(
    subject: str, expected: Addressed | None
) -> None:
    assert read_subject(subject, "cad") == expected


def event(event_id: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "incident_id": f"I-{event_id}",
            "occurred_at": "2026-01-16T13:55:00Z",
            "type": "call.received",
            "priority": 4,
            "case_number": "26-55501",
            "call_type": {"code": "THEFT"},
            "caller": {"phone": "613-555-0142", "language": "en"},
        }
    ).encode()


def rows(app: Application, query: Any) -> list[Any]:
    with app.db.transaction() as session:
        return list(session.scalars(query))


def test_other_agencies_batches_and_garbage_are_kept_and_acknowledged(
    app: Application,
) -> None:
    envelopes = Envelopes(app.intake)
    ours = f"cad.{app.intake.agency_id}.events"
    assert (
        handle_message({envelopes.intake.agency_id: envelopes}, ours, event("e-1"), "cad") == "ack"
    )
    assert (
        handle_message(
            {envelopes.intake.agency_id: envelopes}, "cad.elsewhere.events", event("e-2"), "cad"
        )
        == "ack"
    )
    assert (
        handle_message({envelopes.intake.agency_id: envelopes}, "cad.x.y.z", event("e-3"), "cad")
        == "ack"
    )
    batch = json.dumps({"events": [json.loads(event("e-4"))]}).encode()
    assert handle_message({envelopes.intake.agency_id: envelopes}, ours, batch, "cad") == "ack"
    assert (
        handle_message({envelopes.intake.agency_id: envelopes}, ours, b"\xff not json", "cad")
        == "ack"
    )
    assert rows(app, select(CadEventRow.event_id)) == ["e-1"]
    letters = rows(app, select(DeadLetterRow).order_by(DeadLetterRow.id))
    assert [(d.error_code, d.source) for d in letters] == [
        ("agency", "nats:native"),
        ("subject", "nats:native"),
        ("type", "nats:native"),
        ("encoding", "nats:native"),
    ]


@pytest.mark.postgres
def test_a_database_outage_is_not_acknowledged_and_the_redelivery_is_stored_once(
    app_factory: Callable[..., Application], postgres_url: str
) -> None:
    app = app_factory(postgres_url)
    envelopes = Envelopes(app.intake)
    subject = f"cad.{app.intake.agency_id}.events"
    name = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
        assert (
            handle_message(
                {envelopes.intake.agency_id: envelopes}, subject, event("outage-1"), "cad"
            )
            == "retry"
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    app.db.engine.dispose()
    # JetStream delivers it again; now it is stored, once.
    assert (
        handle_message({envelopes.intake.agency_id: envelopes}, subject, event("outage-1"), "cad")
        == "ack"
    )
    assert (
        handle_message({envelopes.intake.agency_id: envelopes}, subject, event("outage-1"), "cad")
        == "ack"
    )
    assert rows(app, select(CadEventRow.event_id)) == ["outage-1"]
