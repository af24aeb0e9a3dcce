"""The contract's example feeds, delivered in file order on a virtual clock through the
real intake, outbox and dispatcher: exactly the expected texts, to whom, with what in them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from callerconnect.adapters.db.tables import CallRow, OutboxRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.simulation import FeedEvent, replay
from tests.support.in_process import InProcessServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def feed_of(name: str) -> list[FeedEvent]:
    """Events delivered in file order, each no earlier than the one before it."""
    feed: list[FeedEvent] = []
    delivered: datetime | None = None
    for line in (FIXTURES / "examples" / name).read_text().splitlines():
        payload = json.loads(line)
        occurred = datetime.fromisoformat(payload["occurred_at"])
        delivered = occurred if delivered is None else max(delivered, occurred)
        feed.append(FeedEvent(delivered, payload))
    return feed


def run(app: Application, clock: VirtualClock, feed: list[FeedEvent], hours: float = 30) -> None:
    clock.set(feed[0].delivered_at)
    replay(
        feed,
        clock,
        submit=lambda payload: app.intake.submit(payload, "test"),
        run_due=app.dispatcher.run_due,
        next_due_at=app.dispatcher.next_due_at,
        until=feed[-1].delivered_at + timedelta(hours=hours),
    )


def sent(console: ConsoleProvider) -> list[tuple[str, str]]:
    return [(sms.to, sms.body) for _, sms in console.sent]


def outcomes(app: Application) -> dict[str, tuple[str, str | None]]:
    with app.db.transaction() as session:
        return {r.kind: (r.status, r.reason) for r in session.scalars(select(OutboxRow))}


def test_eligible_theft_in_english_gets_all_three_texts(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    run(app, clock, feed_of("eligible-theft-en.jsonl"))
    texts = sent(console)
    assert [to for to, _ in texts] == ["+16135550142"] * 3
    confirmation, delay, survey = (body for _, body in texts)
    assert "26-10011" in confirmation and "Ottawa Police" in confirmation
    assert "Police d'Ottawa" not in confirmation  # the caller's language is English
    assert "http" not in confirmation
    assert "busy" in delay  # no unit within 60 minutes of a priority 4 call
    assert f"{app.settings.public_base_url}/s/" in survey
    assert outcomes(app) == {
        "confirmation": ("sent", None),
        "delay_notice": ("sent", None),
        "survey_invitation": ("sent", None),
    }


def test_excluded_intimate_partner_violence_gets_nothing(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    run(app, clock, feed_of("excluded-ipv-fr.jsonl"))
    assert sent(console) == []
    assert outcomes(app) == {}
    with app.db.transaction() as session:
        call = session.scalars(select(CallRow)).one()
    assert call.reason == "excluded:intimate_partner_violence"


def test_reclassified_after_confirmation_gets_only_the_confirmation(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    run(app, clock, feed_of("reclassified-after-confirmation.jsonl"))
    texts = sent(console)
    assert len(texts) == 1
    assert "26-10013" in texts[0][1]
    # No language from the CAD: one bilingual text, English first.
    assert texts[0][1].index("Ottawa Police") < texts[0][1].index("Police d'Ottawa")
    assert outcomes(app) == {
        "confirmation": ("sent", None),
        "delay_notice": ("cancelled", "suppressed:reclassified"),
    }


def test_late_and_duplicated_events_give_french_texts_at_their_moments(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    run(app, clock, feed_of("delayed-out-of-order.jsonl"))
    texts = sent(console)
    assert [to for to, _ in texts] == ["+16135550123"] * 3
    assert all("Police d'Ottawa" in body and "Ottawa Police" not in body for _, body in texts)
    assert "26-10014" in texts[0][1]
    with app.db.transaction() as session:
        rows = {r.kind: r for r in session.scalars(select(OutboxRow))}
    # The confirmation waited for the case number (16:05); the delay notice went 30 min
    # after the call (16:30), before the 17:45 dispatch; the survey 15 min after clearing.
    assert rows["confirmation"].sent_at == datetime.fromisoformat("2026-01-16T16:05:00-05:00")
    assert rows["delay_notice"].sent_at == datetime.fromisoformat("2026-01-16T16:30:00-05:00")
    assert rows["survey_invitation"].sent_at == datetime.fromisoformat("2026-01-16T19:25:00-05:00")


def test_eido_snapshots_over_http_give_the_same_texts_as_native_events(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    live_server: InProcessServer,
    auth: dict[str, str],
) -> None:
    snapshots = sorted((FIXTURES / "eido").glob("theft-2001-*.json"))
    assert len(snapshots) == 3
    documents: list[Any] = [json.loads(p.read_text()) for p in snapshots]
    for document in documents:
        moment = datetime.fromisoformat(
            document.get("lastUpdateTimeStamp") or document["LastUpdateTimeStamp"]
        )
        clock.set(moment)
        app.dispatcher.run_due()
        response = httpx.post(f"{live_server.url}/api/v1/cad/eido", json=document, headers=auth)
        assert response.status_code == 202, response.text
        assert {r["status"] for r in response.json()["results"]} <= {"accepted", "duplicate"}
        app.dispatcher.run_due()
    # Posting the last snapshot again changes nothing.
    again = httpx.post(f"{live_server.url}/api/v1/cad/eido", json=documents[-1], headers=auth)
    assert {r["status"] for r in again.json()["results"]} == {"duplicate"}

    clock.advance(timedelta(hours=1))
    app.dispatcher.run_due()
    kinds = {kind: status for kind, (status, _) in outcomes(app).items()}
    assert kinds["confirmation"] == "sent"
    assert kinds["survey_invitation"] == "sent"
    assert {to for to, _ in sent(console)} == {"+16135550142"}


def test_bad_eido_is_422_naming_the_field(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    response = httpx.post(
        f"{live_server.url}/api/v1/cad/eido",
        json={"$id": "urn:x", "incidentComponent": {"incidentTrackingIdentifier": "I-9"}},
        headers=auth,
    )
    assert response.status_code == 422
    assert "lastUpdateTimeStamp" in response.json()["error"]["field"]
