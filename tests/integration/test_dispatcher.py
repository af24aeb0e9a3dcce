"""The outbox and the dispatcher on real databases (SQLite and PostgreSQL).

Time is the virtual clock: a test moves it and runs one dispatcher pass
(``app.dispatcher.run_due()``), as a worker does each poll. The console provider
remembers what it "sent"; the Twilio tests go through the real Twilio provider to a
Twilio-compatible HTTP server that can be told to fail.

A few tests call the dispatcher's two halves, ``_claim()`` and ``_handle(id)``,
separately: that is the only way to make something happen exactly between a text being
claimed and it being sent, which is what the re-check before send is for.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient

from callerconnect.adapters.db.repositories.call_batch import CallBatch
from callerconnect.adapters.db.repositories.outbox import IllegalTransition, Outbox
from callerconnect.adapters.db.repositories.phones import set_opt_out
from callerconnect.adapters.db.tables import (
    CadEventRow,
    CallRow,
    DeadLetterRow,
    OptOutRow,
    OutboxRow,
)
from callerconnect.adapters.sms.base import OutgoingSms, SendResult
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application, build_provider
from callerconnect.clock import SystemClock, VirtualClock
from callerconnect.domain.messages import TextStatus
from callerconnect.service.dispatcher import RATE_HEADROOM, Dispatcher
from callerconnect.service.send_recheck import Recheck
from tests.conftest import T0, make_settings
from tests.support.dispatch import (
    TimedFakeTwilio,
    assert_histories_valid,
    event,
    gaps,
    history,
    most_in_window,
    other_worker,
    received,
    submit,
    text,
    texts,
    twilio_env,
)
from tests.support.fake_twilio import Fault

TORONTO = ZoneInfo("America/Toronto")
PHONE = "+16135550142"  # received() gives "613-555-0142"; stored and sent in E.164


def local(hour: int, minute: int = 0, second: int = 0, *, day: int = 16) -> datetime:
    return datetime(2026, 1, day, hour, minute, second, tzinfo=TORONTO)


def sent_refs(console: ConsoleProvider) -> list[str]:
    """The outbox keys of the texts the console provider sent, in order."""
    return [message.reference for _, message in console.sent]


AppFactory = Callable[..., Application]


# --- timing, order, exactly once ------------------------------------------------------


def test_texts_go_out_at_their_moment_not_before_and_once(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    submit(app, received("I-1", T0))  # priority 4: delay notice after 60 minutes
    assert app.dispatcher.run_due() == 1
    assert sent_refs(console) == ["default:I-1:confirmation:0"]
    assert "26-00001" in console.sent[0][1].body

    clock.advance(timedelta(minutes=59, seconds=59))
    assert app.dispatcher.run_due() == 0
    clock.set(T0 + timedelta(minutes=60))
    assert app.dispatcher.run_due() == 1
    assert sent_refs(console)[-1] == "default:I-1:delay_notice:0"

    cleared_at = T0 + timedelta(minutes=70)
    clock.set(cleared_at)
    submit(
        app,
        event("I-1", "unit.dispatched", cleared_at - timedelta(minutes=5)),
        event("I-1", "call.cleared", cleared_at),
    )
    clock.set(cleared_at + timedelta(minutes=14, seconds=59))  # survey 15 minutes after
    assert app.dispatcher.run_due() == 0
    clock.set(cleared_at + timedelta(minutes=15))
    assert app.dispatcher.run_due() == 1
    survey = console.sent[-1][1]
    assert survey.reference == "default:I-1:survey_invitation:0"
    assert "/s/" in survey.body

    for _ in range(3):  # later passes, days later: nothing goes out again
        clock.advance(timedelta(days=1))
        assert app.dispatcher.run_due() == 0
    assert sorted(sent_refs(console)) == [
        "default:I-1:confirmation:0",
        "default:I-1:delay_notice:0",
        "default:I-1:survey_invitation:0",
    ]

    # Each text: scheduled when the event came in, sending and sent at its moment.
    moments = {
        "confirmation": (T0, T0),
        "delay_notice": (T0, T0 + timedelta(minutes=60)),
        "survey_invitation": (cleared_at, cleared_at + timedelta(minutes=15)),
    }
    for kind, (created, due) in moments.items():
        t = text(app, "I-1", kind)
        assert t.status == TextStatus.SENT and t.attempts == 1
        assert t.sent_at is not None
        assert due <= t.sent_at < due + timedelta(seconds=1)
        steps = history(app, t.id)
        assert [s for s, _, _ in steps] == ["scheduled", "sending", "sent"]
        assert steps[0][2] == created
        assert due <= steps[1][2] <= steps[2][2] == t.sent_at
    assert_histories_valid(app)


def test_due_texts_go_in_priority_order_confirmation_then_delay_then_survey(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    # Created survey first and confirmation last, with the delay notice due earliest:
    # neither the row order nor the due time is the sending order.
    clock.set(T0 - timedelta(minutes=50))  # the worker is down from here until T0
    submit(
        app,
        received("I-SURVEY", T0 - timedelta(hours=3), phone="613-555-0101"),
        event("I-SURVEY", "call.cleared", T0 - timedelta(hours=1)),  # survey due T0-45m
        received("I-DELAY", T0 - timedelta(hours=2), phone="613-555-0102", case_number=None),
    )
    clock.set(T0)
    submit(app, received("I-CONF", T0 - timedelta(minutes=1), phone="613-555-0103"))
    due = {(t.incident, t.kind): t.not_before for t in texts(app) if t.status == "scheduled"}
    delay, survey = due[("I-DELAY", "delay_notice")], due[("I-SURVEY", "survey_invitation")]
    assert delay < survey < due[("I-CONF", "confirmation")] <= T0

    assert app.dispatcher.run_due() == 3
    assert sent_refs(console) == [
        "default:I-CONF:confirmation:0",
        "default:I-DELAY:delay_notice:0",
        "default:I-SURVEY:survey_invitation:0",
    ]
    assert_histories_valid(app)


def test_priority_order_holds_when_claiming_one_text_at_a_time(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, console: ConsoleProvider
) -> None:
    app = app_factory(database_url, CALLERCONNECT_WORKER__BATCH_SIZE="1")
    clock.set(T0 - timedelta(minutes=50))
    submit(
        app,
        received("I-S", T0 - timedelta(hours=3), phone="613-555-0101"),
        event("I-S", "call.cleared", T0 - timedelta(hours=1)),
        received("I-D", T0 - timedelta(hours=2), phone="613-555-0102", case_number=None),
    )
    clock.set(T0)
    submit(app, received("I-C", T0 - timedelta(minutes=1), phone="613-555-0103"))
    assert app.dispatcher.run_due() == 3
    assert [ref.split(":")[2] for ref in sent_refs(console)] == [
        "confirmation",
        "delay_notice",
        "survey_invitation",
    ]


def test_call_state_and_its_outbox_rows_commit_together_or_not_at_all(
    app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away mid-transaction")

    monkeypatch.setattr(CallBatch, "cancel_pending", broken)
    submit(app, received("I-1", T0))
    with pytest.raises(RuntimeError):
        app.intake.submit(event("I-1", "call.updated", T0, risk_flag=True), "test")
    # Neither the risk flag nor the cancellation was stored without the other: the
    # texts still wait, the call is unchanged, and the event is kept for a replay.
    with app.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CadEventRow)) == 1
        assert session.scalar(select(CallRow.risk_flag)) is False
        letter = session.scalars(select(DeadLetterRow)).one()
        assert letter.error_code == "internal"
    assert {t.status for t in texts(app)} == {"scheduled"}
    monkeypatch.undo()
    assert app.dispatcher.run_due() == 1  # the first event's confirmation
    replayed = app.intake.submit(event("I-1", "call.updated", T0, risk_flag=True), "test")
    assert replayed.status == "accepted"
    assert text(app, "I-1", "delay_notice").status == TextStatus.CANCELLED


def test_a_second_row_for_the_same_incident_kind_and_sequence_is_refused(
    app: Application,
) -> None:
    submit(app, received("I-1", T0))
    first = text(app, "I-1", "confirmation")
    with pytest.raises(IntegrityError), app.db.transaction() as session:
        copy = session.get(OutboxRow, first.id)
        assert copy is not None
        session.expunge(copy)
        make_transient(copy)
        copy.id = None
        session.add(copy)
    assert [t.kind for t in texts(app)].count("confirmation") == 1


def test_a_sent_text_never_moves_back(app: Application, console: ConsoleProvider) -> None:
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    with app.db.transaction() as session:
        row = session.scalars(select(OutboxRow).where(OutboxRow.kind == "confirmation")).one()
        outbox = Outbox(session)
        for backwards in (TextStatus.SCHEDULED, TextStatus.SENDING, TextStatus.CANCELLED):
            with pytest.raises(IllegalTransition):
                outbox.transition(row, backwards, T0)
        outbox.transition(row, TextStatus.DELIVERED, T0 + timedelta(seconds=5))
        with pytest.raises(IllegalTransition):
            outbox.transition(row, TextStatus.SENT, T0 + timedelta(seconds=6))
    assert text(app, "I-1", "confirmation").status == TextStatus.DELIVERED
    assert_histories_valid(app)


# --- the re-check right before the send -----------------------------------------------


CHANGES: dict[str, tuple[str, dict[str, Any], str]] = {
    "reclassified": ("call.updated", {"call_type": {"code": "SEXASSLT"}}, "sexual_assault"),
    "risk_flag": ("call.updated", {"risk_flag": True}, "risk_flag"),
    "in_progress": ("call.updated", {"in_progress": True}, "in_progress"),
    "cancelled": ("call.cancelled", {}, "cancelled"),
    "merged": ("call.merged", {"merged_into": "I-OTHER"}, "merged"),
    "priority_raised": ("call.updated", {"priority": 1}, "priority"),
    "caller_opted_out": ("call.updated", {"caller": {"sms_opt_out": True}}, "opted_out"),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_call_changed_between_claim_and_send_gets_nothing(
    app: Application, clock: VirtualClock, console: ConsoleProvider, change: str
) -> None:
    type_, fields, reason = CHANGES[change]
    submit(app, received("I-1", T0))
    claimed = app.dispatcher._claim()
    assert [text(app, "I-1", "confirmation").id] == claimed
    assert text(app, "I-1", "confirmation").status == TextStatus.SENDING

    clock.advance(timedelta(seconds=1))
    submit(app, event("I-1", type_, clock.now(), **fields))
    for outbox_id in claimed:
        app.dispatcher._handle(outbox_id)

    assert console.sent == []
    confirmation = text(app, "I-1", "confirmation")
    assert (confirmation.status, confirmation.reason) == ("suppressed", f"suppressed:{reason}")
    delay = text(app, "I-1", "delay_notice")  # still waiting: the intake cancelled it
    assert delay.status == TextStatus.CANCELLED and delay.reason
    clock.advance(timedelta(days=1))
    assert app.dispatcher.run_due() == 0
    assert console.sent == []
    assert_histories_valid(app)


def test_call_reclassified_before_the_worker_runs_has_its_texts_cancelled(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    submit(
        app,
        received("I-1", T0),
        event("I-1", "call.updated", T0 + timedelta(seconds=20), call_type={"code": "IPV"}),
    )
    clock.advance(timedelta(days=1))
    assert app.dispatcher.run_due() == 0
    assert console.sent == []
    assert {(t.kind, t.status, t.reason) for t in texts(app)} == {
        ("confirmation", "cancelled", "suppressed:reclassified"),
        ("delay_notice", "cancelled", "suppressed:reclassified"),
    }
    assert_histories_valid(app)


def test_opted_out_phone_gets_nothing_until_it_opts_back_in(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    with app.db.transaction() as session:
        set_opt_out(session, "default", app.vault.phone_hash(PHONE), True, T0, "sms")
    submit(app, received("I-1", T0))
    assert app.dispatcher.run_due() == 1
    assert console.sent == []
    assert text(app, "I-1", "confirmation").reason == "suppressed:opted_out"

    clock.advance(timedelta(minutes=5))
    with app.db.transaction() as session:
        set_opt_out(session, "default", app.vault.phone_hash(PHONE), False, clock.now(), "sms")
    submit(app, received("I-2", clock.now(), case_number="26-00002"))
    app.dispatcher.run_due()
    assert sent_refs(console) == ["default:I-2:confirmation:0"]
    assert console.sent[0][1].to == PHONE
    assert_histories_valid(app)


def test_daily_cap_per_phone_holds_across_calls(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, console: ConsoleProvider
) -> None:
    app = app_factory(database_url, CALLERCONNECT_POLICY__MAX_TEXTS_PER_PHONE_PER_DAY="2")
    for n in range(1, 4):  # three calls from one phone, minutes apart
        submit(app, received(f"I-{n}", clock.now(), case_number=f"26-0000{n}"))
        app.dispatcher.run_due()
        clock.advance(timedelta(minutes=1))
    # Another caller is not affected by the first one's cap.
    submit(app, received("I-OTHER", clock.now(), phone="613-555-0199", case_number="26-00009"))
    app.dispatcher.run_due()
    clock.advance(timedelta(minutes=70))  # all four delay notices are due
    app.dispatcher.run_due()

    to_capped = [m for _, m in console.sent if m.to == PHONE]
    assert [m.reference for m in to_capped] == [
        "default:I-1:confirmation:0",
        "default:I-2:confirmation:0",
    ]
    outcome = {(t.incident, t.kind): (t.status, t.reason) for t in texts(app)}
    assert outcome[("I-3", "confirmation")] == ("suppressed", "suppressed:daily_cap")
    for n in range(1, 4):
        assert outcome[(f"I-{n}", "delay_notice")] == ("suppressed", "suppressed:daily_cap")
    assert outcome[("I-OTHER", "confirmation")][0] == "sent"
    assert outcome[("I-OTHER", "delay_notice")][0] == "sent"
    assert_histories_valid(app)


def test_confirmation_goes_out_during_quiet_hours(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    clock.set(local(22))
    submit(app, received("I-1", local(22)))
    assert app.dispatcher.run_due() == 1
    assert sent_refs(console) == ["default:I-1:confirmation:0"]
    assert text(app, "I-1", "confirmation").sent_at == local(22)
    # The delay notice (due 23:00) waits for the end of the quiet hours.
    assert text(app, "I-1", "delay_notice").not_before == local(8, day=17)


def test_delay_notice_due_just_before_quiet_hours_waits_for_their_end_and_is_sent(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    clock.set(local(20, 20))
    submit(app, received("I-1", local(20, 20), priority=3))  # delay notice at 20:50
    app.dispatcher.run_due()
    clock.set(local(21, 5))  # the worker was behind: it reaches the text in quiet hours
    assert app.dispatcher.run_due() == 1
    delay = text(app, "I-1", "delay_notice")
    assert (delay.status, delay.reason) == ("scheduled", "deferred:quiet_hours")
    assert delay.not_before == local(8, day=17)
    assert delay.attempts == 0  # waiting is not a failed attempt

    clock.set(local(7, 59, 59, day=17))
    assert app.dispatcher.run_due() == 0
    clock.set(local(8, day=17))
    assert app.dispatcher.run_due() == 1
    assert sent_refs(console) == ["default:I-1:confirmation:0", "default:I-1:delay_notice:0"]
    assert text(app, "I-1", "delay_notice").sent_at == local(8, day=17)
    assert_histories_valid(app)


def test_survey_invitation_waits_for_the_end_of_quiet_hours(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    clock.set(local(19))
    submit(app, received("I-1", local(19)))
    app.dispatcher.run_due()
    clock.set(local(20, 40))
    submit(
        app,
        event("I-1", "unit.dispatched", local(19, 10)),
        event("I-1", "call.cleared", local(20, 40)),  # survey at 20:55
    )
    clock.set(local(21, 10))
    assert app.dispatcher.run_due() == 1
    survey = text(app, "I-1", "survey_invitation")
    assert (survey.status, survey.reason) == ("scheduled", "deferred:quiet_hours")
    assert survey.not_before == local(8, day=17)
    clock.set(local(7, 59, day=17))
    assert app.dispatcher.run_due() == 0
    assert sent_refs(console) == ["default:I-1:confirmation:0"]
    clock.set(local(8, day=17))
    assert app.dispatcher.run_due() == 1
    assert sent_refs(console)[-1] == "default:I-1:survey_invitation:0"
    assert_histories_valid(app)


def test_confirmation_for_a_call_already_cleared_is_suppressed_not_sent(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    # Cleared before the worker got to it: the intake cancels the waiting confirmation.
    submit(
        app,
        received("I-1", T0 - timedelta(minutes=2)),
        event("I-1", "call.cleared", T0 - timedelta(minutes=1)),
    )
    # Cleared while a worker held it: the re-check suppresses it.
    submit(app, received("I-2", T0, phone="613-555-0199", case_number="26-00002"))
    claimed = app.dispatcher._claim()
    assert text(app, "I-2", "confirmation").id in claimed
    submit(app, event("I-2", "call.cleared", T0 + timedelta(seconds=30)))
    for outbox_id in claimed:
        app.dispatcher._handle(outbox_id)

    assert console.sent == []
    first, second = text(app, "I-1", "confirmation"), text(app, "I-2", "confirmation")
    assert (first.status, first.reason) == ("cancelled", "suppressed:stale")
    assert (second.status, second.reason) == ("suppressed", "suppressed:stale")
    # The survey invitations are what these callers get, 15 minutes after clearance.
    clock.set(T0 + timedelta(minutes=16))
    assert app.dispatcher.run_due() == 2
    assert sorted(sent_refs(console)) == [
        "default:I-1:survey_invitation:0",
        "default:I-2:survey_invitation:0",
    ]
    assert_histories_valid(app)


# --- provider errors through the real Twilio provider ----------------------------------


@pytest.fixture
def twilio() -> Iterator[TimedFakeTwilio]:
    with TimedFakeTwilio(slow_delay=1.5) as fake:
        yield fake
    assert not fake.errors, fake.errors


def twilio_app(
    app_factory: AppFactory, database_url: str, fake: TimedFakeTwilio, **env: str
) -> Application:
    """The application with the Twilio provider built from settings, as ``worker`` does.
    Only confirmations (delay notices off) so each test watches one text."""
    env = {
        **twilio_env(fake),
        "CALLERCONNECT_SMS__TWILIO__TIMEOUT": "1s",
        "CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4": "off",
        **env,
    }
    provider = build_provider(make_settings(database_url, **env))
    return app_factory(database_url, provider, **env)


@pytest.mark.parametrize(
    ("fault", "code"),
    [(Fault.HTTP_500, "unavailable"), (Fault.HTTP_503, "unavailable")],
    ids=["500", "503"],
)
def test_retryable_provider_error_is_retried_within_seconds_and_sent_once(
    app_factory: AppFactory,
    database_url: str,
    clock: VirtualClock,
    twilio: TimedFakeTwilio,
    fault: Fault,
    code: str,
) -> None:
    # Two 5xx in a row must not cost the caller more than seconds: the confirmation is
    # worth most in the first minute after the call (domain/retry.py).
    app = twilio_app(app_factory, database_url, twilio)
    twilio.fail_next(2, fault)
    submit(app, received("I-1", T0))

    app.dispatcher.run_due()
    first = text(app, "I-1", "confirmation")
    assert (first.status, first.reason, first.error_code) == (
        "scheduled",
        f"retry:{code}",
        code,
    )
    assert T0 + timedelta(seconds=1.5) <= first.not_before <= T0 + timedelta(seconds=2.5)
    clock.set(first.not_before - timedelta(milliseconds=1))
    assert app.dispatcher.run_due() == 0
    clock.set(first.not_before)
    app.dispatcher.run_due()  # second failure: the wait grows (about three times)
    second = text(app, "I-1", "confirmation")
    assert second.status == "scheduled"
    waited = second.not_before - first.not_before
    assert timedelta(seconds=4.5) <= waited <= timedelta(seconds=7.5)
    clock.set(second.not_before - timedelta(milliseconds=1))
    assert app.dispatcher.run_due() == 0
    assert len(twilio.requests) == 2
    clock.set(second.not_before)
    app.dispatcher.run_due()
    clock.advance(timedelta(hours=1))
    app.dispatcher.run_due()

    assert len(twilio.requests) == 3
    assert len(twilio.bodies_to(PHONE)) == 1
    done = text(app, "I-1", "confirmation")
    assert (done.status, done.attempts, done.error_code) == ("sent", 3, None)
    assert done.sent_at is not None and done.sent_at - T0 < timedelta(minutes=1)
    assert [s for s, _, _ in history(app, done.id)] == [
        "scheduled",
        "sending",
        "scheduled",
        "sending",
        "scheduled",
        "sending",
        "sent",
    ]
    assert_histories_valid(app)


def test_throttled_text_is_retried_later_and_sent_once(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, twilio: TimedFakeTwilio
) -> None:
    # Checked loosely on purpose: how long a throttled worker pauses (backoff or the
    # provider's Retry-After) is the SMS providers' choice; not hammering is not.
    app = twilio_app(app_factory, database_url, twilio)
    twilio.fail_next(2, Fault.THROTTLE)
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    waiting = text(app, "I-1", "confirmation")
    assert waiting.status == "scheduled" and waiting.error_code == "throttled"
    assert waiting.not_before > T0
    assert app.dispatcher.run_due() == 0  # not again at once
    for _ in range(60):
        clock.advance(timedelta(seconds=5))
        app.dispatcher.run_due()
    done = text(app, "I-1", "confirmation")
    assert done.status == "sent"
    assert len(twilio.requests) == 3
    assert len(twilio.bodies_to(PHONE)) == 1
    tries = [at for status, _, at in history(app, done.id) if status == "sending"]
    assert len(tries) == 3
    assert all(b - a >= timedelta(seconds=1) for a, b in itertools.pairwise(tries))
    assert_histories_valid(app)


def test_timeout_is_retried_later(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, twilio: TimedFakeTwilio
) -> None:
    app = twilio_app(app_factory, database_url, twilio)
    twilio.fail_next(1, Fault.SLOW, delay=1.5)  # longer than the 1 s client timeout
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    waiting = text(app, "I-1", "confirmation")
    assert (waiting.status, waiting.reason) == ("scheduled", "retry:timeout")
    assert waiting.not_before == T0 + timedelta(seconds=30)
    clock.set(T0 + timedelta(seconds=30))
    app.dispatcher.run_due()
    done = text(app, "I-1", "confirmation")
    assert (done.status, done.attempts) == ("sent", 2)
    assert len(twilio.arrivals) == 2
    # Note: the fake, like Twilio, may still accept the timed-out request; without an
    # idempotency key at the provider that is the documented duplicate window.


@pytest.mark.parametrize(
    ("twilio_code", "code"),
    [(21211, "invalid_number"), (21610, "opted_out")],
    ids=["21211-invalid-number", "21610-opted-out"],
)
def test_permanent_provider_error_fails_the_text_and_is_never_retried(
    app_factory: AppFactory,
    database_url: str,
    clock: VirtualClock,
    twilio: TimedFakeTwilio,
    twilio_code: int,
    code: str,
) -> None:
    app = twilio_app(app_factory, database_url, twilio)
    twilio.reject_number(PHONE, twilio_code)
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        app.dispatcher.run_due()
    failed = text(app, "I-1", "confirmation")
    assert (failed.status, failed.reason, failed.error_code, failed.attempts) == (
        "failed",
        f"failed:{code}",
        code,
        1,
    )
    assert len(twilio.requests) == 1
    assert twilio.messages == []
    assert_histories_valid(app)


def test_provider_opt_out_error_stops_later_texts_to_that_phone(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, twilio: TimedFakeTwilio
) -> None:
    """Twilio's 21610 says the phone replied STOP to our number: record the opt-out, so
    the next text to it is suppressed here instead of being refused there."""
    app = twilio_app(
        app_factory, database_url, twilio, CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4="60m"
    )
    twilio.opt_out(PHONE)
    submit(app, received("I-1", T0))
    app.dispatcher.run_due()
    assert text(app, "I-1", "confirmation").reason == "failed:opted_out"
    with app.db.transaction() as session:
        opt_out = session.get(OptOutRow, ("default", app.vault.phone_hash(PHONE)))
        assert opt_out is not None and opt_out.opted_out
    clock.advance(timedelta(minutes=61))
    app.dispatcher.run_due()
    assert text(app, "I-1", "delay_notice").reason == "suppressed:opted_out"
    assert len(twilio.requests) == 1


def test_text_fails_when_attempts_run_out(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, twilio: TimedFakeTwilio
) -> None:
    app = twilio_app(app_factory, database_url, twilio, CALLERCONNECT_WORKER__MAX_ATTEMPTS="3")
    twilio.fail_next(100, Fault.HTTP_503)
    submit(app, received("I-1", T0))
    for _ in range(10):
        app.dispatcher.run_due()
        clock.advance(timedelta(minutes=5))
    failed = text(app, "I-1", "confirmation")
    assert (failed.status, failed.reason, failed.attempts) == ("failed", "failed:unavailable", 3)
    assert len(twilio.requests) == 3
    assert twilio.messages == []
    assert_histories_valid(app)


# --- the rate limit -------------------------------------------------------------------


def test_rate_limit_spaces_sends_on_the_virtual_clock(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, console: ConsoleProvider
) -> None:
    app = app_factory(database_url, CALLERCONNECT_SMS__MAX_PER_SECOND="2")
    for n in range(5):
        submit(app, received(f"I-{n}", T0, phone=f"613-555-01{n:02d}", case_number=f"26-1{n}"))
    assert app.dispatcher.run_due() == 5
    sent_at = sorted(t.sent_at for t in texts(app) if t.sent_at is not None)
    assert sent_at == [T0 + timedelta(seconds=0.5 * RATE_HEADROOM * n) for n in range(5)]


def test_a_slow_check_does_not_bunch_sends_together(
    app_factory: AppFactory,
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first re-check of a worker is slow (a cold start): its text leaves late, and
    the next one must still leave a full interval after it, not at its own slot."""
    app = app_factory(database_url, CALLERCONNECT_SMS__MAX_PER_SECOND="10")
    for n in range(4):
        submit(app, received(f"I-{n}", T0, phone=f"613-555-01{n:02d}", case_number=f"26-1{n}"))
    check = Recheck.prepare
    slow = iter([timedelta(milliseconds=80)])

    def first_check_slow(self: Recheck, outbox_id: int) -> Any:
        clock.advance(next(slow, timedelta(0)))
        return check(self, outbox_id)

    monkeypatch.setattr(Recheck, "prepare", first_check_slow)
    assert app.dispatcher.run_due() == 4
    sent_at = sorted(t.sent_at for t in texts(app) if t.sent_at is not None)
    assert sent_at[0] == T0 + timedelta(milliseconds=80)
    assert all(b - a >= timedelta(milliseconds=100) for a, b in itertools.pairwise(sent_at))


def test_rate_limit_holds_on_the_real_clock(
    database_url: str, twilio: TimedFakeTwilio, capsys: pytest.CaptureFixture[str]
) -> None:
    rate, count = 5.0, 6
    env = {**twilio_env(twilio), "CALLERCONNECT_SMS__MAX_PER_SECOND": str(rate)}
    settings = make_settings(database_url, **env)
    clock = SystemClock()
    app = build_application(settings, clock=clock, provider=build_provider(settings))
    try:
        for n in range(count):
            submit(app, received(f"I-{n}", clock.now(), phone=f"613-555-01{n:02d}"))
        assert app.dispatcher.run_due() == count
        sent_at = sorted(t.sent_at for t in texts(app) if t.sent_at is not None)
    finally:
        app.close()
    arrivals = [a.at for a in twilio.arrivals]
    assert len(arrivals) == count == len(twilio.messages)
    interval = 1 / rate
    arrival_gaps = gaps(arrivals)
    sent_gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sent_at)]
    with capsys.disabled():
        print(
            f"\n[rate {rate}/s, {count} texts] request gaps "
            f"min={min(arrival_gaps):.4f}s max={max(arrival_gaps):.4f}s; sent_at gaps "
            f"min={min(sent_gaps):.4f}s; span {arrivals[-1] - arrivals[0]:.3f}s"
        )
    # Slots are 1/rate apart and a text leaves at most half an interval after its slot
    # (the first one is checked cold); without the limit the gaps would be milliseconds.
    assert min(arrival_gaps) >= interval / 4, arrival_gaps
    assert arrivals[-1] - arrivals[0] >= (count - 1) * interval - interval / 2, arrival_gaps
    assert most_in_window(arrivals, 1.0) <= rate + 1, arrival_gaps


class _SlowTwilio(TimedFakeTwilio):
    """Answers each text after ``latency`` seconds; counts the requests open at once."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency
        self.open_now = 0
        self.most_open = 0
        self._open_lock = threading.Lock()

    def _respond_to(self, method: str, path: str, handler: Any, form: dict[str, str]) -> Any:
        with self._open_lock:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        try:
            time.sleep(self.latency)
            return super()._respond_to(method, path, handler, form)
        finally:
            with self._open_lock:
                self.open_now -= 1


def test_a_worker_keeps_several_sends_in_flight_and_the_rate_cap_still_holds(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A provider answering in 300 ms would cap a worker sending one text at a time near
    three texts a second; several in flight, each still starts at its own rate slot."""
    rate, count = 10.0, 15
    with _SlowTwilio(latency=0.3) as fake:
        env = {**twilio_env(fake), "CALLERCONNECT_SMS__MAX_PER_SECOND": str(rate)}
        settings = make_settings(database_url, **env)
        clock = SystemClock()
        app = build_application(settings, clock=clock, provider=build_provider(settings))
        try:
            for n in range(count):
                submit(
                    app,
                    received(
                        f"I-{n}",
                        clock.now(),
                        phone=f"613-555-01{n:02d}",
                        case_number=f"26-2{n:02d}",
                    ),
                )
            in_flight = app.dispatcher.options.sends_in_flight
            assert in_flight == 3  # ten a second for 0.3 s of answer
            assert app.dispatcher.run_due(in_flight=in_flight) == count
            sent = [t for t in texts(app) if t.kind == "confirmation"]
            assert_histories_valid(app)
        finally:
            app.close()
        arrivals = [a.at for a in fake.arrivals]
        with capsys.disabled():
            print(
                f"\n[rate {rate}/s, {count} texts, 300 ms answers] at most {fake.most_open} "
                f"open at once; most in 1 s {most_in_window(arrivals)}; "
                f"span {arrivals[-1] - arrivals[0]:.2f}s"
            )
        assert sorted(m.to for m in fake.messages) == sorted({m.to for m in fake.messages})
        assert len(fake.messages) == count == len(arrivals)
        assert [(t.status, t.attempts) for t in sent] == [("sent", 1)] * count
        assert fake.most_open >= 2  # one at a time would never overlap
        assert most_in_window(arrivals, 1.0) <= rate + 1


# --- leases: crash recovery and slow sends --------------------------------------------


def test_text_left_sending_by_a_dead_worker_is_sent_once_after_the_lease(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    submit(app, received("I-1", T0))
    dead = other_worker(app, "worker-that-dies")
    claimed = dead._claim()  # ... and never finishes
    assert len(claimed) == 1
    assert text(app, "I-1", "confirmation").status == TextStatus.SENDING

    assert app.dispatcher.run_due() == 0  # leased to the dead worker
    clock.advance(app.dispatcher.options.lease - timedelta(seconds=1))
    assert app.dispatcher.run_due() == 0
    clock.advance(timedelta(seconds=2))
    assert app.dispatcher.run_due() == 1
    assert sent_refs(console) == ["default:I-1:confirmation:0"]

    dead._handle(claimed[0])  # the "dead" worker wakes up late: it must not send
    assert len(console.sent) == 1
    done = text(app, "I-1", "confirmation")
    assert (done.status, done.attempts) == ("sent", 2)
    assert [s for s, _, _ in history(app, done.id)] == ["scheduled", "sending", "sent"]


class _SendHook:
    """A provider that runs ``during`` (once) while its first text is "in flight"."""

    name = "console"

    def __init__(self, inner: ConsoleProvider, during: Callable[[], None]) -> None:
        self.inner = inner
        self.during: Callable[[], None] | None = during

    def send(self, message: OutgoingSms) -> SendResult:
        hook, self.during = self.during, None
        if hook is not None:
            hook()
        return self.inner.send(message)


def test_lease_runs_from_the_last_check_so_a_slow_send_is_not_sent_twice(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """A worker claims a text, waits most of its lease for a rate slot (other workers
    share the limit), re-checks and sends; the provider is slow to answer. Another worker
    polling meanwhile must not take the text over and send it again."""
    lease = app.dispatcher.options.lease
    other = other_worker(app, "worker-b")

    def while_in_flight() -> None:
        clock.advance(timedelta(seconds=5))  # an answer within the provider timeout
        other.run_due()

    slow = other_worker(app, "worker-a", provider=_SendHook(console, while_in_flight))
    submit(app, received("I-1", T0))
    claimed = slow._claim()
    clock.advance(lease - timedelta(seconds=1))  # waited for its slot
    slow._handle(claimed[0])

    assert sent_refs(console) == ["default:I-1:confirmation:0"]
    done = text(app, "I-1", "confirmation")
    assert (done.status, done.attempts) == ("sent", 1)


def test_daily_cap_counts_a_text_still_in_flight_at_another_worker(
    app_factory: AppFactory, database_url: str, console: ConsoleProvider
) -> None:
    app = app_factory(database_url, CALLERCONNECT_POLICY__MAX_TEXTS_PER_PHONE_PER_DAY="1")
    submit(app, received("I-1", T0), received("I-2", T0, case_number="26-00002"))
    other = app.dispatcher  # polls while the first worker's send is in flight
    first = Dispatcher(
        app.db,
        app.vault,
        app.clock,
        app.agencies.with_provider(_SendHook(console, lambda: other.run_due())),
        dataclasses.replace(app.dispatcher.options, owner="worker-a", batch_size=1),
    )
    first.run_due()
    assert sent_refs(console) == ["default:I-1:confirmation:0"]
    assert text(app, "I-2", "confirmation").reason == "suppressed:daily_cap"


def test_a_stop_request_ends_the_pass_after_the_text_in_hand_and_gives_the_rest_back(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """SIGTERM must not wait for a whole backlog (an orchestrator would kill the worker
    mid-send); what the worker had claimed is claimable by another one at once."""
    stop = threading.Event()
    stopping = other_worker(app, "worker-a", provider=_SendHook(console, stop.set))
    submit(
        app,
        *(
            received(f"I-{n}", T0, case_number=f"26-{n:05d}", phone=f"613-555-01{n:02d}")
            for n in range(10)
        ),
    )

    assert stopping.run_due(stop) == 1
    assert len(console.sent) == 1
    assert other_worker(app, "worker-b").run_due() == 9  # at once: no lease to wait out
    assert len(console.sent) == 10
    assert len({t.dedupe_key for t in texts(app) if t.status == "sent"}) == 10


def test_our_own_number_is_never_texted(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """A CAD typo giving the sender number as the caller's must not start a loop
    through our own inbound webhook."""
    submit(app, received("I-1", T0, phone="(343) 803-6032"))  # sms.sender's default
    app.dispatcher.run_due()
    assert console.sent == []
    assert text(app, "I-1", "confirmation").reason == "suppressed:own_number"


def test_a_case_number_stored_before_the_intake_refused_such_is_never_sent(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """A confirmation cannot quote "evil.co/x"; it is suppressed once, not retried."""
    submit(app, received("I-1", T0))
    with app.db.transaction() as session:
        call = session.scalars(select(CallRow)).one()
        call.case_number = "see evil.co/x"
    assert app.dispatcher.run_due() == 1
    assert console.sent == []
    assert text(app, "I-1", "confirmation").reason == "suppressed:unquotable_case_number"
