"""The public pages of a deployment with two agencies (contract section 11): the landline
feedback page asks which police service was called and files the answers under that
one's call only; a survey link's page names the agency that sent it; the open-data page
shows each agency's own figures and files. Nothing of one agency shows up as the other's."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from callerconnect.adapters.db.tables import CallRow, SurveyResponseRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application
from callerconnect.clock import VirtualClock
from callerconnect.config import load_settings
from callerconnect.service.publishing import make_publication, store
from callerconnect.service.survey import load_definition
from callerconnect.web.app import create_app
from tests.conftest import T0, TEST_INTAKE_KEY
from tests.integration.test_agencies import NORTH_KEY, Providers, two_agency_environ
from tests.support.in_process import InProcessServer
from tests.support.opendata_quarter import simulate_quarter
from tests.support.survey import ANSWERS, csrf_of, post_call, send_survey_texts, survey_tokens

DEFAULT_AUTH = {"Authorization": f"Bearer {TEST_INTAKE_KEY}"}
NORTH_AUTH = {"Authorization": f"Bearer {NORTH_KEY}"}
APRIL = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)


def build_two(database_url: str, clock: VirtualClock, providers: Providers) -> Application:
    environ = two_agency_environ(
        database_url,
        # Ottawa's time for both, so that the same local months are published.
        CALLERCONNECT_AGENCIES__NORTH__TIMEZONE="America/Toronto",
    )
    return build_application(load_settings(environ=environ), clock=clock, provider=dict(providers))


@pytest.fixture
def providers() -> Providers:
    return {"default": ConsoleProvider(io.StringIO()), "north": ConsoleProvider(io.StringIO())}


@pytest.fixture
def two(database_url: str, clock: VirtualClock, providers: Providers) -> Iterator[Application]:
    application = build_two(database_url, clock, providers)
    yield application
    application.close()


@pytest.fixture
def site(two: Application) -> Iterator[httpx.Client]:
    with InProcessServer(create_app(two)) as server, httpx.Client(base_url=server.url) as http:
        yield http


def responses(app: Application) -> list[tuple[str, str, str]]:
    with app.db.transaction() as session:
        rows = session.execute(
            select(CallRow.agency_id, CallRow.case_number, SurveyResponseRow.agency_id)
            .join(CallRow, CallRow.id == SurveyResponseRow.call_id)
            .order_by(CallRow.agency_id)
        ).all()
    return [(str(a), str(case), str(filed)) for a, case, filed in rows]


def send_feedback(site: httpx.Client, path: str, case_number: str) -> httpx.Response:
    form = site.get(path)
    assert form.status_code == 200, form.text
    data = {
        "csrf_token": csrf_of(form.text),
        "lang": "en",
        "action": "submit",
        "case_number": case_number,
        **ANSWERS,
    }
    return site.post(path, data=data)


@pytest.fixture
def cleared_calls(two: Application, site: httpx.Client, clock: VirtualClock) -> None:
    """The same case number cleared in both agencies, and one known to the north only;
    no phone, as on a landline."""
    clock.set(T0 + timedelta(minutes=30))  # after the calls' events (09:00 to 09:20)
    url = str(site.base_url)
    post_call(url, DEFAULT_AUTH, incident="I-1", case_number="26-00500", phone=None)
    post_call(url, NORTH_AUTH, incident="I-1", case_number="26-00500", phone=None)
    post_call(url, NORTH_AUTH, incident="I-2", case_number="26-00777", phone=None)


def test_the_landline_page_asks_which_police_service_was_called(site: httpx.Client) -> None:
    page = site.get("/feedback")

    assert page.status_code == 200
    assert "Which police service did you call?" in page.text
    assert 'href="/feedback/default?lang=en">Ottawa Police</a>' in page.text
    assert 'href="/feedback/north?lang=en">North Police</a>' in page.text
    assert "204-555-0199" in page.text and "613-236-1222" in page.text
    assert "<form" not in page.text  # no case number is taken before the agency is known
    assert "<script" not in page.text and "style=" not in page.text
    french = site.get("/feedback?lang=fr")
    assert '<html lang="fr">' in french.text
    assert "Quel service de police avez-vous appelé ?" in french.text
    assert 'href="/feedback/north?lang=fr">Police du Nord</a>' in french.text
    assert 'href="/feedback?lang=en"' in french.text  # the switch back to English


def test_each_agency_s_form_names_it_and_posts_to_its_own_path(site: httpx.Client) -> None:
    north = site.get("/feedback/north")
    routed = site.get("/feedback", params={"agency": "north"})

    for page in (north, routed):
        assert page.status_code == 200
        assert '<p class="agency">North Police</p>' in page.text
        assert "Ottawa Police" not in page.text
        assert "Non-emergency line: 204-555-0199" in page.text
        assert 'action="/feedback/north"' in page.text
        assert 'id="case_number"' in page.text
    default = site.get("/feedback/default?lang=fr")
    assert '<p class="agency">Police d&#39;Ottawa</p>' in default.text
    assert 'action="/feedback/default"' in default.text


@pytest.mark.usefixtures("cleared_calls")
def test_landline_feedback_is_filed_under_the_agency_chosen_only(
    two: Application, site: httpx.Client
) -> None:
    sent = send_feedback(site, "/feedback/north", "26-00500")

    assert sent.status_code == 303
    assert sent.headers["location"] == "/feedback/north/thanks?lang=en"
    thanks = site.get(sent.headers["location"])
    assert thanks.status_code == 200 and "North Police" in thanks.text
    assert responses(two) == [("north", "26-00500", "north")]

    # The default agency's call with the same case number is still its own to answer.
    assert send_feedback(site, "/feedback/default", "26-00500").status_code == 303
    assert responses(two) == [("default", "26-00500", "default"), ("north", "26-00500", "north")]


@pytest.mark.usefixtures("cleared_calls")
def test_a_case_number_of_another_agency_is_not_found_and_nothing_tells(
    two: Application, site: httpx.Client
) -> None:
    elsewhere = send_feedback(site, "/feedback/default", "26-00777")
    made_up = send_feedback(site, "/feedback/default", "26-09999")

    assert elsewhere.status_code == made_up.status_code == 303
    assert elsewhere.headers["location"] == made_up.headers["location"]
    assert responses(two) == []


@pytest.mark.usefixtures("cleared_calls")
def test_no_feedback_is_taken_without_a_configured_agency(
    two: Application, site: httpx.Client
) -> None:
    csrf = csrf_of(site.get("/feedback/north").text)
    data = {"csrf_token": csrf, "lang": "en", "action": "submit", "case_number": "26-00500"}

    unnamed = site.post("/feedback", data={**data, **ANSWERS})
    unknown = site.post("/feedback/south", data={**data, **ANSWERS})
    unknown_page = site.get("/feedback/south")

    assert unnamed.status_code == 400
    assert "Which police service did you call?" in unnamed.text
    assert unknown.status_code == unknown_page.status_code == 404
    assert 'href="/feedback/north?lang=en"' in unknown_page.text
    assert responses(two) == []


def test_a_survey_link_s_pages_name_the_agency_that_sent_it(
    two: Application, site: httpx.Client, clock: VirtualClock, providers: Providers
) -> None:
    clock.set(T0 + timedelta(minutes=30))
    post_call(str(site.base_url), NORTH_AUTH, incident="I-1")
    send_survey_texts(two, clock)
    (token,) = survey_tokens(providers["north"])

    form = site.get(f"/s/{token}")
    data = {"csrf_token": csrf_of(form.text), "lang": "en", "action": "submit", **ANSWERS}
    answered = site.post(f"/s/{token}", data=data)
    thanks = site.get(answered.headers["location"])
    again = site.get(f"/s/{token}")

    for page in (form, thanks, again):
        assert "North Police" in page.text and "204-555-0199" in page.text
        assert "Ottawa Police" not in page.text and "613-236-1222" not in page.text
    assert again.status_code == 409


# --- open data ------------------------------------------------------------------------


@pytest.fixture
def open_data(sqlite_url: str, clock: VirtualClock, providers: Providers) -> Iterator[httpx.Client]:
    """A quarter of each agency, published, on SQLite (the pages only read what the
    publication stored): six calls a month in Ottawa in 2026, two in the north in 2027
    (a virtual clock never goes back, so the second quarter is told after the first)."""
    clock = VirtualClock(datetime(2025, 12, 31, 12, 0, tzinfo=UTC))
    app = build_two(sqlite_url, clock, providers)
    definition = load_definition()
    try:
        simulate_quarter(app, clock, providers["default"], calls_per_month=6)
        simulate_quarter(
            app, clock, providers["north"], calls_per_month=2, agency="north", year=2027
        )
        for agency, now in (("default", APRIL), ("north", APRIL.replace(year=2027))):
            own = app.settings.for_agency(agency)
            store(app.db, make_publication(app.db, own, definition, now))
        with InProcessServer(create_app(app)) as server, httpx.Client(base_url=server.url) as http:
            yield http
    finally:
        app.close()


def calls_texted(html: str, anchor: str) -> list[str]:
    """The month-by-month table of calls texted in one agency's part of the page."""
    caption = html.index(f'id="{anchor}caption-calls_texted"')
    table = html[caption : html.index("</table>", caption)]
    return re.findall(r"<td>([^<]*)</td>", table)


def test_the_open_data_page_shows_each_agency_s_own_figures_and_files(
    open_data: httpx.Client,
) -> None:
    page = open_data.get("/open-data")

    assert page.status_code == 200
    html = page.text
    assert '<h2 id="default-figures">Ottawa Police</h2>' in html
    assert '<h2 id="north-figures">North Police</h2>' in html
    assert html.count("<svg") == 10 and html.count("<table") == 10
    assert calls_texted(html, "default-") == ["6", "6", "6"]
    assert calls_texted(html, "north-") == ["2", "2", "2"]
    for agency in ("default", "north"):
        for name in ("monthly.csv", "datapackage.json", "methodology_en.md"):
            assert f'href="/open-data/{agency}/{name}"' in html
            assert open_data.get(f"/open-data/{agency}/{name}").status_code == 200
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # every id once: each label points at its own part
    assert "<script" not in html and "style=" not in html


def test_one_agency_s_open_data_page_shows_only_its_figures(open_data: httpx.Client) -> None:
    north = open_data.get("/open-data/north?lang=fr")

    assert north.status_code == 200
    assert '<html lang="fr">' in north.text
    assert '<p class="agency">Police du Nord</p>' in north.text
    assert north.text.count("<svg") == 5
    assert calls_texted(north.text, "north-") == ["2", "2", "2"]
    assert "/open-data/default/" not in north.text and "Police d&#39;Ottawa" not in north.text
    assert 'href="/open-data/north?lang=en"' in north.text
    assert open_data.get("/open-data/south").status_code == 404
