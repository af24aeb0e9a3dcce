"""What ``decide`` asks for past the call itself: the caller's number protected from
texts about other calls, the number opted out (the CAD's "no texts"), and the call a
dangerous call was merged into held. Table by table: facts folded, then what the last
decision's ``beyond_the_call`` must be.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.domain_strategies import (
    OTHER_PHONE,
    POLICY,
    apply_all,
    at,
    eligible_received,
    fact,
    make_policy,
)

from callerconnect.domain.facts import FactType
from callerconnect.domain.lifecycle import (
    HELD_MERGED_PROTECTED,
    HoldIncident,
    OptOutNumber,
    ProtectNumber,
    decide,
)

WINDOW = POLICY.protect_number_for
LAST = at(10, 20)  # the moment the last fact of every row below is processed


def protect(reason: str) -> ProtectNumber:
    return ProtectNumber(reason, LAST + WINDOW)


def hold(target: str) -> HoldIncident:
    return HoldIncident(target, HELD_MERGED_PROTECTED)


BEYOND = [
    pytest.param([eligible_received(at(10))], (), id="ordinary-call-nothing"),
    pytest.param(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 5), call_type_code="THEFT")],
        (),
        id="textable-reclassification-nothing",
    ),
    pytest.param(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 5), call_type_code="SEXASSLT")],
        (protect("excluded:sexual_assault"),),
        id="sexual-assault-protects-number",
    ),
    pytest.param(
        [eligible_received(at(10), call_type_code="IPV")],
        (protect("excluded:intimate_partner_violence"),),
        id="ipv-protects-number",
    ),
    pytest.param(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 5), call_type_code="ABDUCT")],
        (protect("excluded:abduction"),),
        id="abduction-protects-number",
    ),
    pytest.param(
        [
            eligible_received(at(10), call_type_code="IPV"),
            fact(FactType.UPDATED, at(10, 5), call_type_code="THEFT"),
        ],
        (protect("excluded:intimate_partner_violence"),),
        id="protection-outlives-reclassification",
    ),
    pytest.param(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 5), call_type_code="BOMB")],
        (),
        id="excluded-but-not-protective-nothing",
    ),
    pytest.param(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 5), risk_flag=True)],
        (protect("ineligible:risk_flag"),),
        id="risk-flag-protects-number",
    ),
    pytest.param(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 5), hold="held:changed_event")],
        (protect("held:changed_event"),),
        id="hold-protects-number",
    ),
    pytest.param(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 5), sms_opt_out=True)],
        (OptOutNumber(),),
        id="cad-opt-out-opts-number-out",
    ),
    pytest.param(
        [eligible_received(at(10), sms_opt_out=True)],
        (OptOutNumber(),),
        id="opt-out-on-first-event",
    ),
    pytest.param(
        [
            eligible_received(at(10), sms_opt_out=True),
            fact(FactType.UPDATED, at(10, 5), phone=OTHER_PHONE),
        ],
        (OptOutNumber(),),
        id="new-number-of-opted-out-caller-opted-out",
    ),
    pytest.param(
        [
            eligible_received(at(10), sms_opt_out=True),
            fact(FactType.UPDATED, at(10, 5), case_number="26-7"),
        ],
        (),
        id="opt-out-not-repeated-by-unrelated-fact",
    ),
    pytest.param(
        [eligible_received(at(10)), fact(FactType.MERGED, at(10, 5), merged_into="I-B")],
        (),
        id="ordinary-merge-holds-nothing",
    ),
    pytest.param(
        [
            eligible_received(at(10), call_type_code="ALARM"),
            fact(FactType.MERGED, at(10, 5), merged_into="I-B"),
        ],
        (hold("I-B"),),
        id="excluded-call-merged-holds-target",
    ),
    pytest.param(
        [
            eligible_received(at(10), in_progress=True),
            fact(FactType.MERGED, at(10, 5), merged_into="I-B"),
        ],
        (hold("I-B"),),
        id="in-progress-call-merged-holds-target",
    ),
    pytest.param(
        [
            eligible_received(at(10)),
            fact(FactType.MERGED, at(10, 5), merged_into="I-B"),
            fact(FactType.UPDATED, at(10, 10), risk_flag=True),
        ],
        (protect("ineligible:risk_flag"), hold("I-B")),
        id="danger-after-merge-holds-target-and-protects-number",
    ),
    pytest.param(
        [
            eligible_received(at(10)),
            fact(FactType.MERGED, at(10, 5)),
            fact(FactType.UPDATED, at(10, 10), call_type_code="ALARM"),
        ],
        (),
        id="merged-into-unknown-holds-nothing",
    ),
]


@pytest.mark.parametrize(("facts", "expected"), BEYOND)
def test_decide_asks_for_what_reaches_past_the_call(facts, expected) -> None:
    _, decisions = apply_all(facts, now=LAST)
    assert decisions[-1].beyond_the_call == expected


def test_number_protection_renewed_by_each_fact_of_a_protecting_call() -> None:
    call, _ = apply_all([eligible_received(at(10), call_type_code="IPV")], now=at(10))
    later = decide(call, fact(FactType.CLEARED, at(12)), POLICY, at(12, 30))
    assert later.beyond_the_call == (
        ProtectNumber("excluded:intimate_partner_violence", at(12, 30) + WINDOW),
    )


def test_no_protection_when_the_policy_keeps_none() -> None:
    policy = make_policy(protect_number_for=timedelta(0))
    _, decisions = apply_all([eligible_received(at(10), risk_flag=True)], policy=policy, now=LAST)
    assert decisions[-1].beyond_the_call == ()


def test_a_hold_carried_into_a_merged_call_holds_the_next_one_along_the_chain() -> None:
    merged_on, _ = apply_all(
        [eligible_received(at(10)), fact(FactType.MERGED, at(10, 5), merged_into="I-C")], now=LAST
    )
    held = decide(
        merged_on,
        fact(FactType.UPDATED, LAST, hold=HELD_MERGED_PROTECTED),
        POLICY,
        LAST,
    )
    assert held.beyond_the_call == (protect(HELD_MERGED_PROTECTED), hold("I-C"))


def test_repeating_a_fact_changes_nothing_for_the_call_but_renews_the_protection() -> None:
    flag = fact(FactType.UPDATED, at(10, 5), risk_flag=True)
    call, _ = apply_all([eligible_received(at(10)), flag], now=LAST)
    again = decide(call, flag, POLICY, LAST)
    assert again.actions == ()
    assert again.beyond_the_call == (protect("ineligible:risk_flag"),)
