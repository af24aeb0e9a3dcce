"""The dashboard in Chromium (issue item 7): every page in English and French, at 1280
and 360 pixels wide, with a filled known week; axe-core finds no serious or critical
WCAG A/AA violation, nothing is wider than the screen, and signing in works with the
keyboard alone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from callerconnect.adapters.db.tables import DeadLetterRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.web.app import create_app
from tests.support.dashboard import PASSWORD, add_role_accounts
from tests.support.known_week import WEEK, build_known_week
from tests.support.live_server import LiveServer

if os.environ.get("CALLERCONNECT_REQUIRE_BROWSER") != "1":
    pytest.importorskip("playwright", reason="the playwright package is not installed")

from playwright.sync_api import Page

from tests.browser.test_survey_browser import axe_violations

pytestmark = pytest.mark.browser
SERIOUS = ("serious", "critical")


@pytest.fixture
def server(
    app: Application, clock: VirtualClock, console: ConsoleProvider
) -> Iterator[tuple[str, FastAPI]]:
    api = create_app(app)
    build_known_week(api, app, clock, console)
    add_role_accounts(api)
    with app.db.transaction() as session:
        session.add(
            DeadLetterRow(
                agency_id=app.settings.agency_id,
                received_at=clock.now(),
                source="http",
                payload_encrypted=app.vault.encrypt('{"event_id": "e", "caller": "x"}'),
                error_code="invalid",
                error="missing type",
                field="type",
                status="new",
            )
        )
    with LiveServer(api) as live:
        yield live.url, api


def sign_in_with_the_keyboard(page: Page, url: str, email: str) -> None:
    page.goto(f"{url}/dashboard?from={WEEK[0]}&to={WEEK[1]}")
    assert "/login" in page.url
    page.keyboard.press("Tab")  # the skip link
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "email":
            break
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard?**")


@pytest.mark.parametrize("width", [1280, 360])
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_page_is_axe_clean_and_fits_the_screen(
    page: Page, server: tuple[str, Any], lang: str, width: int, app: Application
) -> None:
    url, _api = server
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{url}/login?lang={lang}")
    results: dict[str, list[dict[str, Any]]] = {}

    def check(name: str) -> None:
        assert page.locator("html").get_attribute("lang") == lang, name
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name}: the page is {wide}px wide on a {width}px screen"
        results[name] = [v for v in axe_violations(page) if v["impact"] in SERIOUS]

    check("login")
    page.fill("#email", "admin@example.org")
    page.fill("#password", "wrong password here")
    page.click("form.login button")
    check("login-refused")
    sign_in_with_the_keyboard(page, url, "admin@example.org")
    period = f"from={WEEK[0]}&to={WEEK[1]}&lang={lang}"
    with app.db.transaction() as session:
        letter_id = session.scalar(select(DeadLetterRow.id))
    for name, path in [
        ("overview", f"/dashboard?{period}"),
        ("overview-filtered", f"/dashboard?{period}&district=Central&priority=4"),
        ("comments", f"/dashboard/comments?{period}"),
        ("queues", f"/dashboard/queues?{period}"),
        ("dead-letter", f"/dashboard/queues/dead-letters/{letter_id}?lang={lang}"),
        ("users", f"/dashboard/users?lang={lang}"),
        ("audit", f"/dashboard/audit?lang={lang}"),
        ("bad-filter", f"/dashboard?from=2026-13-01&lang={lang}"),
    ]:
        page.goto(f"{url}{path}")
        check(name)
    failing = {name: found for name, found in results.items() if found}
    assert failing == {}, failing
