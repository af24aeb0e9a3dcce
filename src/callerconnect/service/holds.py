"""Failing closed on what the intake cannot read.

A refused event is kept as a dead letter, but what it said is not folded into its call:
if it carried a risk flag, an excluded reclassification or an opt-out, the call would go
on being texted as if nothing had been said. So an event that is refused, or that reuses
an event id with other content, *holds* the incident it names when it may have carried
a safety change: the call is never texted again (reason ``held:...``, sticky like an
exclusion). A wrong hold costs a courtesy text; a missed risk flag could cost much more.

What "may have carried a safety change" means is deliberately broad: any safety field
that is not plainly harmless (``risk_flag: false`` is harmless; ``risk_flag: "yes"`` is
not), a call type the policy would not text, a priority it would not text, a type that
closes the call or that we do not know, a merge. An EIDO document is a snapshot of the
whole incident (cautions, type, status): any refused one holds the incidents it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callerconnect.adapters.cad.native import clean_id, storable
from callerconnect.domain.facts import FactType

# Decided by the lifecycle (a merge carries a danger), named here with the other holds.
from callerconnect.domain.lifecycle import HELD_MERGED_PROTECTED as HELD_MERGED_PROTECTED
from callerconnect.domain.policy import Policy

HELD_UNREADABLE = "held:unreadable_event"
HELD_CHANGED_EVENT = "held:changed_event"
# An event id first stored for another incident: the event is refused (by contract an id
# names one event), so whatever it says about its own incident is not folded.
HELD_CONFLICTING_EVENT_ID = "held:conflicting_event_id"
# An event refused for a time ahead of its receipt (domain/event_time.py) that carried
# what may be a danger: refused, so not folded, so held.
HELD_TIME_AHEAD = "held:event_time_ahead"
#: The rule named when an event's time is ahead of its receipt.
TIME_AHEAD_RULE = "ahead_of_receipt"

_MAX_INCIDENT_ID = 128  # calls.incident_id
_OPEN_TYPES = frozenset(
    {FactType.RECEIVED, FactType.UPDATED, FactType.DISPATCHED, FactType.ARRIVED, FactType.CLEARED}
)


def _harmless(value: Any) -> bool:
    """Absent or exactly ``false``: ``0``, ``"no"`` or ``"false"`` are not what the
    contract says a CAD sends, so nobody can be sure what they meant."""
    return value is None or value is False


def incident_of(payload: Any) -> str | None:
    """The incident a native event names, if it names one we could store (trimmed as
    the adapter trims it, so the hold lands on the same call)."""
    value = payload.get("incident_id") if isinstance(payload, Mapping) else None
    cleaned = clean_id(value) if isinstance(value, str) else None
    if cleaned is None or len(cleaned) > _MAX_INCIDENT_ID or not storable(cleaned):
        return None
    return cleaned


def may_change_safety(payload: Any, policy: Policy) -> bool:
    """Whether a native event we could not accept might have made its call untextable:
    a lasting danger it states (:func:`adds_sticky_danger`), or a safety field we cannot
    read at all — a caller that is not an object, a call type without a code, a type we
    do not know, a priority that is not one the policy texts."""
    if not isinstance(payload, Mapping):
        return False  # names no incident anyway
    if adds_sticky_danger(payload, policy):
        return True
    caller = payload.get("caller")
    if caller is not None and not isinstance(caller, Mapping):
        return True
    if payload.get("type") not in {t.value for t in _OPEN_TYPES}:
        return True
    call_type = payload.get("call_type")
    if call_type is not None and not (
        isinstance(call_type, Mapping) and isinstance(call_type.get("code"), str)
    ):
        return True
    priority = payload.get("priority")
    textable_priority = (
        isinstance(priority, int)
        and not isinstance(priority, bool)
        and priority in policy.priorities
    )
    return priority is not None and not textable_priority


def adds_sticky_danger(payload: Any, policy: Policy) -> bool:
    """Whether an event (stored under an id already used for other content) says
    something that would stop its call's texts *for good*: a risk flag, in progress, an
    opt-out, a call type the policy would not text, a cancellation or a merge. A changed
    priority or district is not: an EIDO snapshot re-sends its facts under the ids it
    used before, with the latest fields, and those arrive as their own facts anyway."""
    if not isinstance(payload, Mapping):
        return False
    if not _harmless(payload.get("risk_flag")) or not _harmless(payload.get("in_progress")):
        return True
    caller = payload.get("caller")
    if isinstance(caller, Mapping) and not _harmless(caller.get("sms_opt_out")):
        return True
    if payload.get("type") in (FactType.CANCELLED.value, FactType.MERGED.value):
        return True
    if payload.get("merged_into") is not None:
        return True
    call_type = payload.get("call_type")
    code = call_type.get("code") if isinstance(call_type, Mapping) else None
    if isinstance(code, str):
        known = policy.call_type(code)
        return known is None or not known.textable
    return False
