"""Incident scripts drawn with :mod:`random` instead of hypothesis, for volume.

Hypothesis spends about nine tenths of each example on its own engine; this draws
scripts with the same shapes and distributions as ``domain_strategies.scripts()`` at a
tenth of the cost, so CI can check the safety invariants over 100,000 incident
histories. Hypothesis stays the tool for finding and shrinking a counter-example; this
is the tool for volume. A failure names its seed, and ``script_for(seed)`` rebuilds it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from tests.unit.domain_strategies import (  # the same shapes as the hypothesis strategies
    _ALL_TYPES,
    _NON_STICKY_TYPES,
    BASES,
    CLOCK_OFFSETS,
    EXCLUDED_CODES,
    INCIDENT,
    OTHER_PHONE,
    PHONE,
    PRIORITY_SETUPS,
    QUIET_HOURS_CHOICES,
    STICKY_TRIGGERS,
    TEXTABLE_CODES,
    UNKNOWN_CODES,
    UPGRADES,
    Script,
    make_policy,
)

from callerconnect.domain.facts import CallFact, FactType

_POLICIES = [
    make_policy(
        priorities=priorities,
        delay_notice_after=delays,
        quiet_hours=quiet,
        max_texts_per_phone_per_day=cap,
    )
    for priorities, delays in PRIORITY_SETUPS
    for quiet in QUIET_HOURS_CHOICES
    for cap in (8, 3, 1)
]


def _call_type(rng: random.Random, sticky: bool) -> str | None:
    roll = rng.randrange(7 if sticky else 5)
    if roll == 0:
        return None
    if roll in (1, 2):
        return rng.choice(TEXTABLE_CODES)
    if roll == 3:
        return rng.choice(UNKNOWN_CODES)
    if roll == 4:
        return f" {rng.choice(TEXTABLE_CODES).lower()}"  # a CAD's own spelling
    return rng.choice(EXCLUDED_CODES)


def _minutes(rng: random.Random) -> int:
    if rng.random() < 0.75:
        return rng.randint(-30, 8 * 60)
    return rng.randint(-3 * 24 * 60, 3 * 24 * 60)  # a CAD clock jump, a days-late event


def _fact(rng: random.Random, base: datetime, event_id: str, sticky: bool) -> CallFact:
    type_ = rng.choice(_ALL_TYPES if sticky else _NON_STICKY_TYPES)
    flags = (None,) * 5 + (False, True) if sticky else (None, False)
    phone = rng.choice((None, PHONE, OTHER_PHONE))
    return CallFact(
        event_id=event_id,
        incident_id=INCIDENT,
        occurred_at=base + timedelta(minutes=_minutes(rng)),
        type=type_,
        case_number=rng.choice((None, "26-1", "26-2")),
        priority=rng.choice((None, 3, 4, 3, 4, 3, 4, 1, 2, 5)),
        call_type_code=_call_type(rng, sticky),
        district=rng.choice((None, "Central", "East")),
        phone=phone,
        phone_invalid=phone is None and rng.random() < 0.25,
        language=rng.choice((None, "en", "fr")),
        sms_opt_out=rng.choice(flags),
        in_progress=rng.choice(flags),
        risk_flag=rng.choice(flags),
        unit_id="2C14" if type_ in (FactType.DISPATCHED, FactType.ARRIVED) else None,
        disposition_code="RPRT" if type_ is FactType.CLEARED else None,
        merged_into=rng.choice(("I-OTHER-1", "I-OTHER-2")) if type_ is FactType.MERGED else None,
    )


def _elapsed(rng: random.Random) -> timedelta:
    roll = rng.randrange(4)
    if roll < 2:
        return timedelta(minutes=rng.randint(1, 90))
    if roll == 2:
        return timedelta(minutes=rng.randint(1, 12 * 60))
    return timedelta(minutes=rng.randint(1, 3 * 24 * 60))


def _lag(rng: random.Random) -> timedelta:
    low, high = rng.choice(((0, 5), (0, 30), (0, 6 * 60), (0, 1), (0, 3 * 24 * 60)))
    return timedelta(minutes=rng.randint(low, high), seconds=rng.randint(0, 59))


def _clock_offset(rng: random.Random) -> timedelta:
    """How far a feed's clock is from true time (``domain_strategies.CLOCK_OFFSETS``)."""
    low, high = rng.choice(CLOCK_OFFSETS)
    return timedelta(seconds=rng.randint(low, high))


def script_for(seed: int, max_ops: int = 25) -> Script:
    """The incident history of ``seed``: a third clean (texts go out), a third with one
    fact that blocks for good at a random point, a third anything at all."""
    rng = random.Random(seed)
    clock = rng.choice(BASES) + timedelta(minutes=rng.randint(0, 24 * 60))
    start = clock
    mode = rng.choice(("clean", "one-trigger", "anything", "upgrade"))
    # Several feeds: the CAD itself (true time) and two others whose clocks may run
    # ahead (within the tolerated drift, or far beyond) or behind.
    feeds = (timedelta(0), _clock_offset(rng), _clock_offset(rng))
    truth: dict[str, Any] = {
        "priority": rng.choice((3, 4, 3, 4, 2)),
        "call_type_code": rng.choice((*TEXTABLE_CODES, UNKNOWN_CODES[0])),
        "phone": rng.choice((PHONE, OTHER_PHONE)),
        "case_number": rng.choice(("26-1", "26-2")),
    }

    def stamped(f: CallFact, feed: int | None = None) -> CallFact:
        """Delivered now (the receipt), having happened a lag ago, stamped by a feed's
        clock."""
        if rng.random() >= 0.2:  # mostly the incident's truth, some of it
            told = {
                k: v if f.type is FactType.RECEIVED or rng.random() < 0.5 else None
                for k, v in truth.items()
            }
            f = replace(f, **told)
        offset = feeds[rng.choices((0, 1, 2), (6, 2, 2))[0] if feed is None else feed]
        return replace(f, occurred_at=clock - _lag(rng) + offset)

    ops: list[tuple[Any, ...]] = []
    facts = 0
    for _ in range(rng.randint(1, max_ops)):
        choice = rng.choices(("fact", "time", "redeliver", "stop", "external"), (9, 7, 2, 1, 1))[0]
        if choice == "fact":
            ops.append(("fact", stamped(_fact(rng, clock, f"e{facts}", mode == "anything"))))
            facts += 1
        elif choice == "redeliver":
            ops.append(("redeliver", rng.randint(0, 50)))
        elif choice == "time":
            delta = _elapsed(rng)
            ops.append(("time", delta, rng.choice((True, True, False))))
            clock += delta
        elif choice == "stop":
            ops.append(("stop",))
        else:
            ops.append(("external", rng.randint(1, 9)))
    if mode == "one-trigger":
        position = rng.randint(0, len(ops))
        clock = start + sum((op[1] for op in ops[:position] if op[0] == "time"), timedelta())
        trigger = replace(_fact(rng, clock, "e-trigger", False), **rng.choice(STICKY_TRIGGERS))
        ops.insert(position, ("fact", stamped(trigger)))
    if mode == "upgrade":
        # The probe's history: a benign value from a feed whose clock runs ahead, then
        # (later, from the CAD itself) the genuine change to a priority or type that is
        # not texted.
        first, second = sorted((rng.randint(0, len(ops)), rng.randint(0, len(ops))))
        for position, feed, values in (
            (second, 0, rng.choice(UPGRADES)),
            (first, 1, {"priority": rng.choice((3, 4)), "call_type_code": "THEFT"}),
        ):
            clock = start + sum((op[1] for op in ops[:position] if op[0] == "time"), timedelta())
            body = _fact(rng, clock, f"e-upgrade-{feed}", False)
            ops.insert(position, ("fact", replace(stamped(body, feed), **values)))
    return Script(policy=rng.choice(_POLICIES), start=start, ops=tuple(ops))
