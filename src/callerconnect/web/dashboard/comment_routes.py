"""The dashboard's comments, ``GET /dashboard/comments``: survey answers with a
comment, redacted; reading them is written to the audit log."""

# No "from __future__ import annotations": FastAPI reads the Annotated dependency aliases
# below when each route is defined, and they are local to the function that adds them.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from callerconnect.domain.access import Right
from callerconnect.i18n.dashboard import _
from callerconnect.queries.comments import responses_with_comments
from callerconnect.queries.figures import SCALE_QUESTIONS
from callerconnect.service.accounts import SignedIn
from callerconnect.web.dashboard.filters import ViewFilters
from callerconnect.web.dashboard.overview import QUESTION_LABELS
from callerconnect.web.dashboard.pages import DashboardPages
from callerconnect.web.dashboard.redact import redact_comment


def comment_rows(pages: DashboardPages, view: ViewFilters, agency_id: str) -> list[dict[str, Any]]:
    found = responses_with_comments(
        pages.db, pages.application.vault, view.for_agency(agency_id), pages.tz, limit=500
    )
    return [
        {
            "answered_at": c.answered_at.astimezone(pages.tz),
            "district": c.district,
            "priority": c.priority,
            "call_type": c.call_type,
            "language": c.language,
            "scores": c.scores,
            "comment": redact_comment(c.comment),
        }
        for c in found
    ]


def add_comment_routes(router: APIRouter, pages: DashboardPages) -> None:
    """The comments page."""
    render = pages.render
    page_of = pages.page_of
    filter_context = pages.filter_context
    filters_of = pages.filters_of
    record = pages.record
    analyst = Annotated[SignedIn, Depends(pages.guard.require(Right.COMMENTS))]

    @router.get("/dashboard/comments")
    async def comments_page(request: Request, signed_in: analyst) -> Response:
        page = page_of(request, signed_in)
        view, agency_id = filters_of(request, signed_in)
        rows = await run_in_threadpool(comment_rows, pages, view, agency_id)
        record(request, signed_in, "view:comments", agency_id, view=view)
        return render.render(
            "comments",
            page,
            title=_("Comments"),
            comments=rows,
            questions=[(q, QUESTION_LABELS[q]) for q in SCALE_QUESTIONS],
            can_export=True,
            **filter_context(view, agency_id, signed_in),
        )
