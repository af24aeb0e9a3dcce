"""Publishing open data from a database that went through the real flow, on SQLite and
PostgreSQL: the figures add up, nothing personal leaks, a month is published once."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.publish_schedule import publish_if_due, run_schedule
from callerconnect.service.publishing import (
    PublishError,
    latest_file,
    make_publication,
    publish_due,
    store,
)
from callerconnect.service.survey import load_definition
from tests.support.opendata_quarter import Quarter, simulate_quarter

APRIL = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)
# When March's answers are all in: the survey links' week, the wait after clearance and a
# week's margin for calls cleared late (publishing.settle_time).
MARCH_SETTLED = datetime(2026, 4, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    # Before the quarter starts: the calls are texted as they happen.
    return VirtualClock(datetime(2025, 12, 31, 12, 0, tzinfo=UTC))


@pytest.fixture
def quarter_app(
    app_factory: Callable[..., Application],
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
) -> tuple[Application, Quarter]:
    app = app_factory(database_url)
    return app, simulate_quarter(app, clock, console)


def _variants(phone: str) -> list[str]:
    digits = re.sub(r"\D", "", phone)
    return [phone, digits, "+1" + digits, digits[-7:], digits[-4:] + "@"]


def test_a_quarter_is_published_with_right_totals_and_nothing_personal(
    quarter_app: tuple[Application, Quarter],
) -> None:
    app, quarter = quarter_app
    publication = make_publication(app.db, app.settings, load_definition(), APRIL)
    assert publication.period == "2026-03" and not publication.partial

    monthly = list(csv.DictReader(io.StringIO(publication.files["monthly.csv"].decode())))
    assert [r["month"] for r in monthly] == ["2026-01", "2026-02", "2026-03"]
    assert {r["month"]: int(r["responses"]) for r in monthly} == quarter.responses
    by_district = list(
        csv.DictReader(io.StringIO(publication.files["monthly_by_district.csv"].decode()))
    )
    for month in monthly:
        rows = [r for r in by_district if r["month"] == month["month"]]
        assert sum(int(r["calls_texted"]) for r in rows) == int(month["calls_texted"]) > 0
        assert sum(int(r["responses"]) for r in rows) == int(month["responses"])
    # Some district cells are small: their figures are x, never a number.
    assert any(r["overall_mean"] == "x" for r in by_district)

    everything = b"".join(publication.files.values()).decode("utf-8")
    for secret in [
        *(v for phone in quarter.phones for v in _variants(phone)),
        *quarter.case_numbers,
        *quarter.incidents,
        *quarter.comments,
        "Tremblay",
        "example.com",
    ]:
        assert secret not in everything, secret
    # No date finer than a month anywhere in the tables.
    for name in (
        "monthly.csv",
        "monthly_by_district.csv",
        "monthly.json",
        "monthly_by_district.json",
    ):
        assert not re.search(r"\d{4}-\d{2}-\d{2}", publication.files[name].decode()), name
    header = next(csv.reader(io.StringIO(publication.files["monthly_by_district.csv"].decode())))
    assert not {"incident_id", "case_number", "call_id", "phone", "comment"} & set(header)

    again = make_publication(app.db, app.settings, load_definition(), APRIL)
    assert again.files == publication.files


def test_the_month_is_published_once_by_several_workers_at_the_same_time(
    app_factory: Callable[..., Application],
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
) -> None:
    app = app_factory(database_url)
    simulate_quarter(app, clock, console, calls_per_month=4)
    results: list[object] = []
    barrier = threading.Barrier(3)

    def worker() -> None:
        barrier.wait()
        results.append(publish_due(app.db, app.settings, load_definition(), MARCH_SETTLED))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    published = [r for r in results if r is not None]
    assert len(published) == 1
    stored = latest_file(app.db, "default", "monthly.csv")
    assert stored is not None and stored.period == "2026-03" and not stored.partial
    assert publish_due(app.db, app.settings, load_definition(), MARCH_SETTLED) is None


def test_the_current_month_is_published_as_it_stands_then_whole_once_over(
    app_factory: Callable[..., Application], database_url: str
) -> None:
    app = app_factory(database_url)
    march = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
    partial = make_publication(app.db, app.settings, load_definition(), march, through="2026-03")
    assert partial.partial
    assert "as it stands so far" in json.loads(partial.files["datapackage.json"])["description"]
    store(app.db, partial)
    whole = publish_due(app.db, app.settings, load_definition(), MARCH_SETTLED)
    assert whole is not None and not whole.partial
    stored = latest_file(app.db, "default", "datapackage.json")
    assert stored is not None and not stored.partial
    assert b"as it stands" not in stored.content


def test_months_to_come_and_unknown_agencies_are_refused(
    app_factory: Callable[..., Application], database_url: str
) -> None:
    app = app_factory(database_url)
    with pytest.raises(PublishError, match="has not begun"):
        make_publication(app.db, app.settings, load_definition(), APRIL, through="2026-05")
    with pytest.raises(PublishError, match="unknown agency"):
        make_publication(app.db, app.settings, load_definition(), APRIL, agency_id="elsewhere")


def test_the_worker_schedule_publishes_each_month_once_it_is_over(
    app_factory: Callable[..., Application], database_url: str
) -> None:
    app = app_factory(database_url, CALLERCONNECT_OPENDATA__SCHEDULE="monthly")
    assert app.settings.opendata.schedule == "monthly"
    clock = VirtualClock(datetime(2026, 3, 31, 12, 0, tzinfo=UTC))
    definition = load_definition()
    assert publish_if_due(app.db, app.settings, definition, clock) == "2026-02"
    assert publish_if_due(app.db, app.settings, definition, clock) is None
    # March is over, but its answers can still come in for 14 days and a quarter hour.
    clock.set(datetime(2026, 4, 14, 12, 0, tzinfo=UTC))
    assert publish_if_due(app.db, app.settings, definition, clock) is None
    # 00:30 on 15 April in Ottawa: 14 days and 30 minutes after March ended there.
    clock.set(datetime(2026, 4, 15, 4, 30, tzinfo=UTC))
    assert publish_if_due(app.db, app.settings, definition, clock) == "2026-03"
    stop = threading.Event()
    runner = threading.Thread(
        target=run_schedule, args=(stop, app.db, app.settings, definition, clock, 0.01)
    )
    runner.start()
    stop.set()
    runner.join(timeout=5)
    assert not runner.is_alive()
