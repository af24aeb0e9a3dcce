"""A simulated CAD feed: a realistic day of calls, and a runner on a virtual clock.

The feed mixes priorities and call types the way a police service sees them (mostly
priority 3 and 4 property and traffic calls, some urgent ones, some excluded types),
with the awkward parts of real feeds: case numbers that come later, reclassifications,
risk flags, cancellations, merges, duplicates and events that arrive out of order.
Phone numbers are from the fictional 555-01xx range.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callerconnect.clock import VirtualClock

_ELIGIBLE_TYPES = [
    ("THEFT", "Theft under $5000", 20),
    ("THEFTVEH", "Theft from vehicle", 10),
    ("BREAKENTER", "Break and enter, not in progress", 8),
    ("MISCHIEF", "Mischief / vandalism", 8),
    ("FRAUD", "Fraud", 8),
    ("MVC", "Motor vehicle collision, no injuries", 12),
    ("TRAFFIC", "Traffic complaint", 6),
    ("NOISE", "Noise complaint", 6),
    ("SUSPICIOUS", "Suspicious person or vehicle", 6),
    ("LOSTPROP", "Lost property", 4),
    ("CHECKWELL", "Check well-being", 4),
]
_EXCLUDED_TYPES = [
    ("DOMESTIC", "Domestic dispute"),
    ("IPV", "Intimate partner violence"),
    ("SEXASSLT", "Sexual assault"),
    ("ABDUCT", "Abduction"),
    ("BOMB", "Bomb threat"),
    ("ALARM", "Alarm"),
    ("DEMO", "Demonstration"),
]
_DISTRICTS = ["Central", "East", "West", "South", "Rural"]

# The first incidents of every simulated day play these parts, so that each path of
# the policy shows up in the demo whatever the seed; the others are drawn at random.
_SCENARIOS = ["reclassified", "risk_flag", "unknown_type", "opt_out", "cancelled", "merged"]
# Where each scenario falls on the random "fate" scale used below.
_FATE = {"risk_flag": 0.0, "reclassified": 0.04, "cancelled": 0.07, "merged": 0.10}


@dataclass(frozen=True)
class FeedEvent:
    """An event and the moment the CAD delivers it (may lag ``occurred_at``)."""

    delivered_at: datetime
    payload: dict[str, Any]


def simulated_day(start: datetime, calls: int = 60, seed: int = 2024) -> list[FeedEvent]:
    """Events for ``calls`` incidents received over the 20 hours after ``start``, in
    delivery order."""
    rng = random.Random(seed)
    feed: list[FeedEvent] = []
    for number in range(calls):
        received = start + timedelta(seconds=rng.uniform(0, 20 * 3600))
        feed.extend(_incident(rng, number, received))
    feed.sort(key=lambda e: e.delivered_at)
    return feed


def _incident(rng: random.Random, number: int, received: datetime) -> Iterator[FeedEvent]:
    incident = f"SIM-{received:%y%m%d}-{number:04d}"
    case_number = f"{received:%y}-{30000 + number:05d}"
    seq = iter(range(1, 100))

    def event(at: datetime, type_: str, lag: float = 0, **fields: Any) -> FeedEvent:
        payload = {
            "event_id": f"{incident}-{next(seq)}",
            "incident_id": incident,
            "occurred_at": at.isoformat(timespec="seconds"),
            "type": type_,
            **fields,
        }
        return FeedEvent(at + timedelta(seconds=lag), payload)

    scenario = _SCENARIOS[number] if number < len(_SCENARIOS) else None
    priority = rng.choices([1, 2, 3, 4, 5], weights=[4, 8, 25, 58, 5])[0]
    if scenario is not None:
        priority = rng.choice([3, 4])
    if scenario is None and rng.random() < 0.14:
        code, description = rng.choice(_EXCLUDED_TYPES)
    elif scenario == "unknown_type" or (scenario is None and rng.random() < 0.04):
        code, description = "WELFARE2", "Welfare concern (new code)"
    else:
        code, description = rng.choices(
            [(c, d) for c, d, _ in _ELIGIBLE_TYPES], weights=[w for *_, w in _ELIGIBLE_TYPES]
        )[0]
    caller: dict[str, Any] = {"phone": f"613-555-01{rng.randint(0, 99):02d}"}
    language = rng.choices(["en", "fr", None], weights=[60, 25, 15])[0]
    if language:
        caller["language"] = language
    if scenario == "opt_out" or (scenario is None and rng.random() < 0.03):
        caller["sms_opt_out"] = True
    received_fields: dict[str, Any] = {
        "priority": priority,
        "call_type": {"code": code, "description": description},
        "district": rng.choice(_DISTRICTS),
        "caller": caller,
    }
    if scenario is None and rng.random() < 0.05:
        received_fields["in_progress"] = True
    case_later = rng.random() < 0.5
    if not case_later:
        received_fields["case_number"] = case_number
    first = event(received, "call.received", **received_fields)
    # The same event delivered twice, as feeds do after a reconnect.
    again = rng.random() < 0.04

    t = received
    held_back = 0.0
    if case_later:
        t = t + timedelta(minutes=rng.uniform(1, 4))
        # Out of order: the call itself sometimes arrives after its update (delivered
        # late, never stamped ahead of its delivery, which the intake would refuse).
        held_back = rng.uniform(0, 200)
        yield event(t, "call.updated", case_number=case_number)
    yield FeedEvent(first.delivered_at + timedelta(seconds=held_back), first.payload)
    if again:
        yield FeedEvent(first.delivered_at + timedelta(seconds=held_back + 5), first.payload)

    fate = _FATE.get(scenario or "", rng.random() if scenario is None else 1.0)
    if fate < 0.03:
        yield event(t + timedelta(minutes=10), "call.updated", risk_flag=True)
    elif fate < 0.06:
        new_code, new_description = rng.choice(_EXCLUDED_TYPES)
        t = t + timedelta(minutes=rng.uniform(5, 25))
        yield event(t, "call.updated", call_type={"code": new_code, "description": new_description})
    elif fate < 0.09:
        yield event(t + timedelta(minutes=rng.uniform(3, 20)), "call.cancelled")
        return
    elif fate < 0.11:
        yield event(
            t + timedelta(minutes=rng.uniform(3, 20)),
            "call.merged",
            merged_into=f"SIM-{received:%y%m%d}-{max(0, number - 1):04d}",
        )
        return

    # Most priority 4 calls wait longer than an hour on a busy day.
    wait = rng.expovariate(1 / (70 if priority >= 4 else 35 if priority == 3 else 5))
    dispatched = received + timedelta(minutes=wait)
    eta = rng.randint(5, 40)
    unit = {"id": f"{rng.randint(1, 9)}C{rng.randint(10, 99)}", "eta_minutes": eta}
    yield event(dispatched, "unit.dispatched", lag=rng.uniform(0, 30), unit=unit)
    arrived = dispatched + timedelta(minutes=eta)
    yield event(arrived, "unit.arrived", lag=rng.uniform(0, 30))
    cleared = arrived + timedelta(minutes=rng.uniform(15, 90))
    disposition = rng.choice(
        [("RPRT", "Report taken"), ("GOA", "Gone on arrival"), ("ADV", "Advice given")]
    )
    yield event(
        cleared,
        "call.cleared",
        lag=rng.uniform(0, 60),
        disposition={"code": disposition[0], "description": disposition[1]},
    )


def replay(
    feed: list[FeedEvent],
    clock: VirtualClock,
    submit: Callable[[dict[str, Any]], object],
    run_due: Callable[[], int],
    next_due_at: Callable[[], datetime | None],
    until: datetime,
) -> None:
    """Deliver each event at its moment on the virtual clock, sending every text at
    the moment it falls due in between, then drain the outbox up to ``until``."""
    for item in sorted(feed, key=lambda e: e.delivered_at):
        _advance(clock, item.delivered_at, run_due, next_due_at)
        submit(item.payload)
        run_due()
    _advance(clock, until, run_due, next_due_at)


def _advance(
    clock: VirtualClock,
    target: datetime,
    run_due: Callable[[], int],
    next_due_at: Callable[[], datetime | None],
) -> None:
    while True:
        due = next_due_at()
        if due is None or due > target:
            break
        clock.set(due)
        run_due()
    clock.set(target)
