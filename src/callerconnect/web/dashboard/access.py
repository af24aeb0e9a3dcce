"""Who is signed in, and whether they may see a page.

Every dashboard route declares the right it needs with ``Depends(require(Right.X))``;
the dependency carries that right as an attribute, so a test can read the decision of
every route from the application's route table. Without a session the answer is a
``303`` to ``/login?next=…``; with a role below the right, a ``403`` page.

State-changing forms carry the session's CSRF token (a random value kept in the session
row), compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from callerconnect.domain.access import Right, allowed
from callerconnect.service.accounts import Accounts, SignedIn

SESSION_COOKIE = "cc_dashboard"
CSRF_FIELD = "csrf_token"


class NotSignedIn(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class Forbidden(Exception):
    def __init__(self, signed_in: SignedIn) -> None:
        self.signed_in = signed_in


class BadCsrf(Exception):
    def __init__(self, signed_in: SignedIn) -> None:
        self.signed_in = signed_in


def login_redirect_target(request: Request) -> str:
    path = request.url.path
    query = request.url.query
    return "/login?next=" + quote(path + (f"?{query}" if query else ""), safe="")


def safe_next(value: str | None) -> str:
    """A same-origin path to go to after the login, else ``/dashboard``: an absolute or
    scheme-relative URL (``//evil.example``, ``/\\evil``) could send the user away."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 for c in value)
    ):
        return "/dashboard"
    return value


class Guard:
    """Builds the per-route dependencies from the application's accounts service."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def current(self, request: Request) -> SignedIn | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        return await run_in_threadpool(self.accounts.session, token)

    def require(self, right: Right) -> Callable[[Request], Awaitable[SignedIn]]:
        async def dependency(request: Request) -> SignedIn:
            signed_in = await self.current(request)
            if signed_in is None:
                raise NotSignedIn(login_redirect_target(request))
            if not allowed(signed_in.account.role, right):
                raise Forbidden(signed_in)
            return signed_in

        dependency.right = right  # type: ignore[attr-defined]  # read by the route test
        return dependency


def check_csrf(signed_in: SignedIn, posted: str | None) -> None:
    if not posted or not hmac.compare_digest(posted.encode(), signed_in.csrf_token.encode()):
        raise BadCsrf(signed_in)
