"""Local calendar buckets (month, ISO week, day, hour) of a stored UTC timestamp, in SQL.

PostgreSQL converts with its own time-zone database (``timezone(zone, ts)``). SQLite has
none, so the offsets of the period are worked out here (they change only at a handful of
daylight-saving transitions a year) and applied with a ``CASE`` on the timestamp. Both give
the same answer for any zone Python's ``zoneinfo`` knows.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, String, case, cast, func, literal
from sqlalchemy.sql.elements import ColumnElement

from callerconnect.adapters.db.tables import UtcDateTime

BUCKETS = ("month", "week", "day", "hour")


def offset_spans(tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The zone's UTC offsets between ``start`` and ``end`` (aware, UTC): each span as
    (the moment it starts, offset in seconds), the first starting at ``start``."""
    spans = [(start, _offset(tz, start))]
    step = timedelta(hours=6)  # zones never change offset twice in six hours
    moment = start
    while moment < end:
        following = min(moment + step, end)
        if _offset(tz, following) != spans[-1][1]:
            spans.append((_transition(tz, moment, following), _offset(tz, following)))
        moment = following
    return spans


def _offset(tz: ZoneInfo, moment: datetime) -> int:
    offset = moment.astimezone(tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _transition(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first whole second after ``before`` with ``after``'s offset (bisection on
    whole seconds: zones change offset on a second)."""
    target = _offset(tz, after)
    base = before.replace(microsecond=0)
    low, high = 0, math.ceil((after - base).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(tz, base + timedelta(seconds=middle)) == target:
            high = middle
        else:
            low = middle
    return base + timedelta(seconds=high)


class LocalTime:
    """SQL expressions for the local calendar of ``column`` on one database dialect."""

    def __init__(
        self, dialect: str, tz: ZoneInfo, start: datetime, end: datetime, column: Any
    ) -> None:
        self.dialect = dialect
        self.column = column
        if dialect == "postgresql":
            self._local: ColumnElement[Any] = func.timezone(tz.key, column)
        else:
            spans = offset_spans(tz, start, end)
            shifted = [func.datetime(column, f"{offset:+d} seconds") for _, offset in spans]
            if len(spans) == 1:
                self._local = shifted[0]
            else:
                whens = [
                    (column < literal(next_start, UtcDateTime()), expression)
                    for (next_start, _), expression in zip(spans[1:], shifted, strict=False)
                ]
                self._local = case(*whens, else_=shifted[-1])

    def bucket(self, name: str) -> ColumnElement[Any]:
        """``month`` as ``YYYY-MM``, ``week`` (its Monday) and ``day`` as ``YYYY-MM-DD``,
        ``hour`` as an integer 0-23."""
        local = self._local
        if self.dialect == "postgresql":
            if name == "month":
                return func.to_char(local, "YYYY-MM")
            if name == "week":
                return func.to_char(func.date_trunc("week", local), "YYYY-MM-DD")
            if name == "day":
                return func.to_char(local, "YYYY-MM-DD")
            if name == "hour":
                return cast(func.extract("hour", local), Integer)
        else:
            if name == "month":
                return cast(func.strftime("%Y-%m", local), String)
            if name == "week":
                # Forward to Sunday (or stay on it), back six days: the ISO week's Monday.
                return func.date(local, "weekday 0", "-6 days")
            if name == "day":
                return func.date(local)
            if name == "hour":
                return cast(func.strftime("%H", local), Integer)
        raise ValueError(f"no local bucket called {name!r}; choose among {', '.join(BUCKETS)}")
