"""What a figure is about: one agency, a span of local dates, and call attributes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Filters:
    """Calls of ``agency_id`` whose first event occurred between ``start`` and ``end``
    (local dates in the agency's time zone, both inclusive), narrowed to the given
    districts, priorities and call-type codes (an empty tuple means "all")."""

    agency_id: str
    start: date
    end: date
    districts: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    call_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")

    def utc_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The period as a half-open UTC interval: local midnight of ``start`` up to
        local midnight of the day after ``end``."""
        return local_midnight(self.start, tz), local_midnight(self.end + timedelta(days=1), tz)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC moment a local day begins (midnight, or the first moment after it when a
    clock change skips midnight)."""
    return datetime.combine(day, time(), tz).astimezone(UTC)
