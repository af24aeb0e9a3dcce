"""The filters of every dashboard page and export (contract section 9), read from the
query string: ``from``, ``to`` (local dates, inclusive; by default the last 28 days),
``district``, ``priority``, ``call_type`` (each repeatable), and, for an account that
sees every agency, ``agency``. Bad values are a clear 400, never a guess."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from starlette.datastructures import QueryParams

from callerconnect.i18n.dashboard import _
from callerconnect.queries.filters import Filters

DEFAULT_DAYS = 28
MAX_DAYS = 3 * 366
MAX_VALUES = 50
_VALUE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_AGENCY = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class FilterError(ValueError):
    """``message`` is a msgid of the dashboard catalog, ``field`` the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ViewFilters:
    start: date
    end: date
    districts: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    call_types: tuple[str, ...] = ()
    agency: str | None = None

    def for_agency(self, agency_id: str) -> Filters:
        return Filters(
            agency_id=agency_id,
            start=self.start,
            end=self.end,
            districts=self.districts,
            priorities=self.priorities,
            call_types=self.call_types,
        )

    def query_items(self) -> list[tuple[str, str]]:
        """The filters as query parameters, to carry them to exports and other pages."""
        items = [("from", self.start.isoformat()), ("to", self.end.isoformat())]
        items += [("district", d) for d in self.districts]
        items += [("priority", str(p)) for p in self.priorities]
        items += [("call_type", c) for c in self.call_types]
        if self.agency:
            items.append(("agency", self.agency))
        return items

    def for_audit(self) -> dict[str, list[str] | str]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "district": list(self.districts),
            "priority": [str(p) for p in self.priorities],
            "call_type": list(self.call_types),
            "agency": self.agency or "",
        }


def _date(params: QueryParams, name: str) -> date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        if _ISO_DATE.fullmatch(raw):  # fromisoformat also takes 20260131 and week dates
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise FilterError(name, _("Write dates as YYYY-MM-DD, for example 2026-01-31."))


def _values(params: QueryParams, name: str) -> tuple[str, ...]:
    values = [v.strip() for v in params.getlist(name) if v.strip()]
    if len(values) > MAX_VALUES:
        raise FilterError(name, _("Too many values for one filter."))
    for value in values:
        if not _VALUE.fullmatch(value):
            raise FilterError(name, _("A filter value is too long or holds control characters."))
    return tuple(dict.fromkeys(values))


def parse_filters(params: QueryParams, today: date) -> ViewFilters:
    end = _date(params, "to") or today
    start = _date(params, "from") or end - timedelta(days=DEFAULT_DAYS - 1)
    if end < start:
        raise FilterError("to", _("The end of the period comes before its start."))
    if (end - start).days + 1 > MAX_DAYS:
        raise FilterError("from", _("Choose a period of at most three years."))
    priorities: list[int] = []
    for value in _values(params, "priority"):
        if not value.isdigit() or not 0 <= int(value) <= 9:
            raise FilterError("priority", _("A priority is a number from 0 to 9."))
        priorities.append(int(value))
    agency = params.get("agency") or None
    if agency is not None and not _AGENCY.fullmatch(agency):
        raise FilterError("agency", _("Unknown agency."))
    return ViewFilters(
        start=start,
        end=end,
        districts=_values(params, "district"),
        priorities=tuple(dict.fromkeys(priorities)),
        call_types=_values(params, "call_type"),
        agency=agency,
    )
