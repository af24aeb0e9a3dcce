"""Properties of the figures over any set of calls, on SQLite and PostgreSQL: every call
of the agency in the period is counted exactly once, in the local day, hour and month of
its first event, whatever the grouping; another agency's calls never are; the percentiles
are PostgreSQL's ``percentile_cont``."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import Base, CallRow, OutboxRow
from callerconnect.queries.figures import figures
from callerconnect.queries.filters import Filters
from tests.conftest import _truncate_all

OTTAWA = ZoneInfo("America/Toronto")
# Around the spring-forward change of 8 March 2026, and a month end.
PERIOD = Filters("default", date(2026, 2, 27), date(2026, 3, 10))
FIRST = datetime(2026, 2, 26, tzinfo=UTC)

calls = st.lists(
    st.tuples(
        st.sampled_from(["default", "other"]),
        st.integers(0, 14 * 24 * 3600),  # seconds after FIRST
        st.sampled_from(["Central", "East"]),
        st.sampled_from([3, 4]),
        st.none() | st.floats(0, 600, allow_nan=False),  # seconds to confirmation
    ),
    max_size=30,
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database.from_url(f"sqlite:///{tmp_path_factory.mktemp('props')}/p.db")
        Base.metadata.create_all(database.engine)
    else:
        url = request.getfixturevalue("pg_database_url")
        _truncate_all(url)  # the session's database: start from no rows of other tests
        database = Database.from_url(url)
    yield database
    database.dispose()


def store(db: Database, generated: list[tuple[str, int, str, int, float | None]]) -> None:
    with db.transaction() as session:
        session.execute(delete(OutboxRow))
        session.execute(delete(CallRow).where(CallRow.incident_id.like("P-%")))
        for n, (agency, offset, district, priority, seconds) in enumerate(generated):
            at = FIRST + timedelta(seconds=offset)
            call_id = session.execute(
                insert(CallRow)
                .values(
                    agency_id=agency,
                    incident_id=f"P-{n}",
                    district=district,
                    priority=priority,
                    first_fact_at=at,
                    received_at=at,
                    reason="eligible",
                    created_at=at,
                    updated_at=at,
                )
                .returning(CallRow.id)
            ).scalar_one()
            if seconds is not None:
                sent = at + timedelta(seconds=seconds)
                session.execute(
                    insert(OutboxRow).values(
                        agency_id=agency,
                        dedupe_key=f"{agency}:P-{n}:confirmation:0",
                        call_id=call_id,
                        kind="confirmation",
                        status="sent",
                        send_rank=0,
                        not_before=at,
                        expires_at=sent + timedelta(hours=1),
                        created_at=at,
                        updated_at=sent,
                        sent_at=sent,
                    )
                )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(generated=calls)
def test_every_call_counts_once_in_its_local_day_hour_and_district(
    db: Database, generated: list[tuple[str, int, str, int, float | None]]
) -> None:
    store(db, generated)
    start, end = PERIOD.utc_bounds(OTTAWA)
    ours = [
        (FIRST + timedelta(seconds=offset), district, priority, seconds)
        for agency, offset, district, priority, seconds in generated
        if agency == "default" and start <= FIRST + timedelta(seconds=offset) < end
    ]

    by_day = figures(db, PERIOD, OTTAWA, group_by=("day", "district"))
    expected_days = Counter((at.astimezone(OTTAWA).date(), d) for at, d, _, _ in ours)
    assert {(r.day, r.district): r.calls_received for r in by_day} == expected_days

    by_hour = figures(db, PERIOD, OTTAWA, group_by=("month", "hour", "priority"))
    expected_hours = Counter(
        (at.astimezone(OTTAWA).strftime("%Y-%m"), at.astimezone(OTTAWA).hour, p)
        for at, _, p, _ in ours
    )
    assert {(r.month, r.hour, r.priority): r.calls_received for r in by_hour} == expected_hours

    (total,) = figures(db, PERIOD, OTTAWA, group_by=())
    assert total.calls_received == len(ours)
    confirmed = [s for _, _, _, s in ours if s is not None]
    assert total.confirmations_sent == total.confirmed_calls == len(confirmed)
    if len(confirmed) >= 2:
        p90 = statistics.quantiles(confirmed, n=10, method="inclusive")[8]
        assert total.median_seconds_to_confirmation == pytest.approx(
            statistics.median(confirmed), abs=0.002
        )
        assert total.p90_seconds_to_confirmation == pytest.approx(p90, abs=0.002)
    if db.is_postgresql and confirmed:
        with db.reading() as connection:
            seconds = func.extract("epoch", OutboxRow.sent_at - CallRow.received_at)
            median, p90 = connection.execute(
                select(
                    func.percentile_cont(0.5).within_group(seconds),
                    func.percentile_cont(0.9).within_group(seconds),
                )
                .join_from(OutboxRow, CallRow, OutboxRow.call_id == CallRow.id)
                .where(
                    CallRow.agency_id == "default",
                    CallRow.first_fact_at >= start,
                    CallRow.first_fact_at < end,
                )
            ).one()
        assert total.median_seconds_to_confirmation == pytest.approx(float(median), abs=0.002)
        assert total.p90_seconds_to_confirmation == pytest.approx(float(p90), abs=0.002)
    elif not confirmed:
        assert total.median_seconds_to_confirmation is None
