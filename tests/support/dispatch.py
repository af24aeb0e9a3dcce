"""Helpers for the outbox and dispatcher tests: CAD events, outbox snapshots, a
Twilio-compatible server that also records when each request arrived, and the
environment that points callerconnect at it."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from callerconnect.adapters.db.tables import CallRow, OutboxRow, TextStatusChangeRow
from callerconnect.bootstrap import Application
from callerconnect.domain.messages import TextStatus
from callerconnect.service.dispatcher import Dispatcher
from tests.support.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio

_event_ids = itertools.count(1)


def event(incident: str, type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
    """A native CAD event (contract section 1) with a fresh event id."""
    return {
        "event_id": f"ev-{incident}-{next(_event_ids)}",
        "incident_id": incident,
        "occurred_at": at.isoformat(),
        "type": type_,
        **fields,
    }


def received(
    incident: str,
    at: datetime,
    *,
    phone: str = "613-555-0142",
    priority: int = 4,
    case_number: str | None = "26-00001",
    code: str = "THEFT",
    language: str | None = "en",
    **fields: Any,
) -> dict[str, Any]:
    caller: dict[str, Any] = {"phone": phone}
    if language is not None:
        caller["language"] = language
    body: dict[str, Any] = {"priority": priority, "call_type": {"code": code}, "caller": caller}
    if case_number is not None:
        body["case_number"] = case_number
    return event(incident, "call.received", at, **body, **fields)


def other_worker(app: Application, owner: str, provider: Any = None) -> Dispatcher:
    """Another worker process on the same database: its own owner id, and a provider
    of its own when given."""
    return Dispatcher(
        app.db,
        app.vault,
        app.clock,
        app.agencies.with_provider(provider) if provider else app.agencies,
        dataclasses.replace(app.dispatcher.options, owner=owner),
    )


def submit(app: Application, *events: dict[str, Any]) -> None:
    for payload in events:
        result = app.intake.submit(payload, "test")
        assert result.status == "accepted", result


@dataclass(frozen=True)
class Text:
    """One outbox row as the tests look at it."""

    id: int
    incident: str | None
    kind: str
    status: str
    reason: str | None
    attempts: int
    not_before: datetime
    expires_at: datetime
    sent_at: datetime | None
    error_code: str | None
    dedupe_key: str


def texts(app: Application) -> list[Text]:
    with app.db.transaction() as session:
        rows = session.execute(
            select(OutboxRow, CallRow.incident_id)
            .outerjoin(CallRow, OutboxRow.call_id == CallRow.id)
            .order_by(OutboxRow.id)
        ).all()
        return [
            Text(
                id=row.id,
                incident=incident,
                kind=row.kind,
                status=row.status,
                reason=row.reason,
                attempts=row.attempts,
                not_before=row.not_before,
                expires_at=row.expires_at,
                sent_at=row.sent_at,
                error_code=row.error_code,
                dedupe_key=row.dedupe_key,
            )
            for row, incident in rows
        ]


def text(app: Application, incident: str, kind: str) -> Text:
    found = [t for t in texts(app) if t.incident == incident and t.kind == kind]
    assert len(found) == 1, f"{incident}/{kind}: {found}"
    return found[0]


def history(app: Application, outbox_id: int) -> list[tuple[str, str | None, datetime]]:
    with app.db.transaction() as session:
        rows = session.scalars(
            select(TextStatusChangeRow)
            .where(TextStatusChangeRow.outbox_id == outbox_id)
            .order_by(TextStatusChangeRow.id)
        ).all()
        return [(row.status, row.reason, row.at) for row in rows]


def assert_histories_valid(app: Application) -> None:
    """Every text's recorded history is a path through the status graph, in time order,
    ending at the row's current status."""
    for t in texts(app):
        steps = history(app, t.id)
        assert steps, f"text {t.id} has no recorded status"
        assert steps[0][0] in (TextStatus.SCHEDULED, TextStatus.SUPPRESSED), steps
        for (before, _, at_before), (after, _, at_after) in itertools.pairwise(steps):
            assert TextStatus(before).can_become(TextStatus(after)), (t, steps)
            assert at_before <= at_after, (t, steps)
        assert steps[-1][0] == t.status, (t, steps)
        if t.status == TextStatus.SENT:
            assert t.sent_at is not None


# --- a Twilio-compatible endpoint that times its requests -----------------------------


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the request reached the server
    to: str
    body: str


class TimedFakeTwilio(FakeTwilio):
    """:class:`FakeTwilio` that also records the arrival time of every request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arrivals: list[Arrival] = []
        self._arrivals_lock = threading.Lock()

    def _respond_to(self, method: str, path: str, handler: Any, form: dict[str, str]) -> Any:
        arrival = Arrival(time.monotonic(), form.get("To", ""), form.get("Body", ""))
        with self._arrivals_lock:
            self._arrivals.append(arrival)
        return super()._respond_to(method, path, handler, form)

    @property
    def arrivals(self) -> list[Arrival]:
        with self._arrivals_lock:
            return sorted(self._arrivals, key=lambda a: a.at)

    def bodies_to(self, phone: str) -> list[str]:
        return [m.body for m in self.messages if m.to == phone]


def twilio_env(fake: FakeTwilio) -> dict[str, str]:
    return {
        "CALLERCONNECT_SMS__PROVIDER": "twilio",
        "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "CALLERCONNECT_SMS__TWILIO__API_BASE": fake.api_base,
    }


def gaps(moments: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(moments)]


def most_in_window(moments: Iterable[float], width: float = 1.0) -> int:
    """The largest number of moments inside any window ``[t, t + width)``."""
    ordered = sorted(moments)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best
