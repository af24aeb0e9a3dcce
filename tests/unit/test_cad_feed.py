"""The simulated CAD feed (service/cad_feed.py): realistic, valid, fictional, repeatable."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from callerconnect.adapters.cad.native import parse_event
from callerconnect.entrypoints.simulate import bundled_call_types
from callerconnect.service.cad_feed import (
    DEFAULT_CALLS_PER_DAY,
    PRIORITY_3_PER_YEAR,
    PRIORITY_4_PER_YEAR,
    FeedPlan,
    generate,
)

OTTAWA = ZoneInfo("America/Toronto")
MONDAY = datetime(2026, 3, 2, tzinfo=OTTAWA)
TYPES = bundled_call_types()
FICTIONAL = re.compile(r"613-555-01[0-9]{2}")


def received(plan: FeedPlan) -> list[dict]:
    return [e.payload for e in generate(plan, TYPES) if e.payload["type"] == "call.received"]


def test_the_default_rate_is_ottawas_priority_3_and_4_calls_a_day() -> None:
    assert DEFAULT_CALLS_PER_DAY == 751
    calls = received(FeedPlan(MONDAY, days=7, seed=1))
    by_priority = Counter(c["priority"] for c in {c["incident_id"]: c for c in calls}.values())
    textable = by_priority[3] + by_priority[4]
    assert 0.9 * 7 * 751 < textable < 1.1 * 7 * 751
    share_3 = by_priority[3] / textable
    expected = PRIORITY_3_PER_YEAR / (PRIORITY_3_PER_YEAR + PRIORITY_4_PER_YEAR)
    assert abs(share_3 - expected) < 0.02
    assert by_priority[1] + by_priority[2] > 0.1 * textable  # a real feed's urgent calls
    excluded = {t.code for t in TYPES if not t.textable}
    assert sum(c["call_type"]["code"] in excluded for c in calls) > 0.05 * len(calls)


def test_calls_follow_the_hour_of_day_and_the_week_and_the_surge_day() -> None:
    calls = {c["incident_id"]: c for c in received(FeedPlan(MONDAY, days=7, seed=2))}
    hours = Counter(datetime.fromisoformat(c["occurred_at"]).hour for c in calls.values())
    assert hours[16] > 3 * hours[4]  # afternoon vs before dawn
    days = Counter(datetime.fromisoformat(c["occurred_at"]).weekday() for c in calls.values())
    assert days[4] > days[6]  # Friday busier than Sunday
    surge = {c["incident_id"] for c in received(FeedPlan(MONDAY, days=3, surge=3, seed=2))}
    per_day = Counter(i.split("-")[1] for i in surge)
    middle = (MONDAY + timedelta(days=1)).strftime("%y%m%d")
    others = [n for day, n in per_day.items() if day != middle]
    assert per_day[middle] > 2.5 * max(others)


def test_the_same_seed_gives_the_same_feed_and_another_seed_another() -> None:
    plan = FeedPlan(MONDAY, days=1, calls_per_day=200, seed=7)
    first = [e.payload for e in generate(plan, TYPES)]
    assert first == [e.payload for e in generate(plan, TYPES)]
    other = FeedPlan(MONDAY, days=1, calls_per_day=200, seed=8)
    assert first != [e.payload for e in generate(other, TYPES)]


def test_the_feed_has_the_awkward_parts_of_real_feeds() -> None:
    feed = [e.payload for e in generate(FeedPlan(MONDAY, days=1, seed=3), TYPES)]
    kinds = Counter(e["type"] for e in feed)
    assert {"unit.dispatched", "call.cleared", "call.updated", "call.cancelled"} <= set(kinds)
    received = Counter(e["incident_id"] for e in feed if e["type"] == "call.received")
    assert any(n > 1 for n in received.values())  # a call delivered twice
    languages = Counter(e["caller"].get("language") for e in feed if "caller" in e)
    assert languages["en"] and languages["fr"] and languages[None]
    late_case = [e for e in feed if e["type"] == "call.updated" and "case_number" in e]
    assert late_case
    occurred = [datetime.fromisoformat(e["occurred_at"]) for e in feed]
    assert any(b < a for a, b in itertools.pairwise(occurred))  # out of order
    assert any(e["type"] == "call.updated" and "call_type" in e for e in feed)  # reclassifications


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), calls=st.integers(1, 60), surge=st.floats(0, 4))
def test_every_event_is_valid_and_every_phone_fictional(
    seed: int, calls: int, surge: float
) -> None:
    plan = FeedPlan(MONDAY, days=2, calls_per_day=calls, surge=surge, seed=seed)
    for item in generate(plan, TYPES):
        parse_event(item.payload)  # raises EventRejected for anything the intake refuses
        phone = item.payload.get("caller", {}).get("phone")
        assert phone is None or FICTIONAL.fullmatch(phone), phone
