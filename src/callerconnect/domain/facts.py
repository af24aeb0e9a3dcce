"""Facts: what a CAD tells us about an incident, already validated and normalised.

A fact is the domain's view of one CAD event (native or derived from an EIDO). Fields a
CAD did not send are ``None``; the lifecycle only folds in what is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class FactType(StrEnum):
    RECEIVED = "call.received"
    UPDATED = "call.updated"
    DISPATCHED = "unit.dispatched"
    ARRIVED = "unit.arrived"
    CLEARED = "call.cleared"
    CANCELLED = "call.cancelled"
    MERGED = "call.merged"


@dataclass(frozen=True)
class CallFact:
    event_id: str
    incident_id: str
    occurred_at: datetime
    type: FactType
    case_number: str | None = None
    priority: int | None = None
    call_type_code: str | None = None
    call_type_description: str | None = None
    district: str | None = None
    # E.164, normalised at the edge; ``phone_invalid`` says a number was given but unusable.
    phone: str | None = None
    phone_invalid: bool = False
    language: str | None = None
    sms_opt_out: bool | None = None
    in_progress: bool | None = None
    risk_flag: bool | None = None
    unit_id: str | None = None
    eta_minutes: int | None = None
    disposition_code: str | None = None
    disposition_description: str | None = None
    merged_into: str | None = None
    # Set by the intake, never by a CAD: a reason (``held:...``) to stop texting this
    # call for good, because something said about it could not be read
    # (service/holds.py). Sticky, like an exclusion.
    hold: str | None = None

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must carry a UTC offset")
        # In UTC, so that every "moment + duration" in the domain is elapsed time: with a
        # zone such as America/Toronto, Python adds wall-clock time across a DST change.
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))
