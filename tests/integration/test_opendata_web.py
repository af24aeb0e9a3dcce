"""The public open-data page, files and catalogs over HTTP (in-process, SQLite: the pages
only read what the publication stored, which the publishing tests cover on both
databases)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.publishing import make_publication, store
from callerconnect.service.survey import load_definition
from callerconnect.web.app import create_app
from tests.support.in_process import InProcessServer
from tests.support.opendata_quarter import simulate_quarter
from tests.unit.test_opendata_catalog import dcat_us_validator, shacl

APRIL = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2025, 12, 31, 12, 0, tzinfo=UTC))


@pytest.fixture
def client(
    app_factory: Callable[..., Application],
    sqlite_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
) -> Iterator[httpx.Client]:
    app = app_factory(sqlite_url, CALLERCONNECT_PUBLIC_BASE_URL="https://police.example.ca")
    simulate_quarter(app, clock, console, calls_per_month=6)
    store(app.db, make_publication(app.db, app.settings, load_definition(), APRIL))
    with InProcessServer(create_app(app)) as server, httpx.Client(base_url=server.url) as http:
        yield http


@pytest.fixture
def empty_client(
    app_factory: Callable[..., Application], sqlite_url: str
) -> Iterator[httpx.Client]:
    with (
        InProcessServer(create_app(app_factory(sqlite_url))) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        yield http


def test_the_page_shows_charts_tables_downloads_and_suppressed_values(client: httpx.Client) -> None:
    page = client.get("/open-data")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html
    assert "Latest month: 2026-03" in html
    assert html.count("<svg") == 5 and html.count("<table") == 5
    # About 8 answers a month: the month's own satisfaction is too few to publish.
    assert "x — too few responses to publish" in html
    for name in (
        "monthly.csv",
        "monthly_by_district.csv",
        "datapackage.json",
        "methodology_en.md",
        "data_dictionary.csv",
    ):
        assert f'href="/open-data/{name}"' in html
    assert 'href="/api/feed/dcat-us/1.1.json"' in html
    assert "fewer than 11 answers is written x" in html
    assert "<script" not in html and "style=" not in html
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_page_in_french(client: httpx.Client) -> None:
    html = client.get("/open-data?lang=fr").text
    assert '<html lang="fr">' in html
    assert "Données ouvertes" in html
    assert "x — trop peu de réponses" in html
    assert 'href="/open-data/methodology_fr.md"' in html


def test_the_page_and_files_answer_304_to_a_matching_etag(client: httpx.Client) -> None:
    for path in ("/open-data", "/open-data/monthly.csv", "/api/feed/dcat-us/1.1.json"):
        first = client.get(path)
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert first.headers["cache-control"].startswith("public")
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        changed = client.get(path, headers={"If-None-Match": '"something-else"'})
        assert changed.status_code == 200
    assert "GMT" in client.get("/open-data/monthly.csv").headers["last-modified"]


def test_files_are_served_at_stable_urls_with_their_media_types(client: httpx.Client) -> None:
    csv_file = client.get("/open-data/monthly_by_district.csv")
    assert csv_file.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_file.text.startswith("month,district,priority,calls_texted")
    package = client.get("/open-data/datapackage.json")
    assert package.headers["content-type"] == "application/json"
    assert package.json()["resources"][0]["name"] == "monthly_by_district"
    assert (
        client.get("/open-data/default/monthly.csv").content
        == client.get("/open-data/monthly.csv").content
    )
    for path in (
        "/open-data/secrets.csv",
        "/open-data/..%2Fdemo.db",
        "/open-data/other/monthly.csv",
    ):
        missing = client.get(path)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_the_catalogs_validate_and_point_at_the_served_files(client: httpx.Client) -> None:
    feed = client.get("/api/feed/dcat-us/1.1.json").json()
    assert list(dcat_us_validator().iter_errors(feed)) == []
    (dataset,) = feed["dataset"]
    for distribution in dataset["distribution"]:
        url = distribution["downloadURL"]
        assert url.startswith("https://police.example.ca/open-data/")
        served = client.get(url.removeprefix("https://police.example.ca"))
        assert served.status_code == 200
        assert served.headers["content-type"].startswith(distribution["mediaType"])
    assert dataset["temporal"] == "2026-01-01/2026-03-31"
    ap = client.get("/api/feed/dcat-ap/2.1.1.json")
    assert ap.headers["content-type"].startswith("application/ld+json")
    conforms, report = shacl(ap.json())
    assert conforms, report


@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_before_any_publication_the_page_says_so_and_the_catalog_is_empty(
    empty_client: httpx.Client,
) -> None:
    page = empty_client.get("/open-data")
    assert page.status_code == 200 and "Nothing has been published yet." in page.text
    assert empty_client.get("/open-data/monthly.csv").status_code == 404
    feed = empty_client.get("/api/feed/dcat-us/1.1.json").json()
    assert feed["dataset"] == []
    assert list(dcat_us_validator().iter_errors(feed)) == []
    assert json.loads(empty_client.get("/api/feed/dcat-ap/2.1.1.json").text)["@graph"]
