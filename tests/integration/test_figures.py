"""The read side's figures (contract section 9's counting rule) on SQLite and PostgreSQL,
checked against a week of calls whose every number is worked out by hand in
``tests/support/week_of_calls.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import pytest

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.queries.comments import responses_with_comments
from callerconnect.queries.figures import FigureRow, ScaleTally, figures
from callerconnect.queries.filter_options import FilterOptions, filter_options
from callerconnect.queries.filters import Filters
from callerconnect.queries.not_texted import not_texted_reasons
from tests.support.week_of_calls import (
    OTTAWA,
    SERVES_OTHER_TOO,
    Week,
    build_week,
    local,
    shared_week,
)

WEEK = Filters("default", date(2026, 1, 26), date(2026, 2, 1))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def week(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Week]:
    """The week, built once per database for the tests that only read it."""
    pg = request.getfixturevalue("pg_database_url") if request.param == "postgresql" else None
    with shared_week(request.param, tmp_path_factory.mktemp("week"), pg) as built:
        yield built


@pytest.fixture
def fresh_week(
    app_factory: Callable[..., Application],
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
) -> Week:
    """The week on a database of the test's own, for a test that adds to it."""
    app = app_factory(database_url, **SERVES_OTHER_TOO)
    other = app_factory(database_url, CALLERCONNECT_AGENCY_ID="other")
    return build_week(app, other, clock, console)


def totals(week: Week, filters: Filters = WEEK) -> FigureRow:
    (row,) = figures(week.app.db, filters, OTTAWA, group_by=())
    return row


def test_week_totals_match_the_hand_count(week: Week) -> None:
    row = totals(week)

    assert row.calls_received == 7
    assert row.calls_eligible == 5  # all but I-C (priority 2) and I-D (unknown type)
    assert row.calls_texted == 5
    assert row.confirmations_sent == 5
    assert row.delay_notices_sent == 1  # I-G
    assert row.surveys_sent == 3  # I-A, I-B, I-G
    assert row.surveys_opened == 2
    assert row.surveys_completed == 2
    assert row.texts_sent == 9  # replies to STOP are not texts about a call
    assert row.texts_delivered == 1
    assert row.texts_failed == 1
    assert row.opt_outs == 1  # I-E's caller; the other agency's STOP is not ours
    # 10, 20, 30, 40, 50 seconds: median 30, 90th percentile 40 + 0.6 x 10.
    assert row.confirmed_calls == 5
    assert row.median_seconds_to_confirmation == pytest.approx(30, abs=0.01)
    assert row.p90_seconds_to_confirmation == pytest.approx(46, abs=0.01)
    assert row.scores == {
        "call_taker": ScaleTally(answers=2, total=9, positive=2),
        "officer": ScaleTally(answers=1, total=4, positive=1),  # I-B: no officer
        "kept_informed": ScaleTally(answers=2, total=7, positive=1),
        "respect": ScaleTally(answers=2, total=9, positive=2),
        "overall": ScaleTally(answers=2, total=8, positive=1),
    }
    assert row.scores["kept_informed"].mean == 3.5
    assert row.scores["overall"].share_positive == 0.5

    metrics = row.metrics()
    overview = ("calls_received", "calls_eligible", "calls_texted", "confirmations_sent")
    assert tuple(metrics)[:4] == overview
    assert metrics["opt_outs"] == 1
    assert metrics["p90_seconds_to_confirmation"] == pytest.approx(46, abs=0.01)
    assert metrics["officer_answers"] == 1 and metrics["officer_mean"] == 4.0
    assert metrics["call_taker_share_positive"] == 1.0


def test_a_call_at_23_30_on_the_last_day_of_a_month_counts_in_that_month(week: Week) -> None:
    rows = figures(week.app.db, WEEK, OTTAWA, group_by=("month",))

    assert [(r.month, r.calls_received, r.confirmations_sent, r.opt_outs) for r in rows] == [
        ("2026-01", 6, 4, 1),
        ("2026-02", 1, 1, 0),
    ]
    january = totals(week, Filters("default", date(2026, 1, 1), date(2026, 1, 31)))
    assert january.calls_received == 6
    february = totals(week, Filters("default", date(2026, 2, 1), date(2026, 2, 28)))
    assert february.calls_received == 1
    assert february.median_seconds_to_confirmation == pytest.approx(50, abs=0.01)


def test_days_hours_and_iso_weeks_are_local(week: Week) -> None:
    by_day = figures(week.app.db, WEEK, OTTAWA, group_by=("day",))
    assert [(r.day, r.calls_received) for r in by_day] == [
        (date(2026, 1, 26), 1),
        (date(2026, 1, 28), 1),
        (date(2026, 1, 29), 2),
        (date(2026, 1, 30), 1),
        (date(2026, 1, 31), 1),
        (date(2026, 2, 1), 1),
    ]
    by_hour = figures(week.app.db, WEEK, OTTAWA, group_by=("hour",))
    assert [(r.hour, r.calls_received) for r in by_hour] == [
        (0, 1),
        (9, 1),
        (10, 1),
        (11, 1),
        (12, 1),
        (14, 1),
        (23, 1),
    ]
    (by_week,) = figures(week.app.db, WEEK, OTTAWA, group_by=("week",))
    assert by_week.week == date(2026, 1, 26)  # Sunday 1 February is still that ISO week
    assert by_week.calls_received == 7


def test_grouping_by_district_priority_and_unit(week: Week) -> None:
    rows = figures(week.app.db, WEEK, OTTAWA, group_by=("district", "priority"))
    assert [
        (r.district, r.priority, r.calls_received, r.calls_texted, r.surveys_completed)
        for r in rows
    ] == [
        ("Central", 2, 1, 0, 0),
        ("Central", 4, 3, 2, 1),
        ("East", 3, 1, 1, 1),
        ("East", 4, 1, 1, 0),
        ("West", 4, 1, 1, 0),
    ]
    central = rows[1]
    assert central.scores["call_taker"] == ScaleTally(1, 5, 1)
    assert central.opt_outs == 1
    assert central.median_seconds_to_confirmation == pytest.approx(15, abs=0.01)

    by_unit = figures(week.app.db, WEEK, OTTAWA, group_by=("unit",))
    assert [(r.unit, r.calls_received, r.delay_notices_sent) for r in by_unit] == [
        ("U12", 1, 0),
        ("U7", 1, 1),
        (None, 5, 0),
    ]
    by_type = figures(week.app.db, WEEK, OTTAWA, group_by=("call_type",))
    assert [(r.call_type, r.calls_received) for r in by_type] == [("THEFT", 6), ("ZZTOP", 1)]


def test_filters_narrow_the_calls_and_everything_counted_with_them(week: Week) -> None:
    east = totals(week, Filters("default", WEEK.start, WEEK.end, districts=("East",)))
    assert (east.calls_received, east.confirmations_sent, east.texts_failed) == (2, 2, 1)
    assert east.surveys_completed == 1
    assert east.scores["officer"] == ScaleTally()  # I-B answered "no officer"
    assert east.median_seconds_to_confirmation == pytest.approx(45, abs=0.01)

    priority_3 = totals(week, Filters("default", WEEK.start, WEEK.end, priorities=(3,)))
    assert (priority_3.calls_received, priority_3.surveys_opened) == (1, 1)

    unknown = totals(week, Filters("default", WEEK.start, WEEK.end, call_types=("ZZTOP",)))
    assert (unknown.calls_received, unknown.calls_eligible, unknown.texts_sent) == (1, 0, 0)
    assert unknown.median_seconds_to_confirmation is None

    monday_to_saturday = totals(week, Filters("default", date(2026, 1, 26), date(2026, 1, 31)))
    assert monday_to_saturday.calls_received == 6
    assert monday_to_saturday.opt_outs == 1


def test_another_agencys_calls_texts_and_stops_are_never_counted(week: Week) -> None:
    other = totals(week, Filters("other", WEEK.start, WEEK.end))
    assert (other.calls_received, other.confirmations_sent, other.opt_outs) == (2, 2, 1)
    assert other.surveys_completed == 0

    nobody = totals(week, Filters("nobody", WEEK.start, WEEK.end))
    assert nobody == FigureRow()


def test_unknown_grouping_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="choose distinct names among month"):
        figures(None, WEEK, OTTAWA, group_by=("district", "colour"))  # type: ignore[arg-type]


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends"):
        Filters("default", date(2026, 2, 1), date(2026, 1, 1))


def test_calls_not_texted_are_counted_by_reason_in_plain_words(week: Week) -> None:
    reasons = not_texted_reasons(week.app.db, WEEK, OTTAWA)

    assert [(r.code, r.calls) for r in reasons] == [
        ("ineligible:priority", 1),
        ("ineligible:unknown_call_type", 1),
    ]
    assert reasons[0].label("en") == "priority not texted"
    assert reasons[0].label("fr") == "priorité non visée"
    east = Filters("default", WEEK.start, WEEK.end, districts=("East",))
    assert not_texted_reasons(week.app.db, east, OTTAWA) == []


def test_an_eligible_call_whose_text_was_withheld_gives_the_texts_reason(
    fresh_week: Week,
) -> None:
    week = fresh_week
    # Cleared five seconds after it was received, before the dispatcher ran: the
    # confirmation's moment has passed; the survey waits for its time.
    week.receive("I-H", local(3, 10, month=2), phone="613-555-0108")
    week.event(week.app, "I-H", "call.cleared", local(3, 10, 0, 5, month=2))
    week.at(local(3, 10, 1, month=2))
    week.receive("I-J", local(3, 11, month=2), app=week.other, phone="613-555-0203")

    tuesday = Filters("default", date(2026, 2, 3), date(2026, 2, 3))
    reasons = not_texted_reasons(week.app.db, tuesday, OTTAWA)

    assert [(r.code, r.calls) for r in reasons] == [("text:scheduled", 1)]
    assert week.outbox_row("I-H", "confirmation").reason == "suppressed:stale"


def test_sqlite_leaves_no_temporary_table_on_its_pooled_connection(sqlite_url: str) -> None:
    db = Database.from_url(sqlite_url)
    try:
        for _ in range(2):
            (row,) = figures(db, WEEK, OTTAWA, group_by=("month",)) or [FigureRow()]
            assert row.calls_received == 0
        with db.reading() as connection:
            left = connection.exec_driver_sql("SELECT count(*) FROM sqlite_temp_master")
            assert left.scalar_one() == 0
    finally:
        db.dispose()


def test_comments_come_with_their_ratings_and_call_never_its_phone(week: Week) -> None:
    (response,) = responses_with_comments(week.app.db, week.app.vault, WEEK, OTTAWA)

    assert response.comment == "Thanks."  # I-A's; I-B left no comment
    assert (response.district, response.priority, response.call_type) == ("Central", 4, "THEFT")
    assert response.scores == {
        "call_taker": 5,
        "officer": 4,
        "kept_informed": 2,
        "respect": 5,
        "overall": 3,
    }
    assert not any("phone" in name or "incident" in name for name in vars(response))
    east = Filters("default", WEEK.start, WEEK.end, districts=("East",))
    assert responses_with_comments(week.app.db, week.app.vault, east, OTTAWA) == []
    other = Filters("other", WEEK.start, WEEK.end)
    assert responses_with_comments(week.app.db, week.app.vault, other, OTTAWA) == []


def test_filter_options_are_what_the_agencys_calls_carry(week: Week) -> None:
    assert filter_options(week.app.db, "default") == FilterOptions(
        districts=("Central", "East", "West"), priorities=(2, 3, 4), call_types=("THEFT", "ZZTOP")
    )
    assert filter_options(week.app.db, "other") == FilterOptions(
        districts=("Central", "East"), priorities=(4,), call_types=("THEFT",)
    )
