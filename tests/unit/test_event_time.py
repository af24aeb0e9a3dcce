"""Event time against receipt time, and the fail-closed fold rule, in the domain."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from tests.unit.domain_strategies import (
    POLICY,
    PROPERTY_SETTINGS,
    UNKNOWN_CODES,
    IncidentSim,
    apply_all,
    at,
    eligible_received,
    fact,
)

from callerconnect.domain.event_time import DEFAULT_MAX_CLOCK_SKEW, time_ahead
from callerconnect.domain.facts import FactType
from callerconnect.domain.lifecycle import CALL_TYPE_OUT_OF_ORDER, PRIORITY_OUT_OF_ORDER
from callerconnect.domain.policy import ELIGIBLE, eligibility


def test_a_time_up_to_the_drift_ahead_is_accepted_and_beyond_it_refused() -> None:
    now = at(10)
    skew = DEFAULT_MAX_CLOCK_SKEW
    assert time_ahead(now - timedelta(days=3), now, skew) is None  # late: fine
    assert time_ahead(now + skew, now, skew) is None
    beyond = now + skew + timedelta(microseconds=1)
    assert time_ahead(beyond, now, skew) == skew + timedelta(microseconds=1)
    assert time_ahead(now + timedelta(seconds=1), now, timedelta(0)) == timedelta(seconds=1)


def test_an_older_stamped_priority_not_texted_blocks_a_call_whose_priority_is_benign() -> None:
    call, _ = apply_all(
        [eligible_received(at(10, 0, 4)), fact(FactType.UPDATED, at(10, 0, 2), priority=1)]
    )
    assert call.priority == 3  # the fold keeps the newer stamp...
    assert call.blocked_reason == PRIORITY_OUT_OF_ORDER  # ...and the call fails closed
    assert eligibility(call, POLICY) == PRIORITY_OUT_OF_ORDER
    later = fact(FactType.UPDATED, at(11), priority=3)
    again, _ = apply_all([later], call=call)
    assert eligibility(again, POLICY) == PRIORITY_OUT_OF_ORDER  # for good


def test_an_older_stamped_unknown_type_blocks_a_call_whose_type_is_known() -> None:
    call, _ = apply_all(
        [
            eligible_received(at(10, 0, 4)),
            fact(FactType.UPDATED, at(10), call_type_code=UNKNOWN_CODES[0]),
        ]
    )
    assert call.call_type_code == "THEFT"
    assert call.blocked_reason == CALL_TYPE_OUT_OF_ORDER


def test_an_older_benign_value_or_an_older_danger_behind_a_danger_blocks_nothing_for_good() -> None:
    """A late benign value loses quietly, and a danger behind a danger changes nothing;
    a correction newer than both then lifts the block, as before."""
    call, _ = apply_all(
        [
            eligible_received(at(10), priority=2),
            fact(FactType.UPDATED, at(9, 59), priority=3),
            fact(FactType.UPDATED, at(9, 58), priority=1),
        ]
    )
    assert call.blocked_reason is None
    assert eligibility(call, POLICY) == "ineligible:priority"
    lifted, _ = apply_all([fact(FactType.UPDATED, at(10, 5), priority=4)], call=call)
    assert eligibility(lifted, POLICY) == ELIGIBLE


@PROPERTY_SETTINGS
@given(
    ahead=st.integers(1, 2 * 24 * 3600),
    lag=st.integers(0, 3600),
    later=st.integers(1, 3600),
    upgrade=st.sampled_from(({"priority": 1}, {"priority": 2}, {"call_type_code": "ZZNEW"})),
)
def test_a_genuine_upgrade_after_an_event_stamped_ahead_stops_every_text(
    ahead: int, lag: int, later: int, upgrade: dict[str, object]
) -> None:
    """The probe's history with any drift: a benign event stamped ``ahead`` seconds
    ahead of its true time and delivered ``lag`` seconds late, then, ``later`` seconds
    after it was received, the genuine change: nothing is sent after it."""
    start = at(9)
    sim = IncidentSim(policy=POLICY, clock=start, max_skew=DEFAULT_MAX_CLOCK_SKEW)
    sim.receive(eligible_received(start))
    true_time = start + timedelta(seconds=1)
    sim.advance(timedelta(seconds=1 + lag), worker_up=False)
    sim.receive(fact(FactType.UPDATED, true_time + timedelta(seconds=ahead), priority=4))
    sim.advance(timedelta(seconds=later), worker_up=False)
    sim.receive(fact(FactType.UPDATED, sim.clock, **upgrade))
    sim.flush()  # the simulator asserts invariant (h) at every send
    assert sim.sent == []
    assert eligibility(sim.call, POLICY) != ELIGIBLE
