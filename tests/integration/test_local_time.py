"""Local calendar buckets computed by the database agree with Python's ``zoneinfo`` for
any moment, in any zone, across daylight-saving changes (property test, both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import literal, select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import UtcDateTime
from callerconnect.queries.local_time import BUCKETS, LocalTime, offset_spans

ZONES = [
    "America/Toronto",
    "America/St_Johns",  # half-hour offset
    "America/Vancouver",
    "Europe/Paris",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # a half-hour daylight-saving change
    "UTC",
]

moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database.from_url("sqlite://")
    else:
        database = Database.from_url(request.getfixturevalue("pg_database_url"))
    yield database
    database.dispose()


def python_buckets(moment: datetime, tz: ZoneInfo) -> dict[str, Any]:
    local = moment.astimezone(tz)
    return {
        "month": local.strftime("%Y-%m"),
        "week": (local.date() - timedelta(days=local.weekday())).isoformat(),
        "day": local.date().isoformat(),
        "hour": local.hour,
    }


@settings(max_examples=150, deadline=None)
@given(
    moment=moments,
    zone=st.sampled_from(ZONES),
    before=st.integers(0, 400),
    after=st.integers(1, 400),
)
def test_database_buckets_match_zoneinfo(
    db: Database, moment: datetime, zone: str, before: int, after: int
) -> None:
    tz = ZoneInfo(zone)
    start, end = moment - timedelta(days=before), moment + timedelta(days=after)
    column = literal(moment, UtcDateTime())
    local = LocalTime(db.engine.dialect.name, tz, start, end, column)
    query = select(*(local.bucket(name).label(name) for name in BUCKETS))
    with db.transaction() as session:
        row = session.execute(query).one()
    found = {
        name: (str(value) if name != "hour" else value)
        for name, value in zip(BUCKETS, row, strict=True)
    }
    assert found == python_buckets(moment, tz)


def test_offset_spans_find_each_transition_to_the_second() -> None:
    tz = ZoneInfo("America/Toronto")
    start = datetime(2026, 1, 1, 5, tzinfo=UTC)
    spans = offset_spans(tz, start, datetime(2027, 1, 1, 5, tzinfo=UTC))

    assert spans == [
        (start, -5 * 3600),
        (datetime(2026, 3, 8, 7, tzinfo=UTC), -4 * 3600),  # 02:00 EST becomes 03:00 EDT
        (datetime(2026, 11, 1, 6, tzinfo=UTC), -5 * 3600),  # 02:00 EDT becomes 01:00 EST
    ]


def test_unknown_bucket_is_refused() -> None:
    local = LocalTime("sqlite", ZoneInfo("UTC"), datetime.now(UTC), datetime.now(UTC), None)
    with pytest.raises(ValueError, match="choose among month, week, day, hour"):
        local.bucket("fortnight")


def test_week_bucket_is_the_monday_even_for_a_sunday() -> None:
    sunday = datetime(2026, 2, 1, 12, tzinfo=UTC)
    assert python_buckets(sunday, ZoneInfo("UTC"))["week"] == date(2026, 1, 26).isoformat()
