"""The dashboard's administration: accounts (``/dashboard/users``: list, add,
disable) and the audit log (``/dashboard/audit``), each limited to the agencies
the administrator sees."""

# No "from __future__ import annotations": FastAPI reads the Annotated dependency aliases
# below when each route is defined, and they are local to the function that adds them.

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from callerconnect.domain.access import ALL_AGENCIES, Right, Role, agencies_visible
from callerconnect.i18n.dashboard import _
from callerconnect.service import audit
from callerconnect.service.accounts import AccountError, SignedIn
from callerconnect.web.dashboard.access import CSRF_FIELD, check_csrf
from callerconnect.web.dashboard.pages import DashboardPages, NotFound, posted_form


def add_account_routes(router: APIRouter, pages: DashboardPages) -> None:
    """The accounts and audit pages."""
    settings = pages.settings
    db = pages.db
    tz = pages.tz
    accounts = pages.accounts
    render = pages.render
    page_of = pages.page_of
    record = pages.record
    admin_users = Annotated[SignedIn, Depends(pages.guard.require(Right.USERS))]
    admin_audit = Annotated[SignedIn, Depends(pages.guard.require(Right.AUDIT))]

    def users_visible(signed_in: SignedIn) -> frozenset[str] | None:
        return agencies_visible(signed_in.account.agency_id)

    @router.get("/dashboard/users")
    async def users_page(request: Request, signed_in: admin_users) -> Response:
        page = page_of(request, signed_in)
        listed = await run_in_threadpool(accounts.list, users_visible(signed_in))
        return render.render(
            "users",
            page,
            title=_("Accounts"),
            accounts=listed,
            roles=[r.value for r in Role],
            done=request.query_params.get("done"),
            error=None,
        )

    @router.post("/dashboard/users")
    async def users_add(request: Request, signed_in: admin_users) -> Response:
        form = await posted_form(request)
        check_csrf(signed_in, form.get(CSRF_FIELD))
        page = page_of(request, signed_in)
        agency = form.get("agency") or signed_in.account.agency_id
        if not signed_in.account.all_agencies:
            agency = signed_in.account.agency_id  # an agency's admin adds to their own
        elif agency == ALL_AGENCIES and form.get("role") != Role.ADMIN.value:
            agency = settings.agency_id
        try:
            added = await run_in_threadpool(
                accounts.add,
                form.get("email", ""),
                form.get("role", ""),
                form.get("password", ""),
                agency,
            )
        except AccountError as error:
            listed = await run_in_threadpool(accounts.list, users_visible(signed_in))
            return render.render(
                "users",
                page,
                422,
                title=_("Accounts"),
                accounts=listed,
                roles=[r.value for r in Role],
                done=None,
                error=str(error),
            )
        record(request, signed_in, "user.add", added.agency_id, target=added.email)
        return RedirectResponse(page.url("/dashboard/users", done="added"), status_code=303)

    @router.post("/dashboard/users/disable")
    async def users_disable(request: Request, signed_in: admin_users) -> Response:
        form = await posted_form(request)
        check_csrf(signed_in, form.get(CSRF_FIELD))
        page = page_of(request, signed_in)
        target = await run_in_threadpool(accounts.find, form.get("email", ""))
        visible = users_visible(signed_in)
        if target is None or (visible is not None and target.agency_id not in visible):
            raise NotFound
        await run_in_threadpool(accounts.disable, target.email)
        record(request, signed_in, "user.disable", target.agency_id, target=target.email)
        return RedirectResponse(page.url("/dashboard/users", done="disabled"), status_code=303)

    @router.get("/dashboard/audit")
    async def audit_page(request: Request, signed_in: admin_audit) -> Response:
        page = page_of(request, signed_in)
        raw_page = request.query_params.get("page", "1")
        number = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 100_000 else 1
        entries, total = await run_in_threadpool(
            lambda: audit.entries(
                db, users_visible(signed_in), limit=100, offset=(number - 1) * 100
            )
        )
        return render.render(
            "audit",
            page,
            title=_("Audit log"),
            entries=[{"entry": e, "at": e.at.astimezone(tz)} for e in entries],
            total=total,
            number=number,
            has_next=number * 100 < total,
        )
