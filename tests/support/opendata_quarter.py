"""A quarter of calls (January to March 2026 by default, Ottawa time) taken through the real intake,
dispatcher and survey service, every response carrying a comment full of what must never
be published: the caller's phone number, the case number, the incident id, a name."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.domain.survey import read_answers
from callerconnect.service.intake import Intake
from callerconnect.service.survey import SurveyService, load_definition
from tests.support.survey import survey_tokens

OTTAWA = ZoneInfo("America/Toronto")
DISTRICTS = ("Central", "East", "West")
QUESTIONS = ("call_taker", "officer", "kept_informed", "respect", "overall")


@dataclass
class Quarter:
    """What was sent in, for the tests to look for in the published bytes."""

    phones: list[str] = field(default_factory=list)
    case_numbers: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)
    """Responses per local month."""


def simulate_quarter(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    *,
    calls_per_month: int = 30,
    seed: int = 7,
    agency: str | None = None,
    year: int = 2026,
) -> Quarter:
    """``agency``'s quarter (the default agency's when None) of ``year``; ``console`` is
    the provider its texts go out through."""
    rng = random.Random(seed)
    intake = app.intakes[agency] if agency else app.intake
    survey = SurveyService(
        app.db,
        app.vault,
        clock,
        load_definition(),
        client_key=b"opendata-quarter",
    )
    quarter = Quarter()
    number = 0
    for month in (1, 2, 3):
        for index in range(calls_per_month):
            number += 1
            day = 1 + index * 27 // calls_per_month
            start = datetime(year, month, day, 10 + index % 5, 7, tzinfo=OTTAWA)
            incident = f"INC-{month}{number:05d}"
            case_number = f"26-{number:06d}"
            phone = f"613-555-{1000 + number:04d}"
            quarter.phones.append(phone)
            quarter.case_numbers.append(case_number)
            quarter.incidents.append(incident)
            _event(
                intake,
                clock,
                incident,
                "call.received",
                start,
                number,
                priority=rng.choice((3, 4, 4)),
                case_number=case_number,
                call_type={"code": "THEFT"},
                district=rng.choice(DISTRICTS),
                caller={"phone": phone, "language": "en"},
            )
            clock.set(start + timedelta(minutes=1))
            app.dispatcher.run_due()
            _event(
                intake,
                clock,
                incident,
                "call.cleared",
                start + timedelta(minutes=30),
                number + 100_000,
            )
            clock.set(start + timedelta(minutes=47))
            app.dispatcher.run_due()
            if rng.random() < 0.3:
                continue  # not everyone answers
            token = survey_tokens(console)[-1]
            assert survey.open(token, "198.51.100.7").status == "open"
            comment = (
                f"Jane Tremblay at {phone} about case {case_number} ({incident}), "
                f"jane{number}@example.com"
            )
            form = {q: str(rng.randint(1, 5)) for q in QUESTIONS if rng.random() < 0.9}
            form.setdefault("overall", "4")
            form["comment"] = comment
            validation = read_answers(survey.definition, form)
            assert validation.ok, validation.errors
            outcome = survey.submit(token, validation.answers, "en", "198.51.100.7")
            assert outcome.status == "recorded", outcome
            quarter.comments.append(comment)
            key = f"{year}-{month:02d}"
            quarter.responses[key] = quarter.responses.get(key, 0) + 1
    return quarter


def _event(
    intake: Intake,
    clock: VirtualClock,
    incident: str,
    type_: str,
    at: datetime,
    number: int,
    **fields: object,
) -> None:
    clock.set(at)
    payload = {
        "event_id": f"q-{type_}-{number}",
        "incident_id": incident,
        "occurred_at": at.isoformat(),
        "type": type_,
        **fields,
    }
    result = intake.submit(payload, "test")
    assert result.status == "accepted", result
