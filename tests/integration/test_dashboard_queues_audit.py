"""Work queues and the audit log (issue items 4 and 6), on SQLite and PostgreSQL: a
supervisor reads a caller's flagged text redacted and marks it reviewed, looks at a dead
letter redacted and replays it; an admin adds and disables an account on the page; every
one of these lands in the audit log (who, what, filters, when, from where), which admins
read and nobody can change from the dashboard."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from callerconnect.adapters.db.tables import (
    AuditLogRow,
    CallRow,
    DeadLetterRow,
    InboundMessageRow,
)
from callerconnect.adapters.sms.base import InboundSms
from callerconnect.bootstrap import Application
from callerconnect.web.app import create_app
from tests.conftest import TEST_INTAKE_KEY
from tests.integration.test_dashboard_access import api_routes
from tests.support.dashboard import (
    PASSWORD,
    TestClient,
    add_role_accounts,
    csrf_of,
    login,
    signed_in_client,
)


@pytest.fixture
def app(app_factory: Any, database_url: str) -> Application:
    return app_factory(database_url)


@pytest.fixture
def api(app: Application) -> FastAPI:
    api = create_app(app)
    add_role_accounts(api)
    return api


def audit(app: Application) -> list[AuditLogRow]:
    with app.db.transaction() as session:
        return list(session.scalars(select(AuditLogRow).order_by(AuditLogRow.id)))


def test_a_flagged_reply_is_read_redacted_and_marked_reviewed(
    api: FastAPI, app: Application
) -> None:
    app.inbound.handle(
        InboundSms(
            "613-555-0142",
            app.settings.sms.sender,
            "Help me, Jean Tremblay has a knife, call 613-555-0188",
            "in-1",
        ),
        "console",
    )
    client = signed_in_client(api, "supervisor@example.org")
    page = html.unescape(client.get("/dashboard/queues").text)
    assert "knife" in page
    assert "Tremblay" not in page and "613-555-0188" not in page
    assert "613-555-0142" not in page and "+1613***0142" in page
    with app.db.transaction() as session:
        reply_id = session.scalar(select(InboundMessageRow.id))
    done = client.post(
        "/dashboard/queues/replies/reviewed",
        data={"id": str(reply_id), "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    with app.db.transaction() as session:
        assert session.scalar(select(InboundMessageRow.reviewed_at)) is not None
    assert "knife" not in client.get("/dashboard/queues").text
    actions = [(e.action, e.target, e.user_email) for e in audit(app)]
    assert ("view:queues", None, "supervisor@example.org") in actions
    assert ("queue:reply_reviewed", str(reply_id), "supervisor@example.org") in actions


def test_a_dead_letter_is_viewed_redacted_and_replayed(api: FastAPI, app: Application) -> None:
    client = TestClient(api)
    refused = client.post(
        "/api/v1/cad/events",
        json={
            "event_id": "e-1",
            "incident_id": "I-1",
            "occurred_at": "2026-01-16T08:59:00-05:00",
            "type": "call.received",
            "priority": "four",
            "caller": {"phone": "613-555-0142"},
        },
        headers={"Authorization": f"Bearer {TEST_INTAKE_KEY}"},
    )
    assert refused.status_code in (202, 422)
    with app.db.transaction() as session:
        letter = session.scalar(select(DeadLetterRow))
        assert letter is not None
        letter_id = letter.id
    supervisor = signed_in_client(api, "supervisor@example.org")
    queues = supervisor.get("/dashboard/queues").text
    assert f"/dashboard/queues/dead-letters/{letter_id}" in queues
    shown = html.unescape(supervisor.get(f"/dashboard/queues/dead-letters/{letter_id}").text)
    assert "I-1" in shown and "613-555-0142" not in shown and "5550142" not in shown
    replayed = supervisor.post(
        f"/dashboard/queues/dead-letters/{letter_id}/replay",
        data={"csrf_token": csrf_of(shown)},
        follow_redirects=False,
    )
    assert replayed.status_code == 303
    assert "done=replay_failed" in replayed.headers["location"]  # still not valid
    with app.db.transaction() as session:
        assert session.scalar(select(DeadLetterRow.status)) == "failed"
        # the refused event held its incident; replaying it again did not free it
        assert (session.scalar(select(CallRow.reason)) or "").startswith("held:")
    actions = [(e.action, e.target) for e in audit(app)]
    assert ("view:dead_letter", str(letter_id)) in actions
    assert ("queue:dead_letter_replay", str(letter_id)) in actions
    missing = supervisor.get("/dashboard/queues/dead-letters/999999")
    assert missing.status_code == 404


def test_account_changes_on_the_page_are_audited_and_the_log_cannot_be_edited(
    api: FastAPI, app: Application
) -> None:
    admin = signed_in_client(api, "admin@example.org")
    page = admin.get("/dashboard/users").text
    added = admin.post(
        "/dashboard/users",
        data={
            "email": "new@example.org",
            "role": "analyst",
            "password": PASSWORD,
            "csrf_token": csrf_of(page),
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    assert login(TestClient(api), "new@example.org").status_code == 303
    weak = admin.post(
        "/dashboard/users",
        data={"email": "weak@example.org", "role": "viewer", "password": "short"},
    )
    assert weak.status_code == 403  # no CSRF token: refused before anything else
    weak = admin.post(
        "/dashboard/users",
        data={
            "email": "weak@example.org",
            "role": "viewer",
            "password": "short",
            "csrf_token": csrf_of(page),
        },
    )
    assert weak.status_code == 422 and "12 characters" in weak.text
    disabled = admin.post(
        "/dashboard/users/disable",
        data={"email": "new@example.org", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert disabled.status_code == 303
    assert login(TestClient(api), "new@example.org").status_code == 401

    analyst = signed_in_client(api, "analyst@example.org")
    analyst.get("/dashboard/export/overview.csv?from=2026-01-01&to=2026-01-31&district=Central")
    entries = audit(app)
    export = next(e for e in entries if e.action == "export:overview.csv")
    filters = json.loads(export.filters or "{}")
    assert filters["from"] == "2026-01-01" and filters["district"] == ["Central"]
    assert export.user_email == "analyst@example.org" and export.client_address
    assert export.at is not None
    changes = [(e.action, e.target, e.user_email) for e in entries]
    assert ("user.add", "new@example.org", "admin@example.org") in changes
    assert ("user.disable", "new@example.org", "admin@example.org") in changes

    log = html.unescape(admin.get("/dashboard/audit").text)
    assert "export:overview.csv" in log and "user.disable" in log and "analyst@example.org" in log
    for route in api_routes(api.routes):
        if route.path.startswith("/dashboard/audit"):
            assert route.methods == {"GET"}, route.path
