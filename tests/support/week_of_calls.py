"""A known week of calls (Monday 26 January to Sunday 1 February 2026, Ottawa time) taken
through the real intake, dispatcher, receipts, inbound handler and survey service, for the
read-side tests to count by hand.

Agency ``default``:

=====  ====  ========  ========  =====================  =====================================
call   prio  type      district  first event (local)    what happens
=====  ====  ========  ========  =====================  =====================================
I-A    4     THEFT     Central   Mon 26 Jan 10:00       confirmation +20 s (delivered), cleared
                                                        10:30, survey sent, opened, answered
I-B    3     THEFT     East      Wed 28 Jan 14:00       confirmation +40 s (undelivered), unit
                                                        U12 at 14:10, cleared 14:50, survey
                                                        sent, opened, answered
I-C    2     THEFT     Central   Thu 29 Jan 09:00       never texted: ineligible:priority
I-D    4     ZZTOP     Central   Thu 29 Jan 11:00       never texted: ineligible:unknown_call_type
I-G    4     THEFT     West      Fri 30 Jan 12:00       confirmation +30 s, delay notice 13:01,
                                                        unit U7 13:30, cleared 14:00, survey
                                                        sent, not opened
I-E    4     THEFT     Central   Sat 31 Jan 23:30       confirmation +10 s; the caller answers
                                                        STOP at 23:40 (in UTC: 1 February)
I-F    4     THEFT     East      Sun 1 Feb 00:30        confirmation +50 s
=====  ====  ========  ========  =====================  =====================================

Agency ``other`` (same database, same incident ids): I-A and I-X on Monday, both texted, and
a STOP from I-A's caller, none of which may ever show in ``default``'s figures.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select, text

from callerconnect.adapters.db.tables import CallRow, OutboxRow
from callerconnect.adapters.sms.base import InboundSms, StatusReport
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application
from callerconnect.clock import VirtualClock
from callerconnect.domain.survey import read_answers
from callerconnect.service.survey import SurveyService, load_definition
from tests.conftest import T0, make_settings
from tests.support.survey import survey_tokens

OTTAWA = ZoneInfo("America/Toronto")
_ids = count(1)

ANSWERS_A = {
    "call_taker": "5",
    "officer": "4",
    "kept_informed": "2",
    "respect": "5",
    "overall": "3",
    "comment": "Thanks.",
}
ANSWERS_B = {
    "call_taker": "4",
    "officer": "no_officer",
    "kept_informed": "5",
    "respect": "4",
    "overall": "5",
}
PHONES = {
    "I-A": "613-555-0101",
    "I-B": "613-555-0102",
    "I-C": "613-555-0103",
    "I-D": "613-555-0104",
    "I-G": "613-555-0107",
    "I-E": "613-555-0105",
    "I-F": "613-555-0106",
}
OTHER_PHONES = {"I-A": "613-555-0201", "I-X": "613-555-0202"}


def local(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 1) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=OTTAWA)


@dataclass
class Week:
    app: Application
    other: Application
    clock: VirtualClock
    console: ConsoleProvider
    survey: SurveyService

    # --- CAD events and the dispatcher, in time order -----------------------------------

    def at(self, moment: datetime) -> None:
        """Move the clock to ``moment`` and let every worker send what is due."""
        self.clock.set(moment)
        self.app.dispatcher.run_due()

    def event(
        self, app: Application, incident: str, type_: str, at: datetime, **fields: Any
    ) -> None:
        self.clock.set(at)
        payload = {
            "event_id": f"week-{next(_ids)}",
            "incident_id": incident,
            "occurred_at": at.isoformat(),
            "type": type_,
            **fields,
        }
        result = app.intake.submit(payload, "test")
        assert result.status == "accepted", result

    def receive(
        self,
        incident: str,
        at: datetime,
        *,
        priority: int = 4,
        code: str = "THEFT",
        district: str = "Central",
        app: Application | None = None,
        phone: str | None = None,
    ) -> None:
        app = app or self.app
        phones = PHONES if app is self.app else OTHER_PHONES
        self.event(
            app,
            incident,
            "call.received",
            at,
            priority=priority,
            # Digits only: the strict default case-number pattern.
            case_number=f"26-{ord(incident[-1]):03d}{at.day:02d}",
            call_type={"code": code},
            district=district,
            caller={"phone": phone or phones[incident], "language": "en"},
        )

    def outbox_row(self, incident: str, kind: str, agency: str = "default") -> OutboxRow:
        with self.app.db.transaction() as session:
            row = session.scalar(
                select(OutboxRow)
                .join(CallRow, OutboxRow.call_id == CallRow.id)
                .where(
                    CallRow.agency_id == agency,
                    CallRow.incident_id == incident,
                    OutboxRow.kind == kind,
                )
            )
            assert row is not None, (incident, kind)
            return row

    def receipt(self, incident: str, kind: str, status: str) -> None:
        row = self.outbox_row(incident, kind)
        assert row.provider_message_id is not None
        result = self.app.receipts.apply(
            StatusReport(row.provider_message_id, status, at=self.clock.now())
        )
        assert result is not None

    def stop(self, phone: str, app: Application | None = None) -> None:
        message = InboundSms(
            from_phone=phone,
            to=self.app.settings.sms.sender,
            body="STOP",
            provider_message_id=f"in-{next(_ids)}",
        )
        (app or self.app).inbound.handle(message, "console")

    def answer(self, form: dict[str, str]) -> None:
        token = survey_tokens(self.console)[-1]
        assert self.survey.open(token, "198.51.100.7").status == "open"
        validation = read_answers(self.survey.definition, form)
        assert validation.ok, validation.errors
        outcome = self.survey.submit(token, validation.answers, "en", "198.51.100.7")
        assert outcome.status == "recorded", outcome

    def open_only(self) -> None:
        token = survey_tokens(self.console)[-1]
        assert self.survey.open(token, "198.51.100.7").status == "open"


def build_week(
    app: Application, other: Application, clock: VirtualClock, console: ConsoleProvider
) -> Week:
    survey = SurveyService(
        app.db,
        app.vault,
        clock,
        load_definition(),
        client_key=b"week-of-calls",
    )
    week = Week(app, other, clock, console, survey)

    # Monday: I-A, and the other agency's I-A and I-X at the same hour.
    week.receive("I-A", local(26, 10))
    week.at(local(26, 10, 0, 20))
    week.receipt("I-A", "confirmation", "delivered")
    week.receive("I-A", local(26, 10, 5), app=other)
    week.receive("I-X", local(26, 10, 6), app=other, district="East")
    week.at(local(26, 10, 6, 30))
    week.stop(OTHER_PHONES["I-A"], app=other)
    week.event(app, "I-A", "call.cleared", local(26, 10, 30))
    week.at(local(26, 10, 46))
    week.answer(ANSWERS_A)

    # Wednesday: I-B, priority 3, East; its confirmation comes back undelivered.
    week.receive("I-B", local(28, 14), priority=3, district="East")
    week.at(local(28, 14, 0, 40))
    week.receipt("I-B", "confirmation", "undelivered")
    week.event(app, "I-B", "unit.dispatched", local(28, 14, 10), unit={"id": "U12"})
    week.event(app, "I-B", "call.cleared", local(28, 14, 50))
    week.at(local(28, 15, 6))
    week.answer(ANSWERS_B)

    # Thursday: two calls that are never texted.
    week.receive("I-C", local(29, 9), priority=2)
    week.receive("I-D", local(29, 11), code="ZZTOP")
    week.at(local(29, 11, 1))

    # Friday: I-G waits over an hour for a unit: a delay notice.
    week.receive("I-G", local(30, 12), district="West")
    week.at(local(30, 12, 0, 30))
    week.at(local(30, 13, 1))
    week.event(app, "I-G", "unit.dispatched", local(30, 13, 30), unit={"id": "U7"})
    week.event(app, "I-G", "call.cleared", local(30, 14))
    week.at(local(30, 14, 16))

    # Saturday 23:30 (Sunday in UTC): I-E, whose caller then answers STOP.
    week.receive("I-E", local(31, 23, 30))
    week.at(local(31, 23, 30, 10))
    week.clock.set(local(31, 23, 40))
    week.stop(PHONES["I-E"])

    # Sunday 00:30: I-F, already February.
    week.receive("I-F", local(1, 0, 30, month=2), district="East")
    week.at(local(1, 0, 30, 50, month=2))
    return week


#: The default agency's application also serves agency ``other`` (its worker sends every
#: agency's texts, each from the agency's own number); ``other``'s own application stands
#: for its intake key and its number's inbound texts.
SERVES_OTHER_TOO = {"CALLERCONNECT_AGENCIES__OTHER__SMS__SENDER": "+13435550142"}


@contextmanager
def week_on(database_url: str) -> Iterator[Week]:
    """The week built on ``database_url`` with its own clock and console provider, for a
    fixture shared by a module's read-only tests."""
    clock = VirtualClock(T0)
    console = ConsoleProvider(io.StringIO())
    apps = [
        build_application(make_settings(url_env[0], **url_env[1]), clock=clock, provider=console)
        for url_env in (
            (database_url, SERVES_OTHER_TOO),
            (database_url, {"CALLERCONNECT_AGENCY_ID": "other"}),
        )
    ]
    try:
        yield build_week(apps[0], apps[1], clock, console)
    finally:
        for app in apps:
            app.close()


@contextmanager
def own_postgres_database(pg_database_url: str) -> Iterator[str]:
    """A database of its own beside the session's (which other tests truncate at will)."""
    name = f"{pg_database_url.rsplit('/', 1)[1]}_week_{secrets.token_hex(3)}"
    admin = create_engine(pg_database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def shared_week(kind: str, folder: Path, pg_database_url: str | None) -> Iterator[Week]:
    if kind == "sqlite":
        with week_on(f"sqlite:///{folder}/week.db") as week:
            yield week
        return
    assert pg_database_url is not None
    with own_postgres_database(pg_database_url) as url, week_on(url) as week:
        yield week
