"""The internal dashboard's routes (contract section 9), one module a group of pages:

- ``GET/POST /login``, ``POST /logout``: the session (``login_routes.py``).
- ``GET /dashboard``: the overview (``overview_routes.py``); ``/dashboard/comments``:
  redacted comments (``comment_routes.py``); ``/dashboard/export/<table>.csv``: the CSVs
  (``export_routes.py``); ``/dashboard/queues`` (+ its actions and exports): work queues
  (``queue_routes.py``); ``/dashboard/users``: accounts, and ``/dashboard/audit``: the
  audit log (``account_routes.py``). What they share is ``pages.py``.

Each route states the right it needs (``Depends(guard.require(Right.X))``). Reading
personal data (comments, callers' texts, dead letters), every export and every account
change are written to the audit log.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from callerconnect.bootstrap import Application
from callerconnect.i18n.dashboard import _
from callerconnect.web.dashboard.access import BadCsrf, Forbidden, NotSignedIn
from callerconnect.web.dashboard.account_routes import add_account_routes
from callerconnect.web.dashboard.comment_routes import add_comment_routes
from callerconnect.web.dashboard.export_routes import add_export_routes
from callerconnect.web.dashboard.login_routes import add_login_routes
from callerconnect.web.dashboard.overview_routes import add_overview_routes
from callerconnect.web.dashboard.pages import DashboardPages, FilterProblem, NotFound
from callerconnect.web.dashboard.queue_routes import add_queue_routes

CSS = (resources.files("callerconnect.web") / "static" / "dashboard.css").read_bytes()


def install_dashboard(api: FastAPI, application: Application) -> None:
    """Add the dashboard's routes and the answers to its refusals to the application."""
    pages = DashboardPages(application)
    api.state.accounts = pages.accounts
    guard = pages.guard
    render = pages.render
    page_of = pages.page_of

    router = APIRouter(include_in_schema=False)

    # --- refusals -------------------------------------------------------------------

    @api.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, error: NotSignedIn) -> Response:
        return RedirectResponse(error.next_url, status_code=303)

    @api.exception_handler(Forbidden)
    async def forbidden(request: Request, error: Forbidden) -> Response:
        page = page_of(request, error.signed_in)
        return render.render(
            "message",
            page,
            403,
            title=_("You cannot see this page"),
            paragraphs=[_("Your role does not give access to this page.")],
        )

    @api.exception_handler(BadCsrf)
    async def bad_csrf(request: Request, error: BadCsrf) -> Response:
        page = page_of(request, error.signed_in)
        return render.render(
            "message",
            page,
            403,
            title=_("Please try again"),
            paragraphs=[
                _("This form was not sent from a current dashboard page. Nothing was changed.")
            ],
        )

    @api.exception_handler(FilterProblem)
    async def bad_filter(request: Request, problem: FilterProblem) -> Response:
        page = page_of(request, await guard.current(request))
        return render.render(
            "message",
            page,
            400,
            title=_("These filters cannot be used"),
            paragraphs=[problem.error.message],
            field=problem.error.field,
        )

    @api.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound) -> Response:
        page = page_of(request, await guard.current(request))
        return render.render(
            "message", page, 404, title=_("Not found"), paragraphs=[_("There is nothing here.")]
        )

    # --- the pages, in the order their routes are matched ---------------------------

    add_login_routes(router, pages)
    add_overview_routes(router, pages)
    add_comment_routes(router, pages)
    add_export_routes(router, pages)
    add_queue_routes(router, pages)
    add_account_routes(router, pages)

    @router.get("/static/dashboard.css")
    async def stylesheet() -> Response:
        return Response(
            CSS,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    api.include_router(router)
