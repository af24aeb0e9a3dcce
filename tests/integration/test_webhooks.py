"""Twilio's webhooks over real HTTP: signatures, status callbacks, callers' texts.

The application runs under uvicorn on 127.0.0.1 (``LiveServer``), sends through the real
Twilio provider to a Twilio-compatible server, and is configured with a public base URL
that differs from the address it listens on — as behind a reverse proxy, which is why
the signature must be checked against ``public_base_url``. Requests are signed here with
an implementation of Twilio's documented algorithm that does not use the ``twilio``
library the application checks them with.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from callerconnect.adapters.db.repositories.phones import is_opted_out
from callerconnect.adapters.db.tables import (
    InboundMessageRow,
    OutboxRow,
    PendingReceiptRow,
    SmsPartRow,
)
from callerconnect.adapters.sms.base import OutgoingSms, SendResult
from callerconnect.adapters.sms.twilio import TwilioProvider
from callerconnect.bootstrap import Application, build_provider
from callerconnect.clock import VirtualClock
from callerconnect.entrypoints import cli
from callerconnect.web.app import create_app
from tests.conftest import T0, TEST_SECRET, make_settings
from tests.support.dispatch import TimedFakeTwilio, history, received, submit, text, twilio_env
from tests.support.fake_twilio import DEFAULT_AUTH_TOKEN, Fault
from tests.support.in_process import InProcessServer
from tests.support.live_server import LiveServer
from tests.support.twilio_webhooks import inbound_form as twilio_inbound_form
from tests.support.twilio_webhooks import status_form as twilio_status_form
from tests.support.twilio_webhooks import twilio_signature

AppFactory = Callable[..., Application]
PUBLIC = "https://callerconnect.example.org"
CALLER = "+16135550142"
OTHER = "+16135550199"
STATUS = "/webhooks/twilio/status"
INBOUND = "/webhooks/twilio/inbound"
PHONE_DIGITS = re.compile(r"5550142|555-0142|5550199|555-0199")


@pytest.fixture
def twilio() -> Iterator[TimedFakeTwilio]:
    with TimedFakeTwilio() as fake:
        yield fake
    assert not fake.errors, fake.errors


@pytest.fixture
def make_app(
    app_factory: AppFactory, database_url: str, twilio: TimedFakeTwilio
) -> Callable[..., Application]:
    def make(**extra: str) -> Application:
        env = {**twilio_env(twilio), "CALLERCONNECT_PUBLIC_BASE_URL": PUBLIC, **extra}
        settings = make_settings(database_url, **env)
        return app_factory(database_url, provider=build_provider(settings), **env)

    return make


@pytest.fixture
def app(make_app: Callable[..., Application]) -> Application:
    return make_app()


@pytest.fixture
def server(app: Application) -> Iterator[InProcessServer]:
    with InProcessServer(create_app(app)) as in_process:
        yield in_process


def post(
    server: LiveServer,
    path: str,
    form: dict[str, str],
    *,
    token: str = DEFAULT_AUTH_TOKEN,
    sign: bool = True,
    signed_url: str | None = None,
) -> httpx.Response:
    """POST as Twilio does: the form, signed over the public URL."""
    headers = {}
    if sign:
        headers["X-Twilio-Signature"] = twilio_signature(token, signed_url or PUBLIC + path, form)
    return httpx.post(server.url + path, data=form, headers=headers, timeout=10)


def status_form(sid: str, status: str, error: str | None = None) -> dict[str, str]:
    return twilio_status_form(sid, status, CALLER, error)


def inbound_form(body: str, sender: str = CALLER, sid: str | None = None) -> dict[str, str]:
    return twilio_inbound_form(body, sender, sid)


def send_confirmation(app: Application, incident: str = "I-1", **fields: Any) -> str:
    """A call's confirmation, sent; returns its Twilio sid."""
    submit(app, received(incident, T0, **fields))
    app.dispatcher.run_due()
    sid = outbox_row(app, incident).provider_message_id
    assert sid is not None
    return sid


def outbox_row(app: Application, incident: str, kind: str = "confirmation") -> OutboxRow:
    with app.db.transaction() as session:
        row = session.get(OutboxRow, text(app, incident, kind).id)
        assert row is not None
        return row


def inbound_rows(app: Application) -> list[InboundMessageRow]:
    with app.db.transaction() as session:
        return list(session.scalars(select(InboundMessageRow).order_by(InboundMessageRow.id)).all())


def replies(app: Application) -> list[OutboxRow]:
    with app.db.transaction() as session:
        return list(
            session.scalars(
                select(OutboxRow).where(OutboxRow.kind == "reply").order_by(OutboxRow.id)
            ).all()
        )


def opted_out(app: Application, phone: str = CALLER) -> bool:
    with app.db.transaction() as session:
        return is_opted_out(session, "default", app.vault.phone_hash(phone))


def count(app: Application, table: Any) -> int:
    with app.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def bodies_to(twilio: TimedFakeTwilio, phone: str = CALLER) -> list[str]:
    return [m.body for m in twilio.messages if m.to == phone]


def assert_no_phone(text: str) -> None:
    assert not PHONE_DIGITS.search(text), text


# --- signatures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forge",
    ["unsigned", "wrong_token", "signed_for_another_url", "tampered_after_signing"],
)
@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_request_without_a_valid_signature_is_refused_and_changes_nothing(
    app: Application, server: LiveServer, twilio: TimedFakeTwilio, forge: str, path: str
) -> None:
    sid = send_confirmation(app)
    form = status_form(sid, "delivered") if path == STATUS else inbound_form("STOP")
    if forge == "unsigned":
        response = post(server, path, form, sign=False)
    elif forge == "wrong_token":
        response = post(server, path, form, token="not-the-auth-token")
    elif forge == "signed_for_another_url":
        response = post(server, path, form, signed_url=server.url + path)
    else:
        signature = twilio_signature(DEFAULT_AUTH_TOKEN, PUBLIC + path, form)
        tampered = {**form, "MessageStatus": "failed", "Body": "START"}
        response = httpx.post(
            server.url + path, data=tampered, headers={"X-Twilio-Signature": signature}
        )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert_no_phone(response.text)
    assert outbox_row(app, "I-1").status == "sent"
    assert not opted_out(app)
    assert count(app, InboundMessageRow) == 0
    assert count(app, PendingReceiptRow) == 0
    assert len(replies(app)) == 0


def test_signature_check_follows_twilios_documented_example() -> None:
    """The test helper that signs requests agrees with Twilio's published example."""
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


# --- status callbacks ----------------------------------------------------------------------


def test_status_moves_forward_only_and_a_replayed_or_late_callback_changes_nothing(
    app: Application, server: LiveServer
) -> None:
    sid = send_confirmation(app)
    for status in ("queued", "sent", "delivered", "delivered", "sent", "undelivered"):
        response = post(server, STATUS, status_form(sid, status))
        assert response.status_code == 200
    row = outbox_row(app, "I-1")
    assert (row.status, row.error_code) == ("delivered", None)
    assert [s for s, _, _ in history(app, row.id)] == ["scheduled", "sending", "sent", "delivered"]


def test_callbacks_out_of_order_end_at_the_final_status(
    app: Application, server: LiveServer
) -> None:
    sid = send_confirmation(app)
    assert post(server, STATUS, status_form(sid, "delivered")).status_code == 200
    assert post(server, STATUS, status_form(sid, "sent")).status_code == 200
    assert post(server, STATUS, status_form(sid, "queued")).status_code == 200
    assert outbox_row(app, "I-1").status == "delivered"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        ("undelivered", "30003", True),  # handset off or out of coverage
        ("undelivered", "30006", False),  # a landline
        ("failed", "30005", False),  # unknown number
        ("failed", "30008", True),  # unknown carrier error
    ],
)
def test_delivery_failure_keeps_the_error_code_and_whether_it_is_retryable(
    app: Application, server: LiveServer, status: str, code: str, retryable: bool
) -> None:
    sid = send_confirmation(app)
    assert post(server, STATUS, status_form(sid, status, code)).status_code == 200
    row = outbox_row(app, "I-1")
    assert (row.status, row.error_code, row.reason) == (status, code, f"{status}:{code}")
    with app.db.transaction() as session:
        part = session.scalar(select(SmsPartRow))
        assert part is not None
        assert (part.error_code, part.error_retryable) == (code, retryable)


def test_carrier_opt_out_code_opts_the_number_out(app: Application, server: LiveServer) -> None:
    sid = send_confirmation(app)
    post(server, STATUS, status_form(sid, "failed", "21610"))
    assert outbox_row(app, "I-1").status == "failed"
    assert opted_out(app)


def test_callback_for_an_unknown_message_is_accepted_and_changes_nothing(
    app: Application, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="callerconnect")
    send_confirmation(app)
    response = post(server, STATUS, status_form("SM" + "f" * 32, "delivered"))
    assert response.status_code == 200
    assert outbox_row(app, "I-1").status == "sent"
    assert "action=sms_receipt_pending" in caplog.text


class CallbackBeforeCommit:
    """The real provider, but Twilio's first callback arrives (and is handled) before
    ``send`` returns — so before the dispatcher can record the sid."""

    name = "twilio"

    def __init__(self, inner: TwilioProvider) -> None:
        self.inner = inner
        self.server: LiveServer | None = None

    def send(self, message: OutgoingSms) -> SendResult:
        result = self.inner.send(message)
        assert self.server is not None
        response = post(self.server, STATUS, status_form(result.provider_message_id, "delivered"))
        assert response.status_code == 200
        return result


def test_callback_that_beats_the_dispatchers_commit_is_applied_when_the_sid_is_recorded(
    app: Application, server: LiveServer
) -> None:
    assert isinstance(app.provider, TwilioProvider)
    early = CallbackBeforeCommit(app.provider)
    early.server = server
    app.dispatcher.agencies = app.agencies.with_provider(early)
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    assert outbox_row(app, "I-1").status == "delivered"
    assert count(app, PendingReceiptRow) == 0


def test_callback_for_a_text_whose_answer_was_lost_adopts_it_so_it_is_not_sent_again(
    make_app: Callable[..., Application],
    twilio: TimedFakeTwilio,
    clock: VirtualClock,
) -> None:
    app = make_app(CALLERCONNECT_SMS__TWILIO__TIMEOUT="1s")
    with LiveServer(create_app(app)) as server:
        twilio.fail_next(1, Fault.SLOW, delay=1.5)  # Twilio takes it, answers too late
        submit(app, received("I-1", T0))
        app.dispatcher.run_due()
        assert text(app, "I-1", "confirmation").reason == "retry:timeout"
        deadline = time.monotonic() + 5
        while not twilio.messages:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [message] = twilio.messages
        callback = urlsplit(message.form["StatusCallback"])
        assert f"{callback.scheme}://{callback.netloc}" == PUBLIC
        path = f"{callback.path}?{callback.query}"
        response = post(server, path, status_form(message.sid, "sent"), signed_url=PUBLIC + path)
        assert response.status_code == 200

        row = outbox_row(app, "I-1")
        assert (row.status, row.provider_message_id) == ("sent", message.sid)
        clock.advance(timedelta(minutes=5))
        app.dispatcher.run_due()
        assert len(twilio.messages) == 1  # not sent a second time
        assert [s for s, _, _ in history(app, row.id)] == [
            "scheduled",
            "sending",
            "scheduled",
            "sending",
            "sent",
        ]


# --- callers' texts --------------------------------------------------------------------------


def test_stop_opts_out_with_one_confirmation_and_then_nothing_more_is_sent(
    app: Application, server: LiveServer, twilio: TimedFakeTwilio
) -> None:
    form = inbound_form(" Stop ")
    response = post(server, INBOUND, form)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    assert opted_out(app)

    assert post(server, INBOUND, form).status_code == 200  # Twilio retries the webhook
    assert post(server, INBOUND, inbound_form("ARRÊT")).status_code == 200  # again
    assert len(inbound_rows(app)) == 2
    [reply] = replies(app)

    app.dispatcher.run_due()
    submit(app, received("I-1", T0))  # a later call from the same phone
    app.dispatcher.run_due()
    [confirmation] = bodies_to(twilio)
    assert "START" in confirmation and "DEBUT" in confirmation  # bilingual: no call known
    assert text(app, "I-1", "confirmation").reason == "suppressed:opted_out"
    row = inbound_rows(app)[0]
    assert (row.classification, row.phone_masked, row.reply_outbox_id) == (
        "opt_out",
        "+1613***0142",
        reply.id,
    )
    assert app.vault.decrypt(row.body_encrypted) == " Stop "


@pytest.mark.parametrize("word", ["STOP", "stop", "  Arret ", "ARRÊT", "arrêt", "STOPALL"])
def test_every_spelling_of_stop_opts_out(app: Application, server: LiveServer, word: str) -> None:
    assert post(server, INBOUND, inbound_form(word)).status_code == 200
    assert opted_out(app)


def test_start_opts_back_in_and_texts_resume(
    app: Application, server: LiveServer, twilio: TimedFakeTwilio
) -> None:
    post(server, INBOUND, inbound_form("STOP"))
    post(server, INBOUND, inbound_form("début"))
    assert not opted_out(app)
    app.dispatcher.run_due()
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    opt_out, opt_in, confirmation = bodies_to(twilio)
    assert "START" in opt_out
    assert "again" in opt_in
    assert "26-00001" in confirmation


def test_help_gets_the_help_text_in_the_language_of_the_callers_last_call(
    app: Application, server: LiveServer, twilio: TimedFakeTwilio
) -> None:
    send_confirmation(app, language="fr")
    assert post(server, INBOUND, inbound_form("aide")).status_code == 200
    app.dispatcher.run_due()
    help_text = bodies_to(twilio)[-1]
    assert "613-236-1222" in help_text and "9-1-1" in help_text
    assert "Police d'Ottawa" in help_text and "Ottawa Police:" not in help_text


def test_any_other_text_gets_the_unmonitored_answer_at_most_once_a_day(
    app: Application, server: LiveServer, twilio: TimedFakeTwilio, clock: VirtualClock
) -> None:
    for body in ("Hello?", "is anyone there", "thanks"):
        assert post(server, INBOUND, inbound_form(body)).status_code == 200
    app.dispatcher.run_due()
    clock.advance(timedelta(days=1))
    post(server, INBOUND, inbound_form("hello again"))
    post(server, INBOUND, inbound_form("Allo?", sender=OTHER))
    app.dispatcher.run_due()
    assert len(bodies_to(twilio)) == 2
    assert len(bodies_to(twilio, OTHER)) == 1
    assert all("not monitored" in body and "9-1-1" in body for body in bodies_to(twilio))
    assert len(inbound_rows(app)) == 5


def test_only_the_opt_out_confirmation_reaches_an_opted_out_number(
    app: Application, server: LiveServer, twilio: TimedFakeTwilio
) -> None:
    post(server, INBOUND, inbound_form("hello"))  # its answer is queued...
    post(server, INBOUND, inbound_form("HELP"))
    post(server, INBOUND, inbound_form("STOP"))  # ... and the caller opts out first
    post(server, INBOUND, inbound_form("hello?"))
    app.dispatcher.run_due()
    [sent] = bodies_to(twilio)
    assert "START" in sent
    reasons = sorted(r.reason or "" for r in replies(app) if r.status == "suppressed")
    assert reasons == ["suppressed:opted_out", "suppressed:opted_out"]


def test_words_of_danger_flag_a_text_for_a_person_and_a_warning(
    app: Application,
    server: LiveServer,
    twilio: TimedFakeTwilio,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:
    post(server, INBOUND, inbound_form("Please HELP me, he has a KNIFE"))
    post(server, INBOUND, inbound_form("À L'AIDE !", sender=OTHER))
    post(server, INBOUND, inbound_form("thank you, all good"))
    flagged = [row for row in inbound_rows(app) if row.flagged]
    assert [row.flag_terms for row in flagged] == ["help me,please help,knife", "à l'aide"]
    warnings = [r for r in caplog.records if "action=inbound_flagged" in r.getMessage()]
    assert [r.levelname for r in warnings] == ["WARNING", "WARNING"]
    assert "+1613***0142" in warnings[0].getMessage()
    # The caller still gets the "not monitored, call 9-1-1" answer.
    app.dispatcher.run_due()
    assert "9-1-1" in bodies_to(twilio)[0]

    monkeypatch.setenv("CALLERCONNECT_DATABASE_URL", database_url)
    monkeypatch.setenv("CALLERCONNECT_SECRET_KEY", TEST_SECRET)
    capsys.readouterr()
    with logging_restored():  # the command configures logging for its process
        assert cli.main(["inbound", "flagged"]) == 0
        listing = capsys.readouterr().out
        assert "he has a KNIFE" in listing and "[help me,please help,knife]" in listing
        assert "+1613***0142" in listing and "5550142" not in listing
        assert cli.main(["inbound", "reviewed", str(flagged[0].id)]) == 0
        capsys.readouterr()
        assert cli.main(["inbound", "flagged"]) == 0
        listing = capsys.readouterr().out
    assert "KNIFE" not in listing and "À L'AIDE" in listing


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    logger = logging.getLogger("callerconnect")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    try:
        yield
    finally:
        for handler in logger.handlers:
            if handler not in saved[0]:
                handler.close()
        logger.handlers[:], logger.propagate, logger.level = saved


def test_phone_numbers_never_appear_in_logs_or_error_bodies(
    app: Application, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    sid = send_confirmation(app)
    bodies = [
        post(server, STATUS, status_form(sid, "undelivered", "30003")).text,
        post(server, STATUS, status_form(sid, "delivered"), sign=False).text,
        post(server, INBOUND, inbound_form("knife, help me")).text,
        post(server, INBOUND, inbound_form("STOP"), token="forged").text,
        post(server, INBOUND, {"MessageSid": "SM1", "From": CALLER}).text,  # not Twilio's: 400
        post(server, INBOUND, {"From": CALLER, "Body": "x"}).text,  # no MessageSid: 400
        post(server, INBOUND, {**inbound_form("x"), "MessageSid": CALLER}).text,
    ]
    app.dispatcher.run_due()
    for body in bodies:
        assert_no_phone(body)
    assert_no_phone(caplog.text)


# --- captured requests replayed with their fields moved --------------------------------------

Pairs = list[tuple[str, str]]


def moved(form: dict[str, str], into: str, *dropped: str) -> Pairs:
    """``form`` with the ``dropped`` fields' names and values appended to ``into``'s value:
    the signed string (sorted ``name+value``, no separator) stays the same when the dropped
    fields come right after ``into`` in sorted order."""
    names = sorted(form)
    start = names.index(into)
    assert names[start + 1 : start + 1 + len(dropped)] == list(dropped)
    swallowed = form[into] + "".join(name + form[name] for name in dropped)
    return [(k, swallowed if k == into else v) for k, v in form.items() if k not in dropped]


def sid_read_twice(form: dict[str, str]) -> Pairs:
    """``MessageSid`` sent twice: ``SmsMessageSid`` ends in ``MessageSid``, so the text
    between the two is re-read as two values of one field (the application reads one)."""
    sid = form["MessageSid"]
    gone = ("NumMedia", "NumSegments", "SmsMessageSid", "SmsSid", "SmsStatus")
    first = sid + "".join(n + form[n] for n in ("NumMedia", "NumSegments")) + "Sms"
    second = sid + "".join(n + form[n] for n in ("SmsSid", "SmsStatus"))
    rest = [(k, v) for k, v in form.items() if k not in gone and k != "MessageSid"]
    return [*rest, ("MessageSid", first), ("MessageSid", second)]


def name_swallows_value(form: dict[str, str], name: str) -> Pairs:
    """A field replaced by one named with its name and value, and empty."""
    return [(k + v, "") if k == name else (k, v) for k, v in form.items()]


INBOUND_VARIANTS: dict[str, Callable[[dict[str, str]], Pairs]] = {
    "sid_swallows_counts": lambda f: moved(f, "MessageSid", "NumMedia", "NumSegments"),
    "sid_swallows_one_count": lambda f: moved(f, "MessageSid", "NumMedia"),
    "count_swallows_old_sid": lambda f: moved(f, "NumSegments", "SmsMessageSid"),
    "body_swallows_sender": lambda f: moved(f, "Body", "From"),
    "account_swallows_version": lambda f: moved(f, "AccountSid", "ApiVersion"),
    "sid_read_twice": sid_read_twice,
    "sid_in_a_name": lambda f: name_swallows_value(f, "MessageSid"),
    "reordered": lambda f: list(reversed(f.items())),
    "exact": lambda f: list(f.items()),
}


def replay(
    server: LiveServer, path: str, captured: dict[str, str], fields: Pairs
) -> httpx.Response:
    """Send ``fields`` with the signature Twilio gave ``captured``, after checking that
    the ``twilio`` library the application uses still finds that signature valid."""
    signature = twilio_signature(DEFAULT_AUTH_TOKEN, PUBLIC + path, captured)
    assert RequestValidator(DEFAULT_AUTH_TOKEN).validate(
        PUBLIC + path, ImmutableMultiDict(fields), signature
    )
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    headers = {"X-Twilio-Signature": signature}
    return httpx.post(server.url + path, data=data, headers=headers, timeout=10)


@pytest.mark.parametrize("variant", list(INBOUND_VARIANTS))
def test_captured_start_replayed_with_fields_moved_does_not_opt_back_in(
    app: Application, server: LiveServer, twilio: TimedFakeTwilio, variant: str
) -> None:
    start = inbound_form("START")
    assert post(server, INBOUND, start).status_code == 200
    assert post(server, INBOUND, inbound_form("STOP")).status_code == 200
    assert opted_out(app)
    before = (len(inbound_rows(app)), len(replies(app)))

    response = replay(server, INBOUND, start, INBOUND_VARIANTS[variant](start))

    if variant in ("reordered", "exact"):  # the same message again: Twilio's retry
        assert response.status_code == 200
    else:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "bad_request"
        assert_no_phone(response.text)
    assert opted_out(app)
    assert (len(inbound_rows(app)), len(replies(app))) == before
    submit(app, received("I-1", T0))  # the caller's next call is not texted
    app.dispatcher.run_due()
    assert text(app, "I-1", "confirmation").reason == "suppressed:opted_out"


@pytest.mark.parametrize("variant", ["sid_swallows_counts", "sid_read_twice", "exact"])
def test_captured_stop_replayed_with_fields_moved_does_not_opt_out_again(
    app: Application, server: LiveServer, variant: str
) -> None:
    stop = inbound_form("STOP")
    assert post(server, INBOUND, stop).status_code == 200
    assert post(server, INBOUND, inbound_form("START")).status_code == 200
    assert not opted_out(app)

    replay(server, INBOUND, stop, INBOUND_VARIANTS[variant](stop))

    assert not opted_out(app)
    assert len(inbound_rows(app)) == 2


STATUS_VARIANTS: dict[str, Callable[[dict[str, str]], Pairs]] = {
    "sid_swallows_status": lambda f: moved(f, "MessageSid", "MessageStatus"),
    "error_swallows_sender": lambda f: moved(f, "ErrorCode", "From"),
    "version_swallows_error": lambda f: moved(f, "ApiVersion", "ErrorCode"),
    "old_sid_swallows_old_status": lambda f: moved(f, "SmsSid", "SmsStatus"),
    "sid_in_a_name": lambda f: name_swallows_value(f, "MessageSid"),
    "status_in_a_name": lambda f: name_swallows_value(f, "MessageStatus"),
    "reordered": lambda f: list(reversed(f.items())),
    "exact": lambda f: list(f.items()),
}


@pytest.mark.parametrize("variant", list(STATUS_VARIANTS))
def test_captured_carrier_opt_out_callback_replayed_with_fields_moved_changes_nothing(
    app: Application, server: LiveServer, variant: str
) -> None:
    sid = send_confirmation(app)
    captured = status_form(sid, "failed", "21610")
    assert post(server, STATUS, captured).status_code == 200
    assert opted_out(app)
    assert post(server, INBOUND, inbound_form("START")).status_code == 200
    assert not opted_out(app)

    response = replay(server, STATUS, captured, STATUS_VARIANTS[variant](captured))

    assert response.status_code == (200 if variant in ("reordered", "exact") else 400)
    assert not opted_out(app)
    assert count(app, PendingReceiptRow) == 0
    row = outbox_row(app, "I-1")
    assert (row.status, row.error_code) == ("failed", "21610")


@pytest.mark.parametrize(
    ("path", "change"),
    [
        (INBOUND, {"MessageSid": "SM" + "0" * 31}),  # a digit short
        (INBOUND, {"MessageSid": "XX" + "0" * 32}),  # not a message's prefix
        (INBOUND, {"SmsSid": "SM" + "f" * 32}),  # disagrees with MessageSid
        (INBOUND, {"NumMedia": None}),  # a field Twilio always sends
        (INBOUND, {"Body": None}),
        (INBOUND, {"From-City": "OTTAWA"}),  # not a name Twilio uses
        (STATUS, {"SmsStatus": "delivered"}),  # disagrees with MessageStatus
        (STATUS, {"AccountSid": None}),
        (STATUS, {"ApiVersion": "2010-04-01x"}),
    ],
)
def test_signed_form_in_a_shape_twilio_never_sends_is_400_and_changes_nothing(
    app: Application, server: LiveServer, path: str, change: dict[str, str | None]
) -> None:
    sid = send_confirmation(app)
    form = status_form(sid, "failed", "21610") if path == STATUS else inbound_form("STOP")
    for name, value in change.items():
        if value is None:
            del form[name]
        else:
            form[name] = value

    response = post(server, path, form)  # signed as Twilio would sign it

    assert response.status_code == 400
    assert not opted_out(app)
    assert outbox_row(app, "I-1").status == "sent"
    assert count(app, InboundMessageRow) == 0


def test_a_message_sid_twilio_gives_to_media_messages_is_accepted(
    app: Application, server: LiveServer
) -> None:
    form = inbound_form("STOP", sid="MM" + "0123456789abcdef" * 2)
    assert post(server, INBOUND, form).status_code == 200
    assert opted_out(app)
