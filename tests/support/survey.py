"""Survey test helpers: calls that go through the real flow (CAD events over HTTP, the
dispatcher, the console provider) up to a survey text, and form handling."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from itertools import count
from typing import Any

import httpx

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock

_LINK = re.compile(r"https?://\S+?/s/([A-Za-z0-9_-]{22,})")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_events = count(1)

ANSWERS = {
    "call_taker": "5",
    "officer": "no_officer",
    "kept_informed": "4",
    "respect": "5",
    "overall": "4",
    "comment": "Quick and kind.",
}


def post_call(
    base_url: str,
    auth: dict[str, str],
    *,
    incident: str,
    case_number: str = "26-00001",
    call_type: str = "THEFT",
    language: str | None = "en",
    phone: str | None = "613-555-0142",
    priority: int = 4,
    cleared: bool = True,
) -> None:
    """A call received at 09:00 and (by default) cleared at 09:20, Ottawa time, on T0."""
    caller: dict[str, Any] = {}
    if phone is not None:
        caller["phone"] = phone
    if language is not None:
        caller["language"] = language
    events: list[dict[str, Any]] = [
        {
            "event_id": f"ev-{next(_events)}",
            "incident_id": incident,
            "occurred_at": "2026-01-16T09:00:00-05:00",
            "type": "call.received",
            "priority": priority,
            "case_number": case_number,
            "call_type": {"code": call_type},
            "district": "Central",
            **({"caller": caller} if caller else {}),
        }
    ]
    if cleared:
        events.append(
            {
                "event_id": f"ev-{next(_events)}",
                "incident_id": incident,
                "occurred_at": "2026-01-16T09:20:00-05:00",
                "type": "call.cleared",
            }
        )
    response = httpx.post(
        f"{base_url}/api/v1/cad/events", json={"events": events}, headers=auth, timeout=10
    )
    assert response.status_code == 202, response.text
    assert {r["status"] for r in response.json()["results"]} == {"accepted"}, response.text


def post_event(base_url: str, auth: dict[str, str], **event: Any) -> None:
    body = {"event_id": f"ev-{next(_events)}", **event}
    response = httpx.post(f"{base_url}/api/v1/cad/events", json=body, headers=auth, timeout=10)
    assert response.status_code == 202, response.text


def send_survey_texts(app: Application, clock: VirtualClock) -> None:
    """Move past ``survey_after_clear`` (the calls clear at 09:20 Ottawa time) and let
    the dispatcher send what is due."""
    after = app.policy.survey_after_clear + timedelta(minutes=1)
    clock.set(clock.now().replace(hour=14, minute=20, second=0) + after)
    app.dispatcher.run_due()


def survey_tokens(console: ConsoleProvider) -> list[str]:
    """Tokens of every survey link texted so far, oldest first."""
    return [m.group(1) for _, sms in console.sent for m in _LINK.finditer(sms.body)]


def invite(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    base_url: str,
    auth: dict[str, str],
    **call: Any,
) -> str:
    """A cleared call through the real flow; the token of the survey text it got."""
    before = len(survey_tokens(console))
    post_call(base_url, auth, **call)
    send_survey_texts(app, clock)
    tokens = survey_tokens(console)
    assert len(tokens) == before + 1, [sms.body for _, sms in console.sent]
    return tokens[-1]


def csrf_of(page: str) -> str:
    match = _CSRF.search(page)
    assert match is not None, page
    return html.unescape(match.group(1))
