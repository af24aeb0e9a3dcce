"""The dashboard's figures on a known week (tests/support/known_week.py), on SQLite and
PostgreSQL: the overview page, its CSV export and the database agree with the figures
worked out by hand, every one of them; the filters narrow them; comments are shown
redacted, newest first; and another agency's rows never appear.
"""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from callerconnect.adapters.db.tables import (
    AuditLogRow,
    CallRow,
    DeadLetterRow,
    InboundMessageRow,
    OutboxRow,
    SurveyAnswerRow,
    SurveyResponseRow,
)
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.web.app import create_app
from tests.support.dashboard import accounts_of, add_role_accounts, signed_in_client
from tests.support.known_week import CALLS, WEEK, build_known_week, expected_metrics

PERIOD = f"from={WEEK[0]}&to={WEEK[1]}"


@pytest.fixture
def app(app_factory: Any, database_url: str) -> Application:
    return app_factory(database_url)


@pytest.fixture
def api(app: Application, clock: VirtualClock, console: ConsoleProvider) -> FastAPI:
    api = create_app(app)
    build_known_week(api, app, clock, console)
    add_role_accounts(api)
    return api


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte-order mark"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def as_number(text: str) -> Any:
    if text == "":
        return None
    if text == "suppressed":
        return text
    return float(text)


def spaced(text: str) -> str:
    """Babel puts (narrow) no-break spaces before % in French: compare them as spaces."""
    return re.sub(r"[\u00a0\u202f]", " ", text)


def page_metrics(page: str) -> dict[str, str]:
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'data-metric="([a-z0-9_]+)">([^<]*)<', page)
    }


def test_overview_page_export_and_database_agree_on_a_known_week(
    api: FastAPI, app: Application
) -> None:
    expected = expected_metrics()
    client = signed_in_client(api, "analyst@example.org")

    rows = read_csv(client.get(f"/dashboard/export/overview.csv?{PERIOD}").content)
    assert rows[0] == ["metric", "value"]
    exported = {metric: as_number(value) for metric, value in rows[1:]}
    for metric, value in expected.items():
        if isinstance(value, float):
            assert exported[metric] == pytest.approx(value, abs=0.01), metric
        else:
            assert exported[metric] == value, metric
    # the contract's names are all there, in its order first
    assert [r[0] for r in rows[1:14]] == [
        "calls_received", "calls_eligible", "calls_texted", "confirmations_sent",
        "delay_notices_sent", "surveys_sent", "surveys_opened", "surveys_completed",
        "texts_delivered", "texts_failed", "opt_outs", "median_seconds_to_confirmation",
        "p90_seconds_to_confirmation",
    ]  # fmt: skip

    shown = page_metrics(client.get(f"/dashboard?{PERIOD}&lang=en").text)
    assert shown["calls_received"] == "11" and shown["calls_texted"] == "8"
    assert shown["surveys_completed"] == "6" and shown["opt_outs"] == "1"
    assert shown["median_seconds_to_confirmation"] == "60 s"
    rate = f"{expected['response_rate'] * 100:.1f}"
    assert spaced(shown["response_rate"]) == f"{rate} %"
    french = page_metrics(client.get(f"/dashboard?{PERIOD}&lang=fr").text)
    assert spaced(french["response_rate"]) == rate.replace(".", ",") + " %"

    with app.db.transaction() as session:
        sent = session.scalar(
            select(func.count()).where(OutboxRow.sent_at.is_not(None), OutboxRow.kind != "reply")
        )
        calls = session.scalar(select(func.count()).select_from(CallRow))
        responses = session.scalar(select(func.count()).select_from(SurveyResponseRow))
        officer = list(
            session.scalars(
                select(SurveyAnswerRow.score).where(
                    SurveyAnswerRow.question_id == "officer", SurveyAnswerRow.score.is_not(None)
                )
            )
        )
    assert sent == expected["texts_sent"] == exported["texts_sent"]
    assert calls == expected["calls_received"]
    assert responses == expected["surveys_completed"]
    assert sum(officer) / len(officer) == pytest.approx(exported["officer_mean"], abs=0.01)

    # breakdowns: a district with fewer than 5 responses shows no score
    by_district = read_csv(client.get(f"/dashboard/export/by_district.csv?{PERIOD}").content)
    header, *lines = by_district
    table = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    for district in ("Central", "East", "West"):
        mine = [c for c in CALLS if c.district == district]
        assert int(table[district]["calls_received"]) == len(mine)
        assert int(table[district]["calls_texted"]) == sum(c.texted for c in mine)
        assert int(table[district]["surveys_completed"]) == sum(bool(c.answers) for c in mine)
        assert table[district]["call_taker_share_positive"] == "suppressed"
    reasons = read_csv(client.get(f"/dashboard/export/reasons.csv?{PERIOD}").content)
    not_texted = {line[0]: int(line[2]) for line in reasons[1:]}
    assert not_texted["ineligible:priority"] == 1
    assert not_texted["ineligible:unknown_call_type"] == 1
    assert sum(v for k, v in not_texted.items() if k.startswith("excluded:")) == 1
    assert sum(not_texted.values()) == 3

    scores = read_csv(client.get(f"/dashboard/export/scores.csv?{PERIOD}").content)
    for question, answers, share, mean in scores[1:]:
        assert int(answers) == expected[f"{question}_answers"]
        assert as_number(share) == pytest.approx(expected[f"{question}_share_positive"], abs=1e-4)
        assert as_number(mean) == pytest.approx(expected[f"{question}_mean"], abs=0.01)
    trend = read_csv(client.get(f"/dashboard/export/trend.csv?{PERIOD}").content)
    assert len(trend) == 2  # the known week is one week, starting on Monday
    week = dict(zip(trend[0], trend[1], strict=True))
    assert week["week"] == WEEK[0] and int(week["responses"]) == expected["surveys_completed"]
    for question in ("call_taker", "officer", "overall"):
        for figure in ("share_positive", "mean"):
            assert as_number(week[f"{question}_{figure}"]) == pytest.approx(
                expected[f"{question}_{figure}"], abs=0.01
            )
    by_hour = read_csv(client.get(f"/dashboard/export/by_hour.csv?{PERIOD}").content)
    assert {line[0]: int(line[1]) for line in by_hour[1:]} == {
        "10": sum(c.hour == 10 for c in CALLS),
        "13": sum(c.hour == 13 for c in CALLS),
    }

    page = html.unescape(client.get(f"/dashboard?{PERIOD}&lang=en").text)
    assert page.count("too few to show") >= 3
    assert "<svg" in page and 'role="img"' in page


def test_filters_narrow_page_and_export_alike(api: FastAPI) -> None:
    client = signed_in_client(api, "analyst@example.org")
    for query, calls in [
        ("district=Central", [c for c in CALLS if c.district == "Central"]),
        ("district=East&district=West", [c for c in CALLS if c.district != "Central"]),
        ("priority=3", [c for c in CALLS if c.priority == 3]),
        ("call_type=THEFT&priority=4", [c for c in CALLS if (c.code, c.priority) == ("THEFT", 4)]),
        ("from=2026-01-21&to=2026-01-22", [c for c in CALLS if c.day in (21, 22)]),
        ("from=2026-01-26&to=2026-01-27", []),
    ]:
        url = query if "from=" in query else f"{PERIOD}&{query}"
        expected = expected_metrics(calls)
        rows = read_csv(client.get(f"/dashboard/export/overview.csv?{url}").content)
        exported = {metric: as_number(value) for metric, value in rows[1:]}
        shown = page_metrics(client.get(f"/dashboard?{url}&lang=en").text)
        for metric in ("calls_received", "calls_texted", "surveys_completed", "opt_outs"):
            assert exported[metric] == expected[metric], (query, metric)
            assert shown[metric] == str(expected[metric]), (query, metric)


def test_comments_are_redacted_newest_first_with_their_ratings(
    api: FastAPI, app: Application
) -> None:
    client = signed_in_client(api, "analyst@example.org")
    page = html.unescape(client.get(f"/dashboard/comments?{PERIOD}").text)
    for secret in ("Tremblay", "613-555-0199", "jane.doe@example.com"):
        assert secret not in page
    assert "[email]" in page and "[name]" in page
    assert page.index("Merci beaucoup") < page.index("called me back")  # newest first
    exported = client.get(f"/dashboard/export/comments.csv?{PERIOD}").content.decode("utf-8-sig")
    assert "Tremblay" not in exported and "613-555-0199" not in exported
    lines = read_csv(client.get(f"/dashboard/export/comments.csv?{PERIOD}").content)
    assert len(lines) == 1 + sum(bool(c.comment) for c in CALLS)
    east = html.unescape(client.get(f"/dashboard/comments?{PERIOD}&district=East").text)
    assert "Merci beaucoup" not in east
    with app.db.transaction() as session:
        entries = list(session.scalars(select(AuditLogRow).order_by(AuditLogRow.id)))
    views = [e for e in entries if e.action == "view:comments"]
    exports = [e for e in entries if e.action == "export:comments.csv"]
    assert len(views) == 2 and len(exports) == 2
    assert views[-1].user_email == "analyst@example.org"
    assert '"district": ["East"]' in (views[-1].filters or "")
    assert views[-1].client_address == "testclient"


def test_another_agencys_rows_never_appear(api: FastAPI, app: Application) -> None:
    client = signed_in_client(api, "supervisor@example.org")
    before = client.get(f"/dashboard/export/overview.csv?{PERIOD}").content
    comments_before = client.get(f"/dashboard/export/comments.csv?{PERIOD}").content
    first = app.clock.now()
    with app.db.transaction() as session:
        call = session.scalar(select(CallRow).where(CallRow.incident_id == CALLS[0].incident))
        assert call is not None
        other = CallRow(
            agency_id="other",
            incident_id=CALLS[0].incident,  # the same incident id, in another agency
            priority=4,
            call_type_code="THEFT",
            district="Central",
            reason="eligible",
            first_fact_at=call.first_fact_at,
            received_at=call.received_at,
            eligible_at=call.eligible_at,
            created_at=first,
            updated_at=first,
        )
        session.add(other)
        session.flush()
        session.add(
            OutboxRow(
                agency_id="other",
                dedupe_key="other:x:confirmation:0",
                call_id=other.id,
                kind="confirmation",
                status="failed",
                send_rank=0,
                not_before=first,
                expires_at=first,
                sent_at=call.received_at,
                created_at=first,
                updated_at=first,
            )
        )
        response = SurveyResponseRow(
            agency_id="other",
            call_id=other.id,
            channel="link",
            survey_version="1",
            language="en",
            answered_at=first,
            comment_encrypted=app.vault.encrypt("otheragency comment"),
        )
        session.add(response)
        session.flush()
        session.add(SurveyAnswerRow(response_id=response.id, question_id="overall", score=1))
        session.add(
            InboundMessageRow(
                agency_id="other",
                provider="console",
                provider_message_id="other-1",
                phone_masked="+1613***0000",
                body_encrypted=app.vault.encrypt("otheragency reply"),
                classification="other",
                flagged=True,
                received_at=first,
            )
        )
        session.add(
            DeadLetterRow(
                agency_id="other",
                received_at=first,
                source="http",
                payload_encrypted=app.vault.encrypt("{}"),
                error_code="otheragency_error",
                error="x",
                status="new",
            )
        )
    assert client.get(f"/dashboard/export/overview.csv?{PERIOD}").content == before
    assert client.get(f"/dashboard/export/comments.csv?{PERIOD}").content == comments_before
    # asking for the other agency by URL changes nothing for an agency's account
    assert client.get(f"/dashboard/export/overview.csv?{PERIOD}&agency=other").content == before
    queues = client.get("/dashboard/queues").text
    assert "otheragency" not in queues
    comments = client.get(f"/dashboard/comments?{PERIOD}").text
    assert "otheragency" not in comments

    # an admin of every agency chooses which one to see
    accounts_of(api).add("all@example.org", "admin", "correct horse battery staple", "*")
    everyone = signed_in_client(api, "all@example.org")
    theirs = read_csv(everyone.get(f"/dashboard/export/overview.csv?{PERIOD}&agency=other").content)
    assert dict((r[0], r[1]) for r in theirs[1:])["calls_received"] == "1"
    assert "otheragency reply" in everyone.get("/dashboard/queues?agency=other").text
    assert "otheragency" not in everyone.get("/dashboard/queues").text
