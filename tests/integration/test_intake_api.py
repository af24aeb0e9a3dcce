"""The CAD intake API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from callerconnect.adapters.db.tables import CadEventRow, CallRow, DeadLetterRow, OutboxRow
from callerconnect.bootstrap import Application
from callerconnect.web.app import create_app
from tests.support.in_process import InProcessServer

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "examples"


def examples(name: str) -> list[dict[str, object]]:
    lines = (EXAMPLES / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": "e-1",
        "incident_id": "I-1",
        "occurred_at": "2026-01-16T09:00:00-05:00",
        "type": "call.received",
        "priority": 4,
        "case_number": "26-00001",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": "613-555-0142", "language": "en"},
    }
    base.update(fields)
    return base


def count(app: Application, table: type) -> int:
    with app.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_single_event_is_accepted_and_schedules_a_confirmation(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    response = httpx.post(f"{live_server.url}/api/v1/cad/events", json=event(), headers=auth)
    assert response.status_code == 202
    assert response.json() == {"results": [{"event_id": "e-1", "status": "accepted"}]}
    with app.db.transaction() as session:
        kinds = sorted(session.scalars(select(OutboxRow.kind)).all())
    assert kinds == ["confirmation", "delay_notice"]


def test_batch_answers_in_request_order_with_duplicates(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    batch = examples("delayed-out-of-order.jsonl")
    response = httpx.post(
        f"{live_server.url}/api/v1/cad/events", json={"events": batch}, headers=auth
    )
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in batch]
    assert [r["status"] for r in results] == [
        "accepted",
        "accepted",
        "duplicate",
        "accepted",
        "accepted",
    ]
    assert count(app, CadEventRow) == 4


def test_repeat_of_a_whole_request_changes_nothing(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    batch = {"events": examples("eligible-theft-en.jsonl")}
    url = f"{live_server.url}/api/v1/cad/events"
    httpx.post(url, json=batch, headers=auth)
    with app.db.transaction() as session:
        before = [(r.kind, r.status) for r in session.scalars(select(OutboxRow))]
    second = httpx.post(url, json=batch, headers=auth)
    assert {r["status"] for r in second.json()["results"]} == {"duplicate"}
    with app.db.transaction() as session:
        after = [(r.kind, r.status) for r in session.scalars(select(OutboxRow))]
    assert after == before


def test_missing_or_wrong_key_is_401_and_stores_nothing(
    app: Application, live_server: InProcessServer
) -> None:
    url = f"{live_server.url}/api/v1/cad/events"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = httpx.post(url, json=event(), headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert count(app, CadEventRow) == 0
    assert count(app, DeadLetterRow) == 0


def test_malformed_json_is_400_and_kept_as_a_dead_letter(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    response = httpx.post(
        f"{live_server.url}/api/v1/cad/events",
        content=b'{"event_id": "e-1", ',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert count(app, DeadLetterRow) == 1


def test_schema_violation_is_422_naming_field_and_rule(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    url = f"{live_server.url}/api/v1/cad/events"
    cases = [
        (event(priority=12), "priority", "maximum"),
        (event(type="call.exploded"), "type", "enum"),
        ({k: v for k, v in event().items() if k != "incident_id"}, "incident_id", "required"),
        (event(occurred_at="2026-01-16T09:00:00"), "occurred_at", "format"),
        (event(type="call.merged"), "merged_into", "required"),
        (event(call_type={"description": "no code"}), "call_type.code", "required"),
    ]
    for body, field, rule in cases:
        response = httpx.post(url, json=body, headers=auth)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert (error["field"], error["rule"]) == (field, rule), error
    assert count(app, DeadLetterRow) == len(cases)
    # Refused events that might have said "do not text" hold their incident (fail
    # closed): I-1 is never texted, whatever comes next.
    with app.db.transaction() as session:
        reasons = session.scalars(select(CallRow.reason)).all()
    assert reasons == ["held:unreadable_event"]
    assert count(app, OutboxRow) == 0


def test_error_messages_never_contain_the_phone_number(
    live_server: InProcessServer, auth: dict[str, str]
) -> None:
    body = event(caller={"phone": 6135550142})
    response = httpx.post(f"{live_server.url}/api/v1/cad/events", json=body, headers=auth)
    assert response.status_code == 422
    assert "5550142" not in response.text


def test_batch_with_one_bad_event_accepts_the_others(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    batch = {"events": [event(), event(event_id="e-2", priority="high"), event(event_id="e-3")]}
    response = httpx.post(f"{live_server.url}/api/v1/cad/events", json=batch, headers=auth)
    assert response.status_code == 202
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["accepted", "rejected", "accepted"]
    assert response.json()["results"][1]["field"] == "priority"


def test_batch_over_the_limit_is_refused_whole(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    batch = {"events": [event(event_id=f"e-{n}") for n in range(1001)]}
    response = httpx.post(f"{live_server.url}/api/v1/cad/events", json=batch, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "events"
    assert count(app, CadEventRow) == 0


def test_healthz_reports_the_database(live_server: InProcessServer) -> None:
    response = httpx.get(f"{live_server.url}/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_stored_payloads_do_not_hold_the_phone_in_clear(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    httpx.post(f"{live_server.url}/api/v1/cad/events", json=event(), headers=auth)
    httpx.post(f"{live_server.url}/api/v1/cad/events", json=event(priority=99), headers=auth)
    with app.db.engine.connect() as connection:
        for table in ("cad_events", "dead_letters", "calls"):
            rows = connection.exec_driver_sql(f"SELECT * FROM {table}").all()
            assert rows
            assert "5550142" not in repr(rows)


def test_every_event_and_dead_letter_names_the_key_that_posted_it(
    app_factory: Callable[..., Application], database_url: str
) -> None:
    """Should a CAD key leak, what it posted can be found: each stored event and dead
    letter records the channel and the key's public id (never the key)."""
    cad_a, cad_b = "cad-a-key-0123456789abcdef", "cad-b-key-0123456789abcdef"
    app = app_factory(database_url, CALLERCONNECT_INTAKE__API_KEYS=json.dumps([cad_a, cad_b]))
    with InProcessServer(create_app(app)) as server:
        for key, incident in ((cad_a, "I-A"), (cad_b, "I-B")):
            headers = {"Authorization": f"Bearer {key}"}
            accepted = httpx.post(
                f"{server.url}/api/v1/cad/events",
                json=event(event_id=f"e-{incident}", incident_id=incident),
                headers=headers,
            )
            assert accepted.status_code == 202, accepted.text
        refused = httpx.post(
            f"{server.url}/api/v1/cad/events",
            json={"event_id": "bad", "type": "call.received"},
            headers={"Authorization": f"Bearer {cad_b}"},
        )
        assert refused.status_code == 422
    with app.db.transaction() as session:
        sources = dict(session.execute(select(CadEventRow.incident_id, CadEventRow.source)).all())
        letters = session.scalars(select(DeadLetterRow.source)).all()
    id_a = hashlib.sha256(cad_a.encode()).hexdigest()[:8]
    id_b = hashlib.sha256(cad_b.encode()).hexdigest()[:8]
    assert sources == {"I-A": f"native:{id_a}", "I-B": f"native:{id_b}"}
    assert letters == [f"native:{id_b}"]


def _schema_fields() -> list[tuple[str, ...]]:
    """Every property of the contract's event schema, nested ones as paths."""
    schema = json.loads(
        (
            Path(__file__).resolve().parents[2]
            / "src/callerconnect/adapters/cad/cad-event.schema.json"
        ).read_text()
    )
    fields: list[tuple[str, ...]] = []
    for name, spec in schema["properties"].items():
        fields.append((name,))
        fields.extend((name, inner) for inner in spec.get("properties", {}))
    return fields


PHONE_FORMS = ["613-555-0142", 6135550142, "+1 (613) 555-0142", "６１３-５５５-０１４２"]


@pytest.mark.parametrize("path", _schema_fields(), ids=".".join)
def test_a_phone_number_in_any_field_never_comes_back_in_an_error_or_a_dead_letter(
    app: Application, live_server: InProcessServer, auth: dict[str, str], path: tuple[str, ...]
) -> None:
    """A CAD that puts the caller's number in the wrong field, or in the right one in a
    wrong shape, gets an error naming the field and rule — never the number, which would
    then sit in its logs, our dead letters' error column and an operator's terminal."""
    for n, phone in enumerate(PHONE_FORMS):
        body = event(event_id=f"e-{n}")
        target: dict[str, object] = body
        for key in path[:-1]:
            inner = target.get(key)
            target[key] = inner = dict(inner) if isinstance(inner, dict) else {}
            target = inner
        target[path[-1]] = phone
        response = httpx.post(f"{live_server.url}/api/v1/cad/events", json=body, headers=auth)
        assert response.status_code in (202, 422), response.text
        # An accepted event's id is echoed by design; what was refused must not be.
        refused = [r for r in response.json().get("results", []) if r["status"] == "rejected"]
        errors = json.dumps(refused) + json.dumps(response.json().get("error", {}))
        assert not _holds_the_phone(errors), (path, phone, errors)
    with app.db.transaction() as session:
        stored_errors = session.scalars(select(DeadLetterRow.error)).all()
    assert not any(_holds_the_phone(error) for error in stored_errors), stored_errors


def _holds_the_phone(text: str) -> bool:
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())
    return "5550142" in digits


def test_an_eido_priority_holding_a_phone_number_is_refused_without_echoing_it(
    live_server: InProcessServer, auth: dict[str, str]
) -> None:
    document = json.loads((EXAMPLES.parent / "eido" / "theft-2001-1-received.json").read_text())
    document["incidentComponent"]["incidentPriorityInternalText"] = "613-555-0142"
    response = httpx.post(f"{live_server.url}/api/v1/cad/eido", json=document, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["field"].endswith("incidentPriorityInternalText")
    assert not _holds_the_phone(response.text)


# --- red-team findings: reclassification, times, ids, case numbers -------------------


def _eido(name: str) -> dict[str, object]:
    document: dict[str, object] = json.loads(
        (EXAMPLES.parent / "eido" / f"{name}.json").read_text()
    )
    return document


def _call_state(app: Application) -> list[tuple[str, str | None, str | None]]:
    with app.db.transaction() as session:
        rows = session.execute(
            select(CallRow.incident_id, CallRow.call_type_code, CallRow.reason)
        ).all()
    return [tuple(row) for row in rows]


def _scheduled_texts(app: Application) -> list[str]:
    with app.db.transaction() as session:
        return list(
            session.scalars(select(OutboxRow.kind).where(OutboxRow.status == "scheduled")).all()
        )


def test_an_eido_reclassification_given_only_in_words_stops_the_texts(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    url = f"{live_server.url}/api/v1/cad/eido"
    first = httpx.post(url, json=_eido("theft-2001-1-received"), headers=auth)
    assert first.status_code == 202, first.text
    assert _scheduled_texts(app)  # a textable theft: texts are waiting

    second = _eido("theft-2001-2-dispatched")
    incident = second["incidentComponent"]
    assert isinstance(incident, dict)
    del incident["incidentTypeInternalCode"]
    incident["incidentTypeInternalText"] = "Sexual assault"
    incident["incidentTypeCommonRegistryText"] = "Law-Sexual Assault"
    response = httpx.post(url, json=second, headers=auth)

    assert response.status_code == 202, response.text
    [(_, code, reason)] = _call_state(app)
    assert code == "Sexual assault"  # looked up like a code: unknown, so never texted
    # (The restated call.received, whose content changed, may also hold the call.)
    assert reason == "ineligible:unknown_call_type" or (reason or "").startswith("held:")
    assert _scheduled_texts(app) == []


def test_a_risk_flag_sent_with_a_padded_incident_id_reaches_the_call(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    url = f"{live_server.url}/api/v1/cad/events"
    assert httpx.post(url, json=event(incident_id="ID"), headers=auth).status_code == 202
    flag = {
        "event_id": "e-2",
        "incident_id": "ID ",
        "occurred_at": "2026-01-16T09:05:00-05:00",
        "type": "call.updated",
        "risk_flag": True,
    }

    response = httpx.post(url, json=flag, headers=auth)

    assert response.status_code == 202, response.text
    assert _call_state(app) == [("ID", "THEFT", "ineligible:risk_flag")]
    assert _scheduled_texts(app) == []


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"incident_id": " "}, "incident_id", "pattern"),
        ({"event_id": "\t"}, "event_id", "pattern"),
        ({"incident_id": "I-\x1b1"}, "incident_id", "pattern"),
        ({"occurred_at": "2026-11-28T13:47:00+05"}, "occurred_at", "format"),
        ({"occurred_at": "2026-W48-6T13:47:00Z"}, "occurred_at", "format"),
        ({"occurred_at": "9998-12-31T23:59:59-23:59"}, "occurred_at", "format"),
        ({"case_number": "http://evil.co/x"}, "case_number", "pattern"),
        ({"case_number": "1\nReply YES to"}, "case_number", "pattern"),
        ({"case_number": "26-10011 \U0001f6a8"}, "case_number", "pattern"),
    ],
)
def test_red_team_inputs_are_422_naming_the_field_and_rule(
    app: Application,
    live_server: InProcessServer,
    auth: dict[str, str],
    fields: dict[str, object],
    field: str,
    rule: str,
) -> None:
    response = httpx.post(
        f"{live_server.url}/api/v1/cad/events", json=event(**fields), headers=auth
    )

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["field"], error["rule"]) == (field, rule)
    assert "evil" not in response.text and "Reply YES" not in response.text
    assert count(app, DeadLetterRow) == 1
    assert _scheduled_texts(app) == []


def test_a_case_number_with_an_en_dash_is_stored_with_a_hyphen(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    response = httpx.post(
        f"{live_server.url}/api/v1/cad/events", json=event(case_number="26–10011"), headers=auth
    )

    assert response.status_code == 202, response.text
    with app.db.transaction() as session:
        assert session.scalars(select(CallRow.case_number)).all() == ["26-10011"]


@pytest.mark.parametrize("bad", ["\x00", "\x01", "\u200b"])
def test_an_eido_incident_id_with_control_characters_is_422_not_a_partial_202(
    app: Application, live_server: InProcessServer, auth: dict[str, str], bad: str
) -> None:
    document = _eido("theft-2001-1-received")
    incident = document["incidentComponent"]
    assert isinstance(incident, dict)
    incident["incidentTrackingIdentifier"] = f"urn:i26{bad}2001"

    response = httpx.post(f"{live_server.url}/api/v1/cad/eido", json=document, headers=auth)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "incidentComponent.incidentTrackingIdentifier"
    assert count(app, CadEventRow) == 0
    assert count(app, DeadLetterRow) == 1
    assert _scheduled_texts(app) == []
