"""The safety rules as properties over generated incident histories.

Every example drives :class:`domain_strategies.IncidentSim` — the call, its outbox rows
and a worker that sends through ``check_before_send`` — which asserts, at every step:

(a) a text is sent only while the call is eligible and not blocked;
(b) nothing is sent once a risk flag, an excluded classification, in-progress, a CAD
    opt-out, a cancellation or a merge has been seen for the incident, whatever its
    event time;
(c) at most one confirmation, one delay notice and one survey per incident;
(d) never to an opted-out phone;
(e) never above ``max_texts_per_phone_per_day``;
plus the contract between ``decide`` and the outbox (each change of eligibility recorded,
each kind created once, moments out of quiet hours, nothing waiting for an ineligible
call) and (g) determinism. (f), order independence, has its own tests below.

``CALLERCONNECT_TEST_HYPOTHESIS_EXAMPLES`` sets the number of examples (default 300).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from tests.unit.domain_strategies import (
    BASES,
    ELIGIBLE_VALUES,
    EXAMPLES,
    HISTORY_FIELDS,
    INCIDENT,
    PHASES,
    PHONE,
    POLICY,
    PROPERTY_SETTINGS,
    IncidentSim,
    Script,
    apply_all,
    assert_outbox_state,
    call_facts,
    coherent_incidents,
    consistent_incidents,
    elapsed,
    fact_lists,
    facts_with_one_sticky_trigger,
    field_danger,
    folded_fields,
    policies,
    schedules,
    scripts,
    triggers_sticky,
    waiting_texts,
    with_changes,
)

from callerconnect.domain.calls import Call
from callerconnect.domain.event_time import DEFAULT_MAX_CLOCK_SKEW
from callerconnect.domain.facts import CallFact, FactType
from callerconnect.domain.lifecycle import CALL_TYPE_OUT_OF_ORDER, PRIORITY_OUT_OF_ORDER, decide
from callerconnect.domain.messages import CALL_TEXT_KINDS, TextKind
from callerconnect.domain.policy import (
    ELIGIBLE,
    PhoneContext,
    Policy,
    check_before_send,
    eligibility,
)

# --------------------------------------------------------------------------- (a)-(e), (g)


@PROPERTY_SETTINGS
@given(scripts())
def test_texts_obey_the_safety_rules_in_any_incident_history(script: Script) -> None:
    sim = script.run()  # every step and every send asserts the rules (see the docstring)
    kinds = [s.kind for s in sim.sent]
    assert len(kinds) == len(set(kinds)) <= 3
    assert all(s.phone is not None for s in sim.sent)


@PROPERTY_SETTINGS
@given(coherent_incidents(), policies(), st.data())
def test_check_before_send_clears_exactly_the_texts_that_may_go(
    facts: list[CallFact], policy: Policy, data: st.DataObject
) -> None:
    """The last re-check, against any call state, kind, moment, expiry and phone."""
    call, _ = apply_all(facts, policy)
    timely = {
        TextKind.CONFIRMATION: call.cleared_at is None and call.case_number is not None,
        TextKind.DELAY_NOTICE: call.dispatched_at is None and call.cleared_at is None,
        TextKind.SURVEY_INVITATION: call.cleared_at is not None,
    }
    fitting = [k for k in CALL_TEXT_KINDS if timely[k]] or list(CALL_TEXT_KINDS)
    kind = data.draw(st.sampled_from(CALL_TEXT_KINDS) | st.sampled_from(fitting), label="kind")
    start = call.started_at or facts[0].occurred_at
    now = start + timedelta(minutes=data.draw(st.integers(-60, 3 * 1440), label="minutes"))
    # Boundary values come up often: just expired, expiring now, one text below the cap...
    expiry = data.draw(st.sampled_from((-120, -1, 0, 1, 120)), label="expires in (minutes)")
    expires_at = now + timedelta(minutes=expiry)
    cap = policy.max_texts_per_phone_per_day
    phone = PhoneContext(
        opted_out=data.draw(st.booleans(), label="phone opted out"),
        texts_last_24h=data.draw(st.sampled_from((0, cap - 1, cap, cap + 3)), label="texts"),
    )
    result = check_before_send(
        call, kind, expires_at=expires_at, phone=phone, policy=policy, now=now
    )
    may_go = (
        eligibility(call, policy) == ELIGIBLE
        and not phone.opted_out
        and phone.texts_last_24h < policy.max_texts_per_phone_per_day
        and now <= expires_at
        and timely[kind]
    )
    if result.ok:
        assert may_go, result
        assert result.retry_at is None
        assert call.blocked_reason is None and not call.caller_opted_out
        assert not any(triggers_sticky(f, policy) for f in facts), "(b) texted after a trigger"
        assert not policy.in_quiet_hours(now, kind)
    elif result.reason == "deferred:quiet_hours":
        assert may_go, result
        assert policy.in_quiet_hours(now, kind)
        assert result.retry_at is not None and result.retry_at > now
        assert not policy.in_quiet_hours(result.retry_at, kind)
    else:
        assert result.reason.startswith("suppressed:"), result
        assert result.retry_at is None
        assert not may_go, f"{result} for a text that may go"


class IncidentMachine(RuleBasedStateMachine):
    """The same rules, explored step by step: CAD events (new, late, repeated), time
    passing with the worker up or down, the caller replying STOP, other incidents texting
    the same phone."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: IncidentSim | None = None
        self.base = BASES[0]
        self.events = 0

    @initialize(
        policy=policies(),
        base=st.sampled_from(BASES),
        start=st.integers(-60, 360),
        # The intake's bound on stamps ahead of their receipt, as the product always has
        # it, or none: the fold's own rules explored with any stamp accepted.
        max_skew=st.sampled_from((DEFAULT_MAX_CLOCK_SKEW, None)),
    )
    def open_incident(
        self, policy: Policy, base: datetime, start: int, max_skew: timedelta | None
    ) -> None:
        self.base = base
        self.sim = IncidentSim(
            policy=policy, clock=base + timedelta(minutes=start), max_skew=max_skew
        )

    @rule(data=st.data())
    def cad_sends_an_event(self, data: st.DataObject) -> None:
        assert self.sim is not None
        self.events += 1
        self.sim.receive(data.draw(call_facts(self.base, f"e{self.events}"), label="fact"))

    @precondition(lambda self: self.sim is not None and bool(self.sim.facts))
    @rule(index=st.integers(0, 1_000))
    def cad_redelivers_an_event(self, index: int) -> None:
        assert self.sim is not None
        self.sim.receive(self.sim.facts[index % len(self.sim.facts)])

    @rule(delta=elapsed(), worker_up=st.sampled_from((True, True, False)))
    def time_passes(self, delta: timedelta, worker_up: bool) -> None:
        assert self.sim is not None
        self.sim.advance(delta, worker_up=worker_up)

    @rule()
    def caller_replies_stop(self) -> None:
        assert self.sim is not None
        self.sim.caller_replies_stop()

    @rule(count=st.integers(1, 9))
    def other_incidents_text_the_same_phone(self, count: int) -> None:
        assert self.sim is not None
        self.sim.other_incidents_text(count)

    @invariant()
    def outbox_agrees_with_the_call(self) -> None:
        if self.sim is not None:
            assert_outbox_state(self.sim.call, self.sim.rows, self.sim.policy)
            if self.sim.decisions:  # something was folded (not every fact refused)
                assert self.sim.call.reason == eligibility(self.sim.call, self.sim.policy)

    def teardown(self) -> None:
        if self.sim is not None:
            self.sim.flush()


# A third of the examples: each one is a whole run of up to 30 steps.
IncidentMachine.TestCase.settings = settings(
    max_examples=max(EXAMPLES // 3, 20),
    stateful_step_count=30,
    deadline=None,
    derandomize=False,
    phases=PHASES,
)
TestIncidentLifecycle = IncidentMachine.TestCase


@PROPERTY_SETTINGS
@given(fact_lists(max_size=12), st.data())
def test_decide_is_deterministic(facts: list[CallFact], data: st.DataObject) -> None:
    now = data.draw(st.sampled_from(BASES)) + timedelta(hours=data.draw(st.integers(0, 100)))
    first_call, first = apply_all(facts, now=now)
    second_call, second = apply_all(list(facts), now=now)  # fresh, equal inputs
    assert first == second
    assert first_call == second_call


# --------------------------------------------------------------------------- duplicates


@PROPERTY_SETTINGS
@given(fact_lists(max_size=10), st.data())
def test_same_fact_twice_in_a_row_changes_nothing(
    facts: list[CallFact], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(facts) - 1), label="repeated")
    call, _ = apply_all(facts[: index + 1])
    again = decide(call, facts[index], POLICY, data.draw(st.sampled_from(BASES)))
    assert again.call == call
    assert again.actions == ()


@PROPERTY_SETTINGS
@given(fact_lists(max_size=10, distinct_times=True), st.data())
def test_redelivered_earlier_fact_changes_nothing(
    facts: list[CallFact], data: st.DataObject
) -> None:
    call, _ = apply_all(facts)
    redelivered = data.draw(st.sampled_from(facts), label="redelivered")
    again = decide(call, redelivered, POLICY, max(f.occurred_at for f in facts))
    if call.blocked_reason is None and danger_behind_a_benign_value(call, redelivered):
        # A repeat of an older danger looks exactly like a late one; it fails closed.
        # (The intake never folds an event id twice: test_intake_api, test_holds.)
        assert again.call.blocked_reason in OUT_OF_ORDER
        return
    assert again.call == call
    assert again.actions == ()


OUT_OF_ORDER = frozenset({PRIORITY_OUT_OF_ORDER, CALL_TYPE_OUT_OF_ORDER})


def danger_behind_a_benign_value(call: Call, f: CallFact, policy: Policy = POLICY) -> bool:
    """The fact says "not texted" (priority or type) and loses the fold to a benign value
    stamped later."""
    return any(
        value is not None
        and field_danger(name, value, policy)
        and not field_danger(name, getattr(call, name), policy)
        and getattr(call, name) is not None
        and (call.field_times[name], call.field_events[name]) > (f.occurred_at, f.event_id)
        for name, value in (("priority", f.priority), ("call_type_code", f.call_type_code))
    )


def in_event_time_order(facts: list[CallFact]) -> list[CallFact]:
    return sorted(facts, key=lambda f: (f.occurred_at, f.event_id))


def assert_as_in_event_time_order(delivered: Call, facts: list[CallFact]) -> None:
    """The call is what delivering the facts in event-time order gives, or that call
    blocked for good: a danger that arrived after a benign value stamped later fails
    closed (lifecycle.decide), and only then."""
    in_order = settle(in_event_time_order(facts)).call
    assert in_order.blocked_reason not in OUT_OF_ORDER
    if delivered.blocked_reason in OUT_OF_ORDER:
        assert eligibility(delivered, POLICY) == delivered.blocked_reason
        ignored = HISTORY_FIELDS | {"reason", "blocked_reason"}
        assert folded_fields(delivered, exclude=ignored) == folded_fields(in_order, exclude=ignored)
    else:
        assert folded_fields(delivered) == folded_fields(in_order)


# --------------------------------------------------------------------------- (f) order


def settle(facts: list[CallFact], policy: Policy = POLICY) -> IncidentSim:
    """Process the facts in this order, all at the newest occurred_at, sending nothing."""
    sim = IncidentSim(policy=policy, clock=max(f.occurred_at for f in facts))
    for f in facts:
        sim.receive(f)
    return sim


@PROPERTY_SETTINGS
@given(fact_lists(sticky=False, max_size=10, distinct_times=True), st.data())
def test_final_state_does_not_depend_on_the_order_of_facts(
    facts: list[CallFact], data: st.DataObject
) -> None:
    reordered = data.draw(st.permutations(facts), label="reordered")
    assert_as_in_event_time_order(settle(reordered).call, facts)


@st.composite
def simultaneous_facts(draw: st.DrawFn) -> list[CallFact]:
    """Non-sticky facts stamped with one of only two instants, so many tie."""
    facts = draw(fact_lists(sticky=False, min_size=2, max_size=6))
    base = facts[0].occurred_at
    return [
        with_changes(f, occurred_at=base + timedelta(minutes=draw(st.integers(0, 1))))
        for f in facts
    ]


@PROPERTY_SETTINGS
@given(simultaneous_facts(), st.data())
def test_final_state_does_not_depend_on_the_order_of_simultaneous_facts(
    facts: list[CallFact], data: st.DataObject
) -> None:
    reordered = data.draw(st.permutations(facts), label="reordered")
    assert_as_in_event_time_order(settle(reordered).call, facts)


@PROPERTY_SETTINGS
@given(fact_lists(sticky=False, max_size=10, distinct_times=True), st.data())
def test_without_dangers_the_final_state_does_not_depend_on_the_order_of_facts(
    facts: list[CallFact], data: st.DataObject
) -> None:
    benign = [
        with_changes(
            f,
            priority=f.priority if f.priority in POLICY.priorities else None,
            call_type_code=None if POLICY.call_type(f.call_type_code) is None else f.call_type_code,
        )
        for f in facts
    ]
    reordered = data.draw(st.permutations(benign), label="reordered")
    assert folded_fields(settle(reordered).call) == folded_fields(settle(benign).call)


@PROPERTY_SETTINGS
@given(consistent_incidents())
def test_consistent_incident_gets_the_same_texts_in_any_order(facts: list[CallFact]) -> None:
    """One incident told in pieces, delivered in any order, ends with the same call and the
    same texts still waiting at the same moments as when delivered in event-time order.
    (Texts created and then cancelled may differ: a late clearance or dispatch cannot be
    foreseen. What is still waiting, and when, must not.)"""
    in_order = settle(sorted(facts, key=lambda f: f.occurred_at))
    delivered = settle(facts)
    history_free = folded_fields(delivered.call)
    assert history_free == folded_fields(in_order.call)
    assert delivered.call.eligible_at == in_order.call.eligible_at
    expected, actual = waiting_texts(in_order.rows), waiting_texts(delivered.rows)
    assert actual.keys() == expected.keys()
    confirmation = TextKind.CONFIRMATION
    assert actual.get(confirmation) == expected.get(confirmation), "confirmation moment"
    delay = TextKind.DELAY_NOTICE
    assert actual.get(delay) == expected.get(delay), "delay notice moment"
    survey = TextKind.SURVEY_INVITATION
    assert actual.get(survey) == expected.get(survey), "survey moment"


@PROPERTY_SETTINGS
@given(
    st.one_of(
        facts_with_one_sticky_trigger(),
        fact_lists(max_size=8).filter(lambda fs: any(triggers_sticky(f, POLICY) for f in fs)),
    ),
    st.data(),
)
def test_sticky_reason_blocks_the_call_in_any_order(
    facts: list[CallFact], data: st.DataObject
) -> None:
    reordered = data.draw(st.permutations(facts), label="reordered")
    sim = settle(reordered)  # asserts: never eligible once the sticky fact is processed
    newest = max(f.occurred_at for f in facts) + timedelta(minutes=1)
    everything_fine = CallFact(
        event_id="e-final",
        incident_id=INCIDENT,
        occurred_at=newest,
        type=FactType.UPDATED,
        in_progress=False,
        risk_flag=False,
        sms_opt_out=False,
        **ELIGIBLE_VALUES,
    )
    decision = sim.receive(everything_fine)
    assert eligibility(decision.call, POLICY) != ELIGIBLE
    assert schedules(decision) == []
    assert sim.call.phone == PHONE
