"""The lifecycle, example by example: ``decide(call, fact, policy, now) -> Decision``.

Times are Toronto local time on 2026-01-16 (``at(h, m)``) unless the test is about DST.
``now`` is the newest ``occurred_at`` processed so far unless a test says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.domain_strategies import (
    CALL_TYPES,
    ELIGIBLE_VALUES,
    EXCLUDED_CODES,
    OTHER_PHONE,
    PHONE,
    POLICY,
    TZ,
    IncidentSim,
    apply_all,
    at,
    eligible_received,
    fact,
    local,
    make_policy,
    records,
    replay,
    schedules,
)

from callerconnect.domain.calls import Call
from callerconnect.domain.facts import CallFact, FactType
from callerconnect.domain.lifecycle import (
    CancelPending,
    Decision,
    RecordDecision,
    ScheduleText,
    decide,
    new_call,
)
from callerconnect.domain.messages import CALL_TEXT_KINDS, TextKind
from callerconnect.domain.policy import ELIGIBLE, eligibility

CONF = TextKind.CONFIRMATION
DELAY = TextKind.DELAY_NOTICE
SURVEY = TextKind.SURVEY_INVITATION
ALL_KINDS = frozenset(CALL_TEXT_KINDS)


def stamp(moment: datetime) -> str:
    return moment.astimezone(TZ).strftime("%m-%d %H:%M:%S")


def summary(decision: Decision) -> list[tuple[Any, ...]]:
    """A decision's actions as short, readable tuples (local times)."""
    out: list[tuple[Any, ...]] = []
    for action in decision.actions:
        if isinstance(action, RecordDecision):
            out.append(("record", action.code, *([action.kind.value] if action.kind else [])))
        elif isinstance(action, ScheduleText):
            note = "reschedule" if action.reschedule else action.suppressed_reason
            out.append(("schedule", action.kind.value, stamp(action.not_before), note))
        else:
            out.append(("cancel", tuple(sorted(k.value for k in action.kinds)), action.reason))
    return out


# --------------------------------------------------------------------------- contract examples

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "examples"  # = contracts/examples
# Phone normalisation is the intake's job, not the domain's: the facts get E.164 numbers.
E164 = {
    "613-555-0142": "+16135550142",
    "+1 (613) 555-0199": "+16135550199",
    "6135550177": "+16135550177",
    "+16135550123": "+16135550123",
}
_EVENT_KEYS = {
    "event_id",
    "incident_id",
    "occurred_at",
    "type",
    "case_number",
    "priority",
    "call_type",
    "district",
    "caller",
    "in_progress",
    "risk_flag",
    "unit",
    "disposition",
    "merged_into",
}


def to_fact(event: dict[str, Any]) -> CallFact:
    assert set(event) <= _EVENT_KEYS, f"unexpected keys {set(event) - _EVENT_KEYS}"
    caller = event.get("caller") or {}
    call_type = event.get("call_type") or {}
    unit = event.get("unit") or {}
    disposition = event.get("disposition") or {}
    return CallFact(
        event_id=event["event_id"],
        incident_id=event["incident_id"],
        occurred_at=datetime.fromisoformat(event["occurred_at"]),
        type=FactType(event["type"]),
        case_number=event.get("case_number"),
        priority=event.get("priority"),
        call_type_code=call_type.get("code"),
        call_type_description=call_type.get("description"),
        district=event.get("district"),
        phone=E164[caller["phone"]] if "phone" in caller else None,
        language=caller.get("language"),
        sms_opt_out=caller.get("sms_opt_out"),
        in_progress=event.get("in_progress"),
        risk_flag=event.get("risk_flag"),
        unit_id=unit.get("id"),
        eta_minutes=unit.get("eta_minutes"),
        disposition_code=disposition.get("code"),
        disposition_description=disposition.get("description"),
        merged_into=event.get("merged_into"),
    )


def load_example(name: str) -> list[CallFact]:
    lines = (EXAMPLES_DIR / f"{name}.jsonl").read_text("utf-8").splitlines()
    return [to_fact(json.loads(line)) for line in lines if line.strip()]


# Per example: the actions of each event in delivery order, the texts the caller gets
# (kind, local time sent) when the worker runs throughout, and the final eligibility.
CONTRACT_EXAMPLES = {
    "eligible-theft-en": (
        [
            [("record", "eligible"), ("schedule", "delay_notice", "01-16 10:02:11", None)],
            [("schedule", "confirmation", "01-16 09:03:40", None)],
            [("cancel", ("delay_notice",), "suppressed:dispatched")],
            [],
            [
                # The delay notice was already cancelled at dispatch.
                ("cancel", ("confirmation",), "suppressed:stale"),
                ("schedule", "survey_invitation", "01-16 13:07:00", None),
            ],
        ],
        [
            ("confirmation", "01-16 09:03:40"),
            ("delay_notice", "01-16 10:02:11"),
            ("survey_invitation", "01-16 13:07:00"),
        ],
        ELIGIBLE,
    ),
    "excluded-ipv-fr": (
        [[("record", "excluded:intimate_partner_violence")], []],
        [],
        "excluded:intimate_partner_violence",
    ),
    "reclassified-after-confirmation": (
        [
            [
                ("record", "eligible"),
                ("schedule", "confirmation", "01-16 13:00:00", None),
                ("schedule", "delay_notice", "01-16 13:30:00", None),
            ],
            [
                ("record", "excluded:sexual_assault"),
                (
                    "cancel",
                    ("confirmation", "delay_notice", "survey_invitation"),
                    "suppressed:reclassified",
                ),
            ],
            [],
        ],
        [("confirmation", "01-16 13:00:00")],
        "excluded:sexual_assault",
    ),
    "delayed-out-of-order": (
        [
            [("record", "ineligible:no_priority")],
            [
                ("record", "eligible"),
                ("schedule", "confirmation", "01-16 16:05:00", None),
                ("schedule", "delay_notice", "01-16 16:30:00", None),
            ],
            [],  # the same event delivered twice
            [("cancel", ("delay_notice",), "suppressed:dispatched")],
            [
                ("cancel", ("confirmation",), "suppressed:stale"),
                ("schedule", "survey_invitation", "01-16 19:25:00", None),
            ],
        ],
        [
            ("confirmation", "01-16 16:05:00"),
            ("delay_notice", "01-16 16:30:00"),
            ("survey_invitation", "01-16 19:25:00"),
        ],
        ELIGIBLE,
    ),
}


def test_every_contract_example_has_expectations() -> None:
    assert {p.stem for p in EXAMPLES_DIR.glob("*.jsonl")} == set(CONTRACT_EXAMPLES)


@pytest.mark.parametrize("name", sorted(CONTRACT_EXAMPLES))
def test_contract_example_decisions_step_by_step(name: str) -> None:
    steps, _, final_reason = CONTRACT_EXAMPLES[name]
    call, decisions = apply_all(load_example(name))
    assert [summary(d) for d in decisions] == steps
    assert call.reason == final_reason
    assert eligibility(call, POLICY) == final_reason


@pytest.mark.parametrize("name", sorted(CONTRACT_EXAMPLES))
def test_contract_example_texts_the_caller_receives(name: str) -> None:
    _, _, final_reason = CONTRACT_EXAMPLES[name]
    sim = replay(load_example(name))
    assert [(s.kind.value, stamp(s.at)) for s in sim.sent] == CONTRACT_EXAMPLES[name][1]
    assert all(s.phone is not None and s.phone.startswith("+1613555") for s in sim.sent)
    assert sim.call.reason == final_reason


@pytest.mark.parametrize("name", sorted(CONTRACT_EXAMPLES))
def test_contract_example_final_state_does_not_depend_on_delivery_order(name: str) -> None:
    facts = load_example(name)
    as_sent, _ = apply_all(facts)
    by_event_time, _ = apply_all(sorted(facts, key=lambda f: f.occurred_at))
    backwards, _ = apply_all(list(reversed(facts)))
    for other in (by_event_time, backwards):
        assert replace_history(other) == replace_history(as_sent)


def replace_history(call: Call) -> Call:
    """The call without what depends on processing history (texts made, eligible_at)."""
    return replace(call, texts_scheduled=frozenset(), eligible_at=None)


def test_eligible_at_is_when_the_call_became_eligible_in_event_time() -> None:
    # delayed-out-of-order: priority, type and phone are all known at 16:00 (the case
    # number, 16:05, is not an eligibility condition). Delivered in event-time order the
    # call is eligible at 16:00; delivered as the CAD sent it, it must be the same.
    facts = load_example("delayed-out-of-order")
    by_event_time, _ = apply_all(sorted(facts, key=lambda f: f.occurred_at))
    as_sent, _ = apply_all(facts)
    assert by_event_time.eligible_at == local(2026, 1, 16, 16, 0)
    assert as_sent.eligible_at == by_event_time.eligible_at


def test_delayed_out_of_order_example_folds_every_field() -> None:
    call, _ = apply_all(load_example("delayed-out-of-order"))
    assert call.case_number == "26-10014"
    assert call.priority == 3
    assert call.call_type_code == "BREAKENTER"
    assert call.phone == "+16135550123"
    assert call.language == "fr"
    assert call.district == "South"
    assert call.received_at == local(2026, 1, 16, 16, 0)
    assert call.first_fact_at == local(2026, 1, 16, 16, 0)
    assert call.dispatched_at == local(2026, 1, 16, 17, 45)
    assert (call.unit_id, call.eta_minutes) == ("3A02", 40)
    assert call.cleared_at == local(2026, 1, 16, 19, 10)
    assert call.disposition_code == "GOA"
    assert call.texts_scheduled == ALL_KINDS


def test_reclassified_example_sends_the_confirmation_and_nothing_after() -> None:
    sim = replay(load_example("reclassified-after-confirmation"))
    assert sim.rows[CONF].status == "sent"
    assert (sim.rows[DELAY].status, sim.rows[DELAY].reason) == (
        "cancelled",
        "suppressed:reclassified",
    )
    assert SURVEY not in sim.rows
    assert sim.call.blocked_reason == "excluded:sexual_assault"


# --------------------------------------------------------------------------- folding facts


def test_older_fact_never_overwrites_a_newer_value_but_fills_in_what_is_missing() -> None:
    call, _ = apply_all(
        [
            eligible_received(at(10, 0)),
            fact(FactType.UPDATED, at(10, 30), priority=4),
            fact(FactType.UPDATED, at(10, 10), priority=3, district="East"),
        ]
    )
    assert call.priority == 4
    assert call.field_times["priority"] == at(10, 30)
    assert call.district == "East"
    assert call.field_times["district"] == at(10, 10)


def test_lifecycle_moments_keep_the_earliest_evidence_and_the_latest_clearance() -> None:
    call, _ = apply_all(
        [
            fact(FactType.RECEIVED, at(10, 5)),
            fact(FactType.RECEIVED, at(10, 0)),
            fact(FactType.DISPATCHED, at(10, 50)),
            fact(FactType.DISPATCHED, at(10, 40)),
            fact(FactType.ARRIVED, at(11, 20)),
            fact(FactType.ARRIVED, at(11, 10)),
            fact(FactType.CLEARED, at(12, 0)),
            fact(FactType.CLEARED, at(12, 30)),
            fact(FactType.CLEARED, at(12, 10)),
        ]
    )
    assert call.received_at == at(10, 0)
    assert call.dispatched_at == at(10, 40)
    assert call.arrived_at == at(11, 10)
    assert call.cleared_at == at(12, 30)


def test_arrival_proves_a_dispatch_even_when_the_dispatch_is_late_or_lost() -> None:
    arrived, _ = apply_all([eligible_received(at(10)), fact(FactType.ARRIVED, at(11))])
    assert arrived.dispatched_at == at(11)
    late_dispatch, _ = apply_all([fact(FactType.DISPATCHED, at(10, 40))], call=arrived)
    assert late_dispatch.dispatched_at == at(10, 40)
    later_dispatch, _ = apply_all([fact(FactType.DISPATCHED, at(11, 30))], call=arrived)
    assert later_dispatch.dispatched_at == at(11)


@pytest.mark.parametrize(
    ("flag", "attribute"),
    [
        ("risk_flag", "risk_flag"),
        ("in_progress", "in_progress"),
        ("sms_opt_out", "caller_opted_out"),
    ],
)
def test_safety_flags_only_ever_switch_on(flag: str, attribute: str) -> None:
    call, _ = apply_all(
        [
            eligible_received(at(10)),
            fact(FactType.UPDATED, at(10, 5), **{flag: True}),
            fact(FactType.UPDATED, at(10, 30), **{flag: False}),
        ]
    )
    assert getattr(call, attribute) is True


def test_invalid_phone_is_forgotten_once_a_valid_number_is_known() -> None:
    invalid, _ = apply_all([eligible_received(at(10), phone=None, phone_invalid=True)])
    assert invalid.reason == "ineligible:invalid_phone"
    fixed, _ = apply_all([fact(FactType.UPDATED, at(10, 5), phone=PHONE)], call=invalid)
    assert (fixed.phone, fixed.phone_invalid, fixed.reason) == (PHONE, False, ELIGIBLE)
    again, _ = apply_all([fact(FactType.UPDATED, at(10, 9), phone_invalid=True)], call=fixed)
    assert (again.phone, again.phone_invalid, again.reason) == (PHONE, False, ELIGIBLE)


def test_call_starts_at_its_received_time_else_at_its_first_fact() -> None:
    update_first, _ = apply_all([fact(FactType.UPDATED, at(10, 7), priority=3)])
    assert update_first.started_at == at(10, 7)
    received_late, _ = apply_all([fact(FactType.RECEIVED, at(10, 2))], call=update_first)
    assert received_late.started_at == at(10, 2)


# --------------------------------------------------------------------------- confirmation


def test_confirmation_waits_for_the_case_number_and_takes_its_time() -> None:
    call, (first, second) = apply_all(
        [
            eligible_received(at(10), case_number=None),
            fact(FactType.UPDATED, at(10, 7), case_number="26-5"),
        ]
    )
    assert [s.kind for s in schedules(first)] == [DELAY]
    (conf,) = schedules(second)
    assert (conf.kind, conf.not_before, conf.expires_at) == (CONF, at(10, 7), at(22, 7))
    assert not conf.reschedule and conf.suppressed_reason is None
    assert call.texts_scheduled == {CONF, DELAY}


def test_confirmation_moment_is_when_the_last_needed_field_became_known() -> None:
    # The phone comes last, at 10:12: that is the moment, not the received time.
    call, decisions = apply_all(
        [
            eligible_received(at(10), phone=None),
            fact(FactType.UPDATED, at(10, 12), phone=PHONE),
        ]
    )
    assert summary(decisions[0]) == [("record", "ineligible:no_phone")]
    assert summary(decisions[1]) == [
        ("record", "eligible"),
        ("schedule", "confirmation", "01-16 10:12:00", None),
        ("schedule", "delay_notice", "01-16 10:30:00", None),
    ]
    assert call.eligible_at == at(10, 12)


def test_confirmation_is_exempt_from_quiet_hours() -> None:
    _, (decision,) = apply_all([eligible_received(at(23, 10))])
    assert summary(decision)[1:] == [
        ("schedule", "confirmation", "01-16 23:10:00", None),
        ("schedule", "delay_notice", "01-17 08:00:00", None),
    ]


def test_confirmation_is_scheduled_once_even_if_the_case_number_changes() -> None:
    call, decisions = apply_all(
        [
            eligible_received(at(10)),
            fact(FactType.UPDATED, at(10, 20), case_number="26-99"),
            fact(FactType.UPDATED, at(10, 25), district="West"),
        ]
    )
    assert [s.kind for s in schedules(decisions)] == [CONF, DELAY]
    assert call.case_number == "26-99"


@pytest.mark.parametrize(
    "case_time",
    [pytest.param(at(11, 30), id="case-after-clearance"), pytest.param(at(10, 50), id="late")],
)
def test_confirmation_whose_case_number_arrives_after_clearance_is_never_scheduled(
    case_time: datetime,
) -> None:
    call, decisions = apply_all(
        [
            eligible_received(at(10), case_number=None),
            fact(FactType.CLEARED, at(11, 0)),
            fact(FactType.UPDATED, case_time, case_number="26-7"),
        ]
    )
    assert CONF not in {s.kind for s in schedules(decisions)}
    assert schedules(decisions[2]) == []
    assert call.case_number == "26-7"
    assert call.texts_scheduled == {DELAY, SURVEY}


def test_confirmation_created_too_late_is_recorded_as_suppressed_stale() -> None:
    # Processed thirteen hours after the call: the confirmation (12 h) and the delay notice
    # (4 h after 10:30) are past their expiry; they are created suppressed, for the record.
    call, (decision,) = apply_all([eligible_received(at(10))], now=at(23, 0))
    assert summary(decision) == [
        ("record", "eligible"),
        ("schedule", "confirmation", "01-16 10:00:00", "suppressed:stale"),
        ("record", "suppressed:stale", "confirmation"),
        ("schedule", "delay_notice", "01-16 10:30:00", "suppressed:stale"),
        ("record", "suppressed:stale", "delay_notice"),
    ]
    assert call.texts_scheduled == {CONF, DELAY}


def test_text_exactly_at_its_expiry_is_still_created_waiting() -> None:
    _, (decision,) = apply_all([eligible_received(at(10))], now=at(14, 30))
    delay = next(s for s in schedules(decision) if s.kind is DELAY)
    assert delay.expires_at == at(14, 30)
    assert delay.suppressed_reason is None


def test_confirmation_moment_ignores_a_later_repeat_of_a_field_already_known() -> None:
    # Priority, type and phone are known at 10:00; the case number at 10:05. An update at
    # 10:20 repeating the priority is delivered before the 10:05 one. In event time
    # everything was known at 10:05, as it is when the events come in order.
    received = eligible_received(at(10), case_number=None)
    case = fact(FactType.UPDATED, at(10, 5), case_number="26-5")
    repeat = fact(FactType.UPDATED, at(10, 20), priority=3)
    _, in_order = apply_all([received, case, repeat])
    _, out_of_order = apply_all([received, repeat, case])
    for decisions in (in_order, out_of_order):
        (conf,) = [s for s in schedules(decisions) if s.kind is CONF]
        assert conf.not_before == at(10, 5)


# --------------------------------------------------------------------------- delay notice


@pytest.mark.parametrize(("priority", "due"), [(3, at(10, 30)), (4, at(11, 0))])
def test_delay_notice_falls_due_after_the_priority_threshold(priority: int, due: datetime) -> None:
    _, (decision,) = apply_all([eligible_received(at(10), priority=priority)])
    (delay,) = [s for s in schedules(decision) if s.kind is DELAY]
    assert (delay.not_before, delay.expires_at) == (due, due + timedelta(hours=4))


def test_dispatch_cancels_the_pending_delay_notice() -> None:
    call, (_, decision) = apply_all(
        [eligible_received(at(10)), fact(FactType.DISPATCHED, at(10, 20), unit_id="2C14")]
    )
    assert decision.actions == (CancelPending(frozenset({DELAY}), "suppressed:dispatched"),)
    assert call.unit_id == "2C14"


def test_arrival_without_a_dispatch_event_cancels_the_pending_delay_notice() -> None:
    _, (_, decision) = apply_all([eligible_received(at(10)), fact(FactType.ARRIVED, at(10, 20))])
    assert decision.actions == (CancelPending(frozenset({DELAY}), "suppressed:dispatched"),)


def test_no_delay_notice_when_the_dispatch_is_known_first() -> None:
    call, decisions = apply_all([fact(FactType.DISPATCHED, at(10, 5)), eligible_received(at(10))])
    assert [s.kind for s in schedules(decisions)] == [CONF]
    assert call.texts_scheduled == {CONF}


def test_priority_change_reschedules_the_delay_notice() -> None:
    call, decisions = apply_all(
        [
            eligible_received(at(10), priority=3),
            fact(FactType.UPDATED, at(10, 10), priority=4),
            fact(FactType.UPDATED, at(10, 20), priority=3),
        ]
    )
    assert summary(decisions[1]) == [("schedule", "delay_notice", "01-16 11:00:00", "reschedule")]
    assert summary(decisions[2]) == [("schedule", "delay_notice", "01-16 10:30:00", "reschedule")]
    (moved,) = schedules(decisions[1])
    assert moved.expires_at == at(15, 0)
    assert call.texts_scheduled == {CONF, DELAY}


def test_priority_change_moves_a_waiting_delay_notice_in_the_outbox() -> None:
    sim = IncidentSim(policy=POLICY, clock=at(10))
    sim.receive(eligible_received(at(10), priority=3))
    sim.advance(timedelta(minutes=10))
    sim.receive(fact(FactType.UPDATED, at(10, 10), priority=4))
    sim.advance(timedelta(minutes=40))  # to 10:50: the old moment (10:30) has passed
    assert sim.rows[DELAY].status == "scheduled"
    sim.advance(timedelta(minutes=15))
    assert [(s.kind, s.at) for s in sim.sent] == [(CONF, at(10)), (DELAY, at(11))]


def test_delay_notice_rescheduled_into_quiet_hours_waits_for_the_morning() -> None:
    _, decisions = apply_all(
        [
            eligible_received(at(20, 15), priority=3),
            fact(FactType.UPDATED, at(20, 20), priority=4),
        ]
    )
    assert summary(decisions[0])[2] == ("schedule", "delay_notice", "01-16 20:45:00", None)
    assert summary(decisions[1]) == [("schedule", "delay_notice", "01-17 08:00:00", "reschedule")]


def test_older_priority_change_arriving_late_moves_nothing() -> None:
    call, decisions = apply_all(
        [eligible_received(at(10), priority=3), fact(FactType.UPDATED, at(9, 59), priority=4)]
    )
    assert decisions[1].actions == ()
    assert call.priority == 3


def test_priority_change_to_an_untexted_priority_cancels_everything_pending() -> None:
    call, decisions = apply_all(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 10), priority=2)]
    )
    assert decisions[1].actions == (
        RecordDecision("ineligible:priority"),
        CancelPending(ALL_KINDS, "suppressed:priority"),
    )
    assert call.blocked_reason is None


def test_text_cancelled_while_ineligible_is_not_made_again_when_eligible_again() -> None:
    sim = IncidentSim(policy=POLICY, clock=at(9, 0))
    sim.receive(eligible_received(at(10), case_number=None))
    sim.receive(fact(FactType.UPDATED, at(10, 10), priority=2))
    back = sim.receive(fact(FactType.UPDATED, at(10, 20), priority=3, case_number="26-1"))
    assert RecordDecision(ELIGIBLE) in back.actions
    assert [s.kind for s in schedules(back) if not s.reschedule] == [CONF]
    assert sim.rows[DELAY].status == "cancelled"  # each kind at most once per call
    assert sim.rows[CONF].status == "scheduled"


def test_delay_notice_moment_follows_a_received_time_that_arrives_late() -> None:
    # The CAD's update (10:20) comes before its received event (10:00). The delay notice
    # is due 30 minutes after the call started — 10:30 — as when the events come in order.
    in_order = IncidentSim(policy=POLICY, clock=at(10, 20))
    for f in (
        fact(FactType.RECEIVED, at(10)),
        fact(FactType.UPDATED, at(10, 20), **ELIGIBLE_VALUES),
    ):
        in_order.receive(f)
    out_of_order = IncidentSim(policy=POLICY, clock=at(10, 20))
    for f in (
        fact(FactType.UPDATED, at(10, 20), **ELIGIBLE_VALUES),
        fact(FactType.RECEIVED, at(10)),
    ):
        out_of_order.receive(f)
    assert in_order.rows[DELAY].not_before == at(10, 30)
    assert out_of_order.call.started_at == at(10)
    assert out_of_order.rows[DELAY].not_before == at(10, 30)


def test_priority_without_a_delay_threshold_cancels_the_pending_delay_notice() -> None:
    # Priorities 3, 4 and 5 may be texted; only 3 and 4 get a delay notice. A call that
    # goes from 3 to 5 must not get the priority-3 delay notice.
    policy = make_policy(priorities=frozenset({3, 4, 5}))
    sim = IncidentSim(policy=policy, clock=at(10, 5))
    sim.receive(eligible_received(at(10), priority=3))
    sim.receive(fact(FactType.UPDATED, at(10, 5), priority=5))
    sim.flush()
    assert DELAY not in {s.kind for s in sim.sent}
    assert sim.rows[DELAY].status == "cancelled"


# --------------------------------------------------------------------------- survey


def test_clearance_cancels_what_lost_its_moment_and_schedules_the_survey() -> None:
    call, (_, decision) = apply_all([eligible_received(at(10)), fact(FactType.CLEARED, at(11))])
    assert decision.actions == (
        CancelPending(frozenset({CONF, DELAY}), "suppressed:stale"),
        ScheduleText(SURVEY, at(11, 15), at(11, 15) + timedelta(days=2)),
    )
    assert call.texts_scheduled == ALL_KINDS


def test_survey_waits_for_the_end_of_quiet_hours() -> None:
    _, (_, decision) = apply_all([eligible_received(at(20, 0)), fact(FactType.CLEARED, at(20, 50))])
    assert summary(decision)[-1] == ("schedule", "survey_invitation", "01-17 08:00:00", None)


def test_survey_for_a_call_that_became_eligible_after_clearance() -> None:
    call, decisions = apply_all(
        [
            eligible_received(at(10), phone=None),
            fact(FactType.CLEARED, at(11)),
            fact(FactType.UPDATED, at(11, 5), phone=PHONE),
        ]
    )
    assert summary(decisions[2]) == [
        ("record", "eligible"),
        ("schedule", "survey_invitation", "01-16 11:15:00", None),
    ]
    assert call.texts_scheduled == {SURVEY}


def test_survey_is_scheduled_once_for_repeated_clearances_delivered_in_order() -> None:
    _, decisions = apply_all(
        [
            eligible_received(at(10)),
            fact(FactType.CLEARED, at(12)),
            fact(FactType.CLEARED, at(12)),
        ]
    )
    assert [s.kind for s in schedules(decisions)] == [CONF, DELAY, SURVEY]
    assert decisions[2].actions == ()


def test_survey_moment_follows_the_latest_clearance_in_either_order() -> None:
    # A call cleared at 12:00, reopened and cleared again at 14:00: cleared_at is 14:00
    # whatever the order, and the waiting survey goes 15 minutes after it.
    facts = [
        eligible_received(at(10)),
        fact(FactType.CLEARED, at(12)),
        fact(FactType.CLEARED, at(14)),
    ]
    waiting = []
    for order in (facts, [facts[0], facts[2], facts[1]]):
        sim = IncidentSim(policy=POLICY, clock=at(14))
        for f in order:
            sim.receive(f)
        assert sim.call.cleared_at == at(14)
        waiting.append(sim.rows[SURVEY].not_before)
    assert waiting == [at(14, 15), at(14, 15)]


# --------------------------------------------------------------------------- DST nights


def test_delay_notice_due_on_the_spring_forward_night_waits_until_eight_edt() -> None:
    _, (decision,) = apply_all([eligible_received(local(2026, 3, 8, 1, 0))])
    conf, delay = schedules(decision)
    assert conf.not_before == datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 01:00 EST, unshifted
    assert delay.not_before == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert delay.not_before.astimezone(TZ).hour == 8


def test_survey_due_on_the_fall_back_night_waits_until_eight_est() -> None:
    _, decisions = apply_all(
        [
            eligible_received(local(2026, 10, 31, 20, 0)),
            fact(FactType.CLEARED, local(2026, 10, 31, 23, 50)),
        ]
    )
    (survey,) = [s for s in schedules(decisions) if s.kind is SURVEY]
    assert survey.not_before == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert survey.expires_at == datetime(2026, 11, 3, 13, 0, tzinfo=UTC)


def test_delay_notice_due_in_the_repeated_fall_hour_waits_until_eight_est() -> None:
    received = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)  # the second 01:10, EST
    _, (decision,) = apply_all([eligible_received(received, priority=4)])
    (delay,) = [s for s in schedules(decision) if s.kind is DELAY]
    assert delay.not_before == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_delay_notice_before_quiet_hours_on_a_dst_evening_is_not_moved() -> None:
    _, (decision,) = apply_all([eligible_received(local(2026, 3, 7, 20, 0))])
    (delay,) = [s for s in schedules(decision) if s.kind is DELAY]
    assert delay.not_before == local(2026, 3, 7, 20, 30)


# --------------------------------------------------------------------------- excluded types

EXCLUDED = [
    pytest.param(code, id=CALL_TYPES[code].category + "-" + code) for code in EXCLUDED_CODES
]


@pytest.mark.parametrize("code", EXCLUDED)
def test_call_of_an_excluded_type_is_never_texted_whatever_follows(code: str) -> None:
    category = CALL_TYPES[code].category
    call, decisions = apply_all(
        [
            eligible_received(at(10), call_type_code=code),
            fact(FactType.UPDATED, at(10, 20), call_type_code="THEFT"),  # reclassified back
            fact(FactType.DISPATCHED, at(10, 30)),
            fact(FactType.CLEARED, at(11)),
        ]
    )
    assert schedules(decisions) == []
    assert records(decisions) == [RecordDecision(f"excluded:{category}")]
    assert call.call_type_code == "THEFT"
    assert call.blocked_reason == f"excluded:{category}"
    assert eligibility(call, POLICY) == f"excluded:{category}"


@pytest.mark.parametrize("code", EXCLUDED)
def test_reclassified_into_an_excluded_type_cancels_pending_texts(code: str) -> None:
    category = CALL_TYPES[code].category
    sim = IncidentSim(policy=POLICY, clock=at(10))
    sim.receive(eligible_received(at(10)))
    sim.advance(timedelta(minutes=5))  # the confirmation goes out at 10:00
    decision = sim.receive(fact(FactType.UPDATED, at(10, 5), call_type_code=code))
    assert decision.actions == (
        RecordDecision(f"excluded:{category}"),
        CancelPending(ALL_KINDS, "suppressed:reclassified"),
    )
    sim.receive(fact(FactType.UPDATED, at(10, 10), call_type_code="MISCHIEF"))
    sim.receive(fact(FactType.CLEARED, at(11)))
    sim.flush()
    assert [s.kind for s in sim.sent] == [CONF]
    assert sim.rows[DELAY].reason == "suppressed:reclassified"
    assert SURVEY not in sim.rows


def test_reclassified_to_sexual_assault_cancels_pending_survey() -> None:
    sim = IncidentSim(policy=POLICY, clock=at(11))
    sim.receive(eligible_received(at(10)))
    sim.receive(fact(FactType.CLEARED, at(11)))
    assert sim.rows[SURVEY].status == "scheduled"
    decision = sim.receive(fact(FactType.UPDATED, at(11, 5), call_type_code="SEXASSLT"))
    assert CancelPending(ALL_KINDS, "suppressed:reclassified") in decision.actions
    sim.flush()
    assert sim.sent == []
    assert (sim.rows[SURVEY].status, sim.rows[SURVEY].reason) == (
        "cancelled",
        "suppressed:reclassified",
    )


def test_excluded_classification_arriving_late_with_an_older_time_blocks_the_call() -> None:
    # The CAD first classified the call as a sexual assault (13:00), then as mischief
    # (13:20); the 13:00 event is delivered last. Excluded is sticky whatever the order:
    # delivered in order, this call is never texted, so it must not be texted now.
    in_order, _ = apply_all(
        [
            eligible_received(at(13, 0), call_type_code="SEXASSLT"),
            fact(FactType.UPDATED, at(13, 20), call_type_code="MISCHIEF"),
        ]
    )
    assert in_order.blocked_reason == "excluded:sexual_assault"
    call, decisions = apply_all(
        [
            fact(FactType.UPDATED, at(13, 20), **{**ELIGIBLE_VALUES, "call_type_code": "MISCHIEF"}),
            fact(FactType.RECEIVED, at(13, 0), call_type_code="SEXASSLT"),
        ]
    )
    assert call.blocked_reason == "excluded:sexual_assault"
    assert eligibility(call, POLICY) == "excluded:sexual_assault"
    assert CancelPending(ALL_KINDS, "suppressed:reclassified") in decisions[1].actions


def test_unknown_call_type_fails_closed_until_it_is_reclassified() -> None:
    call, decisions = apply_all(
        [
            eligible_received(at(10), call_type_code="ROBBERYX"),
            fact(FactType.UPDATED, at(10, 10), call_type_code="THEFT"),
        ]
    )
    assert summary(decisions[0]) == [("record", "ineligible:unknown_call_type")]
    assert records(decisions[1])[0] == RecordDecision(ELIGIBLE)
    assert [s.kind for s in schedules(decisions)] == [CONF, DELAY]
    assert call.blocked_reason is None


def test_reclassified_into_an_unknown_type_cancels_pending_texts() -> None:
    _, decisions = apply_all(
        [eligible_received(at(10)), fact(FactType.UPDATED, at(10, 10), call_type_code="NEWCODE")]
    )
    assert decisions[1].actions == (
        RecordDecision("ineligible:unknown_call_type"),
        CancelPending(ALL_KINDS, "suppressed:unknown_call_type"),
    )


# --------------------------------------------------------------------------- ineligible reasons

COMPLETE = {
    "priority": 3,
    "call_type_code": "THEFT",
    "phone": PHONE,
    "in_progress": False,
    "risk_flag": False,
    "sms_opt_out": False,
}


@pytest.mark.parametrize(
    ("received", "reason", "sticky"),
    [
        pytest.param({"priority": 1}, "ineligible:priority", False, id="priority-1"),
        pytest.param({"priority": 2}, "ineligible:priority", False, id="priority-2"),
        pytest.param({"priority": 5}, "ineligible:priority", False, id="priority-5"),
        pytest.param({"priority": None}, "ineligible:no_priority", False, id="no-priority"),
        pytest.param(
            {"call_type_code": "ROBBERYX"}, "ineligible:unknown_call_type", False, id="unknown-type"
        ),
        pytest.param({"call_type_code": None}, "ineligible:no_call_type", False, id="no-call-type"),
        pytest.param({"phone": None}, "ineligible:no_phone", False, id="no-phone"),
        pytest.param(
            {"phone": None, "phone_invalid": True},
            "ineligible:invalid_phone",
            False,
            id="bad-phone",
        ),
        pytest.param({"in_progress": True}, "ineligible:in_progress", True, id="in-progress"),
        pytest.param({"risk_flag": True}, "ineligible:risk_flag", True, id="risk-flag"),
        pytest.param({"sms_opt_out": True}, "ineligible:opted_out", True, id="opted-out"),
    ],
)
def test_ineligible_call_is_not_texted_and_only_safety_reasons_stick(
    received: dict[str, Any], reason: str, sticky: bool
) -> None:
    call, decisions = apply_all(
        [
            eligible_received(at(10), **received),
            fact(FactType.UPDATED, at(10, 10), **COMPLETE),
            fact(FactType.CLEARED, at(11)),
        ]
    )
    first, completed, cleared = decisions
    assert first.actions == (RecordDecision(reason),)
    assert first.call.reason == reason
    if sticky:
        assert schedules(decisions) == []
        assert completed.actions == () and cleared.actions == ()
        assert call.blocked_reason == reason
        assert eligibility(call, POLICY) == reason
    else:
        assert records(completed) == [RecordDecision(ELIGIBLE)]
        assert [s.kind for s in schedules(decisions)] == [CONF, DELAY, SURVEY]
        assert call.blocked_reason is None


def test_every_change_of_eligibility_is_recorded_with_its_reason() -> None:
    _, decisions = apply_all(
        [
            fact(FactType.RECEIVED, at(10, 0)),
            fact(FactType.UPDATED, at(10, 1), priority=3),
            fact(FactType.UPDATED, at(10, 2), call_type_code="THEFT"),
            fact(FactType.UPDATED, at(10, 3), district="West"),
            fact(FactType.UPDATED, at(10, 4), phone=PHONE),
            fact(FactType.UPDATED, at(10, 5), priority=2),
            fact(FactType.UPDATED, at(10, 6), priority=4),
            fact(FactType.UPDATED, at(10, 7), risk_flag=True),
            fact(FactType.UPDATED, at(10, 8), call_type_code="BOMB"),
        ]
    )
    assert [[r.code for r in records(d) if r.kind is None] for d in decisions] == [
        ["ineligible:no_priority"],
        ["ineligible:no_call_type"],
        ["ineligible:no_phone"],
        [],
        [ELIGIBLE],
        ["ineligible:priority"],
        [ELIGIBLE],
        ["ineligible:risk_flag"],
        [],  # blocked: the first safety reason stays the reason
    ]


# --------------------------------------------------------------------------- cancel, merge


def test_cancelled_call_cancels_pending_texts_and_is_never_texted_again() -> None:
    call, decisions = apply_all(
        [
            eligible_received(at(10)),
            fact(FactType.CANCELLED, at(10, 10)),
            fact(FactType.UPDATED, at(10, 20), **COMPLETE),
            fact(FactType.CLEARED, at(11)),
        ]
    )
    assert decisions[1].actions == (
        RecordDecision("ineligible:cancelled"),
        CancelPending(ALL_KINDS, "suppressed:cancelled"),
    )
    assert decisions[2].actions == () and decisions[3].actions == ()
    assert (call.cancelled_at, call.blocked_reason) == (at(10, 10), "ineligible:cancelled")


def test_cancellation_delivered_first_blocks_a_call_received_later() -> None:
    call, decisions = apply_all(
        [
            fact(FactType.CANCELLED, at(10, 30)),
            eligible_received(at(10)),
            fact(FactType.CLEARED, at(11)),
        ]
    )
    assert schedules(decisions) == []
    assert call.blocked_reason == "ineligible:cancelled"


def test_merged_call_sends_nothing_more() -> None:
    sim = IncidentSim(policy=POLICY, clock=at(10))
    sim.receive(eligible_received(at(10)))
    sim.advance(timedelta(minutes=1))
    decision = sim.receive(fact(FactType.MERGED, at(10, 1), merged_into="I-26-2000"))
    assert decision.actions == (
        RecordDecision("ineligible:merged"),
        CancelPending(ALL_KINDS, "suppressed:merged"),
    )
    sim.receive(fact(FactType.CLEARED, at(11)))
    sim.flush()
    assert [s.kind for s in sim.sent] == [CONF]
    assert (sim.call.merged_into, sim.call.merged_at) == ("I-26-2000", at(10, 1))
    assert sim.rows[DELAY].reason == "suppressed:merged"
    assert SURVEY not in sim.rows


def test_redelivered_merge_does_not_change_the_merge_target() -> None:
    into_a = fact(FactType.MERGED, at(10, 0), merged_into="I-A")
    into_b = fact(FactType.MERGED, at(10, 30), merged_into="I-B")
    call, _ = apply_all([eligible_received(at(9, 50)), into_a, into_b])
    again = decide(call, into_a, POLICY, at(10, 40))
    assert again.call == call
    assert again.actions == ()
    reversed_call, _ = apply_all([eligible_received(at(9, 50)), into_b, into_a])
    assert reversed_call.merged_into == call.merged_into


# --------------------------------------------------------------------------- risk flag


def test_risk_flag_arriving_late_and_out_of_order_cancels_pending_texts() -> None:
    sim = IncidentSim(policy=POLICY, clock=at(10))
    sim.receive(eligible_received(at(10)))
    sim.advance(timedelta(minutes=12))
    flagged = sim.receive(fact(FactType.UPDATED, at(9, 58), risk_flag=True))  # older than all
    assert flagged.actions == (
        RecordDecision("ineligible:risk_flag"),
        CancelPending(ALL_KINDS, "suppressed:risk_flag"),
    )
    sim.receive(fact(FactType.UPDATED, at(10, 15), risk_flag=False, priority=4))
    sim.receive(fact(FactType.CLEARED, at(11)))
    sim.flush()
    assert [s.kind for s in sim.sent] == [CONF]  # sent at 10:00, before the flag was known
    assert sim.rows[DELAY].reason == "suppressed:risk_flag"
    assert SURVEY not in sim.rows
    assert sim.call.blocked_reason == "ineligible:risk_flag"


def test_risk_flag_delivered_first_blocks_the_facts_delivered_after_it() -> None:
    call, decisions = apply_all(
        [
            fact(FactType.UPDATED, at(10, 30), risk_flag=True),
            eligible_received(at(10)),
            fact(FactType.CLEARED, at(11)),
        ]
    )
    assert schedules(decisions) == []
    assert records(decisions) == [RecordDecision("ineligible:risk_flag")]
    assert call.blocked_reason == "ineligible:risk_flag"


def test_risk_flag_after_clearance_cancels_the_pending_survey() -> None:
    _, decisions = apply_all(
        [
            eligible_received(at(10)),
            fact(FactType.CLEARED, at(11)),
            fact(FactType.UPDATED, at(11, 5), risk_flag=True),
        ]
    )
    assert CancelPending(ALL_KINDS, "suppressed:risk_flag") in decisions[2].actions


def test_opt_out_in_the_cad_cancels_pending_texts_for_good() -> None:
    call, decisions = apply_all(
        [
            eligible_received(at(10)),
            fact(FactType.UPDATED, at(10, 5), sms_opt_out=True),
            fact(FactType.UPDATED, at(10, 6), sms_opt_out=False, phone=OTHER_PHONE),
        ]
    )
    assert decisions[1].actions == (
        RecordDecision("ineligible:opted_out"),
        CancelPending(ALL_KINDS, "suppressed:opted_out"),
    )
    assert decisions[2].actions == ()
    assert call.blocked_reason == "ineligible:opted_out"


# --------------------------------------------------------------------------- duplicates


DUPLICABLE = [
    pytest.param(lambda: eligible_received(at(10)), id="received"),
    pytest.param(lambda: fact(FactType.UPDATED, at(10, 5), case_number="26-2"), id="updated"),
    pytest.param(lambda: fact(FactType.UPDATED, at(10, 6), priority=4), id="priority-change"),
    pytest.param(lambda: fact(FactType.DISPATCHED, at(10, 10)), id="dispatched"),
    pytest.param(lambda: fact(FactType.ARRIVED, at(10, 40)), id="arrived"),
    pytest.param(lambda: fact(FactType.CLEARED, at(11)), id="cleared"),
    pytest.param(lambda: fact(FactType.UPDATED, at(10, 7), risk_flag=True), id="risk-flag"),
    pytest.param(lambda: fact(FactType.UPDATED, at(10, 7), call_type_code="IPV"), id="excluded"),
    pytest.param(lambda: fact(FactType.CANCELLED, at(10, 8)), id="cancelled"),
    pytest.param(lambda: fact(FactType.MERGED, at(10, 8), merged_into="I-9"), id="merged"),
]


@pytest.mark.parametrize("make", DUPLICABLE)
def test_same_fact_twice_gives_the_same_state_and_no_new_actions(make) -> None:
    duplicate = make()
    call, _ = apply_all([eligible_received(at(9, 55), case_number=None), duplicate])
    again = decide(call, duplicate, POLICY, at(11, 30))
    assert again.call == call
    assert again.actions == ()


def test_same_fact_delivered_again_later_changes_nothing() -> None:
    first = eligible_received(at(10))
    call, _ = apply_all(
        [first, fact(FactType.UPDATED, at(10, 10), priority=4), fact(FactType.CLEARED, at(11))]
    )
    again = decide(call, first, POLICY, at(11, 5))
    assert again.call == call
    assert again.actions == ()


def test_simultaneous_priority_updates_fold_the_same_in_either_order() -> None:
    # Two events stamped the same second disagree on the priority. Whichever is
    # delivered first, the final call must be the same.
    three = fact(FactType.RECEIVED, at(10), **ELIGIBLE_VALUES)
    four = fact(FactType.UPDATED, at(10), priority=4)
    one_way, _ = apply_all([three, four])
    other_way, _ = apply_all([four, three])
    assert one_way.priority == other_way.priority


# --------------------------------------------------------------------------- purity


def test_decide_is_pure() -> None:
    call, _ = apply_all([eligible_received(at(10), case_number=None)])
    f = fact(FactType.UPDATED, at(10, 5), case_number="26-3")
    first = decide(call, f, POLICY, at(10, 6))
    second = decide(call, f, POLICY, at(10, 6))
    assert first == second
    assert call.case_number is None and call.texts_scheduled == {DELAY}  # input untouched
    assert new_call("agency", "I-1") == Call(agency_id="agency", incident_id="I-1")
