"""Who may see what (contract section 9), walked over every dashboard route × every role
and no login, read from the application's route table: a new route that does not say
which right it needs fails here before anyone can reach it.

Also the session: login answers, lockout, expiry, cookies, CSRF and logout. On SQLite
only: none of this depends on the database (the figures' tests run on both).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from callerconnect.adapters.db.tables import (
    AuditLogRow,
    DashboardSessionRow,
    DashboardUserRow,
    DeadLetterRow,
    InboundMessageRow,
)
from callerconnect.bootstrap import Application
from callerconnect.clock import VirtualClock
from callerconnect.domain.access import LOWEST_ROLE, Right, Role
from callerconnect.web.app import create_app
from callerconnect.web.dashboard.access import SESSION_COOKIE
from tests.support.dashboard import (
    PASSWORD,
    ROLES,
    TestClient,
    accounts_of,
    add_role_accounts,
    csrf_of,
    login,
    signed_in_client,
)


@pytest.fixture
def app(app_factory: Any, sqlite_url: str) -> Application:
    return app_factory(sqlite_url)


@pytest.fixture
def api(app: Application) -> FastAPI:
    return create_app(app)


@pytest.fixture
def emails(api: FastAPI) -> dict[str, str]:
    return add_role_accounts(api)


@pytest.fixture
def dead_letter_id(app: Application) -> int:
    with app.db.transaction() as session:
        row = DeadLetterRow(
            agency_id=app.settings.agency_id,
            received_at=app.clock.now(),
            source="http",
            payload_encrypted=app.vault.encrypt('{"event_id": "x"}'),
            error_code="invalid",
            error="missing field",
            field="type",
            status="new",
        )
        session.add(row)
        session.flush()
        return row.id


def api_routes(routes: Any) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI keeps those as branches
    holding their ``original_router``; none of ours has a prefix)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def dashboard_routes(api: FastAPI) -> Iterator[tuple[str, str, Right]]:
    """(method, path, right) of every dashboard route, from the route table; a route
    under /dashboard without a declared right fails the test that walks them."""
    for route in api_routes(api.routes):
        if not (route.path.startswith("/dashboard") or route.path == "/logout"):
            continue
        rights = [
            getattr(dependency.call, "right", None) for dependency in route.dependant.dependencies
        ]
        declared = [r for r in rights if r is not None]
        assert len(declared) == 1, f"{route.path} does not declare the one right it needs"
        for method in sorted(route.methods):
            yield method, route.path, declared[0]


def test_every_dashboard_route_declares_a_right_and_there_are_the_contract_pages(
    api: FastAPI,
) -> None:
    paths = {path for _method, path, _right in dashboard_routes(api)}
    assert {
        "/dashboard",
        "/dashboard/comments",
        "/dashboard/queues",
        "/dashboard/users",
        "/dashboard/audit",
        "/dashboard/export/overview.csv",
        # the work queues' exports, declared with the queues' right (supervisor), not export
        "/dashboard/export/flagged_replies.csv",
        "/dashboard/export/unknown_call_types.csv",
        "/dashboard/export/dead_letters.csv",
        "/dashboard/export/failed_texts.csv",
    } <= paths
    queue_exports = {
        path: right for _m, path, right in dashboard_routes(api) if path.endswith("s.csv")
    }
    assert queue_exports["/dashboard/export/dead_letters.csv"] is Right.QUEUES


def test_every_route_answers_each_role_as_the_rights_table_says(
    api: FastAPI, emails: dict[str, str], dead_letter_id: int
) -> None:
    clients = {role: signed_in_client(api, emails[role]) for role in ROLES}
    anonymous = TestClient(api)
    checked = 0
    for method, template, right in dashboard_routes(api):
        path = template.replace("{letter_id}", str(dead_letter_id))
        url = f"{path}?lang=fr"
        answer = anonymous.request(method, url, follow_redirects=False)
        assert answer.status_code == 303, (method, path)
        location = answer.headers["location"]
        assert location.startswith("/login?next=%2F"), location
        for role in ROLES:
            client = clients[role]
            data = {"csrf_token": "not-the-token"} if method == "POST" else None
            response = client.request(method, url, data=data, follow_redirects=False)
            may = Role(role).at_least(LOWEST_ROLE[right])
            if not may:
                assert response.status_code == 403, (role, method, path, response.status_code)
                assert "Vous ne pouvez pas voir cette page" in response.text
            elif method == "POST":
                # allowed, but a forged form: refused by CSRF, nothing done
                assert response.status_code == 403, (role, method, path)
                assert "Rien n'a été modifié" in html.unescape(response.text)
            else:
                assert response.status_code == 200, (role, method, path, response.text[:300])
            checked += 1
    assert checked >= 4 * 15


def test_an_unknown_email_and_a_wrong_password_get_the_same_answer(
    api: FastAPI, emails: dict[str, str]
) -> None:
    wrong = login(TestClient(api), emails["viewer"], "not the password at all")
    unknown = login(TestClient(api), "nobody@example.org", "not the password at all")
    disabled_email = "gone@example.org"
    accounts_of(api).add(disabled_email, "viewer", PASSWORD)
    accounts_of(api).disable(disabled_email)
    disabled = login(TestClient(api), disabled_email, PASSWORD)
    assert wrong.status_code == unknown.status_code == disabled.status_code == 401

    def body(response: Any) -> str:
        return re.sub(r'value="[^"]*"', "", response.text)

    assert body(wrong) == body(unknown) == body(disabled)
    assert SESSION_COOKIE not in wrong.cookies


def test_five_failures_in_15_minutes_lock_the_address_for_15_minutes(
    api: FastAPI, emails: dict[str, str], clock: VirtualClock
) -> None:
    client = TestClient(api)
    for _ in range(5):
        assert login(client, emails["analyst"], "wrong password here").status_code == 401
        clock.advance(timedelta(minutes=2))
    locked = login(client, emails["analyst"], PASSWORD)
    assert locked.status_code == 429
    assert SESSION_COOKIE not in locked.cookies
    # an unknown address locks the same way: the lock says nothing about accounts
    for _ in range(5):
        login(client, "nobody@example.org", "wrong password here")
    assert login(client, "nobody@example.org", "wrong password here").status_code == 429
    clock.advance(timedelta(minutes=12))  # 14 minutes after the fifth failure
    assert login(client, emails["analyst"], PASSWORD).status_code == 429
    clock.advance(timedelta(minutes=1, seconds=1))
    assert login(client, emails["analyst"], PASSWORD).status_code == 303


def test_failures_spread_over_more_than_15_minutes_do_not_lock(
    api: FastAPI, emails: dict[str, str], clock: VirtualClock
) -> None:
    client = TestClient(api)
    for _ in range(8):
        assert login(client, emails["viewer"], "wrong password here").status_code == 401
        clock.advance(timedelta(minutes=4))
        if _ % 4 == 3:
            clock.advance(timedelta(minutes=15))
    assert login(client, emails["viewer"], PASSWORD).status_code == 303


def test_the_session_cookie_is_httponly_samesite_and_secure_behind_https(
    app_factory: Any, sqlite_url: str
) -> None:
    plain = create_app(app_factory(sqlite_url))
    add_role_accounts(plain)
    header = login(TestClient(plain), "viewer@example.org").headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in header
    assert "HttpOnly" in header and "SameSite=lax" in header and "Secure" not in header

    secure = create_app(
        app_factory(sqlite_url, CALLERCONNECT_PUBLIC_BASE_URL="https://cc.example.org")
    )
    client = TestClient(secure, base_url="https://cc.example.org")
    header = login(client, "viewer@example.org").headers["set-cookie"]
    assert "Secure" in header and "HttpOnly" in header


def test_login_goes_to_a_same_origin_next_only(api: FastAPI, emails: dict[str, str]) -> None:
    for asked, expected in [
        ("/dashboard/comments?from=2026-01-01", "/dashboard/comments?from=2026-01-01"),
        ("https://evil.example/", "/dashboard"),
        ("//evil.example/x", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
    ]:
        response = login(TestClient(api), emails["analyst"], next=asked)
        assert response.status_code == 303
        assert response.headers["location"] == expected


def test_a_login_form_without_its_csrf_token_is_refused(
    api: FastAPI, emails: dict[str, str]
) -> None:
    client = TestClient(api)
    client.get("/login")
    response = client.post(
        "/login",
        data={"email": emails["viewer"], "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.cookies


def test_sessions_end_when_idle_after_the_maximum_and_at_logout(
    api: FastAPI, app: Application, emails: dict[str, str], clock: VirtualClock
) -> None:
    idle = app.settings.dashboard.session_idle
    client = signed_in_client(api, emails["viewer"])
    clock.advance(idle - timedelta(seconds=5))
    assert client.get("/dashboard", follow_redirects=False).status_code == 200
    clock.advance(idle - timedelta(seconds=5))  # busy: each request renews the idle time
    assert client.get("/dashboard", follow_redirects=False).status_code == 200
    clock.advance(idle)
    assert client.get("/dashboard", follow_redirects=False).status_code == 303

    busy = signed_in_client(api, emails["viewer"])
    start = clock.now()
    step = idle - timedelta(minutes=5)  # never idle long enough to end it that way
    while clock.now() + step < start + app.settings.dashboard.session_max:
        clock.advance(step)
        assert busy.get("/dashboard", follow_redirects=False).status_code == 200
    clock.advance(step)
    assert busy.get("/dashboard", follow_redirects=False).status_code == 303

    leaving = signed_in_client(api, emails["viewer"])
    page = leaving.get("/dashboard").text
    out = leaving.post("/logout", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    with app.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(DashboardSessionRow)) == 0


def test_disabling_an_account_or_changing_its_password_ends_its_sessions(
    api: FastAPI, emails: dict[str, str]
) -> None:
    analyst = signed_in_client(api, emails["analyst"])
    viewer = signed_in_client(api, emails["viewer"])
    accounts_of(api).set_password(emails["analyst"], "another long password")
    accounts_of(api).disable(emails["viewer"])
    assert analyst.get("/dashboard", follow_redirects=False).status_code == 303
    assert viewer.get("/dashboard", follow_redirects=False).status_code == 303
    assert login(TestClient(api), emails["analyst"], "another long password").status_code == 303


def test_posts_without_the_session_csrf_token_change_nothing(
    api: FastAPI, app: Application, emails: dict[str, str]
) -> None:
    with app.db.transaction() as session:
        session.add(
            InboundMessageRow(
                agency_id=app.settings.agency_id,
                provider="console",
                provider_message_id="m1",
                phone_masked="+1613***0142",
                body_encrypted=app.vault.encrypt("help me"),
                classification="other",
                flagged=True,
                received_at=app.clock.now(),
            )
        )
    admin = signed_in_client(api, emails["admin"])
    other = signed_in_client(api, emails["supervisor"])
    stolen = csrf_of(other.get("/dashboard").text)  # another session's token
    admin.post("/dashboard/users/disable", data={"email": emails["viewer"], "csrf_token": stolen})
    admin.post("/dashboard/queues/replies/reviewed", data={"id": "1"})
    admin.post(
        "/dashboard/users",
        data={"email": "new@example.org", "role": "admin", "password": PASSWORD},
    )
    with app.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(DashboardUserRow)) == 4
        assert session.scalar(select(DashboardUserRow.disabled_at)) is None
        assert session.scalar(select(InboundMessageRow.reviewed_at)) is None
        actions = set(session.scalars(select(AuditLogRow.action)))
    assert "user.disable" not in actions and "user.add" not in actions


def test_bad_filters_are_a_clear_400_in_the_readers_language(
    api: FastAPI, emails: dict[str, str]
) -> None:
    client = signed_in_client(api, emails["analyst"])
    for query, words in [
        ("from=2026-13-01", "AAAA-MM-JJ"),
        ("from=2026-02-01&to=2026-01-01", "précède"),
        ("priority=high", "de 0 à 9"),
        ("from=2020-01-01&to=2026-01-01", "trois ans"),
    ]:
        for path in ("/dashboard", "/dashboard/export/overview.csv", "/dashboard/comments"):
            response = client.get(f"{path}?{query}&lang=fr")
            assert response.status_code == 400, (path, query)
            assert words in html.unescape(response.text)


def test_the_language_chosen_is_kept_for_the_next_pages(
    api: FastAPI, emails: dict[str, str]
) -> None:
    client = signed_in_client(api, emails["viewer"])
    assert 'lang="fr"' in client.get("/dashboard?lang=fr").text
    page = client.get("/dashboard").text
    assert 'lang="fr"' in page and "Vue d'ensemble" in html.unescape(page)
    assert 'lang="en"' in client.get("/dashboard?lang=en").text
    assert "Overview" in client.get("/dashboard").text


def test_every_dashboard_page_forbids_inline_script(api: FastAPI, emails: dict[str, str]) -> None:
    client = signed_in_client(api, emails["admin"])
    for path in ("/login", "/dashboard", "/dashboard/queues", "/dashboard/audit"):
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<script" not in response.text
        assert " style=" not in response.text
