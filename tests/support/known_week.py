"""A known week of calls, texts and survey answers, made through the real flow (CAD
events to the intake API, the dispatcher, receipts, a caller's STOP, the survey form),
with the figures a reader must find for it worked out by hand."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from callerconnect.adapters.sms.base import InboundSms, StatusReport
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from tests.conftest import TEST_INTAKE_KEY
from tests.support.dashboard import TestClient, csrf_of

OTTAWA = ZoneInfo("America/Toronto")
WEEK = ("2026-01-19", "2026-01-25")  # Monday to Sunday, after the tests' clock start
_LINK = re.compile(r"/s/([A-Za-z0-9_-]{22,})")
_ids = count(1)


@dataclass
class Call:
    day: int  # 19..25 January 2026
    hour: int  # local
    district: str
    priority: int
    code: str
    confirm_after: int = 0  # seconds; 0: not eligible, no text expected
    clear: bool = True
    answers: dict[str, str] | None = None
    open_survey: bool = False
    delay_notice: bool = False
    stop: bool = False
    receipt: str | None = None  # status of the confirmation's receipt
    comment: str | None = None
    incident: str = field(default_factory=lambda: f"W-{next(_ids)}")

    @property
    def texted(self) -> bool:
        return self.confirm_after > 0


def scores(ct: str, off: str, kept: str, respect: str, overall: str) -> dict[str, str]:
    return {
        "call_taker": ct,
        "officer": off,
        "kept_informed": kept,
        "respect": respect,
        "overall": overall,
    }


CALLS = [
    Call(19, 10, "Central", 4, "THEFT", 30, answers=scores("5", "4", "4", "5", "5"),
         receipt="delivered", comment="Constable Tremblay called me back at 613-555-0199, thanks"),
    Call(19, 13, "East", 3, "THEFT", 60, answers=scores("4", "2", "3", "4", "3")),
    Call(20, 10, "Central", 4, "MISCHIEF", 90, answers=scores("5", "5", "5", "5", "5"),
         comment="Write to me at jane.doe@example.com please"),
    Call(20, 13, "Central", 4, "THEFT", 120, answers=scores("3", "no_officer", "2", "3", "2")),
    Call(21, 10, "East", 4, "THEFTVEH", 45, answers=scores("5", "4", "4", "4", "4")),
    Call(21, 13, "West", 4, "THEFT", 30, open_survey=True),
    Call(22, 10, "West", 3, "BREAKENTER", 75, clear=False, delay_notice=True, stop=True,
         receipt="undelivered"),
    Call(22, 13, "Central", 1, "THEFT"),
    Call(23, 10, "East", 4, "SEXASSLT"),
    Call(23, 13, "West", 4, "ZZUNMAPPED"),
    Call(24, 10, "Central", 4, "THEFT", 60, answers=scores("4", "5", "5", "5", "4"),
         comment="Merci beaucoup"),
]  # fmt: skip


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=OTTAWA)


def _post(client: TestClient, event: dict[str, Any]) -> None:
    response = client.post(
        "/api/v1/cad/events",
        json={"event_id": f"kw-{next(_ids)}", **event},
        headers={"Authorization": f"Bearer {TEST_INTAKE_KEY}"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["results"][0]["status"] == "accepted", response.text


def build_known_week(
    api: FastAPI, app: Application, clock: VirtualClock, console: ConsoleProvider
) -> None:
    client = TestClient(api)
    for n, call in enumerate(CALLS):
        received = _local(call.day, call.hour)
        clock.set(received)
        phone = f"613-555-01{n + 10:02d}"
        _post(
            client,
            {
                "incident_id": call.incident,
                "occurred_at": received.isoformat(),
                "type": "call.received",
                "priority": call.priority,
                "case_number": f"26-{n + 100:05d}",
                "call_type": {"code": call.code},
                "district": call.district,
                "caller": {"phone": phone, "language": "en"},
            },
        )
        sent_before = len(console.sent)
        clock.advance(timedelta(seconds=call.confirm_after or 30))
        app.dispatcher.run_due()
        assert len(console.sent) == sent_before + (1 if call.texted else 0), call
        if call.receipt:
            confirmation_id = console.sent[-1][0]
            app.receipts.apply(StatusReport(confirmation_id, call.receipt))
        if call.delay_notice:
            clock.set(received + timedelta(minutes=31))
            app.dispatcher.run_due()
            assert len(console.sent) == sent_before + 2, call
        if call.stop:
            clock.advance(timedelta(minutes=2))
            app.inbound.handle(
                InboundSms(phone, app.settings.sms.sender, "STOP", f"in-{n}"), "console"
            )
            app.dispatcher.run_due()  # the one confirmation of the opt-out (a reply)
        if not call.clear:
            continue
        clock.advance(timedelta(minutes=1))
        _post(
            client,
            {
                "incident_id": call.incident,
                "occurred_at": clock.now().isoformat(),
                "type": "call.cleared",
            },
        )
        clock.advance(app.policy.survey_after_clear + timedelta(minutes=1))
        before = len(console.sent)
        app.dispatcher.run_due()
        if not call.texted:
            assert len(console.sent) == before, call
            continue
        assert len(console.sent) == before + 1, call
        token = _LINK.search(console.sent[-1][1].body)
        assert token is not None
        if not (call.answers or call.open_survey):
            continue
        page = client.get(f"/s/{token.group(1)}")
        assert page.status_code == 200
        if call.answers:
            clock.advance(timedelta(minutes=3))
            form = {**call.answers, "csrf_token": csrf_of(page.text), "action": "submit"}
            if call.comment:
                form["comment"] = call.comment
            answered = client.post(f"/s/{token.group(1)}", data=form, follow_redirects=False)
            assert answered.status_code == 303, answered.text


# --- the figures, worked out from CALLS alone -----------------------------------------------


def _answered(question: str, calls: list[Call]) -> list[int]:
    return [int(c.answers[question]) for c in calls if c.answers and c.answers[question].isdigit()]


def expected_metrics(calls: list[Call] = CALLS) -> dict[str, Any]:
    texted = [c for c in calls if c.texted]
    seconds = [float(c.confirm_after) for c in texted]
    surveyed = [c for c in texted if c.clear]
    metrics: dict[str, Any] = {
        "calls_received": len(calls),
        "calls_eligible": len(texted),
        "calls_texted": len(texted),
        "confirmations_sent": len(texted),
        "delay_notices_sent": sum(c.delay_notice for c in calls),
        "surveys_sent": len(surveyed),
        "surveys_opened": sum(bool(c.answers or c.open_survey) for c in surveyed),
        "surveys_completed": sum(bool(c.answers) for c in calls),
        "texts_delivered": sum(c.receipt == "delivered" for c in calls),
        "texts_failed": sum(c.receipt in ("failed", "undelivered") for c in calls),
        "opt_outs": sum(c.stop for c in calls),
        "median_seconds_to_confirmation": statistics.median(seconds) if seconds else None,
        "p90_seconds_to_confirmation": (
            statistics.quantiles(seconds, n=10, method="inclusive")[8] if seconds else None
        ),
    }
    metrics["texts_sent"] = (
        metrics["confirmations_sent"] + metrics["delay_notices_sent"] + metrics["surveys_sent"]
    )
    metrics["response_rate"] = (
        metrics["surveys_completed"] / metrics["surveys_sent"] if metrics["surveys_sent"] else None
    )
    for question in ("call_taker", "officer", "kept_informed", "respect", "overall"):
        values = _answered(question, calls)
        metrics[f"{question}_answers"] = len(values)
        if len(values) < 5:
            metrics[f"{question}_share_positive"] = "suppressed"
            metrics[f"{question}_mean"] = "suppressed"
        else:
            metrics[f"{question}_share_positive"] = sum(v >= 4 for v in values) / len(values)
            metrics[f"{question}_mean"] = sum(values) / len(values)
    return metrics
