"""A call that was eligible but got no confirmation says why in its own decision log.

The report behind this: in a randomized run, an eligible priority-4 call to a number
shared with other calls, its case number arriving 2.5 s after the call, got no
confirmation, and its decisions said only ``eligible``. The same history on the real
intake and dispatcher (below) gets its confirmation; what withholds one on a shared
number is the daily cap or a protection reached through another call, which was written
only on the outbox row. The worker now records it in the call's decisions as well.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from callerconnect.adapters.db.tables import CallRow, DecisionRow
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from tests.conftest import T0
from tests.support.dispatch import event, received, submit, text

AppFactory = Callable[..., Application]


def decisions(app: Application, incident: str) -> list[tuple[str, str | None]]:
    with app.db.transaction() as session:
        return [
            (code, kind)
            for code, kind in session.execute(
                select(DecisionRow.code, DecisionRow.kind)
                .join(CallRow, CallRow.id == DecisionRow.call_id)
                .where(CallRow.incident_id == incident)
                .order_by(DecisionRow.id)
            ).all()
        ]


def test_a_case_number_2_5_s_after_the_call_on_a_shared_number_gets_its_confirmation(
    app: Application, clock: VirtualClock
) -> None:
    for n in range(3):  # other calls from the same phone, texted already
        submit(app, received(f"I-{n}", T0 + timedelta(seconds=n), case_number=f"26-0000{n}"))
    clock.advance(timedelta(seconds=5))
    submit(app, received("I-A", clock.now(), case_number=None))
    assert app.dispatcher.run_due() == 3
    clock.advance(timedelta(seconds=2.5))
    submit(app, event("I-A", "call.updated", clock.now(), case_number="26-00099"))
    clock.advance(timedelta(seconds=1))
    app.dispatcher.run_due()
    assert text(app, "I-A", "confirmation").status == "sent"


def test_a_confirmation_withheld_by_the_daily_cap_is_in_the_calls_decisions(
    app_factory: AppFactory, database_url: str, clock: VirtualClock
) -> None:
    app = app_factory(database_url, CALLERCONNECT_POLICY__MAX_TEXTS_PER_PHONE_PER_DAY="1")
    submit(app, received("I-1", clock.now(), case_number="26-00001"))
    app.dispatcher.run_due()
    clock.advance(timedelta(seconds=30))
    submit(app, received("I-2", clock.now(), case_number=None))
    clock.advance(timedelta(seconds=2.5))
    submit(app, event("I-2", "call.updated", clock.now(), case_number="26-00002"))
    app.dispatcher.run_due()
    assert text(app, "I-2", "confirmation").reason == "suppressed:daily_cap"
    assert decisions(app, "I-2") == [
        ("eligible", None),
        ("suppressed:daily_cap", "confirmation"),
    ]
