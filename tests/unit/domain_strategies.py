"""Shared helpers for the domain tests: the test policy, fact builders, hypothesis
strategies, and a tiny outbox simulator that carries out ``decide``'s actions exactly as
the service does and "sends" through ``check_before_send``.

Not a test module (no ``test_`` prefix); imported by ``test_lifecycle``, ``test_policy``
and ``test_safety_properties``.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import Phase, settings
from hypothesis import strategies as st

from callerconnect.domain.calls import Call
from callerconnect.domain.event_time import DEFAULT_MAX_CLOCK_SKEW, time_ahead
from callerconnect.domain.facts import CallFact, FactType
from callerconnect.domain.lifecycle import (
    CancelPending,
    Decision,
    RecordDecision,
    ScheduleText,
    decide,
    new_call,
)
from callerconnect.domain.messages import CALL_TEXT_KINDS, QUIET_HOURS_KINDS, TextKind
from callerconnect.domain.policy import (
    ELIGIBLE,
    CallType,
    PhoneContext,
    Policy,
    QuietHours,
    check_before_send,
    eligibility,
    is_sticky,
    parse_call_types,
)

# --------------------------------------------------------------------------- settings


def _examples_from_env() -> int:
    raw = os.environ.get("CALLERCONNECT_TEST_HYPOTHESIS_EXAMPLES", "300")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"CALLERCONNECT_TEST_HYPOTHESIS_EXAMPLES must be a positive integer, not {raw!r}"
        ) from None
    if value < 1:
        raise ValueError(f"CALLERCONNECT_TEST_HYPOTHESIS_EXAMPLES must be positive, not {value}")
    return value


EXAMPLES = _examples_from_env()

#: The settings of every property test: the number of examples comes from the
#: environment (300 by default so the normal suite stays quick; CI raises it).
#: The ``explain`` phase is left out: it re-runs failing examples under line tracing,
#: which took minutes for the incident simulations, and our assertions already say
#: which rule broke and on which facts.
PHASES = tuple(p for p in Phase if p is not Phase.explain)
PROPERTY_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, phases=PHASES)

# --------------------------------------------------------------------------- the policy

TZ = ZoneInfo("America/Toronto")
AGENCY = "agency-test"
INCIDENT = "I-TEST"
PHONE = "+16135550142"
OTHER_PHONE = "+16135550199"


def bundled_call_type_rows() -> list[dict[str, str | None]]:
    text = resources.files("callerconnect.data").joinpath("call-types.csv").read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


CALL_TYPES: dict[str, CallType] = parse_call_types(bundled_call_type_rows())
TEXTABLE_CODES = tuple(sorted(code for code, ct in CALL_TYPES.items() if ct.textable))
EXCLUDED_CODES = tuple(sorted(code for code, ct in CALL_TYPES.items() if not ct.textable))
UNKNOWN_CODES = ("ROBBERYX", "zz-not-mapped")

DEFAULT_QUIET_HOURS = QuietHours(time(21, 0), time(8, 0), TZ)


def make_policy(**overrides: Any) -> Policy:
    """The contract's default policy (README §3), with the bundled call-type table."""
    values: dict[str, Any] = {
        "priorities": frozenset({3, 4}),
        "delay_notice_after": {3: timedelta(minutes=30), 4: timedelta(minutes=60)},
        "call_types": CALL_TYPES,
        "survey_after_clear": timedelta(minutes=15),
        "quiet_hours": DEFAULT_QUIET_HOURS,
        "survey_expires": timedelta(days=7),
        "max_texts_per_phone_per_day": 8,
    }
    values.update(overrides)
    return Policy(**values)


POLICY = make_policy()

# --------------------------------------------------------------------------- facts

_event_ids = itertools.count(1)


def local(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0):
    """An aware datetime in the agency's time zone (America/Toronto)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=TZ)


def at(hour: int, minute: int = 0, second: int = 0, *, day: int = 16) -> datetime:
    """A moment on an ordinary winter day (2026-01-16, EST, no DST nearby)."""
    return local(2026, 1, day, hour, minute, second)


def fact(type_: FactType, when: datetime, event_id: str | None = None, **values: Any):
    """A CallFact for the test incident with a fresh event id unless one is given."""
    return CallFact(
        event_id=event_id or f"e-{next(_event_ids)}",
        incident_id=INCIDENT,
        occurred_at=when,
        type=type_,
        **values,
    )


#: Everything an eligible call needs, plus a case number.
ELIGIBLE_VALUES: dict[str, Any] = {
    "priority": 3,
    "call_type_code": "THEFT",
    "phone": PHONE,
    "case_number": "26-00001",
}


def eligible_received(when: datetime, **overrides: Any) -> CallFact:
    return fact(FactType.RECEIVED, when, **{**ELIGIBLE_VALUES, **overrides})


def apply_all(
    facts: Iterable[CallFact],
    policy: Policy = POLICY,
    *,
    now: datetime | None = None,
    call: Call | None = None,
) -> tuple[Call, list[Decision]]:
    """Fold facts through ``decide`` in the given order. ``now`` defaults to the running
    maximum of ``occurred_at`` (a fact is processed no earlier than the newest one seen)."""
    call = call or new_call(AGENCY, INCIDENT)
    decisions: list[Decision] = []
    newest: datetime | None = None
    for f in facts:
        newest = f.occurred_at if newest is None else max(newest, f.occurred_at)
        decision = decide(call, f, policy, now or newest)
        decisions.append(decision)
        call = decision.call
    return call, decisions


def schedules(decision: Decision | Iterable[Decision]) -> list[ScheduleText]:
    items = [decision] if isinstance(decision, Decision) else list(decision)
    return [a for d in items for a in d.actions if isinstance(a, ScheduleText)]


def records(decision: Decision | Iterable[Decision]) -> list[RecordDecision]:
    items = [decision] if isinstance(decision, Decision) else list(decision)
    return [a for d in items for a in d.actions if isinstance(a, RecordDecision)]


def field_danger(name: str, value: Any, policy: Policy) -> bool:
    """A priority the policy does not text, a call type it does not text or know."""
    if name == "priority":
        return value not in policy.priorities
    call_type = policy.call_type(value)
    return call_type is None or not call_type.textable


def may_stop_texts(f: CallFact, policy: Policy) -> bool:
    """What ``service/holds.may_change_safety`` says of the event's payload: a refused
    event that says this holds its incident."""
    if triggers_sticky(f, policy) or f.merged_into is not None:
        return True
    if f.priority is not None and field_danger("priority", f.priority, policy):
        return True
    return f.call_type_code is not None and field_danger("call_type_code", f.call_type_code, policy)


def triggers_sticky(f: CallFact, policy: Policy) -> bool:
    """Does this fact, on its own, carry a reason that must block the incident for good?"""
    if f.risk_flag or f.in_progress or f.sms_opt_out:
        return True
    if f.type in (FactType.CANCELLED, FactType.MERGED):
        return True
    call_type = policy.call_type(f.call_type_code)
    return call_type is not None and not call_type.textable


#: Call fields that record history (what was scheduled, when it first became eligible)
#: rather than the folded facts.
HISTORY_FIELDS = frozenset({"texts_scheduled", "eligible_at"})


def folded_fields(call: Call, *, exclude: frozenset[str] = HISTORY_FIELDS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(call):
        if f.name in exclude:
            continue
        value = getattr(call, f.name)
        out[f.name] = dict(value) if f.name == "field_times" else value
    return out


# --------------------------------------------------------------------------- outbox simulator


@dataclass
class Row:
    """An outbox row as the service keeps it (one per incident and kind)."""

    kind: TextKind
    not_before: datetime
    expires_at: datetime
    status: str = "scheduled"  # scheduled | sent | cancelled | suppressed
    reason: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Sent:
    kind: TextKind
    at: datetime
    phone: str | None


@dataclass
class IncidentSim:
    """One incident as the service would hold it: the call, its outbox rows, and a worker
    that sends due rows through ``check_before_send``.

    Every step asserts the contract between the domain and the outbox, and every send
    asserts the safety rules; an ``AssertionError`` names the broken rule.
    """

    policy: Policy
    clock: datetime
    call: Call = field(default_factory=lambda: new_call(AGENCY, INCIDENT))
    rows: dict[TextKind, Row] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    facts: list[CallFact] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    opted_out_phones: set[str] = field(default_factory=set)
    external_texts: list[tuple[datetime, str]] = field(default_factory=list)
    sticky_fact: CallFact | None = None
    # As the intake: an event stamped further ahead of its receipt is refused
    # (domain/event_time.py), and one whose id was accepted before is a duplicate.
    # None for tests of ``decide`` that stamp facts ahead of the simulated clock.
    max_skew: timedelta | None = None
    accepted_ids: set[str] = field(default_factory=set)
    refused: list[CallFact] = field(default_factory=list)
    refused_danger: CallFact | None = None
    # The event-time invariant, kept apart from the code under test: each priority or
    # call-type danger received, with the newest version of its field known when it
    # arrived; it stands until a benign value arrives that is newer than that version.
    versions: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    dangers: list[tuple[str, tuple[datetime, str], CallFact]] = field(default_factory=list)

    # ---- facts -----------------------------------------------------------------------

    def receive(self, f: CallFact) -> Decision:
        """The intake's path for one event delivered now (``self.clock`` is its receipt)."""
        self.facts.append(f)
        if f.event_id in self.accepted_ids:
            return Decision(self.call, ())  # a duplicate: answered, not folded
        if self.max_skew is not None and time_ahead(f.occurred_at, self.clock, self.max_skew):
            self.refused.append(f)
            if not may_stop_texts(f, self.policy):
                return Decision(self.call, ())
            self.refused_danger = self.refused_danger or f
            hold = CallFact(
                event_id=f"held:{self.clock.isoformat()}",
                incident_id=f.incident_id,
                occurred_at=self.clock,
                type=FactType.UPDATED,
                hold="held:event_time_ahead",
            )
            return self.fold(hold)
        self.accepted_ids.add(f.event_id)
        self._track_dangers(f)
        return self.fold(f)

    def _track_dangers(self, f: CallFact) -> None:
        for name, value in (("priority", f.priority), ("call_type_code", f.call_type_code)):
            if value is None:
                continue
            version = (f.occurred_at, f.event_id)
            newest = max(self.versions.get(name, version), version)
            self.versions[name] = newest
            if field_danger(name, value, self.policy):
                self.dangers.append((name, newest, f))
            elif self.max_skew is None or f.occurred_at <= self.clock + self.max_skew:
                # A correction. With the intake's bound (always on in the product, at most
                # a minute) one stamped further ahead of its receipt is refused before it
                # gets here, and the danger stands (``refused_danger``). A simulation
                # without the bound explores the fold's own rules: there the fold takes a
                # newer value as it is told, whatever its stamp.
                self.dangers = [d for d in self.dangers if d[0] != name or d[1] >= version]

    def fold(self, f: CallFact) -> Decision:
        """``decide`` on one fact, checking the contract, then the outbox."""
        before, now = self.call, self.clock
        decision = decide(before, f, self.policy, now)
        again = decide(before, f, self.policy, now)
        assert again == decision, "decide is not deterministic"
        assert_decision_contract(before, decision, self.policy, now, self.rows)
        self._carry_out(decision)
        self.call = decision.call
        self.decisions.append(decision)
        assert_outbox_state(self.call, self.rows, self.policy)
        if self.sticky_fact is None and triggers_sticky(f, self.policy):
            self.sticky_fact = f
        if self.sticky_fact is not None:
            assert eligibility(self.call, self.policy) != ELIGIBLE, (
                f"call is eligible again after {self.sticky_fact} was processed"
            )
        return decision

    def _carry_out(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, ScheduleText):
                row = self.rows.get(action.kind)
                if action.reschedule:
                    assert row is not None, f"reschedule of a {action.kind} that was never created"
                    if row.status == "scheduled":
                        row.not_before = action.not_before
                        row.expires_at = action.expires_at
                    continue
                assert row is None, f"a second {action.kind} row was asked for"
                self.rows[action.kind] = Row(
                    action.kind,
                    action.not_before,
                    action.expires_at,
                    status="suppressed" if action.suppressed_reason else "scheduled",
                    reason=action.suppressed_reason,
                )
            elif isinstance(action, CancelPending):
                for kind in action.kinds:
                    row = self.rows.get(kind)
                    if row is not None and row.status == "scheduled":
                        row.status = "cancelled"
                        row.reason = action.reason

    # ---- the phone -------------------------------------------------------------------

    def caller_replies_stop(self) -> None:
        if self.call.phone is not None:
            self.opted_out_phones.add(self.call.phone)

    def other_incidents_text(self, count: int) -> None:
        if self.call.phone is not None:
            self.external_texts.extend((self.clock, self.call.phone) for _ in range(count))

    def texts_last_24h(self, phone: str | None, now: datetime) -> int:
        if phone is None:
            return 0
        since = now - timedelta(hours=24)
        ours = sum(1 for s in self.sent if s.phone == phone and since < s.at <= now)
        theirs = sum(1 for t, p in self.external_texts if p == phone and since < t <= now)
        return ours + theirs

    # ---- the worker ------------------------------------------------------------------

    def advance(self, delta: timedelta, *, worker_up: bool = True) -> None:
        """Let ``delta`` pass; a running worker sends each row when it falls due."""
        # Elapsed time, not wall-clock time: across a DST change they differ by an hour.
        until = (self.clock.astimezone(UTC) + delta).astimezone(self.clock.tzinfo)
        while worker_up:
            due = [
                r for r in self.rows.values() if r.status == "scheduled" and r.not_before <= until
            ]
            if not due:
                break
            row = min(due, key=lambda r: (max(r.not_before, self.clock), r.kind.send_rank))
            self.clock = max(row.not_before, self.clock)
            self._attempt(row)
        self.clock = until

    def flush(self) -> None:
        self.advance(timedelta(days=4))

    def _attempt(self, row: Row) -> None:
        now, call, policy = self.clock, self.call, self.policy
        ctx = PhoneContext(
            opted_out=call.phone in self.opted_out_phones,
            texts_last_24h=self.texts_last_24h(call.phone, now),
        )
        check = check_before_send(
            call, row.kind, expires_at=row.expires_at, phone=ctx, policy=policy, now=now
        )
        if check.ok:
            assert check.retry_at is None
            self._assert_may_send(row, ctx)
            row.status, row.sent_at = "sent", now
            self.sent.append(Sent(row.kind, now, call.phone))
            assert self.texts_last_24h(call.phone, now) <= policy.max_texts_per_phone_per_day
        elif check.reason.startswith("deferred:"):
            assert check.reason == "deferred:quiet_hours", check
            assert row.kind in QUIET_HOURS_KINDS, f"{row.kind} deferred for quiet hours"
            assert policy.in_quiet_hours(now, row.kind)
            assert check.retry_at is not None and check.retry_at > now, check
            assert not policy.in_quiet_hours(check.retry_at, row.kind), check
            row.not_before = check.retry_at
        else:
            assert check.reason.startswith("suppressed:"), check
            assert check.retry_at is None, check
            row.status, row.reason = "suppressed", check.reason

    def _assert_may_send(self, row: Row, ctx: PhoneContext) -> None:
        call, policy, now, kind = self.call, self.policy, self.clock, row.kind
        where = f"{kind} sent at {now.isoformat()} after facts {self.facts}"
        # (a) eligible, not blocked
        assert eligibility(call, policy) == ELIGIBLE, f"(a) ineligible call texted: {where}"
        assert call.blocked_reason is None, f"(a) blocked call texted: {where}"
        # (b) nothing after a risk flag / excluded type / in progress / opt-out / cancel / merge
        assert self.sticky_fact is None, f"(b) texted after {self.sticky_fact}: {where}"
        # (h) nothing after a priority not texted or an unknown type, whatever its stamp,
        # unless a benign value arrived later that is newer than all known when it came;
        # nothing after an event refused (stamped ahead of its receipt) that carried one.
        assert self.refused_danger is None, f"(h) texted after {self.refused_danger}: {where}"
        assert not self.dangers, f"(h) texted after {self.dangers[0][2]}: {where}"
        # (c) one text of each kind per incident
        assert all(s.kind is not kind for s in self.sent), f"(c) second {where}"
        # (d) never to an opted-out phone
        assert call.phone is not None
        assert call.phone not in self.opted_out_phones, f"(d) opted-out phone: {where}"
        assert not call.caller_opted_out, f"(d) caller opted out in CAD: {where}"
        # (e) the daily cap
        assert ctx.texts_last_24h < policy.max_texts_per_phone_per_day, f"(e) cap: {where}"
        # Timeliness: nothing late, nothing whose moment has passed, nothing in quiet hours.
        assert now <= row.expires_at, f"expired text sent: {where}"
        assert now >= row.not_before, f"text sent early: {where}"
        assert not policy.in_quiet_hours(now, kind), f"sent in quiet hours: {where}"
        if kind is TextKind.CONFIRMATION:
            assert call.cleared_at is None and call.case_number is not None, where
        if kind is TextKind.DELAY_NOTICE:
            assert call.dispatched_at is None and call.arrived_at is None, where
            assert call.cleared_at is None, where
        if kind is TextKind.SURVEY_INVITATION:
            assert call.cleared_at is not None, where


def assert_decision_contract(
    before: Call, decision: Decision, policy: Policy, now: datetime, rows: dict[TextKind, Row]
) -> None:
    """What the service relies on in every ``Decision`` (checked before carrying it out)."""
    after, actions = decision.call, decision.actions
    reason = eligibility(after, policy)
    assert after.reason == reason, f"call.reason {after.reason!r} but eligibility {reason!r}"
    # Every change of eligibility is recorded, once, with its code; nothing else is.
    changes = [a.code for a in actions if isinstance(a, RecordDecision) and a.kind is None]
    expected = [reason] if reason != before.reason else []
    assert changes == expected, f"recorded {changes}, eligibility went {before.reason}→{reason}"
    # A sticky reason stays for good.
    if before.blocked_reason is not None:
        # ... or a hold replaces a milder lasting reason (it says more: lifecycle.decide).
        held = (after.blocked_reason or "").startswith("held:") and not (
            before.blocked_reason.startswith(("excluded:", "held:"))
        )
        assert after.blocked_reason == before.blocked_reason or held
    if is_sticky(reason):
        assert after.blocked_reason == reason
    if reason != ELIGIBLE:
        assert not [a for a in actions if isinstance(a, ScheduleText)], (
            f"text scheduled for an ineligible call ({reason})"
        )
        for cancel in (a for a in actions if isinstance(a, CancelPending)):
            assert cancel.kinds == frozenset(CALL_TEXT_KINDS)
            if reason.startswith("excluded:"):
                assert cancel.reason == "suppressed:reclassified"
    stale_records = {
        a.kind for a in actions if isinstance(a, RecordDecision) and a.kind is not None
    }
    created: set[TextKind] = set()
    for text in (a for a in actions if isinstance(a, ScheduleText)):
        kind = text.kind
        assert kind in CALL_TEXT_KINDS
        assert text.expires_at == text.not_before + policy.expires_after[kind]
        assert not policy.in_quiet_hours(text.not_before, kind), f"{text} in quiet hours"
        if text.reschedule:
            assert kind in rows, f"{text} reschedules a text never created"
        else:
            assert kind not in rows and kind not in created, f"{kind} created twice"
            created.add(kind)
            stale = now > text.expires_at
            assert text.suppressed_reason == ("suppressed:stale" if stale else None), text
            assert (kind in stale_records) == stale
        if kind is TextKind.CONFIRMATION:
            assert after.case_number is not None and not after.is_closed
        elif kind is TextKind.DELAY_NOTICE:
            assert after.dispatched_at is None and not after.is_closed
            assert after.priority is not None and after.started_at is not None
            moment = after.started_at + policy.delay_notice_after[after.priority]
            assert text.not_before == policy.shift_out_of_quiet_hours(moment, kind), text
        else:
            assert after.cleared_at is not None
            moment = after.cleared_at + policy.survey_after_clear
            assert text.not_before == policy.shift_out_of_quiet_hours(moment, kind), text


def assert_outbox_state(call: Call, rows: dict[TextKind, Row], policy: Policy) -> None:
    """After the actions are carried out: the outbox agrees with the call."""
    assert set(rows) == set(call.texts_scheduled), (set(rows), call.texts_scheduled)
    waiting = {kind for kind, row in rows.items() if row.status == "scheduled"}
    if eligibility(call, policy) != ELIGIBLE:
        assert not waiting, f"{waiting} still waiting for an ineligible call ({call.reason})"
    if call.is_closed:
        assert not waiting & {TextKind.CONFIRMATION, TextKind.DELAY_NOTICE}, waiting
    if call.dispatched_at is not None:
        assert TextKind.DELAY_NOTICE not in waiting, "delay notice waiting after dispatch"


def waiting_texts(rows: dict[TextKind, Row]) -> dict[TextKind, tuple[datetime, datetime]]:
    return {k: (r.not_before, r.expires_at) for k, r in rows.items() if r.status == "scheduled"}


def replay(facts: Sequence[CallFact], policy: Policy = POLICY) -> IncidentSim:
    """Process facts as a CAD would deliver them — each at the newest ``occurred_at``
    seen so far — with the worker running in between; then let four days pass."""
    sim = IncidentSim(policy=policy, clock=min(f.occurred_at for f in facts))
    for f in facts:
        if f.occurred_at > sim.clock:
            sim.advance(f.occurred_at - sim.clock)
        sim.receive(f)
    sim.flush()
    return sim


# --------------------------------------------------------------------------- strategies

#: Starting points: an ordinary day, the evenings before both 2026 DST changes in
#: Toronto, and a summer evening just before the quiet hours.
BASES = (
    local(2026, 1, 16, 8, 0),
    local(2026, 3, 7, 19, 0),
    local(2026, 10, 31, 19, 0),
    local(2026, 6, 15, 20, 30),
)

QUIET_HOURS_CHOICES = (
    DEFAULT_QUIET_HOURS,
    None,
    QuietHours(time(22, 0), time(7, 0), TZ),
    QuietHours(time(20, 0), time(9, 0), TZ),
    QuietHours(time(0, 0), time(6, 0), TZ),
    QuietHours(time(12, 0), time(14, 0), TZ),  # a window that does not wrap midnight
)

PRIORITY_SETUPS = (
    (frozenset({3, 4}), {3: timedelta(minutes=30), 4: timedelta(minutes=60)}),
    (
        frozenset({3, 4, 5}),
        {3: timedelta(minutes=30), 4: timedelta(hours=1), 5: timedelta(hours=2)},
    ),
    (frozenset({2, 3, 4}), {2: timedelta(minutes=10), 3: timedelta(minutes=30)}),
)


@st.composite
def _policies(draw: st.DrawFn) -> Policy:
    priorities, delays = draw(st.sampled_from(PRIORITY_SETUPS))
    return make_policy(
        priorities=priorities,
        delay_notice_after=delays,
        quiet_hours=draw(st.sampled_from(QUIET_HOURS_CHOICES)),
        max_texts_per_phone_per_day=draw(st.sampled_from((8, 3, 1))),
    )


_POLICIES = _policies()


def policies() -> st.SearchStrategy[Policy]:
    """Variations of the contract's policy: quiet hours (or none), caps, priorities."""
    return _POLICIES


_ALL_TYPES = (
    FactType.RECEIVED,
    FactType.UPDATED,
    FactType.UPDATED,
    FactType.DISPATCHED,
    FactType.ARRIVED,
    FactType.CLEARED,
    FactType.CANCELLED,
    FactType.MERGED,
)
_NON_STICKY_TYPES = tuple(t for t in _ALL_TYPES if t not in (FactType.CANCELLED, FactType.MERGED))


def _call_type_codes(sticky: bool) -> st.SearchStrategy[str | None]:
    options: list[st.SearchStrategy[str | None]] = [
        st.none(),
        st.sampled_from(TEXTABLE_CODES),
        st.sampled_from(TEXTABLE_CODES),
        st.sampled_from(UNKNOWN_CODES),
        st.sampled_from(TEXTABLE_CODES).map(lambda c: f" {c.lower()}"),  # CAD spelling
    ]
    if sticky:
        options.append(st.sampled_from(EXCLUDED_CODES))
        options.append(st.sampled_from(EXCLUDED_CODES))
    return st.one_of(options)


def _fact_bodies(sticky: bool) -> st.SearchStrategy[tuple[FactType, int, dict[str, Any]]]:
    """(type, minutes after the base, fields) of any fact a CAD might send. Built once per
    flavour: constructing strategies on every draw costs more than the tests themselves."""
    flag = st.sampled_from((None,) * 5 + (False, True) if sticky else (None, False))
    # Mostly within the day; sometimes a CAD clock jump or an event delivered days late.
    near = st.integers(-30, 8 * 60)
    minutes = st.one_of(near, near, near, st.integers(-3 * 24 * 60, 3 * 24 * 60))
    phones = st.one_of(st.none(), st.sampled_from((PHONE, OTHER_PHONE)))
    merge_targets = st.sampled_from(("I-OTHER-1", "I-OTHER-2"))

    @st.composite
    def bodies(draw: st.DrawFn) -> tuple[FactType, int, dict[str, Any]]:
        type_ = draw(st.sampled_from(_ALL_TYPES if sticky else _NON_STICKY_TYPES))
        phone = draw(phones)
        values: dict[str, Any] = {
            "case_number": draw(_CASES),
            "priority": draw(_PRIORITIES),
            "call_type_code": draw(_CODES[sticky]),
            "district": draw(_DISTRICTS),
            "phone": phone,
            "phone_invalid": phone is None and draw(_INVALID),
            "language": draw(_LANGUAGES),
            "sms_opt_out": draw(flag),
            "in_progress": draw(flag),
            "risk_flag": draw(flag),
            "unit_id": "2C14" if type_ in (FactType.DISPATCHED, FactType.ARRIVED) else None,
            "disposition_code": "RPRT" if type_ is FactType.CLEARED else None,
            "merged_into": draw(merge_targets) if type_ is FactType.MERGED else None,
        }
        return type_, draw(minutes), values

    return bodies()


_CODES = {True: _call_type_codes(True), False: _call_type_codes(False)}
_CASES = st.one_of(st.none(), st.sampled_from(("26-1", "26-2")))
_PRIORITIES = st.sampled_from((None, 3, 4, 3, 4, 3, 4, 1, 2, 5))
_DISTRICTS = st.one_of(st.none(), st.sampled_from(("Central", "East")))
_INVALID = st.sampled_from((False, False, False, True))
_LANGUAGES = st.sampled_from((None, "en", "fr"))
_BODIES = {True: _fact_bodies(True), False: _fact_bodies(False)}


def call_facts(
    base: datetime, event_id: str, *, sticky: bool = True
) -> st.SearchStrategy[CallFact]:
    """Any fact a CAD might send about one incident. With ``sticky=False`` no fact carries
    a reason that blocks for good (excluded type, risk flag, in progress, opt-out,
    cancellation, merge). Times are on a minute grid, so ties happen."""

    def build(body: tuple[FactType, int, dict[str, Any]]) -> CallFact:
        type_, minutes, values = body
        return CallFact(
            event_id=event_id,
            incident_id=INCIDENT,
            occurred_at=base + timedelta(minutes=minutes),
            type=type_,
            **values,
        )

    return _BODIES[sticky].map(build)


_SPREAD = st.integers(-3 * 24 * 60, 3 * 24 * 60)


@st.composite
def fact_lists(
    draw: st.DrawFn,
    *,
    sticky: bool = True,
    min_size: int = 1,
    max_size: int = 10,
    distinct_times: bool = False,
) -> list[CallFact]:
    """Facts about one incident, in a random order. ``distinct_times`` gives every fact its
    own minute (no two facts at the same instant)."""
    base = draw(_BASES)
    size = draw(st.integers(min_size, max_size))
    facts = [draw(call_facts(base, f"e{i}", sticky=sticky)) for i in range(size)]
    if distinct_times:
        minutes = draw(st.lists(_SPREAD, min_size=size, max_size=size, unique=True))
        facts = [
            with_changes(f, occurred_at=base + timedelta(minutes=m))
            for f, m in zip(facts, minutes, strict=True)
        ]
    return facts


def with_changes(f: CallFact, **changes: Any) -> CallFact:
    """A copy of the fact with some fields changed."""
    values = {x.name: getattr(f, x.name) for x in fields(f)}
    values.update(changes)
    return CallFact(**values)


_BASES = st.sampled_from(BASES)

#: The ways a fact can block an incident for good.
STICKY_TRIGGERS: tuple[dict[str, Any], ...] = (
    {"risk_flag": True},
    {"in_progress": True},
    {"sms_opt_out": True},
    {"type": FactType.CANCELLED},
    {"type": FactType.MERGED, "merged_into": "I-OTHER-1"},
    *({"call_type_code": code} for code in EXCLUDED_CODES),
)


@st.composite
def facts_with_one_sticky_trigger(draw: st.DrawFn, max_size: int = 8) -> list[CallFact]:
    """Facts that block nothing, except one fact that carries exactly one sticky trigger."""
    facts = draw(fact_lists(sticky=False, max_size=max_size))
    index = draw(st.integers(0, len(facts) - 1))
    facts[index] = with_changes(facts[index], **draw(st.sampled_from(STICKY_TRIGGERS)))
    return facts


_LATER_TYPES = st.lists(
    st.sampled_from(
        (FactType.UPDATED,) * 3 + (FactType.DISPATCHED, FactType.ARRIVED, FactType.CLEARED)
    ),
    min_size=1,
    max_size=7,
).filter(lambda ts: ts.count(FactType.CLEARED) <= 2)
# Mostly incidents that can be texted, so that there are texts to compare.
_TRUTH = st.fixed_dictionaries(
    {
        "priority": st.sampled_from((3, 4, 3, 4, 2, None)),
        "call_type_code": st.sampled_from((*TEXTABLE_CODES[:3], UNKNOWN_CODES[0], None)),
        "phone": st.sampled_from((PHONE, PHONE, None)),
        "case_number": st.sampled_from(("26-10014", "26-10014", None)),
        "district": st.just("South"),
        "language": st.sampled_from(("fr", None)),
    }
)


@st.composite
def consistent_incidents(draw: st.DrawFn) -> list[CallFact]:
    """One real incident told in pieces: every field has a single true value and each fact
    carries some of them; at most one ``call.received``, and it is the earliest fact; one
    or two clearances; nothing that blocks for good. Distinct minutes, within four hours
    (so nothing is stale when processed at the newest ``occurred_at``). Returned in a
    random delivery order."""
    base = draw(_BASES)
    truth = draw(_TRUTH)
    types = draw(_LATER_TYPES)
    if draw(st.booleans()):
        types = [FactType.RECEIVED, *types]
    minutes = sorted(
        draw(st.lists(st.integers(0, 240), min_size=len(types), max_size=len(types), unique=True))
    )
    facts = []
    for i, (type_, minute) in enumerate(zip(types, minutes, strict=True)):
        carried = {
            name: value
            for name, value in truth.items()
            if value is not None and (type_ is FactType.RECEIVED or draw(st.booleans()))
        }
        facts.append(
            CallFact(
                event_id=f"e{i}",
                incident_id=INCIDENT,
                occurred_at=base + timedelta(minutes=minute),
                type=type_,
                **carried,
            )
        )
    return draw(st.permutations(facts))


#: Ranges (in seconds) of how far a feed's clock is from true time: right, ahead within
#: the tolerated drift, just beyond it, far ahead (minutes to a day), behind.
CLOCK_OFFSETS = ((0, 0), (1, 5), (6, 120), (600, 24 * 3600), (-600, -1))

#: Genuine changes to what may not be texted (the ``upgrade`` scripts).
UPGRADES: tuple[dict[str, Any], ...] = (
    {"priority": 1},
    {"priority": 2},
    {"call_type_code": UNKNOWN_CODES[0]},
    {"call_type_code": UNKNOWN_CODES[1]},
)

_MINUTES_LATER = st.integers(1, 90).map(lambda m: timedelta(minutes=m))
_ELAPSED = st.one_of(
    _MINUTES_LATER,
    _MINUTES_LATER,
    st.integers(1, 12 * 60).map(lambda m: timedelta(minutes=m)),
    st.integers(1, 3 * 24 * 60).map(lambda m: timedelta(minutes=m)),
)


def elapsed() -> st.SearchStrategy[timedelta]:
    """Time passing between two things the test does: minutes mostly, sometimes days."""
    return _ELAPSED


@dataclass(frozen=True)
class Script:
    """An incident's life as a list of operations on an :class:`IncidentSim`."""

    policy: Policy
    start: datetime
    ops: tuple[tuple[Any, ...], ...]

    def run(self) -> IncidentSim:
        sim = IncidentSim(policy=self.policy, clock=self.start, max_skew=DEFAULT_MAX_CLOCK_SKEW)
        for op in self.ops:
            match op:
                case ("fact", CallFact() as f):
                    sim.receive(f)
                case ("redeliver", int(index)) if sim.facts:
                    sim.receive(sim.facts[index % len(sim.facts)])
                case ("time", timedelta() as delta, bool(worker_up)):
                    sim.advance(delta, worker_up=worker_up)
                case ("stop",):
                    sim.caller_replies_stop()
                case ("external", int(count)):
                    sim.other_incidents_text(count)
        sim.flush()
        return sim


_OPS = st.sampled_from(("fact",) * 9 + ("time",) * 7 + ("redeliver",) * 2 + ("stop", "external"))
_WORKER_UP = st.sampled_from((True, True, False))


#: How long after it happened a fact reaches us: mostly minutes, sometimes hours or days
#: (a CAD backlog), and now and then a CAD clock that runs a few minutes ahead.
_DELIVERY_LAG = st.builds(
    lambda m, s: timedelta(minutes=m, seconds=s),
    st.one_of(
        st.integers(0, 5),
        st.integers(0, 30),
        st.integers(0, 6 * 60),
        st.integers(0, 1),
        st.integers(0, 3 * 24 * 60),
    ),
    st.integers(0, 59),
)
#: How far a feed's clock is from true time, in seconds (see ``CLOCK_OFFSETS``).
_CLOCK_OFFSET = st.sampled_from(CLOCK_OFFSETS).flatmap(
    lambda r: st.integers(r[0], r[1]).map(lambda s: timedelta(seconds=s))
)
_FEED = st.sampled_from((0,) * 6 + (1, 1, 2, 2))


_SCRIPT_TRUTH = st.fixed_dictionaries(
    {
        "priority": st.sampled_from((3, 4, 3, 4, 2)),
        "call_type_code": st.sampled_from((*TEXTABLE_CODES, UNKNOWN_CODES[0])),
        "phone": st.sampled_from((PHONE, OTHER_PHONE)),
        "case_number": st.sampled_from(("26-1", "26-2")),
    }
)
_NOISY = st.sampled_from((False, False, False, False, True))


@st.composite
def scripts(draw: st.DrawFn, max_ops: int = 25) -> Script:
    """An incident's life. A third of the scripts have no fact that blocks for good (so
    texts do go out, and the cap, opt-out, quiet hours and expiry are exercised), a third
    have exactly one such fact at a random point, a third anything at all. Each fact is
    stamped relative to the moment it is delivered."""
    clock = draw(_BASES) + timedelta(minutes=draw(st.integers(0, 24 * 60)))
    start = clock
    mode = draw(st.sampled_from(("clean", "one-trigger", "anything", "upgrade")))
    ops: list[tuple[Any, ...]] = []
    facts = 0
    # Several feeds: the CAD itself (true time) and two whose clocks may run ahead
    # (within the tolerated drift, or far beyond) or behind.
    feeds = (timedelta(0), draw(_CLOCK_OFFSET), draw(_CLOCK_OFFSET))

    truth = draw(_SCRIPT_TRUTH)

    def stamped(f: CallFact, feed: int | None = None) -> CallFact:
        """Delivered now (the receipt), having happened a lag ago, stamped by a feed's
        clock; mostly telling the incident's truth (some of it), sometimes anything (a
        reclassification, a priority change, a new number)."""
        if not draw(_NOISY):
            told = {
                k: v if f.type is FactType.RECEIVED or draw(st.booleans()) else None
                for k, v in truth.items()
            }
            f = with_changes(f, **told)
        offset = feeds[draw(_FEED) if feed is None else feed]
        return with_changes(f, occurred_at=clock - draw(_DELIVERY_LAG) + offset)

    for _ in range(draw(st.integers(1, max_ops))):
        choice = draw(_OPS)
        if choice == "fact":
            body = draw(call_facts(clock, f"e{facts}", sticky=mode == "anything"))
            ops.append(("fact", stamped(body)))
            facts += 1
        elif choice == "redeliver":
            ops.append(("redeliver", draw(st.integers(0, 50))))
        elif choice == "time":
            delta = draw(_ELAPSED)
            ops.append(("time", delta, draw(_WORKER_UP)))
            clock += delta
        elif choice == "stop":
            ops.append(("stop",))
        else:
            ops.append(("external", draw(st.integers(1, 9))))
    if mode == "one-trigger":
        position = draw(st.integers(0, len(ops)))
        clock = start + sum((op[1] for op in ops[:position] if op[0] == "time"), start=timedelta())
        body = draw(call_facts(clock, "e-trigger", sticky=False))
        trigger = with_changes(body, **draw(st.sampled_from(STICKY_TRIGGERS)))
        ops.insert(position, ("fact", stamped(trigger)))
    if mode == "upgrade":
        # The probe's history: a benign value from a feed whose clock may run ahead,
        # then, later, from the CAD itself, a genuine change to what is not texted.
        first, second = sorted(draw(st.lists(st.integers(0, len(ops)), min_size=2, max_size=2)))
        for position, feed, values in (
            (second, 0, draw(st.sampled_from(UPGRADES))),
            (first, 1, {"priority": draw(st.sampled_from((3, 4))), "call_type_code": "THEFT"}),
        ):
            clock = start + sum(
                (op[1] for op in ops[:position] if op[0] == "time"), start=timedelta()
            )
            body = draw(call_facts(clock, f"e-upgrade-{feed}", sticky=False))
            ops.insert(position, ("fact", with_changes(stamped(body, feed), **values)))
    return Script(policy=draw(_POLICIES), start=start, ops=tuple(ops))


@st.composite
def coherent_incidents(draw: st.DrawFn, max_size: int = 8) -> list[CallFact]:
    """Facts about one incident that mostly agree (one truth per field, each fact telling
    some of it), with the odd noisy fact; sometimes with facts that block for good."""
    base = draw(_BASES)
    truth = draw(_SCRIPT_TRUTH)
    sticky = draw(st.booleans())
    facts = []
    for i in range(draw(st.integers(1, max_size))):
        f = draw(call_facts(base, f"e{i}", sticky=sticky))
        if not draw(_NOISY):
            told = {
                k: v if f.type is FactType.RECEIVED or draw(st.booleans()) else None
                for k, v in truth.items()
            }
            f = with_changes(f, **told)
        facts.append(f)
    return facts
