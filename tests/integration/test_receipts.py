"""Receipts on real databases: early ones wait, old ones are forgotten, parts add up."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.tables import OutboxRow, PendingReceiptRow
from callerconnect.adapters.sms.base import StatusReport
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.domain.messages import TextStatus
from callerconnect.service.receipts import Receipts, record_sent
from tests.conftest import T0
from tests.support.dispatch import received, submit, text


def claimed_text(app: Application) -> int:
    """A confirmation claimed by a worker that is about to record its ids."""
    submit(app, received("I-1", T0))
    [outbox_id] = app.dispatcher._claim()
    return outbox_id


def record(app: Application, outbox_id: int, ids: list[str]) -> None:
    with app.db.transaction() as session:
        row = session.get(OutboxRow, outbox_id, with_for_update=True)
        assert row is not None
        row.provider_message_id = ids[0]
        Outbox(session).transition(row, TextStatus.SENT, app.clock.now())
        record_sent(session, row, "smpp", ids, app.clock.now(), id_mode="auto")


def pending(app: Application) -> int:
    with app.db.transaction() as session:
        return int(session.scalar(select(func.count(PendingReceiptRow.id))) or 0)


def report(message_id: str, status: str, error: str | None = None) -> StatusReport:
    return StatusReport(message_id, status, error, retryable=False if error else None)


def test_receipt_for_an_id_not_yet_recorded_waits_and_is_applied_when_it_is(
    app: Application,
) -> None:
    receipts = Receipts(app.db, app.clock, "smpp", id_mode="auto")
    outbox_id = claimed_text(app)
    assert receipts.apply(report("439041024", "delivered")).outcome == "pending"  # decimal
    assert pending(app) == 1
    record(app, outbox_id, ["1A2B3C00"])  # hex, as submit_sm_resp gave it
    assert text(app, "I-1", "confirmation").status == "delivered"
    assert pending(app) == 0


def test_receipt_nobody_records_is_forgotten_after_a_day(
    app: Application, clock: VirtualClock
) -> None:
    receipts = Receipts(app.db, app.clock, "twilio")
    receipts.apply(report("SMold", "delivered"))
    clock.advance(timedelta(hours=25))
    receipts.apply(report("SMnew", "delivered"))
    with app.db.transaction() as session:
        assert session.scalars(select(PendingReceiptRow.message_id)).all() == ["smnew"]


def test_long_text_is_delivered_when_every_part_is_and_failed_parts_win(
    app: Application,
) -> None:
    receipts = Receipts(app.db, app.clock, "smpp")
    outbox_id = claimed_text(app)
    record(app, outbox_id, ["a1", "a2", "a3"])
    assert receipts.apply(report("a1", "delivered")).status == "sent"
    assert receipts.apply(report("a2", "delivered")).status == "sent"
    assert receipts.apply(report("a2", "delivered")).outcome == "unchanged"  # replayed
    result = receipts.apply(report("a3", "undelivered", "034"))
    assert (result.outcome, result.status) == ("applied", "undelivered")
    assert receipts.apply(report("a3", "delivered")).outcome == "unchanged"  # final stays
    confirmation = text(app, "I-1", "confirmation")
    assert (confirmation.status, confirmation.error_code) == ("undelivered", "034")


def test_callback_naming_a_text_being_sent_right_now_waits_for_its_worker(
    app: Application, clock: VirtualClock
) -> None:
    """Twilio's first callback can beat the worker's own record of the sid: it must not
    be taken for the sign of a lost answer (that is only so once the lease is over)."""
    receipts = Receipts(app.db, app.clock, "twilio")
    outbox_id = claimed_text(app)
    key = text(app, "I-1", "confirmation").dedupe_key
    assert receipts.apply(report("SMlive", "sent"), reference=key).outcome == "pending"
    clock.advance(app.dispatcher.options.lease + timedelta(seconds=1))
    adopted = receipts.apply(report("SMlive", "delivered"), reference=key)
    assert (adopted.outcome, adopted.outbox_id, adopted.status) == (
        "adopted",
        outbox_id,
        "delivered",
    )
