"""Failing closed on what the intake cannot read (service/holds.py), through the real
intake, database and dispatcher on SQLite and PostgreSQL.

Each case is one a probe of a running instance found texting: a risk flag or an
excluded reclassification inside an event refused for another field, an EIDO snapshot
refused whole, an event id reused with other content, a dangerous call merged into
another, a "no texts" told to the call-taker on an earlier call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from callerconnect.adapters.cad.eido.snapshot import events_from_eido
from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.tables import CallRow, DeadLetterRow, ProtectedPhoneRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.retention import purge_phones
from callerconnect.web.app import create_app
from tests.conftest import T0
from tests.support.dispatch import event, received, texts
from tests.support.in_process import InProcessServer

EIDO = Path(__file__).resolve().parents[1] / "fixtures" / "eido"
PHONE = "613-555-0142"


def post(app: Application, *events: dict[str, object]) -> list[str]:
    return [app.intake.submit(e, "test").status for e in events]


def sent_to(console: ConsoleProvider, phone: str = "+16135550142") -> list[str]:
    return [sms.body for _, sms in console.sent if sms.to == phone]


def reason_of(app: Application, incident: str) -> str:
    with app.db.transaction() as session:
        return session.scalars(select(CallRow.reason).where(CallRow.incident_id == incident)).one()


def play_out(app: Application, clock: VirtualClock, hours: int = 3) -> None:
    for _ in range(hours * 4):
        clock.advance(timedelta(minutes=15))
        app.dispatcher.run_due()


def test_a_risk_flag_in_an_event_refused_for_another_field_still_stops_every_text(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    assert post(
        app,
        received("I-1", T0, priority=3),
        event("I-1", "call.updated", T0 + timedelta(seconds=1), risk_flag=True, district="D" * 65),
    ) == ["accepted", "rejected"]
    play_out(app, clock)
    assert sent_to(console) == []
    assert reason_of(app, "I-1") == "held:unreadable_event"


def test_an_excluded_reclassification_refused_after_the_confirmation_stops_the_survey(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(app, received("I-1", T0))
    app.dispatcher.run_due()
    assert len(sent_to(console)) == 1  # the confirmation
    refused = event(
        "I-1",
        "call.updated",
        T0 + timedelta(minutes=5),
        call_type={"code": "SEXASSLT", "description": "x" * 201},
    )
    assert post(app, refused) == ["rejected"]
    post(app, event("I-1", "call.cleared", T0 + timedelta(minutes=20)))
    play_out(app, clock)
    assert len(sent_to(console)) == 1
    assert {t.reason for t in texts(app) if t.kind != "confirmation"} <= {
        "suppressed:unreadable_event"
    }


def test_a_refused_event_that_says_nothing_about_safety_holds_nothing(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    assert post(
        app,
        received("I-1", T0),
        event("I-1", "call.updated", T0 + timedelta(seconds=1), district="D" * 65),
    ) == ["accepted", "rejected"]
    app.dispatcher.run_due()
    assert len(sent_to(console)) == 1
    assert reason_of(app, "I-1") == "eligible"


def test_a_risk_flag_refused_before_the_call_is_received_still_holds_it(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """The refused event may be the first word about the incident."""
    early = event("I-1", "call.updated", T0, risk_flag="yes")
    assert post(app, early, received("I-1", T0 + timedelta(seconds=5))) == [
        "rejected",
        "accepted",
    ]
    play_out(app, clock)
    assert sent_to(console) == []


def test_an_event_id_reused_with_a_risk_flag_holds_the_incident_it_names(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """Another incident's id is a conflict (test_event_id_conflicts.py has the rest)."""
    first = received("XA", T0, phone="613-555-0199")
    reused = {
        **event("XB", "call.updated", T0 + timedelta(seconds=2), risk_flag=True),
        "event_id": first["event_id"],
    }
    statuses = post(app, first, received("XB", T0, phone=PHONE), reused, dict(first))
    assert statuses == ["accepted", "accepted", "rejected", "duplicate"]
    play_out(app, clock)
    assert sent_to(console) == []  # XB: held
    assert reason_of(app, "XB") == "held:conflicting_event_id"
    assert reason_of(app, "XA") == "eligible"  # the true duplicate changed nothing


def test_an_event_id_reused_with_a_risk_flag_for_the_same_incident_holds_it(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """The same incident's id with other content: a duplicate, as before, but held."""
    first = received("XB", T0, phone=PHONE)
    changed = {**first, "risk_flag": True}
    assert post(app, first, changed) == ["accepted", "duplicate"]
    play_out(app, clock)
    assert sent_to(console) == []
    assert reason_of(app, "XB") == "held:changed_event"


def test_a_dangerous_call_merged_into_another_holds_the_one_it_was_merged_into(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(
        app,
        received("A", T0, code="SEXASSLT", phone="613-555-0199"),
        received("B", T0, phone=PHONE),
    )
    app.dispatcher.run_due()
    assert len(sent_to(console)) == 1  # B's confirmation, before anyone knew
    post(
        app,
        event("A", "call.merged", T0 + timedelta(minutes=5), merged_into="B"),
        event("B", "call.cleared", T0 + timedelta(minutes=20)),
    )
    play_out(app, clock)
    assert len(sent_to(console)) == 1  # no survey about an incident with an assault in it
    assert reason_of(app, "B") == "held:merged_protected_call"


def test_a_danger_learned_after_the_merge_holds_the_call_it_was_merged_into(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(
        app,
        received("A", T0, phone="613-555-0199"),
        received("B", T0, phone=PHONE),
        event("A", "call.merged", T0 + timedelta(minutes=1), merged_into="B"),
        event("A", "call.updated", T0 + timedelta(minutes=2), risk_flag=True),
        event("B", "call.cleared", T0 + timedelta(minutes=20)),
    )
    play_out(app, clock)
    assert [t.kind for t in texts(app) if t.status == "sent"] == []
    assert reason_of(app, "B") == "held:merged_protected_call"


def test_no_texts_told_to_the_call_taker_holds_for_the_callers_next_call(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    first = received("I-1", T0)
    first["caller"] = {"phone": PHONE, "sms_opt_out": True}
    post(app, first, received("I-2", T0 + timedelta(days=1), phone="(613) 555-0142"))
    play_out(app, clock, hours=30)
    assert sent_to(console) == []
    assert reason_of(app, "I-2") == "eligible"  # eligible, but the number is opted out
    assert {t.reason for t in texts(app)} == {"suppressed:opted_out"}


def test_an_eido_snapshot_refused_whole_holds_the_incident_it_names(
    app: Application, clock: VirtualClock, console: ConsoleProvider, auth: dict[str, str]
) -> None:
    snapshots = sorted(EIDO.glob("theft-2001-*.json"))
    first = json.loads(snapshots[0].read_text())
    unreadable = json.loads(snapshots[1].read_text())
    unreadable["lastUpdateTimeStamp"] = "2026-11-28 14:00"  # not RFC 3339: refused whole
    with InProcessServer(create_app(app)) as server:
        url = f"{server.url}/api/v1/cad/eido"
        assert httpx.post(url, json=first, headers=auth).status_code == 202
        assert httpx.post(url, json=unreadable, headers=auth).status_code == 422
    with app.db.transaction() as session:
        reasons = set(session.scalars(select(CallRow.reason)).all())
    assert reasons == {"held:unreadable_event"}
    play_out(app, clock)
    assert [t for t in texts(app) if t.status == "sent"] == []


# --- numbers seen on calls that put someone at risk ------------------------------------


def test_a_number_from_an_intimate_partner_violence_call_gets_no_text_about_another_call(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(app, received("IPV-1", T0, code="IPV", phone="+1 613 555 0142"))
    clock.advance(timedelta(days=3))  # weeks later would do as well (90 days by default)
    post(app, received("THEFT-1", clock.now(), phone="613.555.0142"))
    app.dispatcher.run_due()
    post(app, event("THEFT-1", "call.cleared", clock.now() + timedelta(minutes=20)))
    play_out(app, clock)
    assert sent_to(console) == []
    assert text_reason(app, "THEFT-1", "confirmation") == "suppressed:protected_number"
    assert text_reason(app, "THEFT-1", "survey_invitation") == "suppressed:protected_number"


def test_a_risk_flag_on_a_later_call_stops_the_texts_still_due_on_an_earlier_one(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(app, received("THEFT-1", T0))
    app.dispatcher.run_due()
    assert len(sent_to(console)) == 1  # its confirmation
    post(
        app,
        received("OTHER-2", T0 + timedelta(minutes=10), risk_flag=True),
        event("THEFT-1", "call.cleared", T0 + timedelta(minutes=30)),
    )
    play_out(app, clock)
    assert len(sent_to(console)) == 1  # no survey
    assert text_reason(app, "THEFT-1", "survey_invitation") == "suppressed:protected_number"


def test_protection_can_be_limited_to_the_call_itself(
    app_factory: Callable[..., Application],
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
) -> None:
    app = app_factory(database_url, CALLERCONNECT_POLICY__PROTECT_NUMBER_FOR="0s")
    post(app, received("IPV-1", T0, code="IPV"), received("THEFT-1", T0 + timedelta(hours=1)))
    play_out(app, clock)
    assert [t.incident for t in texts(app) if t.status == "sent"] == ["THEFT-1", "THEFT-1"]


def test_a_protection_ends_and_its_record_goes(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(app, received("IPV-1", T0, code="IPV"))
    window = app.policy.protect_number_for
    retention = app.settings.privacy.phone_retention
    assert count_protected(app) == 1
    purge_phones(app.db, app.vault, T0 + window / 2, retention)
    assert count_protected(app) == 1
    purge_phones(app.db, app.vault, T0 + window + timedelta(days=1), retention)
    assert count_protected(app) == 0


def text_reason(app: Application, incident: str, kind: str) -> str | None:
    [found] = [t.reason for t in texts(app) if t.incident == incident and t.kind == kind]
    return found


def count_protected(app: Application) -> int:
    with app.db.transaction() as session:
        return len(session.scalars(select(ProtectedPhoneRow)).all())


def test_an_eido_snapshot_with_the_same_time_and_another_type_holds_the_incident(
    app: Application, clock: VirtualClock, console: ConsoleProvider, auth: dict[str, str]
) -> None:
    """Two snapshots stamped the same second: the second, reclassifying the call, maps
    to facts whose ids the first already used. By contract only the first is folded,
    but what the second says may be a danger: the incident is held."""
    first = json.loads(sorted(EIDO.glob("theft-2001-*.json"))[0].read_text())
    second = json.loads(json.dumps(first))
    second["incidentComponent"]["incidentTypeInternalCode"] = "SEXASSLT"
    second["incidentComponent"]["incidentTypeInternalText"] = "Sexual assault"
    with InProcessServer(create_app(app)) as server:
        url = f"{server.url}/api/v1/cad/eido"
        assert httpx.post(url, json=first, headers=auth).status_code == 202
        again = httpx.post(url, json=second, headers=auth)
    assert again.status_code == 202, again.text
    play_out(app, clock)
    assert [t for t in texts(app) if t.status == "sent"] == []
    with app.db.transaction() as session:
        reasons = set(session.scalars(select(CallRow.reason)).all())
    assert reasons <= {"held:changed_event", "excluded:sexual_assault"}


# --- found by reviewing the holds --------------------------------------------------------


def test_a_hold_learned_after_the_merge_reaches_the_call_it_was_merged_into(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(
        app,
        received("A", T0, phone="613-555-0199"),
        received("B", T0, phone=PHONE),
        event("A", "call.merged", T0 + timedelta(minutes=1), merged_into="B"),
    )
    refused = event("A", "call.updated", T0 + timedelta(minutes=2), risk_flag="yes")
    assert post(app, refused) == ["rejected"]
    post(app, event("B", "call.cleared", T0 + timedelta(minutes=20)))
    play_out(app, clock)
    assert reason_of(app, "B") == "held:merged_protected_call"
    assert [t for t in texts(app) if t.incident == "B" and t.status == "sent"] == []


def test_a_hold_on_a_cancelled_call_still_protects_its_number(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(
        app,
        received("A", T0, phone="613-555-0199"),
        event("A", "call.cancelled", T0 + timedelta(minutes=1)),
    )
    refused = event("A", "call.updated", T0 + timedelta(minutes=2), risk_flag="yes")
    assert post(app, refused) == ["rejected"]
    assert reason_of(app, "A") == "held:unreadable_event"
    post(app, received("C", T0 + timedelta(minutes=30), phone="613-555-0199"))
    play_out(app, clock)
    assert [t for t in texts(app) if t.status == "sent"] == []


def test_a_danger_travels_along_a_chain_of_merges(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    post(
        app,
        received("C", T0, phone=PHONE),
        received("B", T0, phone="613-555-0123"),
        event("B", "call.merged", T0 + timedelta(minutes=1), merged_into="C"),
        received("A", T0, code="SEXASSLT", phone="613-555-0199"),
        event("A", "call.merged", T0 + timedelta(minutes=2), merged_into="B"),
        event("C", "call.cleared", T0 + timedelta(minutes=20)),
    )
    play_out(app, clock)
    assert reason_of(app, "C") == "held:merged_protected_call"
    assert [t for t in texts(app) if t.incident == "C" and t.status == "sent"] == []


def test_merges_in_a_circle_end(app: Application) -> None:
    assert (
        post(
            app,
            received("A", T0, code="IPV", phone="613-555-0199"),
            event("A", "call.merged", T0 + timedelta(minutes=1), merged_into="B"),
            event("B", "call.merged", T0 + timedelta(minutes=2), merged_into="A"),
        )
        == ["accepted"] * 3
    )
    assert reason_of(app, "B") == "held:merged_protected_call"


def test_a_merge_event_with_the_longest_id_still_carries_the_danger(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """Event ids may be 128 characters (EIDO ones built from URNs are); the hold on the
    call merged into must fit the decision log (PostgreSQL enforces the length)."""
    post(app, received("A", T0, code="SEXASSLT", phone="613-555-0199"), received("B", T0))
    merge = event("A", "call.merged", T0 + timedelta(minutes=1), merged_into="B")
    merge["event_id"] = "m" * 128
    assert post(app, merge) == ["accepted"]
    assert reason_of(app, "B") == "held:merged_protected_call"


def test_an_eido_priority_changed_and_changed_back_holds_nothing(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """Snapshots re-send their facts under the ids they used before, with the latest
    fields: only a lasting danger in them holds, not a priority that moved."""
    first = json.loads(sorted(EIDO.glob("theft-2001-*.json"))[0].read_text())
    snapshots = [first]
    for n, priority in enumerate(["2", "4"], start=5):
        later = json.loads(json.dumps(first))
        later["lastUpdateTimeStamp"] = f"2026-02-10T09:0{n}:40-05:00"
        later["incidentComponent"]["incidentPriorityInternalText"] = priority
        snapshots.append(later)
    for snapshot in snapshots:
        for derived in events_from_eido(snapshot):
            app.intake.submit(derived, "eido")
    with app.db.transaction() as session:
        reasons = set(session.scalars(select(CallRow.reason)).all())
    assert reasons == {"eligible"}


def test_an_unreadable_dead_letter_neither_stops_the_purge_nor_the_worker(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """A value under a key no longer configured (keys rotate leaves them) is skipped."""
    foreign = Vault("a-secret-key-this-deployment-never-had-0123456789")
    with app.db.transaction() as session:
        session.add(
            DeadLetterRow(
                agency_id="default",
                received_at=T0 - timedelta(days=30),
                source="test",
                payload_encrypted=foreign.encrypt('{"caller": {"phone": "613-555-0142"}}'),
                error_code="type",
                error="x",
                status="new",
            )
        )
    purge_phones(app.db, app.vault, T0, app.settings.privacy.phone_retention)
    post(app, received("I-1", T0))
    stop = threading.Event()
    worker = threading.Thread(target=app.dispatcher.run_forever, args=(stop, 0.05))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not console.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
    assert len(console.sent) == 1
