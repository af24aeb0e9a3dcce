"""The SMPP provider against a real SMPP 3.4 server (smpp34's SMSC) on 127.0.0.1.

The application is wired as ``callerconnect worker`` wires it: the provider built from
the settings, bound, with receipts and callers' texts going to the database through the
same services as Twilio's webhooks. Time is the virtual clock (waits for a rate slot or a
throttling pause pass instantly); the link itself is real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import smpp34
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.repositories.phones import is_opted_out
from callerconnect.adapters.db.tables import (
    InboundMessageRow,
    OutboxRow,
    PendingReceiptRow,
    RateLimitRow,
    SmsPartRow,
)
from callerconnect.adapters.sms.base import InboundSms, StatusReport
from callerconnect.adapters.sms.smpp import SmppProvider
from callerconnect.adapters.sms.smpp_deliver import ESME_RX_T_APPN
from callerconnect.bootstrap import Application, ProviderSink, build_provider
from callerconnect.clock import VirtualClock
from callerconnect.domain.sms_encoding import segment_count
from callerconnect.service.dispatcher import SMS_RATE
from tests.conftest import T0, make_settings
from tests.support.dispatch import history, received, submit, text, texts
from tests.support.smsc import FakeSmsc

AppFactory = Callable[..., Application]
CALLER = "+16135550142"
CALLER_SMPP = "16135550142"  # destination_addr: E.164 digits, TON 1 (international)
SENDER_SMPP = "13438036032"


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def smsc() -> Iterator[FakeSmsc]:
    with FakeSmsc() as server:
        yield server
    assert not server.errors, server.errors


def smpp_env(smsc: FakeSmsc, **extra: str) -> dict[str, str]:
    return {
        "CALLERCONNECT_SMS__PROVIDER": "smpp",
        "CALLERCONNECT_SMS__SMPP__HOST": "127.0.0.1",
        "CALLERCONNECT_SMS__SMPP__PORT": str(smsc.port),
        "CALLERCONNECT_SMS__SMPP__SYSTEM_ID": "callerconnect",
        "CALLERCONNECT_SMS__SMPP__PASSWORD": "secret",
        "CALLERCONNECT_WORKER__RETRY_BASE": "1s",
        **extra,
    }


@pytest.fixture
def make_app(
    app_factory: AppFactory, database_url: str, smsc: FakeSmsc
) -> Iterator[Callable[..., Application]]:
    providers: list[SmppProvider] = []

    def make(**extra: str) -> Application:
        env = smpp_env(smsc, **extra)
        provider = build_provider(make_settings(database_url, **env))
        assert isinstance(provider, SmppProvider)
        providers.append(provider)
        app = app_factory(database_url, provider=provider, **env)
        provider.start()  # as the worker does (Dispatcher.run_forever)
        assert provider.wait_bound(10), "no bind"
        return app

    yield make
    for provider in providers:  # unbind before the SMSC goes away
        provider.close()


@pytest.fixture
def app(make_app: Callable[..., Application]) -> Application:
    return make_app()


def provider_of(app: Application) -> SmppProvider:
    assert isinstance(app.provider, SmppProvider)
    return app.provider


def status_of(app: Application, incident: str, kind: str = "confirmation") -> str:
    return text(app, incident, kind).status


def wait_status(app: Application, incident: str, status: str, kind: str = "confirmation") -> None:
    wait_until(lambda: status_of(app, incident, kind) == status, f"{incident} {status}")


def parts(app: Application) -> list[SmsPartRow]:
    with app.db.transaction() as session:
        return list(session.scalars(select(SmsPartRow).order_by(SmsPartRow.id)).all())


def add_reply(app: Application, body: str, key: str = "default:reply:test:x:1") -> int:
    with app.db.transaction() as session:
        row = Outbox(session).add_reply(
            agency_id="default",
            key=key,
            phone_encrypted=app.vault.encrypt(CALLER),
            phone_hash=app.vault.phone_hash(CALLER),
            language="en",
            body=body,
            encoding="GSM-7",
            segments=segment_count(body),
            now=app.clock.now(),
            expires_after=timedelta(hours=1),
        )
        assert row is not None
        return row.id


# --- sending ----------------------------------------------------------------------------


def test_confirmation_goes_over_the_bind_and_its_receipt_marks_it_delivered(
    app: Application, smsc: FakeSmsc
) -> None:
    submit(app, received("I-1", T0))
    assert app.dispatcher.run_due() == 1
    wait_status(app, "I-1", "delivered")

    [sub] = smsc.accepted
    confirmation = text(app, "I-1", "confirmation")
    assert sub.text == app_body(app, confirmation.id)
    assert (sub.data_coding, sub.esm_class) == (0, 0)  # GSM-7 default alphabet, one part
    assert (sub.destination, sub.dest_ton) == (CALLER_SMPP, 1)
    assert (sub.source, sub.source_ton) == (SENDER_SMPP, 1)
    assert sub.registered_delivery == 1  # a receipt for the final outcome
    [pdu] = smsc.client_submits
    # The confirmation may wait 12 h; networks get at most 10 h, relative.
    assert pdu.validity_period == "000000100000000R"
    [part] = parts(app)
    assert (part.message_id, part.status, part.parts) == (sub.message_id.lower(), "delivered", 1)
    assert [s for s, _, _ in history(app, confirmation.id)] == [
        "scheduled",
        "sending",
        "sent",
        "delivered",
    ]


def test_a_text_held_past_its_rate_slot_before_its_submit_sm_is_not_submitted(
    app: Application, smsc: FakeSmsc
) -> None:
    """The rate slot is checked on the link's loop, just before the submit_sm is written
    (a starved machine can hold the hand-off to the loop past the slot): a text too late
    is not submitted, goes back to the queue without a failure, and goes in a later slot."""
    pacing = app.dispatcher.pacing
    in_time = pacing.in_time
    asked: list[bool] = []

    def late_once(slot: Any) -> bool:
        answer = bool(asked) and in_time(slot)
        asked.append(answer)
        return answer

    pacing.in_time = late_once  # type: ignore[method-assign]
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()  # missed its slot at the link, back in the queue, sent again
    wait_status(app, "I-1", "delivered")
    confirmation = text(app, "I-1", "confirmation")
    assert asked == [False, True]
    assert len(smsc.submitted) == 1  # the late one was never written
    assert [s for s, _, _ in history(app, confirmation.id)] == [
        "scheduled",
        "sending",
        "scheduled",
        "sending",
        "sent",
        "delivered",
    ]


def app_body(app: Application, outbox_id: int) -> str:
    with app.db.transaction() as session:
        row = session.get(OutboxRow, outbox_id)
        assert row is not None and row.body is not None
        return row.body


@pytest.mark.parametrize(
    ("body", "data_coding"),
    [
        pytest.param(
            "Ottawa Police: " + "a long text that needs several parts, {with} € signs. " * 6,
            0,
            id="gsm7",
        ),
        pytest.param("Police d'Ottawa : ça va ? 😀 Merci. " * 6, 8, id="ucs2"),
    ],
)
def test_long_text_is_concatenated_and_delivered_when_every_part_is(
    app: Application, smsc: FakeSmsc, body: str, data_coding: int
) -> None:
    smsc.behaviour.hold_receipts = True
    outbox_id = add_reply(app, body)
    assert app.dispatcher.run_due() == 1

    expected_parts = segment_count(body)
    assert expected_parts >= 3
    sent = smsc.accepted
    assert len(sent) == expected_parts
    assert smsc.texts_to(CALLER_SMPP) == [body]
    assert {s.data_coding for s in sent} == {data_coding}
    assert {s.esm_class for s in sent} == {0x40}  # UDHI: a user-data header per part
    references = {s.concatenation[0] for s in sent if s.concatenation}
    assert len(references) == 1
    assert [s.concatenation[1:] for s in sent if s.concatenation] == [
        (expected_parts, n) for n in range(1, expected_parts + 1)
    ]
    recorded = parts(app)
    assert [p.message_id for p in recorded] == [s.message_id.lower() for s in sent if s.message_id]
    assert [p.part_number for p in recorded] == list(range(1, expected_parts + 1))

    smsc.release_receipts(expected_parts - 1)
    wait_until(
        lambda: part_and_text_statuses(app, outbox_id)[0].count("delivered") == expected_parts - 1,
        "the first receipts",
    )
    assert part_and_text_statuses(app, outbox_id)[1] == "sent"  # not before every part
    smsc.release_receipts()
    wait_until(lambda: part_and_text_statuses(app, outbox_id)[1] == "delivered", "the last")


def part_and_text_statuses(app: Application, outbox_id: int) -> tuple[tuple[str, ...], str]:
    """One statement, so one consistent snapshot of the parts and their text."""
    with app.db.transaction() as session:
        rows = session.execute(
            select(SmsPartRow.status, OutboxRow.status)
            .join(OutboxRow, OutboxRow.id == SmsPartRow.outbox_id)
            .where(OutboxRow.id == outbox_id)
            .order_by(SmsPartRow.part_number)
        ).all()
    return tuple(part for part, _ in rows), rows[0][1]


def test_undeliverable_receipt_records_the_error_and_its_classification(
    app: Application, smsc: FakeSmsc
) -> None:
    smsc.behaviour.failures[CALLER_SMPP] = ("UNDELIV", "034")
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    wait_status(app, "I-1", "undelivered")
    confirmation = text(app, "I-1", "confirmation")
    assert confirmation.error_code == "034"
    assert confirmation.reason == "undelivered:034"
    [part] = parts(app)
    assert (part.status, part.error_code, part.error_retryable) == ("undelivered", "034", False)


@pytest.mark.parametrize(
    ("id_base", "receipt_base"),
    [("hex", "decimal"), ("decimal", "hex"), ("hex", "same"), ("decimal", "same")],
)
def test_receipts_are_matched_whether_they_quote_the_id_in_hex_or_decimal(
    app: Application, smsc: FakeSmsc, id_base: str, receipt_base: str
) -> None:
    smsc.behaviour.id_base = id_base
    smsc.behaviour.receipt_base = receipt_base
    for n in range(3):
        submit(app, received(f"I-{n}", T0, phone=f"613-555-01{n:02d}", case_number=f"26-{n}"))
    assert app.dispatcher.run_due() == 3
    for n in range(3):
        wait_status(app, f"I-{n}", "delivered")


def test_receipt_that_comes_before_the_submit_sm_resp_is_applied(
    app: Application, smsc: FakeSmsc
) -> None:
    smsc.behaviour.receipt_before_resp = True
    smsc.behaviour.receipt_base = "decimal"  # and in the other base, for good measure
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    wait_status(app, "I-1", "delivered")
    with app.db.transaction() as session:
        assert session.scalar(select(func.count(PendingReceiptRow.id))) == 0


# --- what callers send ----------------------------------------------------------------------


def inbound_rows(app: Application) -> list[InboundMessageRow]:
    with app.db.transaction() as session:
        return list(session.scalars(select(InboundMessageRow).order_by(InboundMessageRow.id)).all())


def test_stop_sent_over_smpp_opts_out_and_gets_one_confirmation_over_smpp(
    app: Application, smsc: FakeSmsc
) -> None:
    smsc.send_mo(CALLER, " Stop ")
    wait_until(lambda: len(inbound_rows(app)) == 1, "the inbound text")
    [row] = inbound_rows(app)
    assert (row.provider, row.classification, row.phone_masked) == (
        "smpp",
        "opt_out",
        "+1613***0142",
    )
    with app.db.transaction() as session:
        assert is_opted_out(session, "default", app.vault.phone_hash(CALLER))

    assert app.dispatcher.run_due() == 1  # the confirmation of the opt-out
    submit(app, received("I-1", T0))  # a later call from the same phone
    app.dispatcher.run_due()
    [confirmation] = smsc.texts_to(CALLER_SMPP)  # bilingual: two parts, one text
    assert "START" in confirmation and "DEBUT" in confirmation
    assert text(app, "I-1", "confirmation").reason == "suppressed:opted_out"


def test_long_text_from_a_caller_is_reassembled_and_words_of_danger_flag_it(
    app: Application, smsc: FakeSmsc, caplog: pytest.LogCaptureFixture
) -> None:
    body = "Au secours, il a un couteau 😨 " + "je suis dans la cuisine, " * 8
    smsc.send_mo(CALLER, body)
    wait_until(lambda: len(inbound_rows(app)) == 1, "the inbound text")
    provider_of(app).drain_events()  # the handler logs after its commit
    [row] = inbound_rows(app)
    assert app.vault.decrypt(row.body_encrypted) == body
    assert row.flagged
    assert row.flag_terms == "au secours,couteau*"
    assert row.classification == "other"
    flagged = [r for r in caplog.records if "action=inbound_flagged" in r.getMessage()]
    assert flagged and flagged[0].levelname == "WARNING"
    assert "+1613***0142" in flagged[0].getMessage()
    assert "5550142" not in caplog.text


# --- throttling and a dropped link ------------------------------------------------------------


@pytest.mark.parametrize("status", [smpp34.ESME_RTHROTTLED, smpp34.ESME_RMSGQFUL])
def test_throttling_pauses_every_sender_and_fails_nothing(
    app: Application, smsc: FakeSmsc, clock: VirtualClock, status: int
) -> None:
    smsc.refuse_next(2, status)
    for n in range(3):
        submit(app, received(f"I-{n}", T0, phone=f"613-555-01{n:02d}", case_number=f"26-{n}"))
    started = clock.now()
    app.dispatcher.run_due()
    for n in range(3):
        wait_status(app, f"I-{n}", "delivered")

    refused = [s for s in smsc.submitted if s.message_id is None]
    assert [s.status for s in refused] == [status, status]
    for n in range(3):  # each caller got exactly one text
        assert len(smsc.texts_to(f"161355501{n:02d}")) == 1
    for n in range(3):  # being told to slow down is not a failed attempt
        assert text(app, f"I-{n}", "confirmation").attempts == 1
    throttled = text(app, "I-0", "confirmation")
    assert "retry:throttled" in [reason for _, reason, _ in history(app, throttled.id)]
    # Every sender paused (the shared slot), one second per throttling answer.
    assert clock.now() - started >= timedelta(seconds=2)
    with app.db.transaction() as session:
        slot = session.get(RateLimitRow, SMS_RATE)
        assert slot is not None and slot.next_slot_at >= started + timedelta(seconds=2)


def test_dropped_link_is_bound_again_and_the_backlog_drains(
    app: Application, smsc: FakeSmsc, clock: VirtualClock
) -> None:
    provider = provider_of(app)
    for n in range(2):
        submit(app, received(f"I-{n}", T0, phone=f"613-555-01{n:02d}", case_number=f"26-{n}"))
    assert app.dispatcher.run_due() == 2

    smsc.drop_links()
    wait_until(lambda: not provider.is_bound, "the link to drop")
    for n in range(2, 8):
        submit(app, received(f"I-{n}", T0, phone=f"613-555-01{n:02d}", case_number=f"26-{n}"))

    deadline = time.monotonic() + 20
    while any(t.status in ("scheduled", "sending") for t in texts(app) if t.kind == "confirmation"):
        assert time.monotonic() < deadline, texts(app)
        app.dispatcher.run_due()
        clock.advance(timedelta(seconds=1))
        time.sleep(0.05)
    for n in range(8):
        wait_status(app, f"I-{n}", "delivered")
        assert len(smsc.texts_to(f"161355501{n:02d}")) == 1
    assert smsc.binds == 2 and provider.binds == 2


def test_send_without_a_bind_is_a_retryable_outage(
    make_app: Callable[..., Application], smsc: FakeSmsc, clock: VirtualClock
) -> None:
    app = make_app()
    provider_of(app).close()  # the SMSC is unreachable from now on
    smsc.drop_links()
    submit(app, received("I-1", T0))
    unreachable = SmppProvider(
        "127.0.0.1", 1, "callerconnect", "secret", sender="+13438036032", bind_wait=0.2
    )
    try:
        app.dispatcher.agencies = app.agencies.with_provider(unreachable)
        app.dispatcher.run_due()
    finally:
        unreachable.close()
    confirmation = text(app, "I-1", "confirmation")
    assert (confirmation.status, confirmation.reason) == ("scheduled", "retry:unavailable")


# --- acknowledging deliver_sm only once it is recorded --------------------------------------
#
# An SMSC forgets a deliver_sm once it got ESME_ROK for it. smpp34's client answers ESME_ROK
# before Python sees the PDU; the provider answers them itself (adapters/sms/smpp_relay.py,
# _AckRelay), after the commit, or with a temporary error the SMSC retries.


class Sink:
    """The application's own sink (receipts, inbound handler) with two switches: ``down``
    makes every call fail the way a database outage does, before anything is written;
    ``gate`` holds every call until it is set (a slow or stuck worker)."""

    def __init__(self, app: Application) -> None:
        self.inner = ProviderSink(app.receipts, app.inbound, "smpp")
        self.down = False
        self.gate: threading.Event | None = None
        self.calls = 0
        self.entered = threading.Event()
        self.returned_at: list[float] = []  # time.monotonic() after each commit

    def _run(self, call: Callable[[], None]) -> None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        if self.down:
            raise OperationalError("INSERT …", {}, ConnectionError("database is down"))
        call()
        self.returned_at.append(time.monotonic())

    def status(self, report: StatusReport) -> None:
        self._run(lambda: self.inner.status(report))

    def inbound(self, message: InboundSms) -> None:
        self._run(lambda: self.inner.inbound(message))


def attach_sink(app: Application) -> Sink:
    sink = Sink(app)
    provider_of(app).attach(sink)
    return sink


def opted_out(app: Application) -> bool:
    with app.db.transaction() as session:
        return is_opted_out(session, "default", app.vault.phone_hash(CALLER))


def test_stop_is_acknowledged_only_after_it_is_committed(app: Application, smsc: FakeSmsc) -> None:
    sink = attach_sink(app)
    sink.gate = threading.Event()
    smsc.send_mo(CALLER, "STOP", wait=False)
    assert sink.entered.wait(10)
    time.sleep(0.5)  # ample time for a deliver_sm_resp, were one sent now
    assert smsc.statuses("mo") == []  # the SMSC still owns the text
    assert inbound_rows(app) == []

    sink.gate.set()
    wait_until(lambda: smsc.statuses("mo") == [0], "the deliver_sm_resp")
    [delivery] = smsc.deliveries
    [committed] = sink.returned_at
    assert delivery.answered_at >= committed
    [row] = inbound_rows(app)
    assert row.classification == "opt_out" and opted_out(app)


def test_stop_that_cannot_be_recorded_is_refused_for_now_and_delivered_again(
    app: Application, smsc: FakeSmsc
) -> None:
    sink = attach_sink(app)
    sink.down = True
    smsc.send_mo(CALLER, "STOP", wait=False)
    wait_until(lambda: len(smsc.statuses("mo")) >= 2, "a second delivery")
    assert set(smsc.statuses("mo")) == {ESME_RX_T_APPN}  # "temporary app error": retry
    assert inbound_rows(app) == [] and not opted_out(app)

    sink.down = False  # the database is back
    wait_until(lambda: smsc.statuses("mo")[-1] == 0, "the STOP accepted")
    *refused, accepted = smsc.statuses("mo")
    assert len(refused) >= 2 and set(refused) == {ESME_RX_T_APPN} and accepted == 0
    [row] = inbound_rows(app)  # recorded exactly once
    assert row.classification == "opt_out" and opted_out(app)
    assert app.dispatcher.run_due() == 1  # one confirmation of the opt-out
    [confirmation] = smsc.texts_to(CALLER_SMPP)
    assert "START" in confirmation
    submit(app, received("I-1", T0))  # and the caller is not texted again
    app.dispatcher.run_due()
    assert text(app, "I-1", "confirmation").reason == "suppressed:opted_out"
    assert len(smsc.texts_to(CALLER_SMPP)) == 1


def test_the_refusal_status_is_the_one_configured_for_this_smsc(
    make_app: Callable[..., Application], smsc: FakeSmsc
) -> None:
    """Some SMSCs retry only on ESME_RSYSERR: ``sms.smpp.retry_status`` says so."""
    app = make_app(CALLERCONNECT_SMS__SMPP__RETRY_STATUS="0x08")
    sink = attach_sink(app)
    sink.down = True
    smsc.send_mo(CALLER, "STOP", wait=False)
    wait_until(lambda: len(smsc.statuses("mo")) >= 2, "a second delivery")
    assert set(smsc.statuses("mo")) == {0x08}
    sink.down = False
    wait_until(lambda: smsc.statuses("mo")[-1] == 0, "the STOP accepted")
    assert opted_out(app)


def test_receipt_that_cannot_be_recorded_is_delivered_again(
    app: Application, smsc: FakeSmsc
) -> None:
    sink = attach_sink(app)
    sink.down = True
    submit(app, received("I-1", T0))
    assert app.dispatcher.run_due() == 1
    wait_until(lambda: len(smsc.statuses("receipt")) >= 2, "a second delivery")
    assert set(smsc.statuses("receipt")) == {ESME_RX_T_APPN}
    assert status_of(app, "I-1") == "sent"

    sink.down = False
    wait_status(app, "I-1", "delivered")
    wait_until(lambda: smsc.statuses("receipt")[-1] == 0, "the receipt accepted")
    assert len(smsc.accepted) == 1


@pytest.mark.parametrize("committed", [False, True], ids=["died-before-commit", "committed"])
def test_text_whose_answer_was_lost_with_the_link_is_delivered_again_and_stored_once(
    app: Application, smsc: FakeSmsc, committed: bool
) -> None:
    """The worker's crash window: the link (or the process holding it) goes before the
    deliver_sm_resp. Without an answer the SMSC delivers the text again on the next bind.
    If the first copy was committed, the second is recognised (same id) and stored once."""
    provider = provider_of(app)
    sink = attach_sink(app)
    sink.gate = threading.Event()
    sink.down = not committed
    smsc.send_mo(CALLER, "STOP", wait=False)
    assert sink.entered.wait(10)
    smsc.drop_links()
    wait_until(lambda: not provider.is_bound, "the link to drop")
    sink.gate.set()  # the handler ends while there is no link to answer on
    wait_until(lambda: sink.calls >= (1 if committed else 3), "the first delivery handled")
    provider.drain_events()
    sink.down = False

    wait_until(lambda: smsc.statuses("mo")[-1:] == [0], "the text delivered again", timeout=20)
    first, *retried, accepted = smsc.statuses("mo")
    assert first is None  # no answer: the link was gone
    assert set(retried) <= {ESME_RX_T_APPN} and accepted == 0
    assert smsc.binds == 2
    [row] = inbound_rows(app)
    assert row.classification == "opt_out" and opted_out(app)


def test_long_text_whose_last_part_cannot_be_recorded_is_completed_on_redelivery(
    app: Application, smsc: FakeSmsc
) -> None:
    body = "STOP please, and " + "do not text me about this call again. " * 5
    sink = attach_sink(app)
    sink.down = True
    smsc.send_mo(CALLER, body, wait=False)
    total = segment_count(body)
    assert total >= 2
    # The first parts are acknowledged at once (nothing to record yet); the last, which
    # completes the text, is refused until the text is recorded.
    wait_until(lambda: len(smsc.statuses("mo")) >= total + 1, "the last part again")
    assert smsc.statuses("mo")[: total - 1] == [0] * (total - 1)
    assert set(smsc.statuses("mo")[total - 1 :]) == {ESME_RX_T_APPN}

    sink.down = False
    wait_until(lambda: smsc.statuses("mo")[-1] == 0, "the last part accepted")
    [row] = inbound_rows(app)
    assert app.vault.decrypt(row.body_encrypted) == body
