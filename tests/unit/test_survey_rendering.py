"""The survey form as first shown comes from a pre-rendered copy per language: it must be
the very page a full render gives, with the request's own action and CSRF token."""

from __future__ import annotations

import io

import pytest

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import build_agencies
from callerconnect.config import load_settings
from callerconnect.service.survey import load_definition
from callerconnect.web.survey_rendering import Renderer

# Characters that HTML escaping changes, so a slot filled in without escaping shows.
ODD_CSRF = "a.b-c_d&\"<e>'"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    agencies = build_agencies(load_settings(environ={}), ConsoleProvider(io.StringIO()))
    return Renderer(agencies.default, load_definition())


@pytest.mark.parametrize("landline", [False, True], ids=["link", "landline"])
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_empty_form_is_the_page_a_full_render_gives(
    renderer: Renderer, lang: str, landline: bool
) -> None:
    for action, csrf in (("/s/first_token-0123456789", "one.token"), ("/s/x&y", ODD_CSRF)):
        view = renderer.form_view(
            lang=lang, action=action, csrf=csrf, values={}, validation=None, landline=landline
        )
        full = renderer.form(view, 200, landline=landline)
        quick = renderer.empty_form(lang, 200, action=action, csrf=csrf, landline=landline)

        assert quick.body == full.body
        assert quick.status_code == full.status_code
        assert quick.headers["cache-control"] == "no-store"
        assert (csrf == ODD_CSRF) == ("&amp;&#34;&lt;e&gt;&#39;" in quick.body.decode())


def test_empty_forms_of_two_requests_differ_only_by_their_own_values(renderer: Renderer) -> None:
    first = renderer.empty_form("en", 200, action="/s/AAAA", csrf="token-a", landline=False)
    second = renderer.empty_form("en", 200, action="/s/BBBB", csrf="token-b", landline=False)

    assert b'action="/s/AAAA"' in first.body and b'value="token-a"' in first.body
    assert b'action="/s/BBBB"' in second.body and b'value="token-b"' in second.body
    assert b"AAAA" not in second.body and b"token-a" not in second.body
    assert b"slot-" not in first.body
