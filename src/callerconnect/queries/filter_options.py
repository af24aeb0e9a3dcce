"""The values a filter can take for an agency: what its calls carry, for the dashboard's
filter lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CallRow


@dataclass(frozen=True)
class FilterOptions:
    districts: tuple[str, ...]
    priorities: tuple[int, ...]
    call_types: tuple[str, ...]


def filter_options(db: Database, agency_id: str) -> FilterOptions:
    """Every district, priority and call-type code the agency's calls carry, sorted."""

    def values(column: Any) -> tuple[Any, ...]:
        query = select(column).distinct()
        query = query.where(CallRow.agency_id == agency_id, column.is_not(None))
        return tuple(sorted(connection.execute(query).scalars()))

    with db.reading() as connection:
        return FilterOptions(
            districts=values(CallRow.district),
            priorities=values(CallRow.priority),
            call_types=values(CallRow.call_type_code),
        )
