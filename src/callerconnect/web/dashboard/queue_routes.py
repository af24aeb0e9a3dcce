"""The dashboard's work queues, ``/dashboard/queues``: flagged replies (marked
reviewed), unknown call types, dead letters (read redacted, replayed) and failed
texts, with their CSV exports; a supervisor's pages."""

# No "from __future__ import annotations": FastAPI reads the Annotated dependency aliases
# below when each route is defined, and they are local to the function that adds them.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from callerconnect.domain.access import Right
from callerconnect.i18n.dashboard import _
from callerconnect.queries import queues
from callerconnect.service import deadletters, inbound
from callerconnect.service.accounts import SignedIn
from callerconnect.service.redacted_views import RedactedDeadLetter, dead_letter_redacted
from callerconnect.web.dashboard.access import CSRF_FIELD, check_csrf
from callerconnect.web.dashboard.export_routes import csv_download
from callerconnect.web.dashboard.filters import ViewFilters
from callerconnect.web.dashboard.pages import (
    DashboardPages,
    NotFound,
    first_value,
    posted_fields,
    posted_form,
)
from callerconnect.web.dashboard.queue_tables import QUEUE_EXPORTS, queue_csv, queue_rows


def add_queue_routes(router: APIRouter, pages: DashboardPages) -> None:
    """The queues page, its actions and its exports."""
    application = pages.application
    settings = pages.settings
    db = pages.db
    tz = pages.tz
    render = pages.render
    page_of = pages.page_of
    filter_context = pages.filter_context
    filters_of = pages.filters_of
    record = pages.record
    supervisor = Annotated[SignedIn, Depends(pages.guard.require(Right.QUEUES))]

    def queue_context(view: ViewFilters, agency_id: str) -> dict[str, Any]:
        return queue_rows(db, application.vault, view.for_agency(agency_id), agency_id, tz)

    def make_queue_export(name: str) -> Callable[..., Any]:
        # The queues are a supervisor's: the export right alone (analyst) does not open them.
        async def export(request: Request, signed_in: supervisor) -> Response:
            view, agency_id = filters_of(request, signed_in)
            rows = await run_in_threadpool(queue_context, view, agency_id)
            record(request, signed_in, f"export:{name}.csv", agency_id, view=view)
            return csv_download(queue_csv(name, rows), name, view)

        export.__name__ = f"export_{name}"
        return export

    for name in QUEUE_EXPORTS:
        router.add_api_route(
            f"/dashboard/export/{name}.csv", make_queue_export(name), methods=["GET"]
        )

    @router.get("/dashboard/queues")
    async def queues_page(request: Request, signed_in: supervisor) -> Response:
        page = page_of(request, signed_in)
        view, agency_id = filters_of(request, signed_in)
        context = await run_in_threadpool(queue_context, view, agency_id)
        record(request, signed_in, "view:queues", agency_id)
        return render.render(
            "queues",
            page,
            title=_("Work queues"),
            done=request.query_params.get("done"),
            **context,
            **filter_context(view, agency_id, signed_in),
        )

    @router.post("/dashboard/queues/replies/reviewed")
    async def replies_reviewed(request: Request, signed_in: supervisor) -> Response:
        form = await posted_fields(request)
        check_csrf(signed_in, first_value(form, CSRF_FIELD))
        _view, agency_id = filters_of(request, signed_in)
        ids = [int(v) for v in form.get("id", []) if v.isdigit() and len(v) < 12]
        done = await run_in_threadpool(
            inbound.mark_reviewed, db, ids, application.clock.now(), agency_id=agency_id
        )
        record(
            request,
            signed_in,
            "queue:reply_reviewed",
            agency_id,
            target=" ".join(map(str, done)) or None,
        )
        page = page_of(request, signed_in)
        return RedirectResponse(page.url("/dashboard/queues", done="reviewed"), status_code=303)

    def letter_of_agency(letter_id: int, agency_id: str) -> RedactedDeadLetter | None:
        mine = {letter.id for letter in queues.dead_letters(db, agency_id, status=None)}
        if letter_id not in mine:
            return None
        return dead_letter_redacted(db, application.vault, letter_id)

    @router.get("/dashboard/queues/dead-letters/{letter_id}")
    async def dead_letter_page(request: Request, letter_id: int, signed_in: supervisor) -> Response:
        page = page_of(request, signed_in)
        _view, agency_id = filters_of(request, signed_in)
        letter = await run_in_threadpool(letter_of_agency, letter_id, agency_id)
        if letter is None:
            raise NotFound
        record(request, signed_in, "view:dead_letter", agency_id, target=str(letter_id))
        return render.render(
            "dead_letter",
            page,
            title=_("Dead letter"),
            letter_id=letter_id,
            letter=letter,
            received_at=letter.received_at.astimezone(tz),
        )

    @router.post("/dashboard/queues/dead-letters/{letter_id}/replay")
    async def dead_letter_replay(
        request: Request, letter_id: int, signed_in: supervisor
    ) -> Response:
        form = await posted_form(request)
        check_csrf(signed_in, form.get(CSRF_FIELD))
        _view, agency_id = filters_of(request, signed_in)
        if agency_id != settings.agency_id:
            # The intake this process runs is the configured agency's; a letter of
            # another agency is replayed by that agency's deployment.
            raise NotFound
        outcome = await run_in_threadpool(
            deadletters.replay,
            db,
            application.vault,
            application.intake,
            [letter_id],
            agency_id=agency_id,
        )
        result = outcome.get(letter_id, "not found")
        if result == "not found":
            raise NotFound
        record(request, signed_in, "queue:dead_letter_replay", agency_id, target=str(letter_id))
        page = page_of(request, signed_in)
        done = "replayed" if result.startswith("replayed") else "replay_failed"
        return RedirectResponse(page.url("/dashboard/queues", done=done), status_code=303)
