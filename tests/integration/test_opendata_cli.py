"""``callerconnect publish`` (contract section 10): the package in a folder, stored for
the pages, clear errors for what cannot be published."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import frictionless
import pytest

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.entrypoints.cli import main
from callerconnect.service.publishing import latest_file
from tests.support.opendata_quarter import simulate_quarter


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2025, 12, 31, 12, 0, tzinfo=UTC))


@pytest.fixture
def database(
    app_factory: Callable[..., Application],
    sqlite_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> Application:
    app = app_factory(sqlite_url)
    simulate_quarter(app, clock, console, calls_per_month=5)
    monkeypatch.delenv("CALLERCONNECT_SECRET_KEY", raising=False)
    monkeypatch.setenv("CALLERCONNECT_DATABASE_URL", sqlite_url)
    return app


def test_publish_writes_a_valid_package_and_stores_it(
    database: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "open-data"
    assert main(["publish", "--out", str(out), "--through", "2026-03"]) == 0
    printed = capsys.readouterr().out
    assert "published default through 2026-03" in printed
    assert (out / "monthly.csv").read_text().splitlines()[1].startswith("2026-01,")
    report = frictionless.validate(out / "datapackage.json")
    assert report.valid, report.flatten(["rowNumber", "fieldName", "note"])
    stored = latest_file(database.db, "default", "monthly.csv")
    assert stored is not None and stored.content == (out / "monthly.csv").read_bytes()


def test_boundaries_add_the_latest_month_by_district_as_geojson(
    database: Application,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    boundaries = tmp_path / "districts.geojson"
    boundaries.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "geometry": square, "properties": {"district": d}}
                    for d in ("Central", "East", "West")
                ],
            }
        )
    )
    monkeypatch.setenv("CALLERCONNECT_OPENDATA__DISTRICTS_GEOJSON", str(boundaries))
    out = tmp_path / "out"
    assert main(["publish", "--out", str(out), "--through", "2026-03"]) == 0
    geo = json.loads((out / "districts_latest.geojson").read_text())
    assert [f["properties"]["district"] for f in geo["features"]] == ["Central", "East", "West"]
    assert all(f["properties"]["month"] == "2026-03" for f in geo["features"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--through", "2026-13"], "'2026-13' is not a month; write it as YYYY-MM"),
        (["--through", "2999-01"], "2999-01 has not begun yet"),
        (["--agency", "elsewhere"], "unknown agency 'elsewhere'"),
    ],
)
def test_what_cannot_be_published_gets_a_clear_error(
    database: Application,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    assert main(["publish", "--out", str(tmp_path / "x"), *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "x").exists()
