"""The survey (contract section 6, issue 4) over real HTTP, on SQLite and PostgreSQL.

Every survey here starts the way a caller's does: CAD events posted to the intake API,
the call cleared, the clock moved past ``survey_after_clear``, the dispatcher sending the
invitation through the console provider, and the link read from that text.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from callerconnect.adapters.crypto import token_hash
from callerconnect.adapters.db.tables import (
    CallRow,
    SurveyAnswerRow,
    SurveyInvitationRow,
    SurveyResponseRow,
    WebRateHitRow,
)
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.service.survey import SurveyLimits
from tests.support.in_process import InProcessServer
from tests.support.survey import ANSWERS, csrf_of, invite, post_call, post_event

Invite = Callable[..., str]


@pytest.fixture
def new_invitation(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    live_server: InProcessServer,
    auth: dict[str, str],
) -> Invite:
    numbers = iter(range(1, 1000))

    def make(**call: Any) -> str:
        n = next(numbers)
        call.setdefault("incident", f"I-{n}")
        call.setdefault("case_number", f"26-{n:05d}")
        return invite(app, clock, console, live_server.url, auth, **call)

    return make


def count(app: Application, table: type) -> int:
    with app.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def open_form(server: InProcessServer, token: str, **params: str) -> httpx.Response:
    response = httpx.get(f"{server.url}/s/{token}", params=params)
    assert response.status_code == 200, response.text
    return response


def submit(
    server: InProcessServer, token: str, fields: dict[str, str], *, csrf: str | None = None
) -> httpx.Response:
    if csrf is None:
        csrf = csrf_of(open_form(server, token).text)
    data = {"csrf_token": csrf, "lang": "en", "action": "submit", **fields}
    return httpx.post(f"{server.url}/s/{token}", data=data)


def lang_of(page: str) -> str:
    match = re.search(r'<html lang="(\w+)">', page)
    assert match is not None
    return match.group(1)


def checked(page: str) -> dict[str, str]:
    """The radio buttons checked in a rendered form, by name."""
    found = {}
    for tag in re.findall(r"<input [^>]*type=\"radio\"[^>]*>", page):
        if " checked" in tag:
            name = re.search(r'name="([^"]+)"', tag)
            value = re.search(r'value="([^"]+)"', tag)
            assert name and value
            found[name.group(1)] = value.group(1)
    return found


def textarea(page: str, name: str) -> str:
    match = re.search(rf'<textarea [^>]*name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match is not None
    return html.unescape(match.group(1))


# --- opening a link ---------------------------------------------------------------------


def test_link_from_the_text_opens_the_survey_in_the_callers_language(
    app: Application, live_server: InProcessServer, new_invitation: Invite
) -> None:
    english = open_form(live_server, new_invitation(language="en")).text
    french = open_form(live_server, new_invitation(language="fr")).text

    assert lang_of(english) == "en"
    assert "How satisfied were you with the person who answered your call?" in english
    assert 'lang="fr">Français</button>' in english
    assert lang_of(french) == "fr"
    assert "Dans quelle mesure avez-vous été satisfait" in french
    assert 'lang="en">English</button>' in french


def test_invitation_without_a_language_follows_the_browser_then_english(
    live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation(language=None)

    default = httpx.get(f"{live_server.url}/s/{token}")
    french_browser = httpx.get(
        f"{live_server.url}/s/{token}", headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.8"}
    )
    english_first = httpx.get(
        f"{live_server.url}/s/{token}", headers={"Accept-Language": "en-CA,fr;q=0.5"}
    )

    assert lang_of(default.text) == "en"
    assert "Français" in default.text  # the switch is always there
    assert lang_of(french_browser.text) == "fr"
    assert lang_of(english_first.text) == "en"


def test_first_opening_is_recorded_once(
    app: Application, clock: VirtualClock, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation()
    first = clock.now()
    open_form(live_server, token)
    clock.advance(timedelta(hours=1))
    open_form(live_server, token)

    with app.db.transaction() as session:
        invitation = session.scalar(
            select(SurveyInvitationRow).where(SurveyInvitationRow.token_hash == token_hash(token))
        )
        assert invitation is not None
        assert invitation.opened_at == first
        assert invitation.answered_at is None


def test_form_has_the_privacy_notice_and_the_comment_note_in_its_language(
    live_server: InProcessServer, new_invitation: Invite
) -> None:
    english = open_form(live_server, new_invitation(language="en")).text
    french = open_form(live_server, new_invitation(language="fr")).text

    assert "Privacy notice" in english
    assert "Municipal Freedom of Information and Protection of Privacy Act" in english
    assert "do not include personal information" in english
    assert "Avis de confidentialité" in french
    assert "Loi sur l&#39;accès à l&#39;information municipale" in french
    assert "ne pas inclure de renseignements personnels" in french


# --- submitting -------------------------------------------------------------------------


def test_submission_is_stored_against_the_call_with_version_and_language(
    app: Application, clock: VirtualClock, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation(language="fr")
    form = open_form(live_server, token).text

    response = submit(live_server, token, {**ANSWERS, "lang": "fr"}, csrf=csrf_of(form))

    assert response.status_code == 303
    assert response.headers["location"] == f"/s/{token}/thanks?lang=fr"
    thanks = httpx.get(live_server.url + response.headers["location"])
    assert thanks.status_code == 200
    assert "Merci" in thanks.text
    with app.db.transaction() as session:
        row = session.scalars(select(SurveyResponseRow)).one()
        call = session.get(CallRow, row.call_id)
        answers = {
            a.question_id: a.score if a.score is not None else a.choice
            for a in session.scalars(select(SurveyAnswerRow))
        }
        invitation = session.scalars(select(SurveyInvitationRow)).one()
        assert call is not None and call.incident_id == "I-1"
        assert (row.channel, row.survey_version, row.language) == ("link", "1", "fr")
        assert row.answered_at == clock.now()
        assert row.invitation_id == invitation.id
        assert invitation.answered_at == clock.now()
        assert answers == {
            "call_taker": 5,
            "officer": "no_officer",
            "kept_informed": 4,
            "respect": 5,
            "overall": 4,
        }
        assert row.comment_encrypted is not None
        assert app.vault.decrypt(row.comment_encrypted) == "Quick and kind."
    with app.db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT * FROM survey_responses").all()
    assert "Quick and kind" not in repr(stored)  # encrypted at rest
    assert "5550142" not in repr(stored)  # never the phone


def test_second_submission_is_409_and_changes_nothing(
    app: Application, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation()
    csrf = csrf_of(open_form(live_server, token).text)
    assert submit(live_server, token, {"overall": "5"}, csrf=csrf).status_code == 303

    again = submit(live_server, token, {"overall": "1"}, csrf=csrf)
    reopened = httpx.get(f"{live_server.url}/s/{token}")

    assert again.status_code == 409
    assert "already answered" in again.text
    assert reopened.status_code == 409
    with app.db.transaction() as session:
        scores = session.scalars(select(SurveyAnswerRow.score)).all()
    assert scores == [5]


def test_expired_link_is_410_and_records_nothing(
    app: Application, clock: VirtualClock, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation()
    csrf = csrf_of(open_form(live_server, token).text)
    clock.advance(app.policy.survey_expires + timedelta(seconds=1))

    opened = httpx.get(f"{live_server.url}/s/{token}")
    posted = submit(live_server, token, {"overall": "5"}, csrf=csrf)

    assert opened.status_code == 410
    assert "This survey is closed" in opened.text
    assert "7 days" in opened.text
    assert posted.status_code == 410
    assert count(app, SurveyResponseRow) == 0


@pytest.mark.parametrize(
    "token",
    [
        "AAAAAAAAAAAAAAAAAAAAAA",  # well formed, never issued
        "short",
        "not-a-token-" + "x" * 80,
    ],
)
def test_unknown_token_is_a_friendly_404(live_server: InProcessServer, token: str) -> None:
    opened = httpx.get(f"{live_server.url}/s/{token}")
    posted = httpx.post(f"{live_server.url}/s/{token}", data={"overall": "5"})

    for response in (opened, posted):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "Survey link not found" in response.text
        assert 'href="/feedback"' in response.text


def test_unknown_token_page_in_french(live_server: InProcessServer) -> None:
    response = httpx.get(f"{live_server.url}/s/AAAAAAAAAAAAAAAAAAAAAA", params={"lang": "fr"})

    assert response.status_code == 404
    assert lang_of(response.text) == "fr"
    assert "Lien de sondage introuvable" in response.text


@pytest.mark.parametrize("csrf", [None, "", "forged", "other-survey"])
def test_post_without_a_valid_csrf_token_is_refused(
    app: Application, live_server: InProcessServer, new_invitation: Invite, csrf: str | None
) -> None:
    token = new_invitation()
    other = new_invitation()
    fields = {**ANSWERS, "action": "submit", "lang": "en"}
    if csrf == "other-survey":
        fields["csrf_token"] = csrf_of(open_form(live_server, other).text)
    elif csrf is not None:
        fields["csrf_token"] = csrf

    response = httpx.post(f"{live_server.url}/s/{token}", data=fields)

    assert response.status_code == 403
    assert "Nothing was recorded" in response.text
    assert count(app, SurveyResponseRow) == 0


def test_language_switch_keeps_the_answers_already_entered(
    app: Application, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation(language="en")
    csrf = csrf_of(open_form(live_server, token).text)
    partial = {"call_taker": "2", "officer": "no_officer", "comment": "Merci <b>&</b> bravo"}

    switched = submit(live_server, token, {**partial, "action": "lang:fr"}, csrf=csrf)

    assert switched.status_code == 200
    assert lang_of(switched.text) == "fr"
    assert checked(switched.text) == {"call_taker": "2", "officer": "no_officer"}
    assert textarea(switched.text, "comment") == "Merci <b>&</b> bravo"
    assert "<b>" not in switched.text  # escaped, not injected
    assert count(app, SurveyResponseRow) == 0
    back = submit(
        live_server,
        token,
        {**partial, "respect": "4", "lang": "fr", "action": "lang:en"},
        csrf=csrf_of(switched.text),
    )
    assert lang_of(back.text) == "en"
    assert checked(back.text) == {"call_taker": "2", "officer": "no_officer", "respect": "4"}
    done = submit(live_server, token, {**partial, "lang": "fr"}, csrf=csrf_of(back.text))
    assert done.status_code == 303
    with app.db.transaction() as session:
        assert session.scalars(select(SurveyResponseRow.language)).one() == "fr"


def test_at_least_one_answer_is_required(
    app: Application, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation()

    empty = submit(live_server, token, {"comment": "   \r\n  "})

    assert empty.status_code == 422
    assert "Answer at least one question or write a comment." in empty.text
    assert '<fieldset class="question" aria-describedby="err-form">' in empty.text
    assert 'id="err-form"' in empty.text
    assert count(app, SurveyResponseRow) == 0
    comment_only = submit(live_server, token, {"comment": "Only a comment."})
    assert comment_only.status_code == 303


def test_comment_longer_than_1000_characters_is_refused_with_its_length(
    app: Application, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation()

    too_long = submit(live_server, token, {"overall": "3", "comment": "x" * 1001})

    assert too_long.status_code == 422
    assert "Your comment is 1001 characters long" in too_long.text
    assert 'aria-describedby="hint-comment err-comment"' in too_long.text
    assert 'aria-invalid="true"' in too_long.text
    assert checked(too_long.text) == {"overall": "3"}  # answers kept
    assert count(app, SurveyResponseRow) == 0
    # Line breaks count once, as the browser's maxlength counts them.
    exact = submit(live_server, token, {"comment": "x" * 498 + "\r\n" + "y" * 501})
    assert exact.status_code == 303


@pytest.mark.parametrize(
    "fields",
    [{"overall": "6"}, {"overall": "0"}, {"call_taker": "no_officer"}, {"respect": "4.5"}],
)
def test_values_outside_the_scale_are_refused(
    app: Application, live_server: InProcessServer, new_invitation: Invite, fields: dict[str, str]
) -> None:
    token = new_invitation()

    response = submit(live_server, token, fields)

    assert response.status_code == 422
    assert "Choose one of the answers shown." in response.text
    assert count(app, SurveyResponseRow) == 0


def test_oversized_form_is_refused(
    app: Application, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation()

    response = submit(live_server, token, {"overall": "3", "comment": "x" * 100_000})

    assert response.status_code == 413
    assert count(app, SurveyResponseRow) == 0


def submit_at_once(server: InProcessServer, token: str, csrf: str, scores: list[str]) -> list[int]:
    """Post one submission per score, all released at the same moment."""
    barrier = threading.Barrier(len(scores))
    statuses: list[int] = []

    def post(score: str) -> None:
        barrier.wait()
        statuses.append(submit(server, token, {"overall": score}, csrf=csrf).status_code)

    threads = [threading.Thread(target=post, args=(score,)) for score in scores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(statuses)


def test_concurrent_submissions_record_exactly_one_response(
    app: Application, live_server: InProcessServer, new_invitation: Invite
) -> None:
    for _ in range(3):
        token = new_invitation()
        csrf = csrf_of(open_form(live_server, token).text)

        statuses = submit_at_once(live_server, token, csrf, ["1", "2", "3", "4"])

        assert statuses == [303, 409, 409, 409]
    assert count(app, SurveyResponseRow) == 3
    assert count(app, SurveyAnswerRow) == 3


def test_call_reclassified_to_an_excluded_type_closes_its_link(
    app: Application, live_server: InProcessServer, new_invitation: Invite, auth: dict[str, str]
) -> None:
    token = new_invitation(incident="I-RECLASS")
    csrf = csrf_of(open_form(live_server, token).text)

    post_event(
        live_server.url,
        auth,
        incident_id="I-RECLASS",
        occurred_at="2026-01-16T09:30:00-05:00",
        type="call.updated",
        call_type={"code": "SEXASSLT"},
    )

    assert httpx.get(f"{live_server.url}/s/{token}").status_code == 410
    assert submit(live_server, token, {"overall": "5"}, csrf=csrf).status_code == 410
    assert count(app, SurveyResponseRow) == 0


# --- headers and limits -----------------------------------------------------------------


def test_strict_security_headers_on_every_response(
    live_server: InProcessServer, new_invitation: Invite, auth: dict[str, str]
) -> None:
    token = new_invitation()
    responses = [
        httpx.get(f"{live_server.url}/s/{token}"),
        httpx.get(f"{live_server.url}/s/AAAAAAAAAAAAAAAAAAAAAA"),
        httpx.post(f"{live_server.url}/s/{token}", data={}),
        httpx.get(f"{live_server.url}/feedback"),
        httpx.get(f"{live_server.url}/static/survey.css"),
        httpx.get(f"{live_server.url}/healthz"),
        httpx.get(f"{live_server.url}/no/such/page"),
        httpx.post(f"{live_server.url}/api/v1/cad/events", json={}),
        httpx.post(f"{live_server.url}/api/v1/cad/events", json={}, headers=auth),
    ]
    for response in responses:
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp, response.url
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "camera=()" in headers["permissions-policy"]
        assert headers["x-frame-options"] == "DENY"
    page = responses[0]
    assert page.headers["cache-control"] == "no-store"
    assert "set-cookie" not in page.headers  # no tracking, no session on the survey
    assert "<script" not in page.text
    assert "style=" not in page.text
    assert re.findall(r'(?:href|src|action)="(https?:)?//', page.text) == []


def test_token_guessing_is_rate_limited_per_client(
    app: Application, clock: VirtualClock, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation()
    limit = SurveyLimits().token_guesses

    guesses = [httpx.get(f"{live_server.url}/s/{n:022d}").status_code for n in range(limit.hits)]
    blocked_guess = httpx.get(f"{live_server.url}/s/{'B' * 22}")
    blocked_real = httpx.get(f"{live_server.url}/s/{token}")
    clock.advance(limit.window)
    next_window = httpx.get(f"{live_server.url}/s/{token}")

    assert set(guesses) == {404}
    assert blocked_guess.status_code == 429
    assert "Too many attempts" in blocked_guess.text
    # Once blocked, a real token gets the same answer: no way to tell a hit from a miss.
    assert blocked_real.status_code == 429
    assert next_window.status_code == 200
    with app.db.transaction() as session:
        clients = session.scalars(select(WebRateHitRow.client_hash)).all()
    assert clients and all("127.0.0.1" not in c for c in clients)  # no address stored


def test_reopening_a_real_link_counts_no_guess_and_writes_nothing(
    app: Application, live_server: InProcessServer, new_invitation: Invite
) -> None:
    token = new_invitation()
    open_form(live_server, token)  # the first opening is recorded
    with app.db.transaction() as session:
        opened = session.scalar(
            select(SurveyInvitationRow.opened_at).where(
                SurveyInvitationRow.token_hash == token_hash(token)
            )
        )

    reopened = [
        httpx.get(f"{live_server.url}/s/{token}").status_code
        for _ in range(SurveyLimits().token_guesses.hits + 5)
    ]

    assert set(reopened) == {200}  # a respondent reloading the page is not a guesser
    assert count(app, WebRateHitRow) == 0  # a page view of a real link writes no counter
    with app.db.transaction() as session:
        assert session.scalar(select(SurveyInvitationRow.opened_at)) == opened


# --- the landline page ------------------------------------------------------------------


class Landline:
    """A browser-like client of the landline page (keeps its cookie)."""

    def __init__(self, server: InProcessServer) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.url)

    def open(self, **params: str) -> httpx.Response:
        response = self.client.get("/feedback", params=params)
        assert response.status_code == 200
        return response

    def send(self, case_number: str, **fields: str) -> httpx.Response:
        csrf = csrf_of(self.open().text)
        data = {
            "csrf_token": csrf,
            "lang": "en",
            "action": "submit",
            "case_number": case_number,
            **ANSWERS,
            **fields,
        }
        return self.client.post("/feedback", data=data)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def landline(live_server: InProcessServer) -> Any:
    client = Landline(live_server)
    yield client
    client.close()


def landline_responses(app: Application) -> list[tuple[str, str]]:
    with app.db.transaction() as session:
        rows = session.execute(
            select(CallRow.case_number, SurveyResponseRow.channel).join(
                CallRow, CallRow.id == SurveyResponseRow.call_id
            )
        ).all()
    return [(str(case), str(channel)) for case, channel in rows]


def test_landline_feedback_is_recorded_for_a_recent_call_without_a_text(
    app: Application, live_server: InProcessServer, auth: dict[str, str], landline: Landline
) -> None:
    post_call(live_server.url, auth, incident="I-L1", case_number="26-00500", phone=None)

    response = landline.send(" 26-00500 ")

    assert response.status_code == 303
    assert response.headers["location"] == "/feedback/thanks?lang=en"
    assert landline_responses(app) == [("26-00500", "landline")]


def test_landline_page_gives_the_same_answer_for_an_excluded_call_and_a_made_up_number(
    app: Application, live_server: InProcessServer, auth: dict[str, str], landline: Landline
) -> None:
    post_call(
        live_server.url,
        auth,
        incident="I-SA",
        case_number="26-00666",
        call_type="SEXASSLT",
        phone=None,
    )
    post_call(live_server.url, auth, incident="I-UNK", case_number="26-00667", call_type="NEWCODE")
    post_call(live_server.url, auth, incident="I-P2", case_number="26-00668", priority=2)

    answers = [landline.send(case) for case in ("26-00666", "26-00667", "26-00668", "99-99999")]

    assert {r.status_code for r in answers} == {303}
    assert {r.headers["location"] for r in answers} == {"/feedback/thanks?lang=en"}
    pages = {landline.client.get(r.headers["location"]).text for r in answers}
    assert len(pages) == 1
    assert "If this case number matches a call" in pages.pop()
    assert landline_responses(app) == []


def test_landline_feedback_is_refused_for_a_call_not_cleared_recently(
    app: Application,
    clock: VirtualClock,
    live_server: InProcessServer,
    auth: dict[str, str],
    landline: Landline,
) -> None:
    post_call(live_server.url, auth, incident="I-OLD", case_number="26-00700", phone=None)
    post_call(
        live_server.url, auth, incident="I-OPEN", case_number="26-00701", phone=None, cleared=False
    )
    clock.advance(app.policy.survey_expires + timedelta(hours=1))
    post_call(live_server.url, auth, incident="I-OPEN2", case_number="26-00702", phone=None)

    for case in ("26-00700", "26-00701", "26-00702"):
        assert landline.send(case).status_code == 303

    # I-OPEN2's events say 09:20 on T0, more than survey_expires ago: not recent either.
    assert landline_responses(app) == []


def test_one_response_per_call_whatever_the_channel(
    app: Application,
    live_server: InProcessServer,
    new_invitation: Invite,
    landline: Landline,
) -> None:
    token = new_invitation(case_number="26-00800")
    first = landline.send("26-00800", overall="2")
    link_after = httpx.get(f"{live_server.url}/s/{token}")
    second = landline.send("26-00800", overall="5")

    assert first.status_code == second.status_code == 303
    assert link_after.status_code == 409
    assert landline_responses(app) == [("26-00800", "landline")]
    with app.db.transaction() as session:
        assert session.scalars(
            select(SurveyAnswerRow.score).where(SurveyAnswerRow.question_id == "overall")
        ).all() == [2]


def test_landline_page_validates_and_keeps_what_was_entered(
    app: Application, live_server: InProcessServer, landline: Landline
) -> None:
    missing = landline.send("", overall="4")
    no_answer = landline.send("26-00001", **{key: " " for key in ANSWERS})
    bad = landline.send("26 00001 <script>", overall="4")

    assert missing.status_code == 422
    assert "Enter the case number of your call." in missing.text
    assert 'aria-describedby="hint-case_number err-case_number"' in missing.text
    assert no_answer.status_code == 422
    assert "Answer at least one question" in no_answer.text
    assert 'value="26-00001"' in no_answer.text
    assert bad.status_code == 422
    assert "for example 26-00123" in bad.text
    assert "<script>" not in bad.text
    assert landline_responses(app) == []


@pytest.mark.database_blind  # re-renders the form; stores and reads nothing
def test_landline_language_switch_keeps_the_case_number_and_answers(
    landline: Landline,
) -> None:
    csrf = csrf_of(landline.open().text)

    switched = landline.client.post(
        "/feedback",
        data={
            "csrf_token": csrf,
            "lang": "en",
            "action": "lang:fr",
            "case_number": "26-00042",
            "respect": "3",
        },
    )

    assert switched.status_code == 200
    assert lang_of(switched.text) == "fr"
    assert 'value="26-00042"' in switched.text
    assert checked(switched.text) == {"respect": "3"}
    assert "Numéro de dossier" in switched.text


def test_landline_post_without_its_cookie_or_token_is_refused(
    app: Application, live_server: InProcessServer, auth: dict[str, str], landline: Landline
) -> None:
    post_call(live_server.url, auth, incident="I-C", case_number="26-00900", phone=None)
    csrf = csrf_of(landline.open().text)
    data = {"csrf_token": csrf, "lang": "en", "case_number": "26-00900", "overall": "4"}

    cookieless = httpx.post(f"{live_server.url}/feedback", data=data)
    tokenless = landline.client.post("/feedback", data={**data, "csrf_token": ""})

    assert cookieless.status_code == 403
    assert tokenless.status_code == 403
    assert landline_responses(app) == []
    set_cookie = landline.open().headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie


def test_landline_attempts_are_rate_limited_per_client(
    app: Application, live_server: InProcessServer, auth: dict[str, str], landline: Landline
) -> None:
    post_call(live_server.url, auth, incident="I-R", case_number="26-00950", phone=None)
    limit = SurveyLimits().landline_attempts.hits

    tries = [landline.send(f"99-{n:05d}").status_code for n in range(limit)]
    blocked = landline.send("26-00950")

    assert set(tries) == {303}
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.text
    assert landline_responses(app) == []  # not even the real one got through
