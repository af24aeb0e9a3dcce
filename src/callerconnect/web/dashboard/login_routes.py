"""The dashboard's session: ``GET/POST /login`` and ``POST /logout`` (see
``service/accounts.py``). The login form carries its own CSRF token, bound to a
nonce cookie, since no session exists yet."""

# No "from __future__ import annotations": FastAPI reads the Annotated dependency aliases
# below when each route is defined, and they are local to the function that adds them.

import hashlib
import hmac
import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from callerconnect.bootstrap import Application
from callerconnect.domain.access import Right
from callerconnect.i18n.dashboard import _
from callerconnect.logs import log_event
from callerconnect.service import audit
from callerconnect.service.accounts import LoginStatus, SignedIn
from callerconnect.web.dashboard.access import CSRF_FIELD, SESSION_COOKIE, check_csrf, safe_next
from callerconnect.web.dashboard.pages import DashboardPages, posted_form
from callerconnect.web.dashboard.render import LANGUAGES, PageContext
from callerconnect.web.survey_forms import FormTooLarge, client_address, read_form

log = logging.getLogger("callerconnect.dashboard")

LOGIN_COOKIE = "cc_login_nonce"


def _login_key(application: Application) -> bytes:
    configured = application.settings.secret_key
    secret = configured.get_secret_value().encode() if configured else secrets.token_bytes(32)
    return hmac.new(secret, b"callerconnect dashboard login csrf v1", hashlib.sha256).digest()


def add_login_routes(router: APIRouter, pages: DashboardPages) -> None:
    """Sign in and out."""
    application = pages.application
    settings = pages.settings
    db = pages.db
    https = pages.https
    accounts = pages.accounts
    render = pages.render
    page_of = pages.page_of
    record = pages.record
    viewer = Annotated[SignedIn, Depends(pages.guard.require(Right.OVERVIEW))]

    login_key = _login_key(application)

    def login_form(
        request: Request, page: PageContext, status: int, *, error: str | None = None
    ) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not (16 <= len(nonce) <= 64 and nonce.isascii()):
            nonce = secrets.token_urlsafe(24)
        response = render.render(
            "login",
            page,
            status,
            title=_("Sign in"),
            next_url=safe_next(request.query_params.get("next")),
            csrf=hmac.new(login_key, nonce.encode(), hashlib.sha256).hexdigest(),
            error=error,
        )
        response.set_cookie(
            LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=https, path="/login"
        )
        return response

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        return login_form(request, page_of(request, None), 200)

    @router.post("/login")
    async def login_submit(request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormTooLarge:
            return Response("form too large", status_code=413)
        lang = form.get("lang") if form.get("lang") in LANGUAGES else None
        page = page_of(request, None)
        if lang:
            page.lang = lang
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        expected = hmac.new(login_key, nonce.encode(), hashlib.sha256).hexdigest()
        if not nonce or not hmac.compare_digest(form.get(CSRF_FIELD, ""), expected):
            return login_form(
                request,
                page,
                403,
                error=_("This form had expired. Please sign in again."),
            )
        outcome = await run_in_threadpool(
            accounts.login, form.get("email", ""), form.get("password", ""), page.lang
        )
        if outcome.status is LoginStatus.LOCKED:
            log_event(log, "dashboard_login_locked")
            return login_form(
                request,
                page,
                429,
                error=_("Too many failed attempts. Try again in 15 minutes."),
            )
        if outcome.status is not LoginStatus.OK or outcome.account is None:
            log_event(log, "dashboard_login_refused")
            return login_form(
                request, page, 401, error=_("The e-mail address or the password is wrong.")
            )
        assert outcome.session_token is not None
        audit.record(
            db,
            application.clock,
            who=outcome.account.email,
            agency_id=outcome.account.agency_id,
            action="login",
            address=client_address(request),
        )
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            outcome.session_token,
            httponly=True,
            samesite="lax",
            secure=https,
            path="/",
            max_age=int(settings.dashboard.session_max.total_seconds()),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @router.post("/logout")
    async def logout(request: Request, signed_in: viewer) -> Response:
        form = await posted_form(request)
        check_csrf(signed_in, form.get(CSRF_FIELD))
        await run_in_threadpool(accounts.logout, request.cookies.get(SESSION_COOKIE))
        record(request, signed_in, "logout", signed_in.account.agency_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=https)
        return response
