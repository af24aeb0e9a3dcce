"""Event time against receipt time through the real HTTP intake, on SQLite and
PostgreSQL (docs/security.md, "Second probe of a running instance", item 1).

The probe: one event of a call stamped a day ahead (a CAD clock that drifts, a second
feed), then the call's genuine upgrade to priority 1: the upgrade counted as older and
was ignored, and the caller got a confirmation and a delay notice. Here the intake runs
with its real bound (``intake.max_clock_skew``, 5 s by default).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callerconnect.adapters.db.tables import CallRow, DeadLetterRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.config import ConfigError
from callerconnect.web.app import create_app
from tests.conftest import T0, make_settings
from tests.support.dispatch import event, received, texts
from tests.support.in_process import InProcessServer

EIDO = Path(__file__).resolve().parents[1] / "fixtures" / "eido"


@pytest.fixture
def strict(app_factory: Callable[..., Application], database_url: str) -> Application:
    return app_factory(database_url, strict_time=True)


@pytest.fixture
def client(strict: Application, auth: dict[str, str]) -> Iterator[httpx.Client]:
    """The real web application (in process), with the intake key."""
    with (
        InProcessServer(create_app(strict)) as server,
        httpx.Client(base_url=server.url, headers=auth) as http,
    ):
        yield http


def post(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/api/v1/cad/events", json=body)


def reason_of(app: Application, incident: str) -> str:
    with app.db.transaction() as session:
        return session.scalars(select(CallRow.reason).where(CallRow.incident_id == incident)).one()


def sent(app: Application) -> list[str]:
    return [t.kind for t in texts(app) if t.status == "sent"]


def play_out(app: Application, clock: VirtualClock, hours: int = 3) -> None:
    for _ in range(hours * 4):
        clock.advance(timedelta(minutes=15))
        app.dispatcher.run_due()


def dead_letters(app: Application) -> list[DeadLetterRow]:
    with app.db.transaction() as session:
        return list(session.scalars(select(DeadLetterRow)).all())


def test_an_upgrade_after_an_event_stamped_a_day_ahead_stops_every_text(
    strict: Application, client: httpx.Client, clock: VirtualClock
) -> None:
    assert post(client, received("I-1", T0, priority=3)).status_code == 202
    ahead = post(client, event("I-1", "call.updated", T0 + timedelta(days=1), district="East"))
    assert ahead.status_code == 422, ahead.text
    error = ahead.json()["error"]
    assert (error["field"], error["rule"]) == ("occurred_at", "ahead_of_receipt")
    assert "intake.max_clock_skew" in error["message"]
    assert [d.field for d in dead_letters(strict)] == ["occurred_at"]  # kept, replayable
    assert reason_of(strict, "I-1") == "eligible"  # nothing dangerous in it: not held
    clock.advance(timedelta(minutes=1))
    upgrade = post(client, event("I-1", "call.updated", clock.now(), priority=1))
    assert upgrade.json()["results"][0]["status"] == "accepted"
    play_out(strict, clock)
    assert sent(strict) == []
    assert reason_of(strict, "I-1") == "ineligible:priority"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"priority": 2}, "ineligible:priority_out_of_order"),
        ({"call_type": {"code": "ZZNEWCODE"}}, "ineligible:call_type_out_of_order"),
    ],
)
def test_a_genuine_change_stamped_behind_a_value_within_the_drift_blocks_for_good(
    strict: Application,
    client: httpx.Client,
    clock: VirtualClock,
    change: dict[str, Any],
    reason: str,
) -> None:
    """Within the drift allowed a benign value can be stamped after the genuine change
    that follows it: the change fails closed rather than lose."""
    post(client, received("I-1", T0, priority=3))
    drifting = event("I-1", "call.updated", T0 + timedelta(seconds=4), priority=4)
    drifting["call_type"] = {"code": "THEFT"}
    assert post(client, drifting).status_code == 202  # 4 s ahead: within the drift
    clock.advance(timedelta(seconds=2))
    genuine = post(client, event("I-1", "call.updated", clock.now(), **change))
    assert genuine.json()["results"][0]["status"] == "accepted"
    assert reason_of(strict, "I-1") == reason
    clock.advance(timedelta(minutes=5))
    later = event("I-1", "call.updated", clock.now(), priority=3, call_type={"code": "THEFT"})
    post(client, later)  # even a correction: which came first, only the clocks knew
    play_out(strict, clock)
    assert sent(strict) == []
    assert reason_of(strict, "I-1") == reason


def test_a_refused_event_stamped_ahead_that_carries_a_danger_holds_its_incident(
    strict: Application, client: httpx.Client, clock: VirtualClock
) -> None:
    post(client, received("I-1", T0, priority=3))
    flagged = post(client, event("I-1", "call.updated", T0 + timedelta(hours=1), risk_flag=True))
    assert flagged.status_code == 422
    play_out(strict, clock)
    assert sent(strict) == []
    assert reason_of(strict, "I-1") == "held:event_time_ahead"


def test_a_batch_refuses_only_the_event_stamped_ahead(
    strict: Application, client: httpx.Client
) -> None:
    batch = [
        received("I-1", T0),
        event("I-1", "unit.dispatched", T0 + timedelta(seconds=6)),
        event("I-1", "call.updated", T0 + timedelta(seconds=5), district="East"),
    ]
    answer = client.post("/api/v1/cad/events", json={"events": batch})
    assert answer.status_code == 202
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["field"] == "occurred_at"


def test_late_events_from_the_past_keep_working(
    strict: Application, client: httpx.Client, clock: VirtualClock
) -> None:
    post(client, received("I-1", T0, priority=3))
    strict.dispatcher.run_due()
    clock.advance(timedelta(hours=2))
    late = post(client, event("I-1", "unit.dispatched", T0 + timedelta(minutes=10)))
    assert late.json()["results"][0]["status"] == "accepted"
    older = post(client, event("I-1", "call.updated", T0 + timedelta(minutes=1), priority=4))
    assert older.json()["results"][0]["status"] == "accepted"
    play_out(strict, clock)
    assert sent(strict) == ["confirmation"]  # the delay notice's moment had passed
    assert reason_of(strict, "I-1") == "eligible"


def _eido(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EIDO / name).read_text())
    return document


def test_an_eido_snapshot_stamped_ahead_is_refused_whole_and_holds_its_incident(
    strict: Application, client: httpx.Client, clock: VirtualClock
) -> None:
    first = _eido("theft-2001-1-received.json")
    clock.set(datetime.fromisoformat(first["lastUpdateTimeStamp"]) + timedelta(seconds=1))
    assert client.post("/api/v1/cad/eido", json=first).status_code == 202
    later = _eido("theft-2001-2-dispatched.json")
    later["LastUpdateTimeStamp"] = later.pop("lastUpdateTimeStamp")  # either casing
    answer = client.post("/api/v1/cad/eido", json=later)  # stamped minutes ahead
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "lastUpdateTimeStamp"
    assert answer.json()["error"]["rule"] == "ahead_of_receipt"
    with strict.db.transaction() as session:
        assert set(session.scalars(select(CallRow.reason)).all()) == {"held:event_time_ahead"}
    play_out(strict, clock)
    assert sent(strict) == []


def test_the_tolerated_drift_is_a_setting_of_seconds(
    app_factory: Callable[..., Application],
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(database_url, CALLERCONNECT_INTAKE__MAX_CLOCK_SKEW="10m")
    assert refused.value.key == "intake.max_clock_skew"
    exact = app_factory(database_url, strict_time=True, CALLERCONNECT_INTAKE__MAX_CLOCK_SKEW="0s")
    one_second = received("I-1", T0 + timedelta(seconds=1))
    assert exact.intake.submit(one_second, "test").status == "rejected"
    assert exact.intake.submit(received("I-2", T0), "test").status == "accepted"
