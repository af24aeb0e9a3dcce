"""The work queues' CSV exports, on SQLite and PostgreSQL: each holds the rows its table on
``/dashboard/queues`` shows (one function builds both), with the page's filters, for
supervisors and admins only; callers' texts stay redacted and no phone number or e-mail
they wrote reaches a file; every export lands in the audit log."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from callerconnect.adapters.db.tables import AuditLogRow, DeadLetterRow
from callerconnect.adapters.sms.base import InboundSms
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.web.app import create_app
from tests.support.dashboard import TestClient, add_role_accounts, signed_in_client
from tests.support.known_week import WEEK, build_known_week

PERIOD = f"from={WEEK[0]}&to={WEEK[1]}"
REPLY = (
    "Help me, he has a knife, call 613-555-0188 or write to jean.tremblay+cc@gmail.com "
    'or a.@aa.ca or "J D"@example.org'
)
CONTACTS = ["613-555-0188", "6135550188", "555-0188", "tremblay", "gmail", "a.@aa.ca", "J D"]


@pytest.fixture
def app(app_factory: Any, database_url: str) -> Application:
    return app_factory(database_url)


@pytest.fixture
def api(app: Application, clock: VirtualClock, console: ConsoleProvider) -> FastAPI:
    api = create_app(app)
    build_known_week(api, app, clock, console)
    add_role_accounts(api)
    app.inbound.handle(
        InboundSms("613-555-0142", app.settings.sms.sender, REPLY, "in-export"), "console"
    )
    with app.db.transaction() as session:
        session.add(
            DeadLetterRow(
                agency_id=app.settings.agency_id,
                received_at=app.clock.now(),
                source="http",
                payload_encrypted=app.vault.encrypt('{"caller": {"phone": "613-555-0177"}}'),
                error_code="invalid",
                error="missing field",
                field="=type",
                status="new",
            )
        )
    return api


class _Tables(HTMLParser):
    """The text of each cell of each table, by the id of the table's caption."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._in_body = False
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "caption":
            self._table = self.tables.setdefault(dict(attrs)["id"] or "", [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._in_body:
            self._cell = []
        elif tag == "span" and ("class", "visually-hidden") in attrs:
            self._hidden += 1
        elif tag == "input" and ("type", "checkbox") in attrs and self._cell is not None:
            self._cell.append(dict(attrs).get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "span" and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._hidden:
            self._cell.append(data)


def page_tables(page: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte-order mark"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def shown(cell: str) -> str:
    """A CSV cell as the page writes it: local times to the minute, a dash for nothing,
    without the apostrophe that keeps a spreadsheet from running a cell as a formula."""
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", cell):
        return datetime.fromisoformat(cell).strftime("%Y-%m-%d %H:%M")
    if cell == "":
        return "–"
    return cell.removeprefix("'")


def as_on_page(name: str, header: list[str], row: list[str]) -> list[str]:
    cells = dict(zip(header, row, strict=True))
    if name == "flagged_replies":
        return [cells["id"], *(shown(cells[c]) for c in header[1:])]
    if name == "dead_letters":
        return [
            *(shown(cells[c]) for c in ("id", "received_at", "source", "status")),
            f"{shown(cells['field'])}: {shown(cells['error_code'])}",
            "View (redacted) Replay",
        ]
    return [shown(cell) for cell in row]


CAPTIONS = {
    "flagged_replies": "flagged-caption",
    "unknown_call_types": "unknown-caption",
    "dead_letters": "letters-caption",
    "failed_texts": "failed-caption",
}


def test_each_queue_csv_holds_the_rows_its_table_shows(api: FastAPI, app: Application) -> None:
    client = signed_in_client(api, "supervisor@example.org")
    page = client.get(f"/dashboard/queues?{PERIOD}&lang=en")
    assert page.status_code == 200
    tables = page_tables(page.text)
    for name, caption in CAPTIONS.items():
        assert f"/dashboard/export/{name}.csv?" in page.text, name
        answer = client.get(f"/dashboard/export/{name}.csv?{PERIOD}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert "attachment" in answer.headers["content-disposition"]
        header, *rows = read_csv(answer.content)
        assert rows, f"the known week has something in {name}"
        assert [as_on_page(name, header, row) for row in rows] == tables[caption], name

    letters = read_csv(client.get(f"/dashboard/export/dead_letters.csv?{PERIOD}").content)
    assert letters[0] == ["id", "received_at", "source", "status", "field", "error_code"]
    assert letters[1][4] == "'=type", "a formula-like cell is neutralised"
    unknown = read_csv(client.get(f"/dashboard/export/unknown_call_types.csv?{PERIOD}").content)
    assert unknown[1][0] == "ZZUNMAPPED" and unknown[1][2] == "1"
    failed = read_csv(client.get(f"/dashboard/export/failed_texts.csv?{PERIOD}").content)
    assert [(r[1], r[2]) for r in failed[1:]] == [("confirmation", "undelivered")]


def test_the_page_filters_narrow_the_failed_texts_export(api: FastAPI) -> None:
    client = signed_in_client(api, "admin@example.org")
    west = read_csv(
        client.get(f"/dashboard/export/failed_texts.csv?{PERIOD}&district=West").content
    )
    east = read_csv(
        client.get(f"/dashboard/export/failed_texts.csv?{PERIOD}&district=East").content
    )
    assert len(west) == 2 and len(east) == 1  # the undelivered text was a West call's
    before = read_csv(
        client.get("/dashboard/export/failed_texts.csv?from=2025-01-01&to=2025-12-31").content
    )
    assert len(before) == 1


def test_no_phone_number_or_email_of_a_flagged_reply_reaches_the_csv(api: FastAPI) -> None:
    client = signed_in_client(api, "supervisor@example.org")
    body = client.get(f"/dashboard/export/flagged_replies.csv?{PERIOD}").content.decode("utf-8")
    assert "knife" in body, "the reply is there, redacted"
    for contact in CONTACTS:
        assert contact.lower() not in body.lower(), contact
    assert "@" not in body
    assert "613-555-0142" not in body and "0142" in body  # the sender's number masked only
    letters = client.get(f"/dashboard/export/dead_letters.csv?{PERIOD}").content.decode()
    assert "0177" not in letters, "dead letters are exported without their payload"


def test_queue_exports_are_for_supervisors_and_admins_and_are_audited(
    api: FastAPI, app: Application
) -> None:
    for role, allowed in (("viewer", False), ("analyst", False), ("admin", True)):
        client = signed_in_client(api, f"{role}@example.org")
        for name in CAPTIONS:
            answer = client.get(f"/dashboard/export/{name}.csv?{PERIOD}", follow_redirects=False)
            assert answer.status_code == (200 if allowed else 403), (role, name)
            assert (b"knife" in answer.content) == (allowed and name == "flagged_replies")
    anonymous = TestClient(api).get("/dashboard/export/dead_letters.csv", follow_redirects=False)
    assert anonymous.status_code == 303
    signed_in_client(api, "supervisor@example.org").get(
        f"/dashboard/export/flagged_replies.csv?{PERIOD}&district=East"
    )
    with app.db.transaction() as session:
        entries = list(
            session.scalars(
                select(AuditLogRow)
                .where(AuditLogRow.action.like("export:%"))
                .order_by(AuditLogRow.id)
            )
        )
    assert [e.action for e in entries] == [f"export:{n}.csv" for n in CAPTIONS] + [
        "export:flagged_replies.csv"
    ]
    assert {e.user_email for e in entries[:-1]} == {"admin@example.org"}
    last = entries[-1]
    assert last.user_email == "supervisor@example.org"
    assert '"district": ["East"]' in (last.filters or "")
    assert last.client_address == "testclient" and last.at is not None
