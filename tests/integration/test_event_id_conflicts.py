"""An event id that names another incident than the one it was first stored for,
through the real intake on SQLite and PostgreSQL (docs/security.md, "Second probe of a
running instance", item 3).

The probe: incident B's upgrade to priority 1, posted under an id incident A had used,
was answered ``duplicate``, logged at INFO, and B went on to get a delay notice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from callerconnect.adapters.cad.eido.snapshot import events_from_eido
from callerconnect.adapters.db.tables import CallRow, OutboxRow
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.deadletters import list_letters
from callerconnect.web.app import create_app
from tests.conftest import T0
from tests.support.dispatch import event, received, texts
from tests.support.in_process import InProcessServer
from tests.unit.domain_strategies import EXAMPLES, PHASES

EIDO = Path(__file__).resolve().parents[1] / "fixtures" / "eido"
PHONE_B = "613-555-0142"


@pytest.fixture
def client(app: Application, auth: dict[str, str]) -> Iterator[httpx.Client]:
    with (
        InProcessServer(create_app(app)) as server,
        httpx.Client(base_url=server.url, headers=auth) as http,
    ):
        yield http


def reason_of(app: Application, incident: str) -> str | None:
    with app.db.transaction() as session:
        return session.scalars(
            select(CallRow.reason).where(CallRow.incident_id == incident)
        ).one_or_none()


def play_out(app: Application, clock: VirtualClock, hours: int = 3) -> None:
    for _ in range(hours * 4):
        clock.advance(timedelta(minutes=15))
        app.dispatcher.run_due()


def sent_for(app: Application, incident: str) -> list[str]:
    return [t.kind for t in texts(app) if t.incident == incident and t.status == "sent"]


def test_another_incidents_upgrade_under_a_used_id_is_a_conflict_and_holds_it(
    app: Application,
    client: httpx.Client,
    clock: VirtualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = received("A", T0, phone="613-555-0199")
    assert client.post("/api/v1/cad/events", json=a).status_code == 202
    client.post("/api/v1/cad/events", json=received("B", T0, phone=PHONE_B, priority=3))
    upgrade = {**event("B", "call.updated", T0 + timedelta(minutes=1), priority=1)}
    upgrade["event_id"] = a["event_id"]
    with caplog.at_level(logging.INFO, logger="callerconnect.intake"):
        answer = client.post("/api/v1/cad/events", json=upgrade)
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["error"]["field"] == "event_id"
    assert body["error"]["code"] == "event_id_conflict"
    assert body["results"][0]["status"] == "rejected"
    # Seen by an operator: a WARNING without the phone, the dead letter, the decision.
    conflicts = [r for r in caplog.records if "action=event_id_conflict" in r.getMessage()]
    assert [r.levelno for r in conflicts] == [logging.WARNING]
    assert "555" not in caplog.text
    [letter] = list_letters(app.db)
    assert (letter.field, letter.error_code) == ("event_id", "conflict")
    assert "held:conflicting_event_id" in letter.error
    play_out(app, clock)
    assert sent_for(app, "B") == []  # neither its confirmation nor its delay notice
    assert reason_of(app, "B") == "held:conflicting_event_id"
    assert sent_for(app, "A") == ["confirmation", "delay_notice"]  # A untouched
    # The true repeat of A's event is still a duplicate.
    again = client.post("/api/v1/cad/events", json=a)
    assert again.json()["results"][0]["status"] == "duplicate"


def test_inside_a_batch_the_conflict_is_answered_in_its_place(
    app: Application, client: httpx.Client, clock: VirtualClock
) -> None:
    a = received("A", T0)
    reuse = {**received("B", T0, phone=PHONE_B), "event_id": a["event_id"]}
    answer = client.post("/api/v1/cad/events", json={"events": [a, reuse, dict(a)]})
    assert answer.status_code == 202
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "duplicate"]
    assert results[1]["field"] == "event_id" and results[1]["rule"] == "conflict"
    play_out(app, clock)
    assert reason_of(app, "B") == "held:conflicting_event_id"
    assert sent_for(app, "B") == []


def test_an_eido_derived_event_whose_id_another_incident_used_holds_the_eido_incident(
    app: Application, client: httpx.Client, clock: VirtualClock
) -> None:
    snapshot = json.loads((EIDO / "theft-2001-1-received.json").read_text())
    derived = events_from_eido(snapshot)
    squatter = {**received("OTHER", T0), "event_id": derived[0]["event_id"]}
    assert client.post("/api/v1/cad/events", json=squatter).status_code == 202
    answer = client.post("/api/v1/cad/eido", json=snapshot)
    assert answer.status_code == 202
    assert answer.json()["results"][0]["status"] == "rejected"
    incident = derived[0]["incident_id"]
    assert reason_of(app, incident) == "held:conflicting_event_id"
    play_out(app, clock, hours=24 * 30)
    assert sent_for(app, incident) == []


def test_concurrent_uses_of_one_id_by_several_incidents_accept_one_and_hold_the_others(
    app: Application,
) -> None:
    incidents = [f"C-{n}" for n in range(6)]
    results: dict[str, str] = {}
    start = threading.Barrier(len(incidents))

    def send(incident: str) -> None:
        payload = {**received(incident, T0, priority=1), "event_id": "shared-1"}
        start.wait()
        results[incident] = app.intake.submit(payload, "test").status

    threads = [threading.Thread(target=send, args=(i,)) for i in incidents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results.values()) == ["accepted"] + ["rejected"] * (len(incidents) - 1)
    for incident, status in results.items():
        if status == "rejected":
            assert reason_of(app, incident) == "held:conflicting_event_id"
    assert len(list_letters(app.db)) == len(incidents) - 1


# --- the rule over generated histories -------------------------------------------------

_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(("A", "B", "C")),  # the incident
        st.sampled_from(("e1", "e2", "e3", "e4")),  # few ids: reuse is common
        st.sampled_from((1, 3, 4)),  # a priority, 1 not texted
    ),
    min_size=1,
    max_size=10,
)
_runs = iter(range(1_000_000))


@settings(
    max_examples=max(EXAMPLES // 10, 20),
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=_EVENTS)
def test_an_id_is_never_silently_dropped_for_another_incident(
    app: Application, history: list[tuple[str, str, int]]
) -> None:
    """Whatever the order: a repeat for the incident the id was first stored for is a
    duplicate; for any other incident it is rejected, kept, and that incident held."""
    run = next(_runs)  # each example its own incidents and ids in the shared database
    first_for: dict[str, str] = {}
    conflicted: set[str] = set()
    letters_before = len(list_letters(app.db))
    for n, (incident, event_id, priority) in enumerate(history):
        incident, event_id = f"{incident}-{run}", f"{event_id}-{run}"
        payload: dict[str, Any] = {
            **received(incident, T0 + timedelta(seconds=n), priority=priority),
            "event_id": event_id,
        }
        status = app.intake.submit(payload, "test").status
        owner = first_for.setdefault(event_id, incident)
        if owner == incident:
            assert status in ("accepted", "duplicate")
            assert (status == "accepted") == (n == _first_use(history, event_id, run))
        else:
            assert status == "rejected"
            conflicted.add(incident)
    assert len(list_letters(app.db)) - letters_before == sum(
        1
        for n, (incident, event_id, _) in enumerate(history)
        if first_for[f"{event_id}-{run}"] != f"{incident}-{run}"
    )
    for incident in conflicted:
        assert reason_of(app, incident) == "held:conflicting_event_id"
        with app.db.transaction() as session:
            waiting = session.scalars(
                select(OutboxRow.status)
                .join(CallRow, CallRow.id == OutboxRow.call_id)
                .where(CallRow.incident_id == incident, OutboxRow.status == "scheduled")
            ).all()
        assert waiting == []


def _first_use(history: list[tuple[str, str, int]], event_id: str, run: int) -> int:
    return next(n for n, (_, e, _) in enumerate(history) if f"{e}-{run}" == event_id)
