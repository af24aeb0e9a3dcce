"""Redaction where personal free text is kept or shown: survey comments are stored
redacted (the clear text is never written), callers' flagged texts and dead letters are
shown redacted while kept as they arrived.

Storage is the same code on both databases, so these run on SQLite only; the real HTTP
stack and the real flow (CAD events, dispatcher, survey link) are used throughout.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from callerconnect.adapters.db.tables import Base, SurveyResponseRow
from callerconnect.adapters.sms.base import InboundSms
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.queries.queues import flagged_replies, flagged_replies_redacted
from callerconnect.service.redacted_views import dead_letter_redacted, redact_raw_payload
from tests.support.in_process import InProcessServer
from tests.support.survey import ANSWERS, csrf_of, invite, post_call

COMMENT = (
    "My neighbour Jean Tremblay at 45 rue Principale saw it. Call me 613 555 0199 "
    "or jean dot tremblay at gmail dot com. Plate ABCD 123, case 24-123456. "
    "It took 45 minutes, 5/5."
)
REDACTED = (
    "My neighbour [name] at [address] saw it. Call me [phone] "
    "or [email]. Plate [plate], case [case number]. "
    "It took 45 minutes, 5/5."
)
CLEAR_PIECES = ["Tremblay", "Principale", "555 0199", "gmail", "ABCD", "123456"]


@pytest.fixture
def app(app_factory: Callable[..., Application], sqlite_url: str) -> Application:
    return app_factory(sqlite_url)


def everything_stored(app: Application) -> str:
    """Every row of every table, encrypted columns decrypted: what the database holds."""
    encrypted = {"comment_encrypted", "body_encrypted", "payload_encrypted", "phone_encrypted"}
    dump = []
    with app.db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()).mappings():
                for column, value in row.items():
                    if column in encrypted and value:
                        value = app.vault.decrypt(value)
                    dump.append(f"{table.name}.{column}={value}")
    return "\n".join(dump)


def stored_comments(app: Application) -> list[str]:
    with app.db.transaction() as session:
        return [
            app.vault.decrypt(token)
            for token in session.scalars(select(SurveyResponseRow.comment_encrypted))
            if token
        ]


def test_survey_comment_is_stored_redacted_and_its_clear_text_nowhere(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    live_server: InProcessServer,
    auth: dict[str, str],
) -> None:
    token = invite(app, clock, console, live_server.url, auth, incident="I-1")
    csrf = csrf_of(httpx.get(f"{live_server.url}/s/{token}").text)

    sent = httpx.post(
        f"{live_server.url}/s/{token}",
        data={**ANSWERS, "comment": COMMENT, "csrf_token": csrf, "lang": "en"},
    )

    assert sent.status_code == 303, sent.text
    assert stored_comments(app) == [REDACTED]
    stored = everything_stored(app)
    for piece in CLEAR_PIECES:
        assert piece not in stored


def test_comment_without_personal_data_is_stored_as_written(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    live_server: InProcessServer,
    auth: dict[str, str],
) -> None:
    token = invite(app, clock, console, live_server.url, auth, incident="I-2")
    csrf = csrf_of(httpx.get(f"{live_server.url}/s/{token}").text)
    comment = "Took 45 minutes at 10:30, 2 officers, 4/5. Merci!"

    httpx.post(
        f"{live_server.url}/s/{token}", data={**ANSWERS, "comment": comment, "csrf_token": csrf}
    )

    assert stored_comments(app) == [comment]


def test_landline_feedback_comment_is_stored_redacted(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    post_call(live_server.url, auth, incident="I-L1", case_number="26-00500", phone=None)
    with httpx.Client(base_url=live_server.url) as browser:
        csrf = csrf_of(browser.get("/feedback").text)
        sent = browser.post(
            "/feedback",
            data={
                **ANSWERS,
                "csrf_token": csrf,
                "lang": "fr",
                "action": "submit",
                "case_number": "26-00500",
                "comment": "Merci à l'agente Gagnon! Mon cell: 819-555-0134.",
            },
        )

    assert sent.status_code == 303, sent.text
    assert stored_comments(app) == ["Merci à l'agente [name]! Mon cell: [phone]."]


def test_flagged_reply_is_kept_as_sent_and_shown_redacted(app: Application) -> None:
    body = "Someone is following me, it's my ex Marc Gagnon, he drives plate FXR 2231"
    app.inbound.handle(InboundSms("613-555-0142", app.settings.sms.sender, body, "SM-1"), "console")

    assert [t.body for t in flagged_replies(app.db, app.vault, None)] == [body]  # unchanged
    shown = flagged_replies_redacted(app.db, app.vault, None)
    assert [t.body for t in shown] == [
        "Someone is following me, it's my ex [name], he drives plate [plate]"
    ]
    assert shown[0].phone_masked == "+1613***0142"
    assert flagged_replies_redacted(app.db, app.vault, "default") == shown
    assert flagged_replies_redacted(app.db, app.vault, "elsewhere") == []


def test_dead_letter_is_shown_with_its_phones_redacted_and_its_ids_readable(
    app: Application, live_server: InProcessServer, auth: dict[str, str]
) -> None:
    refused = httpx.post(
        f"{live_server.url}/api/v1/cad/events",
        json={
            "event_id": "bad-1",
            "incident_id": "INC-2024-000123",
            "type": "call.received",
            "caller": {"phone": "613-555-0142", "language": "fr"},
            "call_type": {"code": "THEFT", "description": "call back 613 555 0199"},
        },
        headers=auth,
    )
    assert refused.status_code in (400, 422), refused.text

    letter = dead_letter_redacted(app.db, app.vault, 1)

    assert letter is not None
    payload = json.loads(letter.payload)
    assert payload["caller"] == {"phone": "[phone]", "language": "fr"}
    assert payload["call_type"]["description"] == "call back [phone]"
    assert (payload["event_id"], payload["incident_id"]) == ("bad-1", "INC-2024-000123")
    assert "555" not in letter.payload + letter.error
    assert dead_letter_redacted(app.db, app.vault, 99) is None
    assert dead_letter_redacted(app.db, app.vault, 1, agency_id="default") == letter
    assert dead_letter_redacted(app.db, app.vault, 1, agency_id="elsewhere") is None


@pytest.mark.parametrize(
    "raw",
    [
        '{"caller": {"phone": "613-555',  # cut off: the number is partial
        '{"caller": {"phone": "+1 613 555 0142"}, "x": ',
        "not json at all 613.555.0142",
    ],
)
def test_a_payload_that_is_not_json_still_hides_its_phone(raw: str) -> None:
    shown = redact_raw_payload(raw)
    assert "555" not in shown
    assert "[phone]" in shown
