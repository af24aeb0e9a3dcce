"""The survey in a real browser on a 360-pixel-wide screen (issue 4, items 3 and 4).

- axe-core reports no WCAG 2.0/2.1 A or AA violation on any page state, in English and
  in French: the form, the form with errors, the thank-you page, 404, 409, 410, 403,
  429, and the landline page with and without errors and its thank-you page;
- a caller completes the survey with the keyboard only (Tab, Shift+Tab, Space, arrow
  keys, Enter; typing the comment), switching from English to French mid-way without
  losing an answer, and the response is stored in French.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callerconnect.adapters.db.tables import SurveyAnswerRow, SurveyResponseRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.survey import SurveyLimits
from tests.support.live_server import LiveServer
from tests.support.survey import invite, post_call

if os.environ.get("CALLERCONNECT_REQUIRE_BROWSER") != "1":
    pytest.importorskip("playwright", reason="the playwright package is not installed")

from playwright.sync_api import Page

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN_AXE = """
async (tags) => {
  const results = await axe.run(document, {
    runOnly: {type: "tag", values: tags},
    resultTypes: ["violations"],
  });
  return {
    violations: results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(" ") + " :: " + n.failureSummary),
    })),
    passes: results.passes.length,
  };
}
"""


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core in the page. ``evaluate`` goes through the DevTools protocol, which
    the page's Content Security Policy (rightly) does not let a ``<script>`` tag do."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(RUN_AXE, WCAG_A_AA)
    assert result["passes"] > 0  # axe really ran
    return list(result["violations"])


class States:
    """Collects axe results per page state, so one run reports every failing state."""

    def __init__(self, page: Page, lang: str) -> None:
        self.page = page
        self.lang = lang
        self.results: dict[str, list[dict[str, Any]]] = {}

    def check(self, name: str, *, heading: str | None = None) -> None:
        page = self.page
        assert page.locator("html").get_attribute("lang") == self.lang, name
        if heading is not None:
            assert heading in page.locator("h1").inner_text(), name
        # Readable at 360 px: nothing wider than the screen.
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 360, f"{name}: page is {overflow}px wide"
        self.results[f"{self.lang}:{name}"] = axe_violations(page)


def goto(page: Page, url: str, status: int) -> None:
    response = page.goto(url)
    assert response is not None and response.status == status, (url, response and response.status)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_axe_finds_no_wcag_violation_on_any_page_state(
    page: Page,
    lang: str,
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    live_server: LiveServer,
    auth: dict[str, str],
) -> None:
    url = live_server.url
    answered = invite(app, clock, console, url, auth, incident="I-1", language=lang)
    expiring = invite(app, clock, console, url, auth, incident="I-2", language=lang)
    post_call(url, auth, incident="I-3", case_number="26-00300", phone=None)
    states = States(page, lang)
    other = {"en": "fr", "fr": "en"}[lang]

    goto(page, f"{url}/s/{answered}", 200)
    states.check("form")
    page.locator("button.primary").click()
    assert page.url.endswith(f"/s/{answered}")
    states.check("form-with-no-answer-error")
    assert page.locator(".error-summary").is_visible()
    assert page.evaluate("document.activeElement.className") == "error-summary"
    # The switch re-renders in the other language and back again, answers kept.
    page.locator("#overall-4").check()
    page.locator("button.lang-switch").click()
    assert page.locator("html").get_attribute("lang") == other
    assert page.locator("#overall-4").is_checked()
    page.locator("button.lang-switch").click()
    assert page.locator("html").get_attribute("lang") == lang
    page.locator("#comment").evaluate("(el) => el.removeAttribute('maxlength')")
    page.locator("#comment").fill("x" * 1001)
    page.locator("button.primary").click()
    states.check("form-with-comment-error")
    assert page.locator("#overall-4").is_checked()
    page.locator("#comment").fill("Merci.")
    page.locator("button.primary").click()
    assert "/thanks" in page.url
    states.check("thank-you")

    goto(page, f"{url}/s/{answered}", 409)
    states.check("409-answered")
    goto(page, f"{url}/s/{'Z' * 22}?lang={lang}", 404)
    states.check("404-unknown")

    goto(page, f"{url}/s/{expiring}", 200)
    page.locator("input[name=csrf_token]").evaluate("(el) => { el.value = 'forged'; }")
    page.locator("#overall-5").check()
    page.locator("button.primary").click()
    states.check("403-refused")

    goto(page, f"{url}/feedback?lang={lang}", 200)
    states.check("landline")
    page.locator("button.primary").click()
    states.check("landline-with-errors")
    assert page.locator("#err-case_number").is_visible()
    page.locator("#case_number").fill("26-00300")
    page.locator("#kept_informed-3").check()
    page.locator("button.primary").click()
    assert "/feedback/thanks" in page.url
    states.check("landline-thank-you")

    clock.advance(app.policy.survey_expires + timedelta(minutes=1))
    goto(page, f"{url}/s/{expiring}", 410)
    states.check("410-closed")

    for n in range(SurveyLimits().token_guesses.hits):
        httpx.get(f"{url}/s/{n:022d}")
    goto(page, f"{url}/s/{expiring}?lang={lang}", 429)
    states.check("429-limited")

    failing = {state: v for state, v in states.results.items() if v}
    assert failing == {}, failing
    assert len(states.results) == 12


def active(page: Page) -> str:
    """What has the keyboard focus: ``name=value`` of a control, else its id or text."""
    return str(
        page.evaluate(
            """() => {
              const el = document.activeElement;
              if (el.name && el.type === "radio") return el.name + "=" + el.value;
              if (el.name === "action") return "button:" + el.value;
              return el.id || el.tagName.toLowerCase();
            }"""
        )
    )


def press(page: Page, key: str, times: int = 1) -> str:
    for _ in range(times):
        page.keyboard.press(key)
    return active(page)


def test_keyboard_only_completion_in_french_after_switching_mid_way(
    page: Page,
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    live_server: LiveServer,
    auth: dict[str, str],
) -> None:
    token = invite(app, clock, console, live_server.url, auth, incident="I-K", language=None)
    goto(page, f"{live_server.url}/s/{token}", 200)
    assert page.locator("html").get_attribute("lang") == "en"

    # English first: the switch, then the first scale.
    assert press(page, "Tab") == "button:lang:fr"
    assert press(page, "Tab") == "call_taker=1"
    press(page, "Space")
    assert press(page, "ArrowRight", 3) == "call_taker=4"
    # Officer: from the first point, ArrowLeft wraps round to "no officer attended".
    assert press(page, "Tab") == "officer=1"
    assert press(page, "ArrowLeft") == "officer=no_officer"

    # Mid-way, back to the switch and over to French.
    assert press(page, "Shift+Tab") == "call_taker=4"
    assert press(page, "Shift+Tab") == "button:lang:fr"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("#call_taker-4").is_checked()
    assert page.locator("#officer-no_officer").is_checked()
    # Focus stays on the switch (now "English"), so the caller goes on from there.
    assert active(page) == "button:lang:en"
    assert page.locator("button.lang-switch").inner_text() == "English"

    # The rest in French.
    assert press(page, "Tab") == "call_taker=4"
    assert press(page, "Tab") == "officer=no_officer"
    assert press(page, "Tab") == "kept_informed=1"
    press(page, "Space")
    assert press(page, "ArrowRight", 2) == "kept_informed=3"
    assert press(page, "Tab") == "respect=1"
    press(page, "Space")
    assert press(page, "ArrowRight", 4) == "respect=5"
    assert press(page, "Tab") == "overall=1"
    press(page, "Space")
    assert press(page, "ArrowRight", 3) == "overall=4"
    assert press(page, "Tab") == "comment"
    page.keyboard.type("Très bon service, merci.")
    assert press(page, "Tab") == "button:submit"
    assert page.evaluate("document.activeElement.textContent") == "Envoyer mes réponses"
    # The focused control shows it: a visible outline.
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    page.wait_for_url("**/thanks?lang=fr")
    assert page.locator("h1").inner_text() == "Merci"

    with app.db.transaction() as session:
        response = session.scalars(select(SurveyResponseRow)).one()
        answers = {
            a.question_id: a.score if a.score is not None else a.choice
            for a in session.scalars(select(SurveyAnswerRow))
        }
        comment = app.vault.decrypt(response.comment_encrypted or "")
    assert response.language == "fr"
    assert answers == {
        "call_taker": 4,
        "officer": "no_officer",
        "kept_informed": 3,
        "respect": 5,
        "overall": 4,
    }
    assert comment == "Très bon service, merci."


def test_enter_in_the_case_number_field_sends_the_form_and_does_not_switch_language(
    page: Page, live_server: LiveServer
) -> None:
    goto(page, f"{live_server.url}/feedback", 200)

    page.locator("#case_number").focus()
    page.keyboard.type("26-00001")
    with page.expect_navigation():
        page.keyboard.press("Enter")

    # Submitted (no answer yet, so the errors come back) in the same language.
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator(".error-summary").is_visible()
    assert page.locator("#case_number").input_value() == "26-00001"


def test_radios_focus_ring_is_visible(page: Page, live_server: LiveServer) -> None:
    goto(page, f"{live_server.url}/feedback", 200)
    page.locator("#case_number").focus()
    page.keyboard.press("Tab")

    assert active(page) == "call_taker=1"
    ring = page.evaluate("getComputedStyle(document.activeElement.closest('label')).outlineStyle")
    assert ring == "solid"
