"""Case numbers outside the agency's pattern (second probe, finding 5), over real HTTP
on SQLite and PostgreSQL: refused at intake and kept for an operator, never confirmed,
never quoted; a refused event that carried a danger still holds its incident."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from callerconnect.adapters.db.tables import CallRow, DeadLetterRow, OutboxRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from tests.support.in_process import InProcessServer

PROBE = "1 CALL 18885550199 NOW"


def event(event_id: str, incident: str, **fields: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "incident_id": incident,
        "occurred_at": "2026-01-16T09:00:00-05:00",
        "type": "call.received",
        "priority": 4,
        "case_number": "24-123456",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": "613-555-0142", "language": "en"},
        **fields,
    }


def post(server: InProcessServer, auth: dict[str, str], body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/cad/events", json=body, headers=auth, timeout=10)


def test_a_case_number_outside_the_pattern_is_refused_kept_and_never_confirmed(
    app: Application, live_server: InProcessServer, auth: dict[str, str], console: ConsoleProvider
) -> None:
    response = post(live_server, auth, event("e-1", "I-1", case_number=PROBE))
    app.dispatcher.run_due()

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["field"], error["rule"]) == ("case_number", "agency_pattern")
    assert "18885550199" not in response.text
    with app.db.transaction() as session:
        letters = session.execute(select(DeadLetterRow.field, DeadLetterRow.error)).all()
        calls = session.scalar(select(func.count()).select_from(CallRow))
        texts = session.scalar(select(func.count()).select_from(OutboxRow))
    assert [field for field, _ in letters] == ["case_number"]
    assert "intake.case_number_pattern" in letters[0][1]  # an operator can see why
    assert calls == 0 and texts == 0
    assert console.sent == []


def test_a_batch_refuses_only_the_event_with_the_bad_case_number(
    app: Application, live_server: InProcessServer, auth: dict[str, str], console: ConsoleProvider
) -> None:
    batch = {
        "events": [
            event("e-1", "I-1", case_number="2024-12345678"),
            event("e-2", "I-2", case_number="613-555-0199"),
        ]
    }

    response = post(live_server, auth, batch)
    app.dispatcher.run_due()

    assert response.status_code == 202
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected"]
    bodies = [sms.body for _, sms in console.sent]
    assert len(bodies) == 1 and "2024-12345678" in bodies[0]
    assert not any("555-0199" in body for body in bodies)


def test_a_refused_event_that_carried_a_risk_flag_holds_its_incident(
    app: Application, live_server: InProcessServer, auth: dict[str, str], console: ConsoleProvider
) -> None:
    assert post(live_server, auth, event("e-1", "I-1")).status_code == 202
    later = event(
        "e-2",
        "I-1",
        type="call.updated",
        occurred_at="2026-01-16T09:01:00-05:00",
        case_number=PROBE,
        risk_flag=True,
    )

    assert post(live_server, auth, later).status_code == 422
    with app.db.transaction() as session:
        reason = session.scalars(select(CallRow.reason)).one()
    assert reason == "held:unreadable_event"
    app.dispatcher.run_due()
    assert console.sent == []


def test_texts_recheck_the_case_number_against_the_pattern_before_rendering(
    app_factory: Callable[..., Application],
    database_url: str,
    live_server: InProcessServer,
    auth: dict[str, str],
    console: ConsoleProvider,
) -> None:
    """A case number stored under one pattern is not quoted once the agency's pattern
    no longer allows it: the text is suppressed with a reason, not sent."""
    before = app_factory(database_url)  # the default pattern
    assert before.intake.submit(event("e-1", "I-1"), "test").status == "accepted"

    # The agency now writes its case numbers with a prefix; the process restarts.
    strict = app_factory(
        database_url, CALLERCONNECT_INTAKE__CASE_NUMBER_PATTERN=r"OPS[0-9]{2}-[0-9]{1,8}"
    )
    strict.dispatcher.run_due()

    assert console.sent == []
    with strict.db.transaction() as session:
        reason = session.scalars(
            select(OutboxRow.reason).where(OutboxRow.kind == "confirmation")
        ).one()
    assert reason == "suppressed:unquotable_case_number"


@pytest.mark.parametrize(
    "case_number", ["24-123456", "2024-12345678", "OPS24-1234", "GO-2024-123456", "26/000123"]
)
def test_ordinary_agency_case_numbers_are_still_confirmed(
    app: Application,
    live_server: InProcessServer,
    auth: dict[str, str],
    console: ConsoleProvider,
    case_number: str,
) -> None:
    assert post(live_server, auth, event("e-1", "I-1", case_number=case_number)).status_code == 202
    app.dispatcher.run_due()

    assert [f"Case number {case_number}." in sms.body for _, sms in console.sent] == [True]
