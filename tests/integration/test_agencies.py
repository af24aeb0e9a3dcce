"""Two agencies in one deployment (contract section 11): nothing of one reaches the
other. Same incident id in both, events filed by the key that posted them, texts from
each agency's number with its names and in its time zone, a STOP to one agency's number,
protected numbers across agencies (docs/architecture.md, ADR 0009), one worker and one
inbound handler serving both, queries scoped."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from callerconnect.adapters.db.tables import CallRow, InboundMessageRow, OutboxRow
from callerconnect.adapters.sms.base import InboundSms
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application
from callerconnect.clock import VirtualClock
from callerconnect.config import load_settings
from callerconnect.entrypoints import cli
from callerconnect.web.app import create_app
from tests.conftest import STORY_TIME_TOLERANCE, T0, TEST_INTAKE_KEY, TEST_SECRET
from tests.support.dispatch import received
from tests.support.in_process import InProcessServer

NORTH_KEY = "north-intake-key-0123456789abcdef"
NORTH_SENDER = "+12045550100"
DEFAULT_SENDER = "+13438036032"
PHONE = "613-555-0142"


def two_agency_environ(database_url: str, **more: str) -> dict[str, str]:
    return {
        "CALLERCONNECT_DATABASE_URL": database_url,
        "CALLERCONNECT_SECRET_KEY": TEST_SECRET,
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{TEST_INTAKE_KEY}"]',
        "CALLERCONNECT_SMS__MAX_PER_SECOND": "1000",
        "CALLERCONNECT_AGENCIES__NORTH__AGENCY_NAME__EN": "North Police",
        "CALLERCONNECT_AGENCIES__NORTH__AGENCY_NAME__FR": "Police du Nord",
        # 23:00 there at T0 (09:00 in Ottawa): inside the quiet hours.
        "CALLERCONNECT_AGENCIES__NORTH__TIMEZONE": "Asia/Tokyo",
        "CALLERCONNECT_AGENCIES__NORTH__SMS__SENDER": NORTH_SENDER,
        "CALLERCONNECT_AGENCIES__NORTH__NON_EMERGENCY_NUMBER": "204-555-0199",
        "CALLERCONNECT_AGENCIES__NORTH__INTAKE__API_KEYS": f'["{NORTH_KEY}"]',
        **more,
    }


Providers = dict[str, ConsoleProvider]


@pytest.fixture
def providers() -> Providers:
    return {"default": ConsoleProvider(io.StringIO()), "north": ConsoleProvider(io.StringIO())}


@pytest.fixture
def two(database_url: str, clock: VirtualClock, providers: Providers) -> Iterator[Application]:
    settings = load_settings(environ=two_agency_environ(database_url))
    application = build_application(settings, clock=clock, provider=dict(providers))
    for intake in application.intakes.values():
        intake.max_clock_skew = STORY_TIME_TOLERANCE  # whole stories told at once
    yield application
    application.close()


def post(client: str, key: str, *events: dict[str, Any]) -> None:
    response = httpx.post(
        f"{client}/api/v1/cad/events",
        json={"events": list(events)},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 202, response.text
    assert all(r["status"] == "accepted" for r in response.json()["results"])


@pytest.fixture
def client(two: Application) -> Iterator[str]:
    """The base URL of the real web application serving both agencies."""
    with InProcessServer(create_app(two)) as server:
        yield server.url


def calls(app: Application) -> list[tuple[str, str, str | None]]:
    with app.db.transaction() as session:
        rows = session.execute(
            select(CallRow.agency_id, CallRow.incident_id, CallRow.case_number).order_by(
                CallRow.agency_id
            )
        ).all()
        return [tuple(row) for row in rows]  # type: ignore[misc]


def outbox(app: Application, agency: str, kind: str) -> OutboxRow:
    with app.db.transaction() as session:
        rows = session.scalars(
            select(OutboxRow).where(OutboxRow.agency_id == agency, OutboxRow.kind == kind)
        ).all()
        assert len(rows) == 1, rows
        session.expunge_all()
        return rows[0]


def bodies(provider: ConsoleProvider) -> list[str]:
    return [message.body for _, message in provider.sent]


def test_the_same_incident_id_is_two_calls_filed_by_the_key_that_posted_it(
    two: Application, client: str
) -> None:
    post(client, TEST_INTAKE_KEY, received("I-1", T0, case_number="26-00001"))
    post(client, NORTH_KEY, received("I-1", T0, case_number="N26-00777", phone=PHONE))
    assert calls(two) == [("default", "I-1", "26-00001"), ("north", "I-1", "N26-00777")]


def test_each_agency_texts_from_its_own_number_with_its_names(
    two: Application, client: str, providers: Providers
) -> None:
    post(client, TEST_INTAKE_KEY, received("I-1", T0, case_number="26-00001"))
    post(client, NORTH_KEY, received("I-1", T0, case_number="N26-00777"))
    two.dispatcher.run_due()  # one worker, both agencies
    (default_text,) = bodies(providers["default"])
    (north_text,) = bodies(providers["north"])
    assert "Ottawa Police" in default_text and "26-00001" in default_text
    assert "North Police" in north_text and "N26-00777" in north_text
    assert "Ottawa" not in north_text and "North" not in default_text
    assert outbox(two, "north", "confirmation").dedupe_key.startswith("north:I-1:")


def test_quiet_hours_are_each_agency_s_own(
    two: Application, client: str, providers: Providers, clock: VirtualClock
) -> None:
    post(client, TEST_INTAKE_KEY, received("I-1", T0))
    post(client, NORTH_KEY, received("I-2", T0, case_number="N26-00002"))
    two.dispatcher.run_due()
    clock.advance(timedelta(minutes=61))  # 10:01 in Ottawa, 00:01 in Tokyo
    two.dispatcher.run_due()
    assert outbox(two, "default", "delay_notice").status == "sent"
    waiting = outbox(two, "north", "delay_notice")
    assert waiting.status == "scheduled"
    # 08:00 the next morning in Tokyo is 23:00 UTC.
    assert waiting.not_before.replace(tzinfo=None) == (T0 + timedelta(hours=9)).replace(tzinfo=None)


def caller_text(app: Application, to: str, body: str, sid: str) -> None:
    app.inbound.handle(
        InboundSms(from_phone=PHONE, to=to, body=body, provider_message_id=sid), "console"
    )


def test_a_stop_to_one_agency_s_number_stops_only_its_texts(
    two: Application, client: str, providers: Providers
) -> None:
    caller_text(two, NORTH_SENDER, "STOP", "m-1")
    with two.db.transaction() as session:
        stored = session.scalars(select(InboundMessageRow)).one()
        assert stored.agency_id == "north"
    two.dispatcher.run_due()
    (confirmation,) = bodies(providers["north"])  # the opt-out confirmation, from North
    assert "STOP" not in confirmation or "North" in confirmation or "Nord" in confirmation
    assert bodies(providers["default"]) == []
    post(client, TEST_INTAKE_KEY, received("I-1", T0, phone=PHONE))
    post(client, NORTH_KEY, received("I-1", T0, phone=PHONE, case_number="N26-00001"))
    two.dispatcher.run_due()
    assert outbox(two, "default", "confirmation").status == "sent"
    north = outbox(two, "north", "confirmation")
    assert (north.status, north.reason) == ("suppressed", "suppressed:opted_out")


def test_a_number_protected_by_one_agency_s_call_is_protected_for_every_agency(
    two: Application, client: str, providers: Providers
) -> None:
    post(client, NORTH_KEY, received("I-9", T0, phone=PHONE, code="SEXASSLT"))
    post(client, TEST_INTAKE_KEY, received("I-1", T0, phone=PHONE))
    two.dispatcher.run_due()
    assert bodies(providers["default"]) == []
    assert outbox(two, "default", "confirmation").reason == "suppressed:protected_number"


def test_a_help_reply_quotes_the_agency_the_caller_texted(
    two: Application, providers: Providers
) -> None:
    caller_text(two, NORTH_SENDER, "HELP", "m-1")
    caller_text(two, DEFAULT_SENDER, "HELP", "m-2")
    two.dispatcher.run_due()
    (north_reply,) = bodies(providers["north"])
    (default_reply,) = bodies(providers["default"])
    assert "204-555-0199" in north_reply and "613-236-1222" not in north_reply
    assert "613-236-1222" in default_reply


def test_queries_and_commands_read_one_agency(
    two: Application,
    client: str,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    post(client, TEST_INTAKE_KEY, received("I-1", T0, case_number="26-00001"))
    post(client, NORTH_KEY, received("I-1", T0, case_number="N26-00777"))
    for name, value in two_agency_environ(database_url).items():
        monkeypatch.setenv(name, value)
    assert cli.main(["calls", "show", "I-1", "--agency", "north"]) == 0
    shown = capsys.readouterr().out
    assert "N26-00777" in shown and "26-00001\n" not in shown.replace("N26-00001", "")
    assert cli.main(["calls", "show", "I-1"]) == 0
    assert "N26-00777" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        ["calls", "show", "I-1", "--agency", "south"],
        ["report", "daily", "--agency", "south"],
        ["calltypes", "unknown", "--agency", "south"],
        ["inbound", "flagged", "--agency", "south"],
        ["publish", "--agency", "south", "--out", "OUT"],
    ],
)
def test_an_agency_that_is_not_configured_is_refused_naming_the_configured_ones(
    command: list[str],
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    for name, value in two_agency_environ(sqlite_url).items():
        monkeypatch.setenv(name, value)
    command = [str(tmp_path / "out") if part == "OUT" else part for part in command]
    assert cli.main(command) == 2
    error = capsys.readouterr().err
    assert "'south'" in error and "default, north" in error


def test_each_agency_gets_a_provider_with_its_own_number_and_credentials(
    sqlite_url: str,
) -> None:
    from callerconnect.adapters.sms.twilio import TwilioProvider
    from callerconnect.bootstrap import build_agencies

    settings = load_settings(
        environ=two_agency_environ(
            sqlite_url,
            CALLERCONNECT_SMS__PROVIDER="twilio",
            CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID="AC" + "1" * 32,
            CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN="default-token",
            CALLERCONNECT_AGENCIES__NORTH__SMS__TWILIO__ACCOUNT_SID="AC" + "2" * 32,
            CALLERCONNECT_AGENCIES__NORTH__SMS__TWILIO__AUTH_TOKEN="north-token",
            CALLERCONNECT_WORKER__LEASE="60s",
        )
    )
    agencies = build_agencies(settings)
    default, north = agencies.get("default"), agencies.get("north")
    assert isinstance(default.provider, TwilioProvider)
    assert isinstance(north.provider, TwilioProvider)
    assert default.provider._sender == DEFAULT_SENDER
    assert north.provider._sender == NORTH_SENDER
    assert agencies.by_sender("+1 (204) 555-0100") is north
    assert agencies.by_key(NORTH_KEY.encode()) is north
    assert agencies.by_key(TEST_INTAKE_KEY.encode()) is default
    assert agencies.by_key(b"not-a-key-of-anyone-at-all") is None
    for agency in agencies:
        agency.provider.close()  # type: ignore[attr-defined]


def test_a_survey_answer_is_filed_under_the_agency_that_sent_the_link(
    database_url: str, clock: VirtualClock, providers: Providers
) -> None:
    from callerconnect.adapters.db.tables import SurveyResponseRow
    from tests.support.survey import ANSWERS, csrf_of, post_call, send_survey_texts, survey_tokens

    environ = two_agency_environ(
        database_url, CALLERCONNECT_AGENCIES__NORTH__TIMEZONE="America/Toronto"
    )
    app = build_application(load_settings(environ=environ), clock=clock, provider=dict(providers))
    for intake in app.intakes.values():
        intake.max_clock_skew = STORY_TIME_TOLERANCE  # whole stories told at once
    try:
        with InProcessServer(create_app(app)) as server:
            post_call(server.url, {"Authorization": f"Bearer {NORTH_KEY}"}, incident="I-1")
            send_survey_texts(app, clock)
            assert survey_tokens(providers["default"]) == []
            (token,) = survey_tokens(providers["north"])
            form = httpx.get(f"{server.url}/s/{token}")
            data = {"csrf_token": csrf_of(form.text), "lang": "en", "action": "submit"}
            answered = httpx.post(f"{server.url}/s/{token}", data={**data, **ANSWERS})
            assert answered.status_code in (200, 303), answered.text
        with app.db.transaction() as session:
            assert session.scalars(select(SurveyResponseRow.agency_id)).all() == ["north"]
    finally:
        app.close()


def test_twilio_webhooks_accept_each_agency_s_account_and_route_by_the_number_texted(
    database_url: str, clock: VirtualClock, providers: Providers
) -> None:
    from tests.support.twilio_webhooks import inbound_form, twilio_signature

    public = "https://callerconnect.example.org"
    environ = two_agency_environ(
        database_url,
        CALLERCONNECT_PUBLIC_BASE_URL=public,
        CALLERCONNECT_SMS__PROVIDER="twilio",
        CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID="AC" + "1" * 32,
        CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN="default-auth-token",
        CALLERCONNECT_AGENCIES__NORTH__SMS__TWILIO__ACCOUNT_SID="AC" + "2" * 32,
        CALLERCONNECT_AGENCIES__NORTH__SMS__TWILIO__AUTH_TOKEN="north-auth-token",
    )
    app = build_application(load_settings(environ=environ), clock=clock, provider=dict(providers))
    path = "/webhooks/twilio/inbound"

    def post_signed(token: str, form: dict[str, str]) -> httpx.Response:
        signature = twilio_signature(token, public + path, form)
        return httpx.post(
            server.url + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=10
        )

    try:
        with InProcessServer(create_app(app)) as server:
            north = inbound_form("STOP", "+16135550142", to=NORTH_SENDER)
            assert post_signed("north-auth-token", north).status_code == 200
            ottawa = inbound_form("HELP", "+16135550142", to=DEFAULT_SENDER)
            assert post_signed("default-auth-token", ottawa).status_code == 200
            forged = inbound_form("STOP", "+16135550143", to=NORTH_SENDER)
            assert post_signed("some-other-token", forged).status_code == 403
        with app.db.transaction() as session:
            stored = session.execute(
                select(InboundMessageRow.agency_id, InboundMessageRow.classification).order_by(
                    InboundMessageRow.id
                )
            ).all()
        assert [tuple(row) for row in stored] == [("north", "opt_out"), ("default", "help")]
    finally:
        app.close()


_numbers = iter(range(1000, 10_000))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    protected_by=st.sampled_from(["default", "north"]),
    texted_by=st.sampled_from(["default", "north"]),
    protected_first=st.booleans(),
    code=st.sampled_from(["SEXASSLT", "IPV", "DOMESTIC"]),
)
def test_no_agency_texts_a_number_another_agency_s_call_protects(
    two: Application,
    client: str,
    protected_by: str,
    texted_by: str,
    protected_first: bool,
    code: str,
) -> None:
    number = next(_numbers)
    phone = f"613-555-{number:04d}"
    keys = {"default": TEST_INTAKE_KEY, "north": NORTH_KEY}
    protected = received(f"P-{number}", T0, phone=phone, code=code, case_number=f"P-{number}")
    theft = received(f"T-{number}", T0, phone=phone, case_number=f"T-{number}")
    posts = [(protected_by, protected), (texted_by, theft)]
    for agency, event in posts if protected_first else reversed(posts):
        post(client, keys[agency], event)
    two.dispatcher.run_due()
    with two.db.transaction() as session:
        row = session.scalars(
            select(OutboxRow)
            .join(CallRow, OutboxRow.call_id == CallRow.id)
            .where(CallRow.incident_id == f"T-{number}", OutboxRow.kind == "confirmation")
        ).one()
        assert row.status != "sent" and row.sent_at is None, (row.status, row.reason)
