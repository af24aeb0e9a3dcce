"""The dashboard's CSV exports of the overview's tables and the comments,
``GET /dashboard/export/<table>.csv`` (the work queues' exports are the queues'
own, ``queue_routes.py``); each export is written to the audit log."""

# No "from __future__ import annotations": FastAPI reads the Annotated dependency aliases
# below when each route is defined, and they are local to the function that adds them.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from callerconnect.domain.access import Right
from callerconnect.queries.figures import SCALE_QUESTIONS
from callerconnect.service.accounts import SignedIn
from callerconnect.web.dashboard.comment_routes import comment_rows
from callerconnect.web.dashboard.filters import ViewFilters
from callerconnect.web.dashboard.overview import build_overview, metric_kind
from callerconnect.web.dashboard.pages import DashboardPages, NotFound
from callerconnect.web.dashboard.tables import Table, csv_value, table_csv, to_csv

#: The overview's tables that can be exported, besides ``overview`` (metric,value).
EXPORT_TABLES = (
    "overview",
    "reasons",
    "scores",
    "trend",
    "by_district",
    "by_priority",
    "by_call_type",
    "by_hour",
    "by_unit",
    "comments",
)


def csv_download(body: bytes, name: str, view: ViewFilters) -> Response:
    filename = f"{name}_{view.start.isoformat()}_{view.end.isoformat()}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def add_export_routes(router: APIRouter, pages: DashboardPages) -> None:
    """One route per exportable table."""
    settings = pages.settings
    db = pages.db
    tz = pages.tz
    page_of = pages.page_of
    filters_of = pages.filters_of
    record = pages.record
    exporter = Annotated[SignedIn, Depends(pages.guard.require(Right.EXPORT))]

    def export_bytes(name: str, view: ViewFilters, agency_id: str, lang: str) -> bytes:
        if name == "comments":
            rows = comment_rows(pages, view, agency_id)
            return to_csv(
                [
                    "answered_at",
                    "district",
                    "priority",
                    "call_type",
                    "language",
                    *SCALE_QUESTIONS,
                    "comment",
                ],
                [
                    [
                        r["answered_at"].isoformat(),
                        r["district"] or "",
                        "" if r["priority"] is None else str(r["priority"]),
                        r["call_type"] or "",
                        r["language"],
                    ]
                    + [str(r["scores"].get(q, "")) for q in SCALE_QUESTIONS]
                    + [r["comment"]]
                    for r in rows
                ],
            )
        overview = build_overview(
            db,
            view.for_agency(agency_id),
            tz,
            lang,
            unit_breakdown=settings.dashboard.unit_breakdown,
        )
        if name == "overview":
            return to_csv(
                ["metric", "value"],
                [[name, csv_value(value, metric_kind(name))] for name, value in overview.metrics],
            )
        table: Table | None = overview.tables.get(name)
        if table is None:
            raise NotFound
        return table_csv(table)

    def make_export(name: str) -> Callable[..., Any]:
        async def export(request: Request, signed_in: exporter) -> Response:
            page = page_of(request, signed_in)
            view, agency_id = filters_of(request, signed_in)
            body = await run_in_threadpool(export_bytes, name, view, agency_id, page.lang)
            record(request, signed_in, f"export:{name}.csv", agency_id, view=view)
            return csv_download(body, name, view)

        export.__name__ = f"export_{name}"
        return export

    for name in EXPORT_TABLES:
        if name == "by_unit" and not settings.dashboard.unit_breakdown:
            continue
        router.add_api_route(f"/dashboard/export/{name}.csv", make_export(name), methods=["GET"])
