"""A realistic CAD feed over days: how many calls, when, of which priority and type.

Ottawa's police answered 62,795 priority-3 and 211,280 priority-4 calls in 2024, about
750 a day; a real feed also carries the urgent calls (priorities 1–2) and the types that
are never texted. Calls follow the hour of the day (quiet before dawn, busiest in the
late afternoon) and the day of the week (Fridays busiest, Sundays quietest); one day can
be a surge. Each incident's own events — delays to dispatch and clearance, languages,
case numbers that come late, reclassifications, duplicates, out-of-order delivery — come
from :mod:`callerconnect.service.simulation`, which the demo's simulated day also uses.

Pure: no I/O, one seeded :class:`random.Random`, so the same arguments give the same feed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from callerconnect.service.simulation import DrawKind, FeedEvent, incident_events

#: Ottawa 2024: priority-3 and priority-4 calls a year.
PRIORITY_3_PER_YEAR = 62_795
PRIORITY_4_PER_YEAR = 211_280
#: Priority 3 and 4 calls a day: the default rate.
DEFAULT_CALLS_PER_DAY = round((PRIORITY_3_PER_YEAR + PRIORITY_4_PER_YEAR) / 365)
#: Urgent calls (priorities 1–2) carried alongside, per priority 3–4 call.
URGENT_SHARE = 0.25
#: Of the priority 3–4 calls, the share whose type is never texted (from the table).
EXCLUDED_TYPE_SHARE = 0.12

#: Relative call volume by local hour, midnight first: a trough at 4–5 a.m., a climb
#: through the morning and a plateau from noon to the evening.
HOUR_SHAPE = (
    3.2, 2.6, 2.1, 1.6, 1.3, 1.3, 1.8, 2.7, 3.7, 4.4, 4.8, 5.0,
    5.2, 5.3, 5.4, 5.6, 5.8, 5.8, 5.5, 5.1, 4.7, 4.4, 4.0, 3.6,
)  # fmt: skip
#: Relative daily volume, Monday first.
WEEKDAY_SHAPE = (0.98, 0.97, 0.99, 1.01, 1.10, 1.02, 0.93)


@dataclass(frozen=True)
class CallTypeEntry:
    code: str
    description: str
    textable: bool


@dataclass(frozen=True)
class FeedPlan:
    start: datetime
    days: int = 1
    calls_per_day: int = DEFAULT_CALLS_PER_DAY
    surge: float = 1.0
    seed: int = 0

    @property
    def surge_day(self) -> int | None:
        """The day (from 0) at ``surge`` times the usual rate: the middle one."""
        return self.days // 2 if self.surge != 1.0 else None


def _kind_drawer(call_types: Sequence[CallTypeEntry]) -> DrawKind:
    textable = [t for t in call_types if t.textable]
    excluded = [t for t in call_types if not t.textable]
    p3_share = PRIORITY_3_PER_YEAR / (PRIORITY_3_PER_YEAR + PRIORITY_4_PER_YEAR)
    urgent_odds = URGENT_SHARE / (1 + URGENT_SHARE)

    def draw(rng: random.Random) -> tuple[int, str, str]:
        if rng.random() < urgent_odds:
            kind = rng.choice(call_types)
            return rng.choice((1, 2)), kind.code, kind.description
        priority = 3 if rng.random() < p3_share else 4
        pool = excluded if excluded and rng.random() < EXCLUDED_TYPE_SHARE else textable
        kind = rng.choice(pool or list(call_types))
        return priority, kind.code, kind.description

    return draw


def calls_on(plan: FeedPlan, day: int, rng: random.Random) -> int:
    """How many incidents day ``day`` has: the rate, the weekday, the surge, and some
    day-to-day scatter."""
    weekday = (plan.start + timedelta(days=day)).weekday()
    mean = plan.calls_per_day * (1 + URGENT_SHARE) * WEEKDAY_SHAPE[weekday]
    if day == plan.surge_day:
        mean *= plan.surge
    return max(0, round(rng.gauss(mean, mean**0.5)))


def generate(plan: FeedPlan, call_types: Sequence[CallTypeEntry]) -> Iterator[FeedEvent]:
    """Every event of the plan, in delivery order (which is not the order they occurred
    in: a feed delivers some late and some early)."""
    if not call_types:
        raise ValueError("the feed needs at least one call type")
    rng = random.Random(plan.seed)
    draw = _kind_drawer(call_types)
    # Hours counted from the start: weight each by the clock hour it falls on.
    hour_weights = [HOUR_SHAPE[(plan.start.hour + h) % 24] for h in range(24)]
    number = 0
    for day in range(plan.days):
        day_start = plan.start + timedelta(days=day)
        events: list[FeedEvent] = []
        for _ in range(calls_on(plan, day, rng)):
            hour = rng.choices(range(24), weights=hour_weights)[0]
            received = day_start + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
            events.extend(incident_events(rng, number, received, draw))
            number += 1
        # A day's events are delivered in order; an incident's last events can spill
        # into the next day, which then starts a little out of order, as feeds do.
        events.sort(key=lambda e: e.delivered_at)
        yield from events
