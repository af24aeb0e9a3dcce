"""The dashboard's overview, ``GET /dashboard``: the figures and charts of the period
and filters chosen."""

# No "from __future__ import annotations": FastAPI reads the Annotated dependency aliases
# below when each route is defined, and they are local to the function that adds them.

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from callerconnect.domain.access import Right, Role
from callerconnect.i18n.dashboard import _
from callerconnect.service.accounts import SignedIn
from callerconnect.web.dashboard.overview import METRIC_LABELS, build_overview, metric_kind
from callerconnect.web.dashboard.pages import DashboardPages


def add_overview_routes(router: APIRouter, pages: DashboardPages) -> None:
    """The overview page."""
    settings = pages.settings
    db = pages.db
    tz = pages.tz
    render = pages.render
    page_of = pages.page_of
    filter_context = pages.filter_context
    filters_of = pages.filters_of
    viewer = Annotated[SignedIn, Depends(pages.guard.require(Right.OVERVIEW))]

    @router.get("/dashboard")
    async def overview_page(request: Request, signed_in: viewer) -> Response:
        page = page_of(request, signed_in)
        view, agency_id = filters_of(request, signed_in)
        overview = await run_in_threadpool(
            build_overview,
            db,
            view.for_agency(agency_id),
            tz,
            page.lang,
            unit_breakdown=settings.dashboard.unit_breakdown,
        )
        sections = [
            {"table": table, "chart": render.chart(table, page.lang)}
            for table in (overview.reasons, overview.scores, overview.trend, *overview.breakdowns)
        ]
        return render.render(
            "overview",
            page,
            title=_("Overview"),
            metrics=[
                {
                    "name": name,
                    "label": METRIC_LABELS.get(name),
                    "value": render.number(value, metric_kind(name), page.lang),
                }
                for name, value in overview.metrics
                if name in METRIC_LABELS
            ],
            sections=sections,
            can_export=signed_in.account.role.at_least(Role.ANALYST),
            **filter_context(view, agency_id, signed_in),
        )
