"""The lifecycle: ``decide(call, fact, policy, now) -> Decision``.

Pure: no I/O, no clock reads, no randomness. Given the call as stored, one new fact, the
policy and the time the fact is being processed, it returns the call's new state and the
actions the service layer must carry out in the same transaction. Decisions are
state-based, not event-based: after each fold we compute which texts the call now
deserves, so facts may arrive in any order and still yield the same texts.

Besides the call's own texts, a decision may reach past the call: to the caller's number
(protect it from texts about other calls, opt it out) and to the call it was merged into
(hold it). Those come as a second tuple, ``Decision.beyond_the_call``, so that what a
fact does to its own call stays readable on its own.

Moments come from event time (``occurred_at``), never from ``now``; ``now`` is used only
to create a text that is already too late directly as ``suppressed:stale``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callerconnect.domain.calls import MERGED_TARGET_UNKNOWN, Call, fold, outranked, replaced
from callerconnect.domain.facts import CallFact
from callerconnect.domain.messages import CALL_TEXT_KINDS, TextKind
from callerconnect.domain.policy import (
    ELIGIBLE,
    Policy,
    eligibility,
    is_sticky,
    is_stopping_danger,
    merge_carries_danger,
    protects_the_number,
)


@dataclass(frozen=True)
class ScheduleText:
    """Put a text in the outbox (once per call and kind).

    With ``reschedule`` the text already exists and only its moment moved (the
    priority changed); the outbox updates it if it is still waiting.
    ``suppressed_reason`` creates the row already suppressed, for the record.
    """

    kind: TextKind
    not_before: datetime
    expires_at: datetime
    reschedule: bool = False
    suppressed_reason: str | None = None


@dataclass(frozen=True)
class CancelPending:
    """Cancel every still-waiting text of these kinds for the call, with a reason."""

    kinds: frozenset[TextKind]
    reason: str


@dataclass(frozen=True)
class RecordDecision:
    """A decision worth keeping: the eligibility changed, or why a text was not made."""

    code: str
    kind: TextKind | None = None


Action = ScheduleText | CancelPending | RecordDecision


#: The hold put on a call that another call, one that may not be texted for a reason
#: about the incident itself, was merged into.
HELD_MERGED_PROTECTED = "held:merged_protected_call"


@dataclass(frozen=True)
class ProtectNumber:
    """Keep texts about any other call away from this call's number until ``until``
    (a later protection extends an earlier one, never shortens it)."""

    reason: str
    until: datetime


@dataclass(frozen=True)
class OptOutNumber:
    """The caller told the call-taker "no texts": the number is opted out for the agency,
    as if they had texted STOP, not only this incident."""


@dataclass(frozen=True)
class HoldIncident:
    """Hold another incident for good: the call it names took this one's danger with it
    when they were merged."""

    incident_id: str
    reason: str


BeyondTheCall = ProtectNumber | OptOutNumber | HoldIncident


@dataclass(frozen=True)
class Decision:
    call: Call
    actions: tuple[Action, ...]
    #: What the fact does past its own call (number, merge target), in that order.
    beyond_the_call: tuple[BeyondTheCall, ...] = ()


def new_call(agency_id: str, incident_id: str) -> Call:
    return Call(agency_id=agency_id, incident_id=incident_id)


def decide(call: Call, fact: CallFact, policy: Policy, now: datetime) -> Decision:
    own = _decide_for_the_call(call, fact, policy, now)
    return Decision(own.call, own.actions, _beyond_the_call(own.call, fact, policy, now))


def _beyond_the_call(
    call: Call, fact: CallFact, policy: Policy, now: datetime
) -> tuple[BeyondTheCall, ...]:
    """The number's protection (renewed by every fact of a call that protects it), the
    CAD's opt-out when the fact told it or brought the number, and the hold of the
    merge target when this call carries a danger about the incident into it."""
    beyond: list[BeyondTheCall] = []
    protection = protects_the_number(call, policy)
    if protection is not None and policy.protect_number_for:
        beyond.append(ProtectNumber(protection, now + policy.protect_number_for))
    if (fact.sms_opt_out or fact.phone is not None) and call.caller_opted_out:
        beyond.append(OptOutNumber())
    target = call.merged_into
    if (
        target is not None
        and target != MERGED_TARGET_UNKNOWN
        and merge_carries_danger(call, policy)
    ):
        beyond.append(HoldIncident(target, HELD_MERGED_PROTECTED))
    return tuple(beyond)


def _decide_for_the_call(call: Call, fact: CallFact, policy: Policy, now: datetime) -> Decision:
    before = call
    after = fold(call, fact)
    reported = policy.call_type(fact.call_type_code)
    if reported is not None and not reported.textable and after.blocked_reason is None:
        # An excluded classification blocks the call even when it arrives late and a
        # newer classification already stands: someone judged this call dangerous.
        after = replaced(after, blocked_reason=f"excluded:{reported.category}")
    out_of_order = _danger_outranked(before, fact, policy)
    if out_of_order is not None and after.blocked_reason is None:
        # Fail closed (docs/intake.md, "Event time"): a danger that arrives after a
        # benign value stamped later may be the genuine later change, its stamp behind
        # because of a clock's drift; nothing can tell. So it blocks for good.
        after = replaced(after, blocked_reason=out_of_order)
    if fact.hold is not None and not is_stopping_danger(after.blocked_reason):
        # Fail closed (service/holds.py). A hold also replaces a milder lasting reason
        # (merged, cancelled, opted out): it says more, and what protects the number and
        # follows a merge reads it.
        after = replaced(after, blocked_reason=fact.hold)
    reason = eligibility(after, policy)
    actions: list[Action] = []
    # What the decision itself changes in the call, applied once at the end (nothing
    # below reads these fields of ``after``).
    outcome: dict[str, Any] = {}

    if is_sticky(reason) and after.blocked_reason is None:
        outcome["blocked_reason"] = reason
    if reason == ELIGIBLE:
        outcome["eligible_at"] = _moment_known(after, _ELIGIBILITY_FIELDS)
    if reason != before.reason:
        actions.append(RecordDecision(reason))
        outcome["reason"] = reason

    if reason != ELIGIBLE:
        if after.texts_scheduled and reason != before.reason:
            actions.append(CancelPending(frozenset(CALL_TEXT_KINDS), _cancel_reason(reason)))
        return Decision(replaced(after, **outcome), tuple(actions))

    # Each text's moment is computed from the state alone, before and after the fact,
    # so a late event that moves a moment (an earlier start, a later clearance, another
    # priority) moves a waiting text, and one that takes the moment away cancels it.
    was = _moments(before, policy)
    now_due = _moments(after, policy)
    scheduled = set(after.texts_scheduled)
    lost: dict[str, set[TextKind]] = {}
    for kind in CALL_TEXT_KINDS:
        if now_due[kind] is None and kind in scheduled and was[kind] is not None:
            lost.setdefault(_lost_moment(after, kind), set()).add(kind)
    actions.extend(CancelPending(frozenset(kinds), why) for why, kinds in sorted(lost.items()))
    for kind in CALL_TEXT_KINDS:
        moment = now_due[kind]
        if moment is None:
            continue
        not_before = policy.shift_out_of_quiet_hours(moment, kind)
        expires_at = not_before + policy.expires_after[kind]
        if kind in scheduled:
            if moment != was[kind]:
                actions.append(ScheduleText(kind, not_before, expires_at, reschedule=True))
            continue
        late = "suppressed:stale" if now > expires_at else None
        actions.append(ScheduleText(kind, not_before, expires_at, suppressed_reason=late))
        if late:
            actions.append(RecordDecision(late, kind))
        scheduled.add(kind)
    outcome["texts_scheduled"] = frozenset(scheduled)
    return Decision(replaced(after, **outcome), tuple(actions))


#: Sticky reasons of a danger received after a benign value with a later stamp.
PRIORITY_OUT_OF_ORDER = "ineligible:priority_out_of_order"
CALL_TYPE_OUT_OF_ORDER = "ineligible:call_type_out_of_order"


def _danger_outranked(call: Call, fact: CallFact, policy: Policy) -> str | None:
    """Why the fact's priority or call type must block the call although the fold keeps
    the value already there: the fact says the call may not be texted (a priority the
    policy does not text, a call type it does not know; excluded types block anyway),
    the value in force says it may, and that value is stamped later — by event time the
    danger is older, by arrival it is newer. Which one is true only the clocks know."""
    if (
        fact.priority is not None
        and fact.priority not in policy.priorities
        and call.priority in policy.priorities
        and outranked(call, "priority", fact)
    ):
        return PRIORITY_OUT_OF_ORDER
    if (
        fact.call_type_code is not None
        and policy.call_type(fact.call_type_code) is None
        and policy.call_type(call.call_type_code) is not None
        and outranked(call, "call_type_code", fact)
    ):
        return CALL_TYPE_OUT_OF_ORDER
    return None


def _moments(call: Call, policy: Policy) -> dict[TextKind, datetime | None]:
    """When each text is due for this call as it stands, or None if it has no moment
    (yet, or any more). Eligibility is checked separately."""
    confirmation = (
        _moment_known(call, _CONFIRMATION_FIELDS)
        if call.case_number is not None and not call.is_closed
        else None
    )
    delay = (
        _delay_moment(call, policy) if call.dispatched_at is None and not call.is_closed else None
    )
    survey = (
        call.cleared_at + policy.survey_after_clear
        if call.cleared_at is not None and call.cancelled_at is None and call.merged_into is None
        else None
    )
    return {
        TextKind.CONFIRMATION: confirmation,
        TextKind.DELAY_NOTICE: delay,
        TextKind.SURVEY_INVITATION: survey,
    }


def _lost_moment(call: Call, kind: TextKind) -> str:
    """Why a waiting text of an eligible call is cancelled."""
    if kind is TextKind.DELAY_NOTICE and call.dispatched_at is not None and not call.is_closed:
        return "suppressed:dispatched"
    if kind is TextKind.DELAY_NOTICE and not call.is_closed:
        return "suppressed:no_delay_threshold"  # the new priority has no delay notice
    return "suppressed:stale"


def _delay_moment(call: Call, policy: Policy) -> datetime | None:
    threshold: timedelta | None = (
        policy.delay_notice_after.get(call.priority) if call.priority is not None else None
    )
    if threshold is None or call.started_at is None:
        return None
    return call.started_at + threshold


# What eligibility depends on, and what a confirmation needs on top of it.
_ELIGIBILITY_FIELDS = ("priority", "call_type_code", "phone")
_CONFIRMATION_FIELDS = (*_ELIGIBILITY_FIELDS, "case_number")


def _moment_known(call: Call, fields: tuple[str, ...]) -> datetime:
    """When the given fields were all known, in event time (never before the call
    started): the latest of their first appearances, the same in any order of arrival."""
    times = [call.first_seen[name] for name in fields if name in call.first_seen]
    if call.started_at is not None:
        times.append(call.started_at)
    return max(times)


def _cancel_reason(reason: str) -> str:
    if reason.startswith("excluded:"):
        return "suppressed:reclassified"
    return "suppressed:" + reason.split(":", 1)[1]
