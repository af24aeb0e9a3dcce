"""The open-data page in Chromium on a 360-pixel-wide screen: no WCAG 2.0/2.1 A or AA
violation (axe-core) in English and French, nothing wider than the screen, every link
reachable with the keyboard, and no script running."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.publishing import make_publication, store
from callerconnect.service.survey import load_definition
from callerconnect.web.app import create_app
from tests.support.live_server import LiveServer
from tests.support.opendata_quarter import simulate_quarter

if os.environ.get("CALLERCONNECT_REQUIRE_BROWSER") != "1":
    pytest.importorskip("playwright", reason="the playwright package is not installed")

from playwright.sync_api import Page

from tests.browser.test_survey_browser import axe_violations

pytestmark = pytest.mark.browser


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2025, 12, 31, 12, 0, tzinfo=UTC))


@pytest.fixture
def site(
    app_factory: Callable[..., Application],
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
) -> Iterator[str]:
    app = app_factory(database_url)
    simulate_quarter(app, clock, console, calls_per_month=6)
    store(
        app.db,
        make_publication(app.db, app.settings, load_definition(), datetime(2026, 4, 2, tzinfo=UTC)),
    )
    with LiveServer(create_app(app)) as server:
        yield server.url


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_open_data_page_is_accessible_on_a_phone(page: Page, site: str, lang: str) -> None:
    page.goto(f"{site}/open-data?lang={lang}")
    assert page.locator("html").get_attribute("lang") == lang
    assert axe_violations(page) == []
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page is {width} px wide on a 360 px screen"
    assert page.evaluate("document.scripts.length") == 0
    assert page.locator("svg[role=img] title").count() == 5


def test_every_link_is_reached_with_the_keyboard(page: Page, site: str) -> None:
    page.goto(f"{site}/open-data")
    links = page.locator("a[href]").count()
    reached = set()
    for _ in range(links + 2):
        page.keyboard.press("Tab")
        href = page.evaluate("document.activeElement.getAttribute('href')")
        if href:
            reached.add(href)
    assert "/open-data/monthly.csv" in reached
    assert "/api/feed/dcat-us/1.1.json" in reached
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    assert reached == set(hrefs)


def test_the_language_switch_is_the_first_stop_of_the_keyboard(page: Page, site: str) -> None:
    page.goto(f"{site}/open-data")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "fr"
    assert "Données ouvertes" in page.locator("h1").inner_text()
