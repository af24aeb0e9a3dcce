"""Crash and takeover edges of the dispatcher, on real databases (SQLite and PostgreSQL),
made deterministic with the virtual clock.

A worker "dies" here by claiming texts (``_claim()``) and never handling them; a worker
whose provider is slow to answer is one whose provider hook runs another worker while
the first one's request is "in flight". The process-level versions of the same stories
(real ``callerconnect worker`` processes, SIGKILL) are in ``test_crashes_postgres.py``.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from callerconnect.adapters.db.repositories.send_slots import defer_send_slots
from callerconnect.adapters.sms.base import OutgoingSms, SendError, SendResult
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application
from callerconnect.clock import SystemClock, VirtualClock
from callerconnect.domain.messages import TextStatus
from callerconnect.service import dispatcher as dispatcher_module
from callerconnect.service.dispatcher import SMS_RATE
from callerconnect.service.send_pacing import SendPacing
from tests.conftest import T0, make_settings
from tests.support.dispatch import (
    assert_histories_valid,
    history,
    other_worker,
    received,
    submit,
    text,
)

AppFactory = Callable[..., Application]
#: Only confirmations, so each test watches one text per call.
ONLY_CONFIRMATIONS = {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4": "off"}


@pytest.fixture
def app(app_factory: AppFactory, database_url: str) -> Application:
    return app_factory(database_url, **ONLY_CONFIRMATIONS)


def refs(console: ConsoleProvider) -> list[str]:
    return [message.reference for _, message in console.sent]


class InFlight:
    """A provider whose first request stays "in flight" while ``during`` runs, then
    answers with ``outcome`` (a SendError to raise, or None to accept the text)."""

    name = "console"

    def __init__(
        self,
        inner: ConsoleProvider,
        during: Callable[[], None],
        outcome: SendError | None = None,
    ) -> None:
        self.inner = inner
        self.during: Callable[[], None] | None = during
        self.outcome = outcome

    def send(self, message: OutgoingSms) -> SendResult:
        hook, self.during = self.during, None
        if hook is not None:
            hook()
        if self.outcome is not None:
            raise self.outcome
        return self.inner.send(message)


class Refusing:
    """A provider that is down: every send is a retryable error."""

    name = "console"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: OutgoingSms) -> SendResult:
        self.calls += 1
        raise SendError("unavailable", retryable=True, detail="HTTP 503")


# --- a text that kills its worker -----------------------------------------------------


def test_text_that_kills_every_worker_fails_as_worker_lost_after_max_attempts(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, console: ConsoleProvider
) -> None:
    app = app_factory(database_url, CALLERCONNECT_WORKER__MAX_ATTEMPTS="3", **ONLY_CONFIRMATIONS)
    lease = app.dispatcher.options.lease
    submit(app, received("I-1", T0))
    for n in range(3):  # three workers claim it and die holding it
        assert len(other_worker(app, f"dies-{n}")._claim()) == 1
        clock.advance(lease + timedelta(seconds=1))
    assert app.dispatcher.run_due() == 0  # not a fourth time
    lost = text(app, "I-1", "confirmation")
    assert (lost.status, lost.reason, lost.attempts) == ("failed", "failed:worker_lost", 3)
    assert [s for s, _, _ in history(app, lost.id)] == ["scheduled", "sending", "failed"]
    clock.advance(timedelta(hours=1))
    assert app.dispatcher.run_due() == 0
    assert console.sent == []
    assert_histories_valid(app)


def test_texts_claimed_alongside_a_deadly_one_are_not_failed_with_it(
    app_factory: AppFactory, database_url: str, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """A worker dies holding a batch; only the text it was sending when it died keeps
    killing workers. The others are taken back one at a time and sent; only the deadly
    one runs out of attempts."""
    app = app_factory(database_url, CALLERCONNECT_WORKER__MAX_ATTEMPTS="3", **ONLY_CONFIRMATIONS)
    lease = app.dispatcher.options.lease
    for n in range(1, 4):
        submit(app, received(f"I-{n}", T0, phone=f"613-555-010{n}", case_number=f"26-0000{n}"))
    deadly = text(app, "I-1", "confirmation").id
    assert len(other_worker(app, "dies-0")._claim()) == 3  # a batch: I-1 first
    for n in range(1, 3):
        clock.advance(lease + timedelta(seconds=1))
        taken = other_worker(app, f"dies-{n}")._claim()
        assert taken == [deadly]  # taken back alone: the others are not in its batch
        app.dispatcher.run_due()  # a healthy worker sends the others
    clock.advance(lease + timedelta(seconds=1))
    assert app.dispatcher.run_due() == 0  # three attempts, three dead workers: no fourth
    assert sorted(refs(console)) == ["default:I-2:confirmation:0", "default:I-3:confirmation:0"]
    assert (text(app, "I-1", "confirmation").status, text(app, "I-1", "confirmation").reason) == (
        "failed",
        "failed:worker_lost",
    )
    for incident in ("I-2", "I-3"):
        sent = text(app, incident, "confirmation")
        assert (sent.status, sent.attempts) == ("sent", 2)
    assert_histories_valid(app)


# --- a worker whose lease ran out while the provider was answering ----------------------


def test_failure_answer_after_a_takeover_leaves_the_text_the_other_worker_sent(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """Worker A's request hangs past its lease (a provider timeout longer than the
    lease); worker B takes the text over and sends it. A's timeout then arrives: it must
    not move a sent text back to ``scheduled`` (that raised IllegalTransition and failed
    the worker's pass)."""
    lease = app.dispatcher.options.lease
    other = other_worker(app, "worker-b")

    def hang_past_the_lease() -> None:
        clock.advance(lease + timedelta(seconds=1))
        assert other.run_due() == 1

    slow = other_worker(
        app,
        "worker-a",
        InFlight(console, hang_past_the_lease, SendError("timeout", retryable=True)),
    )
    submit(app, received("I-1", T0))
    assert slow.run_due() == 1  # no exception
    done = text(app, "I-1", "confirmation")
    assert (done.status, done.attempts) == ("sent", 2)
    assert refs(console) == ["default:I-1:confirmation:0"]
    clock.advance(timedelta(hours=1))
    app.dispatcher.run_due()
    assert len(console.sent) == 1
    assert_histories_valid(app)


def test_success_answer_after_a_takeover_that_rescheduled_the_text_is_kept(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """Worker A's request hangs past its lease; worker B takes the text over, gets an
    outage error and reschedules it. Then A's answer arrives: the provider took the
    text. It must be recorded as sent, not left ``scheduled`` to go out a second time."""
    lease = app.dispatcher.options.lease
    down = Refusing()
    other = other_worker(app, "worker-b", down)

    def hang_past_the_lease() -> None:
        clock.advance(lease + timedelta(seconds=1))
        assert other.run_due() == 1
        assert text(app, "I-1", "confirmation").status == "scheduled"

    slow = other_worker(app, "worker-a", InFlight(console, hang_past_the_lease))
    submit(app, received("I-1", T0))
    slow.run_due()
    assert down.calls == 1
    done = text(app, "I-1", "confirmation")
    assert done.status == "sent"
    clock.advance(timedelta(hours=1))
    app.dispatcher.run_due()
    assert refs(console) == ["default:I-1:confirmation:0"]  # once
    steps = [s for s, _, _ in history(app, done.id)]
    assert steps == ["scheduled", "sending", "scheduled", "sending", "sent"]
    assert_histories_valid(app)


# --- the shared rate-limit row ------------------------------------------------------------


def test_a_rate_slot_far_ahead_sends_the_text_back_to_the_queue_instead_of_sleeping(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    """A rate-limit row an hour ahead (a long Retry-After, a clock set wrong on some
    host) must not make a worker sleep an hour holding texts whose lease runs out: the
    text goes back to ``scheduled`` and the worker is free at once."""
    with app.db.transaction() as session:
        defer_send_slots(session, SMS_RATE, T0 + timedelta(hours=1))
    submit(app, received("I-1", T0))
    assert app.dispatcher.run_due() == 1
    assert clock.now() - T0 < timedelta(seconds=10)  # a virtual sleep would show here
    paused = text(app, "I-1", "confirmation")
    assert (paused.status, paused.reason, paused.attempts) == ("scheduled", "retry:paused", 0)
    assert T0 < paused.not_before <= T0 + timedelta(minutes=1)  # looked at again soon
    assert console.sent == []
    clock.advance(timedelta(hours=1))  # the pause is over (the confirmation is still fresh)
    app.dispatcher.run_due()
    sent = text(app, "I-1", "confirmation")
    assert (sent.status, sent.attempts) == ("sent", 1)
    assert refs(console) == ["default:I-1:confirmation:0"]
    assert_histories_valid(app)


@pytest.mark.timeout(60)
def test_worker_stops_promptly_while_the_rate_slot_is_far_ahead(database_url: str) -> None:
    """On the real clock: SIGTERM (the stop event) ends the worker within seconds even
    though the next slot is an hour away."""
    clock = SystemClock()
    settings = make_settings(database_url, CALLERCONNECT_SMS__MAX_PER_SECOND="10")
    app = build_application(settings, clock=clock, provider=ConsoleProvider(io.StringIO()))
    stop = threading.Event()
    thread = threading.Thread(target=app.dispatcher.run_forever, args=(stop, 0.1), daemon=True)
    try:
        with app.db.transaction() as session:
            defer_send_slots(session, SMS_RATE, clock.now() + timedelta(hours=1))
        submit(app, received("I-1", clock.now()))
        thread.start()
        time.sleep(1.0)
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "the worker is asleep until the slot"
        assert text(app, "I-1", "confirmation").status == TextStatus.SCHEDULED
    finally:
        stop.set()
        if not thread.is_alive():
            app.close()


# --- the database going away mid-pass -------------------------------------------------------


def _database_gone() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection"))


def test_status_write_is_retried_through_a_database_outage_not_left_to_resend(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider took the text, then the database restarts: the worker keeps its
    answer and writes ``sent`` once the database is back, instead of failing the pass
    and leaving the row for a resend after the lease."""
    failures = iter([_database_gone(), _database_gone()])
    real = dispatcher_module.lock_receipts

    def flaky(session: Any) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        real(session)

    monkeypatch.setattr(dispatcher_module, "lock_receipts", flaky)
    submit(app, received("I-1", T0))
    assert app.dispatcher.run_due() == 1  # no exception
    done = text(app, "I-1", "confirmation")
    assert (done.status, done.attempts) == ("sent", 1)
    assert clock.now() - T0 < app.dispatcher.options.lease / 2
    clock.advance(app.dispatcher.options.lease * 2)
    app.dispatcher.run_due()
    assert refs(console) == ["default:I-1:confirmation:0"]


def test_texts_a_failed_pass_left_claimed_are_given_back_at_the_next_pass(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database goes away while a worker works through a claimed batch: the pass
    fails. At its next pass the worker gives back what it had not handled, so those
    texts go out now rather than a whole lease (60 s by default) later."""
    for n in range(1, 4):
        submit(app, received(f"I-{n}", T0, phone=f"613-555-010{n}", case_number=f"26-0000{n}"))
    calls = {"n": 0}
    real = SendPacing.reserve

    def second_fails(self: SendPacing) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise _database_gone()
        return real(self)

    monkeypatch.setattr(SendPacing, "reserve", second_fails)
    with pytest.raises(OperationalError):
        app.dispatcher.run_due()
    assert refs(console) == ["default:I-1:confirmation:0"]
    clock.advance(timedelta(seconds=5))  # the worker's pause after a failed pass
    assert app.dispatcher.run_due() == 2
    assert sorted(refs(console)) == [f"default:I-{n}:confirmation:0" for n in (1, 2, 3)]
    assert clock.now() - T0 < app.dispatcher.options.lease
    assert {text(app, f"I-{n}", "confirmation").attempts for n in (2, 3)} == {2}
    assert_histories_valid(app)
