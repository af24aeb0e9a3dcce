"""Hostile input over real HTTP: oversized and malformed bodies, script in comments, SQL
in every parameter that reaches a query, forged and replayed webhooks, token guessing,
and the security headers on every kind of answer.

The threat each test answers is in docs/security.md. Tests whose outcome cannot depend
on the database run on SQLite only (``sqlite_server``); those about what reaches the
database run on SQLite and PostgreSQL (``app`` / ``live_server``).
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, inspect
from sqlalchemy import select as sql_select

from callerconnect.adapters.crypto import token_hash
from callerconnect.adapters.db.tables import (
    Base,
    CadEventRow,
    CallRow,
    DeadLetterRow,
    InboundMessageRow,
    OutboxRow,
    PendingReceiptRow,
    SurveyInvitationRow,
    SurveyResponseRow,
)
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.queries import queues
from callerconnect.service.survey import SurveyLimits
from callerconnect.web import survey_csrf, survey_forms
from callerconnect.web import webhooks as webhooks_web
from callerconnect.web.app import create_app
from callerconnect.web.intake import MAX_JSON_DEPTH
from tests.support.live_server import LiveServer
from tests.support.survey import ANSWERS, csrf_of, invite
from tests.support.twilio_webhooks import inbound_form, status_form, twilio_signature

PUBLIC = "https://callerconnect.example.org"
TWILIO_TOKEN = "hostile-twilio-auth-token-0123456789ab"
INTAKE_LIMIT = 100_000
ENV = {
    "CALLERCONNECT_PUBLIC_BASE_URL": PUBLIC,
    "CALLERCONNECT_INTAKE__MAX_BODY_BYTES": str(INTAKE_LIMIT),
    "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": TWILIO_TOKEN,
}
STATUS = "/webhooks/twilio/status"
INBOUND = "/webhooks/twilio/inbound"
CALLER = "+16135550142"
SID = "SM" + "1" * 32
SQL = ["' OR 1=1 --", "'; DROP TABLE calls; --"]
SCRIPT = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "callerconnect" / "web" / "templates"

Factory = Callable[..., Application]


@pytest.fixture
def app(app_factory: Factory, database_url: str) -> Application:
    return app_factory(database_url, **ENV)


@pytest.fixture
def sqlite_app(app_factory: Factory, sqlite_url: str) -> Application:
    return app_factory(sqlite_url, **ENV)


@pytest.fixture
def sqlite_server(sqlite_app: Application) -> Iterator[LiveServer]:
    with LiveServer(create_app(sqlite_app)) as server:
        yield server


def count(app: Application, table: Any) -> int:
    with app.db.transaction() as session:
        return int(session.scalar(sql_select(func.count()).select_from(table)) or 0)


def event(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "incident_id": "I-1",
        "occurred_at": "2026-01-16T09:00:00-05:00",
        "type": "call.received",
        "priority": 4,
        "case_number": "26-00001",
        "call_type": {"code": "THEFT"},
        "district": "Central",
        "caller": {"phone": "613-555-0142", "language": "en"},
        **fields,
    }


def post_events(server: LiveServer, auth: dict[str, str], body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/cad/events", json=body, headers=auth, timeout=10)


def signed_post(server: LiveServer, path: str, form: dict[str, str], **kw: Any) -> httpx.Response:
    """POST as Twilio does: the form, signed over the public URL (and its query)."""
    query = kw.pop("query", "")
    url = PUBLIC + path + (f"?{query}" if query else "")
    signature = (
        kw.pop("signature") if "signature" in kw else twilio_signature(TWILIO_TOKEN, url, form)
    )
    return httpx.post(
        server.url + path + (f"?{query}" if query else ""),
        data=form,
        headers={"X-Twilio-Signature": signature},
        timeout=10,
        **kw,
    )


# --- oversized bodies --------------------------------------------------------------------


@dataclass
class RawAnswer:
    status: int
    head: str
    body: bytes
    sent: int  # body bytes the client had sent when the answer came
    closed: bool  # the server closed the connection (it stopped reading)


def send_slowly(
    server: LiveServer,
    path: str,
    headers: dict[str, str],
    *,
    total: int,
    declared: int | None = None,
    chunk: int = 16 * 1024,
) -> RawAnswer:
    """Send a body of ``total`` bytes a chunk at a time, watching for an early answer:
    with ``declared`` as its Content-Length, else chunked. Stops sending as soon as the
    server answers, and reads the answer to the end of the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(
        f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"
    )
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sent = 0
    piece = b"x" * chunk
    while sent < total:
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            break
        data = piece if declared is not None else b"%x\r\n%s\r\n" % (len(piece), piece)
        try:
            sock.sendall(data)
        except OSError:  # reset: the server has answered and closed
            break
        sent += len(piece)
    if declared is None and sent >= total:
        with contextlib.suppress(OSError):
            sock.sendall(b"0\r\n\r\n")
    received = b""
    closed = False
    sock.settimeout(5)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            received += data
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        closed = False
    finally:
        sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return RawAnswer(status, head.decode("latin-1"), body, sent, closed)


@dataclass(frozen=True)
class Door:
    path: str
    limit: int
    auth: bool = False


DOORS = [
    Door("/api/v1/cad/events", INTAKE_LIMIT, auth=True),
    Door("/api/v1/cad/eido", INTAKE_LIMIT, auth=True),
    Door(STATUS, webhooks_web.MAX_BODY),
    Door(INBOUND, webhooks_web.MAX_BODY),
    Door("/s/AAAAAAAAAAAAAAAAAAAAAA", survey_forms.MAX_FORM_BYTES),
    Door("/feedback", survey_forms.MAX_FORM_BYTES),
    Door("/healthz", 64 * 1024),  # not a POST route: refused all the same
]


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.path)
def test_declared_oversized_body_is_refused_before_it_is_sent(
    sqlite_server: LiveServer, auth: dict[str, str], door: Door
) -> None:
    headers = dict(auth) if door.auth else {}
    headers["Content-Type"] = "application/octet-stream"

    answer = send_slowly(
        sqlite_server, door.path, headers, total=20 * door.limit, declared=20 * door.limit
    )

    assert answer.status in (413, 405), answer.head
    assert answer.closed, "the server kept the connection open to read the rest"
    assert answer.sent <= door.limit, f"sent {answer.sent} bytes before the answer"
    assert re.search(r"(?im)^connection: close", answer.head)


@pytest.mark.parametrize("door", [d for d in DOORS if d.path != "/healthz"], ids=lambda d: d.path)
def test_chunked_body_growing_past_the_limit_is_cut_off_at_the_limit(
    sqlite_server: LiveServer, auth: dict[str, str], door: Door
) -> None:
    headers = dict(auth) if door.auth else {}
    headers["Content-Type"] = (
        "application/json" if door.auth else "application/x-www-form-urlencoded"
    )

    answer = send_slowly(sqlite_server, door.path, headers, total=20 * door.limit)

    assert answer.status == 413, answer.head
    assert answer.closed, "the server kept the connection open to read the rest"
    # What the client could push before the answer: the limit, plus what was in flight.
    assert answer.sent <= door.limit + 8 * 16 * 1024, f"sent {answer.sent} bytes"


def test_oversized_cad_body_is_kept_in_part_as_a_dead_letter_and_nothing_else(
    sqlite_app: Application, sqlite_server: LiveServer, auth: dict[str, str]
) -> None:
    answer = send_slowly(
        sqlite_server,
        "/api/v1/cad/events",
        {**auth, "Content-Type": "application/json"},
        total=10 * INTAKE_LIMIT,
    )

    assert answer.status == 413
    assert json.loads(answer.body)["error"]["rule"] == "maxBytes"
    assert count(sqlite_app, DeadLetterRow) == 1
    assert count(sqlite_app, CadEventRow) == 0


def test_unauthenticated_body_is_not_read_at_all(
    sqlite_app: Application, sqlite_server: LiveServer
) -> None:
    answer = send_slowly(
        sqlite_server,
        "/api/v1/cad/events",
        {"Content-Type": "application/json"},
        total=10 * INTAKE_LIMIT,
        declared=10 * INTAKE_LIMIT,
    )

    assert answer.status == 401
    assert answer.closed
    assert count(sqlite_app, DeadLetterRow) == 0


# --- malformed bodies --------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 40_000])
@pytest.mark.parametrize("path", ["/api/v1/cad/events", "/api/v1/cad/eido"])
def test_deeply_nested_json_is_refused_with_400_and_kept(
    sqlite_app: Application,
    sqlite_server: LiveServer,
    auth: dict[str, str],
    path: str,
    depth: int,
) -> None:
    # Deep inside a property nobody reads, of an otherwise valid event.
    body = json.dumps(event())[:-1] + f', "extra": {nested(depth)}}}'

    response = httpx.post(
        sqlite_server.url + path,
        content=body,
        headers={**auth, "Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["rule"] in ("maxDepth", "json")
    assert count(sqlite_app, DeadLetterRow) == 1
    assert count(sqlite_app, CallRow) == 0


def test_nesting_within_the_limit_is_accepted(
    sqlite_server: LiveServer, auth: dict[str, str]
) -> None:
    body = event(extra=json.loads(nested(MAX_JSON_DEPTH - 1)))

    assert post_events(sqlite_server, auth, body).status_code == 202


def test_body_that_is_not_utf8_is_refused_not_guessed(
    sqlite_app: Application, sqlite_server: LiveServer, auth: dict[str, str]
) -> None:
    raw = json.dumps(event(case_number="26-0000X")).encode().replace(b"X", b"\xff\xfe")

    response = httpx.post(
        f"{sqlite_server.url}/api/v1/cad/events",
        content=raw,
        headers={**auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["rule"] == "encoding"
    assert count(sqlite_app, CallRow) == 0
    assert count(sqlite_app, DeadLetterRow) == 1


STORED_FIELDS = ["event_id", "incident_id", "case_number", "district", "call_type.code"]


def with_text(field: str, text: str, n: int) -> dict[str, Any]:
    body = event(event_id=f"e-{n}", incident_id=f"I-{n}")
    if field == "call_type.code":
        body["call_type"] = {"code": text}
    else:
        body[field] = text
    return body


@pytest.mark.parametrize(
    "text",
    ["26-\u00000001", "\ud800", "a\udfffb"],
    ids=["nul", "lone-high-surrogate", "lone-low-surrogate"],
)
def test_text_no_database_can_store_is_rejected_by_field(
    app: Application, live_server: LiveServer, auth: dict[str, str], text: str
) -> None:
    batch = [with_text(field, text, n) for n, field in enumerate(STORED_FIELDS)]
    url = f"{live_server.url}/api/v1/cad/events"
    headers = {**auth, "Content-Type": "application/json"}

    # json.dumps escapes both (\u0000, \ud800), as a CAD's JSON encoder would.
    single = httpx.post(url, content=json.dumps(with_text("event_id", text, 9)), headers=headers)
    many = httpx.post(url, content=json.dumps({"events": batch}), headers=headers)

    assert single.status_code == 422, single.text
    assert single.json()["results"][0]["event_id"] == text  # echoed, escaped
    assert many.status_code == 202, many.text
    rejected = [(r["status"], r["field"], r["rule"]) for r in many.json()["results"]]
    assert rejected == [("rejected", field, "characters") for field in STORED_FIELDS]
    with app.db.transaction() as session:  # refused: at most held, never texted
        reasons = set(session.scalars(sql_select(CallRow.reason)).all())
    assert reasons <= {"held:unreadable_event"}
    assert count(app, OutboxRow) == 0
    assert count(app, DeadLetterRow) == 1 + len(STORED_FIELDS)  # kept, to see and replay


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "1899-12-31T23:59:59Z"]
)
def test_moments_at_the_ends_of_the_calendar_are_refused_not_crashed(
    sqlite_app: Application, sqlite_server: LiveServer, auth: dict[str, str], moment: str
) -> None:
    response = post_events(sqlite_server, auth, event(occurred_at=moment))

    assert response.status_code == 422, response.text
    assert (response.json()["error"]["field"], response.json()["error"]["rule"]) == (
        "occurred_at",
        "format",
    )
    assert count(sqlite_app, CallRow) == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/s/%FF%FE%FD%FC%FB%FA%F9%F8%F7%F6%F5%F4%ED%A0%80", None, 404),
        ("GET", "/feedback?lang=%FF%00%ED%A0%80", None, 200),
        ("POST", "/s/AAAAAAAAAAAAAAAAAAAAAA", b"comment=%FF%FE&overall=%00", 404),
        ("POST", "/feedback", b"case_number=%FF%ED%A0%80&csrf_token=%00%FF", 403),
        ("POST", STATUS, b"MessageSid=%FF&MessageStatus=%00\xff", 403),
    ],
    ids=["token", "lang", "survey-form", "landline-form", "webhook-form"],
)
def test_bytes_that_are_not_utf8_in_urls_and_forms_get_no_5xx(
    sqlite_server: LiveServer, method: str, path: str, body: bytes | None, expected: int
) -> None:
    response = httpx.request(
        method,
        sqlite_server.url + path,
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept-Language": "fr;q=nan, en;q=inf",
        },
    )

    assert response.status_code == expected, response.text


def test_webhook_with_a_file_part_is_refused_as_unsigned(
    sqlite_app: Application, sqlite_server: LiveServer
) -> None:
    response = httpx.post(
        sqlite_server.url + INBOUND,
        data={"MessageSid": "SM1", "From": CALLER},
        files={"Body": ("stop.txt", b"STOP", "text/plain")},
        headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
    )

    assert response.status_code == 403
    assert count(sqlite_app, InboundMessageRow) == 0


# --- script in what people type ----------------------------------------------------------


@pytest.fixture
def new_invitation(
    sqlite_app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    sqlite_server: LiveServer,
    auth: dict[str, str],
) -> Callable[[], str]:
    numbers = iter(range(1, 1000))

    def make() -> str:
        n = next(numbers)
        return invite(
            sqlite_app,
            clock,
            console,
            sqlite_server.url,
            auth,
            incident=f"I-{n}",
            case_number=f"26-{n:05d}",
        )

    return make


@contextlib.contextmanager
def landline_browser(server: LiveServer) -> Iterator[tuple[httpx.Client, str]]:
    """A client that opened the landline page: it sends the page's cookie back (marked
    Secure, as public_base_url is https, so it is passed by hand over the test's http)
    and has the form's CSRF token."""
    with httpx.Client(base_url=server.url) as browser:
        page = browser.get("/feedback")
        browser.headers["Cookie"] = (
            f"{survey_csrf.LANDLINE_COOKIE}={page.cookies[survey_csrf.LANDLINE_COOKIE]}"
        )
        yield browser, csrf_of(page.text)


def assert_escaped(page: str, script: str) -> None:
    """The text is on the page as text: shown (once unescaped), never as markup."""
    assert script not in page
    assert "<img" not in page and "<script" not in page
    assert script in html.unescape(page)


@pytest.mark.parametrize("script", SCRIPT, ids=["script", "img-onerror"])
def test_script_in_a_comment_comes_back_escaped_after_a_validation_error(
    sqlite_server: LiveServer, new_invitation: Callable[[], str], script: str
) -> None:
    token = new_invitation()
    page = httpx.get(f"{sqlite_server.url}/s/{token}").text
    form = {"csrf_token": csrf_of(page), "lang": "en", "action": "submit"}

    response = httpx.post(
        f"{sqlite_server.url}/s/{token}", data={**form, "overall": "9", "comment": script}
    )

    assert response.status_code == 422
    assert_escaped(response.text, script)


@pytest.mark.parametrize("script", SCRIPT, ids=["script", "img-onerror"])
def test_script_in_a_comment_comes_back_escaped_after_a_language_switch(
    sqlite_server: LiveServer, new_invitation: Callable[[], str], script: str
) -> None:
    token = new_invitation()
    page = httpx.get(f"{sqlite_server.url}/s/{token}").text
    form = {"csrf_token": csrf_of(page), "lang": script, "action": "lang:fr", "comment": script}

    response = httpx.post(f"{sqlite_server.url}/s/{token}", data=form)

    assert response.status_code == 200
    assert '<html lang="fr">' in response.text
    assert_escaped(response.text, script)


@pytest.mark.parametrize("script", SCRIPT, ids=["script", "img-onerror"])
def test_script_in_the_landline_form_comes_back_escaped(
    sqlite_server: LiveServer, script: str
) -> None:
    with landline_browser(sqlite_server) as (browser, csrf):
        form = {"csrf_token": csrf, "lang": "en", "action": "submit", "comment": script}

        invalid = browser.post("/feedback", data={**form, "case_number": script})
        switched = browser.post(
            "/feedback", data={**form, "case_number": script, "action": "lang:fr"}
        )

    assert invalid.status_code == 422
    assert switched.status_code == 200
    for page in (invalid.text, switched.text):
        assert_escaped(page, script)


@pytest.mark.parametrize("script", SCRIPT, ids=["script", "img-onerror"])
def test_script_in_the_url_is_never_reflected_unescaped(
    sqlite_server: LiveServer, script: str
) -> None:
    for path in (f"/s/{quote(script, safe='')}", f"/s/{quote(script, safe='')}/thanks"):
        response = httpx.get(sqlite_server.url + path, params={"lang": script})
        assert response.status_code == 404
        assert "<img" not in response.text and "<script" not in response.text


def test_templates_never_turn_escaping_off() -> None:
    templates = list(TEMPLATES.rglob("*.html"))
    assert templates
    for template in templates:
        source = template.read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b|autoescape\s+false|Markup", source), template


def test_a_recorded_comment_is_stored_encrypted_and_never_shown_again(
    sqlite_app: Application, sqlite_server: LiveServer, new_invitation: Callable[[], str]
) -> None:
    token = new_invitation()
    csrf = csrf_of(httpx.get(f"{sqlite_server.url}/s/{token}").text)
    form = {"csrf_token": csrf, "lang": "en", "action": "submit", "comment": SCRIPT[0]}

    response = httpx.post(f"{sqlite_server.url}/s/{token}", data=form, follow_redirects=True)

    assert response.status_code == 200
    assert "alert(1)" not in response.text
    with sqlite_app.db.transaction() as session:
        stored = session.scalar(sql_select(SurveyResponseRow.comment_encrypted))
    assert stored is not None and "alert" not in stored
    assert sqlite_app.vault.decrypt(stored) == SCRIPT[0]


# --- SQL in every parameter that reaches a query -----------------------------------------


def assert_tables_intact(app: Application) -> None:
    with app.db.transaction() as session:
        names = set(inspect(session.connection()).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= names
        for table in Base.metadata.sorted_tables:
            session.scalar(sql_select(func.count()).select_from(table))


@pytest.mark.parametrize("sql", SQL, ids=["or-1-1", "drop-table"])
def test_sql_in_cad_fields_is_stored_as_text_and_matches_nothing_else(
    app: Application, live_server: LiveServer, auth: dict[str, str], sql: str
) -> None:
    control = post_events(live_server, auth, event(event_id="e-0", incident_id="I-0"))
    assert control.status_code == 202
    body = event(
        event_id=sql,
        incident_id=sql,
        case_number="26-00001",  # case numbers have a strict pattern of their own
        call_type={"code": sql, "description": sql},
        district=sql,
    )

    first = post_events(live_server, auth, body)
    again = post_events(live_server, auth, body)
    other = post_events(
        live_server,
        auth,
        {
            "event_id": sql + "x",
            "incident_id": sql,
            "occurred_at": "2026-01-16T09:05:00-05:00",
            "type": "call.updated",
            "priority": 4,
        },
    )

    assert first.json()["results"] == [{"event_id": sql, "status": "accepted"}]
    assert again.json()["results"] == [{"event_id": sql, "status": "duplicate"}]
    assert other.json()["results"][0]["status"] == "accepted"
    assert_tables_intact(app)
    with app.db.transaction() as session:
        calls = {row.incident_id: row for row in session.scalars(sql_select(CallRow))}
    assert set(calls) == {"I-0", sql}
    assert (calls[sql].case_number, calls[sql].district) == ("26-00001", sql)
    assert calls[sql].call_type_code == sql
    assert calls[sql].reason == "ineligible:unknown_call_type"
    assert calls["I-0"].reason != "ineligible:unknown_call_type"  # untouched
    assert [t.code for t in queues.unknown_call_types(app.db, app.settings.agency_id)] == [sql]
    assert count(app, CadEventRow) == 3


@pytest.mark.parametrize("sql", SQL, ids=["or-1-1", "drop-table"])
def test_sql_in_survey_tokens_and_case_numbers_finds_nothing(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    live_server: LiveServer,
    auth: dict[str, str],
    sql: str,
) -> None:
    token = invite(app, clock, console, live_server.url, auth, incident="I-1")
    path = f"/s/{quote(sql, safe='')}"

    answers = [
        httpx.get(live_server.url + path),
        httpx.post(live_server.url + path, data={**ANSWERS, "csrf_token": sql}),
        httpx.get(live_server.url + path + "/thanks"),
    ]
    with landline_browser(live_server) as (browser, csrf):
        form = {**ANSWERS, "csrf_token": csrf, "lang": "en", "action": "submit"}
        landline = [
            browser.post("/feedback", data={**form, "case_number": sql}),
            browser.post("/feedback", data={**form, "case_number": "26-00001 OR 1"}),
        ]

    assert [r.status_code for r in answers] == [404, 404, 404]
    assert [r.status_code for r in landline] == [422, 303]
    assert count(app, SurveyResponseRow) == 0
    assert httpx.get(f"{live_server.url}/s/{token}").status_code == 200  # still open
    assert_tables_intact(app)


@pytest.mark.parametrize("sql", SQL, ids=["or-1-1", "drop-table"])
def test_sql_in_webhook_fields_is_refused_or_matches_nothing(
    app: Application, live_server: LiveServer, auth: dict[str, str], sql: str
) -> None:
    post_events(live_server, auth, event())  # a confirmation in the outbox, for ref to find
    with app.db.transaction() as session:
        before = [(r.id, r.status) for r in session.scalars(sql_select(OutboxRow))]

    status_sid = signed_post(
        live_server, STATUS, {**status_form("SM" + "1" * 32, "failed", CALLER), "MessageSid": sql}
    )
    inbound_sid = signed_post(live_server, INBOUND, inbound_form("x", CALLER, sid=sql))
    inbound_from = signed_post(live_server, INBOUND, inbound_form("x", sql))
    by_ref = signed_post(
        live_server,
        STATUS,
        status_form("SM" + "a" * 32, "failed", CALLER, "30003"),
        query=f"ref={quote(sql, safe='')}",
    )
    body = signed_post(live_server, INBOUND, inbound_form(sql, CALLER, sid="SM" + "2" * 32))

    assert [r.status_code for r in (status_sid, inbound_sid, inbound_from)] == [400, 400, 400]
    assert by_ref.status_code == 200
    assert body.status_code == 200
    with app.db.transaction() as session:
        after = [(r.id, r.status) for r in session.scalars(sql_select(OutboxRow))]
        stored = session.scalars(sql_select(InboundMessageRow.provider_message_id)).all()
    assert [row for row in after if row[0] in dict(before)] == before  # no text adopted
    assert stored == ["SM" + "2" * 32]
    assert count(app, PendingReceiptRow) == 1  # the unknown SID waits, matching nothing
    assert_tables_intact(app)


def test_signed_webhook_values_no_column_can_hold_are_400_and_change_nothing(
    app: Application, live_server: LiveServer
) -> None:
    answers = [
        signed_post(live_server, STATUS, status_form("SM" + "1" * 98, "sent", CALLER)),
        signed_post(live_server, STATUS, status_form(SID, "failed", CALLER, "9" * 100)),
        signed_post(live_server, STATUS, status_form(SID, "sent", CALLER), query="ref=%00"),
        signed_post(live_server, INBOUND, inbound_form("x", "A" * 60)),
    ]

    assert [r.status_code for r in answers] == [400, 400, 400, 400]
    assert count(app, PendingReceiptRow) == 0
    assert count(app, InboundMessageRow) == 0


# --- webhooks: replay and signatures -----------------------------------------------------


def test_replayed_inbound_text_changes_nothing_the_second_time(
    app: Application, live_server: LiveServer
) -> None:
    form = inbound_form("STOP", CALLER, sid="SM" + "b" * 32)

    first = signed_post(live_server, INBOUND, form)
    with app.db.transaction() as session:
        outbox_after_first = session.scalar(sql_select(func.count()).select_from(OutboxRow))
    second = signed_post(live_server, INBOUND, form)

    assert (first.status_code, second.status_code) == (200, 200)
    assert count(app, InboundMessageRow) == 1
    assert count(app, OutboxRow) == outbox_after_first == 1  # one opt-out confirmation


@pytest.mark.parametrize(
    "forgery",
    [
        "empty",
        "not_base64",
        "huge",
        "status_signature_on_inbound",
        "query_changed",
        "other_scheme",
        "key_renamed",
    ],
)
def test_forged_signature_is_refused_and_changes_nothing(
    sqlite_app: Application, sqlite_server: LiveServer, forgery: str
) -> None:
    form = inbound_form("STOP", CALLER, sid="SM" + "c" * 32)
    kw: dict[str, Any] = {}
    path = INBOUND
    if forgery == "empty":
        kw["signature"] = ""
    elif forgery == "not_base64":
        kw["signature"] = "%%%not-base64%%%"
    elif forgery == "huge":
        kw["signature"] = "A" * 8000
    elif forgery == "status_signature_on_inbound":
        kw["signature"] = twilio_signature(TWILIO_TOKEN, PUBLIC + STATUS, form)
    elif forgery == "query_changed":
        kw["signature"] = twilio_signature(TWILIO_TOKEN, PUBLIC + INBOUND + "?a=1", form)
        kw["query"] = "a=2"
    elif forgery == "other_scheme":
        kw["signature"] = twilio_signature(TWILIO_TOKEN, "http" + PUBLIC[5:] + INBOUND, form)
    else:
        kw["signature"] = twilio_signature(TWILIO_TOKEN, PUBLIC + INBOUND, form)
        form = {**form, "body": form.pop("Body")}

    response = signed_post(sqlite_server, path, form, **kw)

    assert response.status_code == 403
    assert count(sqlite_app, InboundMessageRow) == 0
    assert count(sqlite_app, OutboxRow) == 0


# --- token guessing ----------------------------------------------------------------------


def test_token_guessing_is_slowed_on_every_survey_path_and_then_real_tokens_too(
    sqlite_app: Application,
    clock: VirtualClock,
    sqlite_server: LiveServer,
    new_invitation: Callable[[], str],
) -> None:
    token = new_invitation()
    # At least 128 random bits (22 base64url characters); only a hash of it is stored.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", token)
    with sqlite_app.db.transaction() as session:
        assert session.scalars(sql_select(SurveyInvitationRow.token_hash)).all() == [
            token_hash(token)
        ]
    csrf = csrf_of(httpx.get(f"{sqlite_server.url}/s/{token}").text)
    limit = SurveyLimits().token_guesses
    guesses = []
    for n in range(limit.hits):
        guess = f"{n:022d}"
        path = ("/s/{}", "/s/{}/thanks", "/s/{}")[n % 3].format(guess)
        method = "POST" if n % 3 == 2 else "GET"
        guesses.append(httpx.request(method, sqlite_server.url + path).status_code)
    blocked = [
        httpx.get(f"{sqlite_server.url}/s/{token}"),
        httpx.post(
            f"{sqlite_server.url}/s/{token}",
            data={**ANSWERS, "csrf_token": csrf, "lang": "en", "action": "submit"},
        ),
        httpx.get(f"{sqlite_server.url}/s/{token}/thanks"),
    ]

    assert set(guesses) == {404}
    assert [r.status_code for r in blocked] == [429, 429, 429]
    assert count(sqlite_app, SurveyResponseRow) == 0
    clock.advance(limit.window)
    assert httpx.get(f"{sqlite_server.url}/s/{token}").status_code == 200


# --- security headers on every answer ----------------------------------------------------


def assert_security_headers(response: httpx.Response, *, hsts: bool) -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    csp = headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp, where
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert "frame-ancestors 'none'" in csp, where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert headers.get("x-frame-options") == "DENY", where
    assert "camera=()" in headers.get("permissions-policy", ""), where
    if hsts:
        assert headers.get("strict-transport-security", "").startswith("max-age="), where
    else:
        assert "strict-transport-security" not in headers, where


def every_kind_of_answer(
    server: LiveServer, auth: dict[str, str], token: str
) -> list[httpx.Response]:
    url = server.url
    return [
        httpx.get(f"{url}/healthz"),  # 200 JSON
        httpx.get(f"{url}/s/{token}"),  # 200 HTML
        httpx.get(f"{url}/static/survey.css"),  # 200 CSS
        httpx.get(f"{url}/openapi.json"),  # 200 JSON
        httpx.get(f"{url}/s/{token}/thanks"),  # 303
        httpx.post(f"{url}/api/v1/cad/events", json=event(), headers=auth),  # 202
        httpx.post(f"{url}/api/v1/cad/events", content=b"{", headers=auth),  # 400
        httpx.post(f"{url}/api/v1/cad/events", json=event()),  # 401
        httpx.post(f"{url}{INBOUND}", data={"From": CALLER}),  # 403
        httpx.get(f"{url}/no/such/page"),  # 404 JSON
        httpx.get(f"{url}/s/AAAAAAAAAAAAAAAAAAAAAA"),  # 404 HTML
        httpx.get(f"{url}/docs"),  # 404: no Swagger UI
        httpx.post(f"{url}/healthz"),  # 405
        httpx.delete(f"{url}/s/{token}"),  # 405
        httpx.post(  # 413
            f"{url}/api/v1/cad/events",
            content=b"x" * (INTAKE_LIMIT + 1),
            headers=auth,
        ),
        httpx.post(f"{url}/api/v1/cad/events", json={"events": 3}, headers=auth),  # 422
        httpx.post(f"{url}/s/{token}", data={"csrf_token": "x"}),  # 403 HTML
    ]


def test_security_headers_on_every_kind_of_answer_with_hsts_over_https(
    sqlite_app: Application,
    sqlite_server: LiveServer,
    new_invitation: Callable[[], str],
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = new_invitation()
    responses = every_kind_of_answer(sqlite_server, auth, token)

    def unreachable() -> bool:
        raise RuntimeError("the database went away mid-request")

    monkeypatch.setattr(sqlite_app.db, "ping", unreachable)
    responses.append(httpx.get(f"{sqlite_server.url}/healthz"))  # 500

    statuses = {r.status_code for r in responses}
    assert statuses >= {200, 202, 303, 400, 401, 403, 404, 405, 413, 422, 500}, statuses
    for response in responses:
        assert_security_headers(response, hsts=True)
    assert responses[-1].json()["error"]["code"] == "internal"
    assert "database went away" not in responses[-1].text


def test_no_hsts_when_the_public_url_is_plain_http(
    app_factory: Factory, sqlite_url: str, auth: dict[str, str]
) -> None:
    application = app_factory(sqlite_url)  # public_base_url defaults to http://127.0.0.1
    with LiveServer(create_app(application)) as server:
        responses = [
            httpx.get(f"{server.url}/healthz"),
            httpx.get(f"{server.url}/no/such/page"),
            httpx.post(f"{server.url}/api/v1/cad/events", content=b"[", headers=auth),
        ]
    for response in responses:
        assert_security_headers(response, hsts=False)


# --- found by probing a running instance -------------------------------------------------


@pytest.mark.parametrize("path", ["/s/{token}", "/feedback", INBOUND, "/api/v1/cad/events"])
def test_a_client_that_hangs_up_mid_body_is_no_error_and_leaves_no_token_in_the_log(
    sqlite_server: LiveServer,
    new_invitation: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    """Anyone can do this; it must not fill the log with errors, nor write a survey
    token (which exists only in the text and, hashed, in the database) into it."""
    token = new_invitation()
    target = path.format(token=token)
    host, port = sqlite_server.url.removeprefix("http://").split(":")
    caplog.set_level("INFO")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(
            f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\nabc".encode()
        )
        raw.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while raw.recv(4096):
                pass
    assert httpx.get(f"{sqlite_server.url}/healthz").status_code == 200
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
    assert token not in caplog.text


@pytest.mark.parametrize("path", ["/s/{token}/", "/feedback/", "/healthz/"])
def test_no_trailing_slash_redirect_built_from_the_host_header(
    sqlite_server: LiveServer, new_invitation: Callable[[], str], path: str
) -> None:
    response = httpx.get(
        sqlite_server.url + path.format(token=new_invitation()),
        headers={"Host": "evil.example"},
    )
    assert response.status_code == 404
    assert "location" not in response.headers


def test_a_form_action_that_is_not_a_button_of_ours_records_nothing(
    sqlite_app: Application, sqlite_server: LiveServer, new_invitation: Callable[[], str]
) -> None:
    token = new_invitation()
    page = httpx.get(f"{sqlite_server.url}/s/{token}").text
    for action in ("lang:de", "delete", ""):
        response = httpx.post(
            f"{sqlite_server.url}/s/{token}",
            data={**ANSWERS, "csrf_token": csrf_of(page), "action": action},
        )
        assert response.status_code == 422, action
        assert 'name="csrf_token"' in response.text  # the form again, answers kept
    assert count(sqlite_app, SurveyResponseRow) == 0
