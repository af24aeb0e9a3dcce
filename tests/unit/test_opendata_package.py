"""The publication's files: a valid Frictionless data package, stable bytes, GeoJSON."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import frictionless

from callerconnect.opendata.fields import QuestionInfo
from callerconnect.opendata.package import GEOJSON_FILE, PackageInfo, build_files
from callerconnect.opendata.suppression import Tally
from callerconnect.opendata.tables import CellFigures, build_tables

QUESTIONS = [
    QuestionInfo("call_taker", "How was the call-taker?", "Le préposé?"),
    QuestionInfo("overall", "Overall?", "Dans l'ensemble?"),
]


def tally(points: list[int]) -> Tally:
    return Tally(len(points), sum(points), sum(1 for p in points if p >= 4))


def sample_cells() -> list[CellFigures]:
    return [
        CellFigures(
            "2026-01",
            "East",
            3,
            40,
            5,
            30,
            14,
            {
                "call_taker": tally([5, 4, 4, 3, 5, 2, 5, 4, 5, 5, 1, 4, 4, 5]),
                "overall": tally([4] * 12),
            },
        ),
        CellFigures(
            "2026-01",
            "West",
            3,
            12,
            1,
            10,
            3,
            {"call_taker": tally([5, 1, 3]), "overall": tally([2, 3])},
        ),
        CellFigures(
            "2026-01",
            "West",
            4,
            50,
            9,
            41,
            20,
            {"call_taker": tally([4, 5, 3, 2] * 5), "overall": tally([5, 4] * 9)},
        ),
        CellFigures("2026-02", "East", 4, 3, 0, 0, 0, {}),
    ]


def info(partial: str | None = None) -> PackageInfo:
    return PackageInfo(
        agency_id="ottawa",
        agency_name_en="Ottawa Police",
        agency_name_fr="Police d'Ottawa",
        first_month="2026-01",
        last_month="2026-02",
        partial_month=partial,
        min_responses=11,
        license_url="https://open.canada.ca/en/open-government-licence-canada",
        license_title="Open Government Licence - Canada",
        questions=QUESTIONS,
    )


def publication(partial: str | None = None, boundaries: dict | None = None) -> dict[str, bytes]:
    tables = build_tables(["2026-01", "2026-02"], sample_cells(), [q.id for q in QUESTIONS], 11)
    return build_files(info(partial), tables, boundaries)


def test_the_data_package_is_valid_frictionless_with_typed_schemas(tmp_path: Path) -> None:
    for name, content in publication().items():
        (tmp_path / name).write_bytes(content)
    report = frictionless.validate(tmp_path / "datapackage.json")
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    package = frictionless.Package(tmp_path / "datapackage.json")
    rows = package.get_resource("monthly_by_district").read_rows()
    west3 = next(r for r in rows if r["district"] == "West" and r["priority"] == 3)
    # "x" and empty are both missing values: read back as None, never as text.
    assert west3["call_taker_mean"] is None
    assert west3["responses"] == 3
    month = package.get_resource("monthly").read_rows()
    assert [(r["month"].year, r["month"].month) for r in month] == [(2026, 1), (2026, 2)]


def test_suppressed_cells_are_written_x_and_inapplicable_ones_empty() -> None:
    text = publication()["monthly_by_district.csv"].decode("utf-8")
    rows = {
        (r["month"], r["district"], r["priority"]): r for r in csv.DictReader(io.StringIO(text))
    }
    assert rows[("2026-01", "West", "3")]["call_taker_mean"] == "x"
    assert rows[("2026-01", "West", "3")]["overall_share_positive"] == "x"
    assert rows[("2026-02", "East", "4")]["overall_mean"] == ""
    assert rows[("2026-02", "East", "4")]["response_rate"] == ""
    assert rows[("2026-01", "West", "4")]["call_taker_mean"] == "3.50"
    records = json.loads(publication()["monthly_by_district.json"])
    assert records[1]["call_taker_mean"] == "x"
    assert records[3]["overall_mean"] is None


def test_publishing_the_same_data_twice_gives_the_same_bytes() -> None:
    assert publication() == publication()


def test_the_current_month_is_described_as_standing_so_far() -> None:
    files = publication(partial="2026-02")
    package = json.loads(files["datapackage.json"])
    assert "2026-02 is published as it stands so far" in package["description"]
    assert "tel qu'il est à ce jour" in package["description"]
    assert b"not over" in files["methodology_en.md"]
    assert "pas terminé".encode() in files["methodology_fr.md"]


def test_the_data_dictionary_describes_every_column_in_both_languages() -> None:
    files = publication()
    dictionary = list(csv.DictReader(io.StringIO(files["data_dictionary.csv"].decode())))
    for resource in ("monthly_by_district", "monthly"):
        header = next(csv.reader(io.StringIO(files[f"{resource}.csv"].decode())))
        described = [d["field"] for d in dictionary if d["resource"] == resource]
        assert described == header
    assert all(d["description_en"] and d["description_fr"] for d in dictionary)


def test_geojson_puts_the_latest_month_on_each_district_without_new_totals() -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    boundaries = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": square, "properties": {"district": "West"}},
        ],
    }
    tables = build_tables(["2026-01"], sample_cells()[:3], [q.id for q in QUESTIONS], 11)
    files = build_files(replace(info(), last_month="2026-01"), tables, boundaries)
    geo = json.loads(files[GEOJSON_FILE])
    (feature,) = geo["features"]
    assert feature["geometry"] == square
    properties = feature["properties"]
    assert properties["p3_call_taker_mean"] == "x"
    assert properties["p4_responses"] == 20
    assert not any(k.startswith("responses") for k in properties)


def test_a_district_name_that_a_spreadsheet_would_run_is_written_as_text() -> None:
    cells = [CellFigures("2026-01", '=HYPERLINK("http://evil.example")', 4, 5, 0, 3, 1, {})]
    tables = build_tables(["2026-01"], cells, [q.id for q in QUESTIONS], 11)
    text = build_files(info(), tables)["monthly_by_district.csv"].decode()
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row[1] == '\'=HYPERLINK("http://evil.example")'
