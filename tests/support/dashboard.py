"""Dashboard test helpers: accounts of every role, and signing in through the real form."""

from __future__ import annotations

import html
import re
import warnings
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI

from callerconnect.service.accounts import Accounts

PASSWORD = "correct horse battery staple"
ROLES = ("viewer", "analyst", "supervisor", "admin")
with warnings.catch_warnings():
    # Starlette asks for its "httpx2" fork; httpx still drives the app in-process the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def accounts_of(api: FastAPI) -> Accounts:
    accounts: Accounts = api.state.accounts
    return accounts


def fast_hashing(api: FastAPI) -> None:
    """argon2id with the smallest cost: the same algorithm and code path, without spending
    the 2 shared cores on the production work factor in every login of every test."""
    accounts = accounts_of(api)
    accounts.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    accounts._dummy_hash = accounts.hasher.hash("dummy password for timing")


def add_role_accounts(api: FastAPI, agency: str | None = None) -> dict[str, str]:
    """One account per role; their e-mail addresses by role."""
    fast_hashing(api)
    emails = {}
    for role in ROLES:
        email = f"{role}@example.org" if agency is None else f"{role}.{agency}@example.org"
        accounts_of(api).add(email, role, PASSWORD, agency)
        emails[role] = email
    return emails


def csrf_of(page: str) -> str:
    match = _CSRF.search(page)
    assert match is not None, page
    return html.unescape(match.group(1))


def login(client: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    """Post the login form as a browser would (its CSRF token and cookie first)."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text), **extra},
        follow_redirects=False,
    )


def signed_in_client(api: FastAPI, email: str, base_url: str = "http://testserver") -> TestClient:
    client = TestClient(api, base_url=base_url)
    response = login(client, email)
    assert response.status_code == 303, response.text
    return client
