"""The internal dashboard's routes (contract section 9).

- ``GET/POST /login``, ``POST /logout``: the session (see ``service/accounts.py``).
- ``GET /dashboard``: the overview; ``/dashboard/comments``: redacted comments;
  ``/dashboard/queues`` (+ its actions): work queues; ``/dashboard/users``: accounts;
  ``/dashboard/audit``: the audit log; ``/dashboard/export/<table>.csv``: the CSVs.

Each route states the right it needs (``Depends(guard.require(Right.X))``). Reading
personal data (comments, callers' texts, dead letters), every export and every account
change are written to the audit log.
"""

# No "from __future__ import annotations": FastAPI reads the Annotated dependency aliases
# below when each route is defined, and they are local to install_dashboard.

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from callerconnect.adapters.db.tables import CallRow
from callerconnect.bootstrap import Application
from callerconnect.domain.access import ALL_AGENCIES, Right, Role, agencies_visible
from callerconnect.logs import log_event
from callerconnect.queries import queues
from callerconnect.queries.comments import responses_with_comments
from callerconnect.queries.figures import SCALE_QUESTIONS
from callerconnect.queries.filter_options import filter_options
from callerconnect.service import audit, deadletters, inbound
from callerconnect.service.accounts import AccountError, Accounts, LoginStatus, SignedIn
from callerconnect.service.redacted_views import RedactedDeadLetter, dead_letter_redacted
from callerconnect.web.dashboard.access import (
    CSRF_FIELD,
    SESSION_COOKIE,
    BadCsrf,
    Forbidden,
    Guard,
    NotSignedIn,
    check_csrf,
    safe_next,
)
from callerconnect.web.dashboard.filters import FilterError, ViewFilters, parse_filters
from callerconnect.web.dashboard.overview import (
    METRIC_LABELS,
    QUESTION_LABELS,
    build_overview,
    metric_kind,
)
from callerconnect.web.dashboard.queue_tables import QUEUE_EXPORTS, queue_csv, queue_rows
from callerconnect.web.dashboard.redact import redact_comment
from callerconnect.web.dashboard.render import LANGUAGES, PageContext, Renderer
from callerconnect.web.dashboard.tables import Table, csv_value, table_csv, to_csv
from callerconnect.web.survey_forms import FormTooLarge, client_address, read_form
from callerconnect.web.survey_language import negotiate

log = logging.getLogger("callerconnect.dashboard")

LOGIN_COOKIE = "cc_login_nonce"
CSS = (resources.files("callerconnect.web") / "static" / "dashboard.css").read_bytes()


def _(message: str) -> str:
    return message


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


class FilterProblem(Exception):
    def __init__(self, error: FilterError) -> None:
        self.error = error


class NotFound(Exception):
    pass


def _login_key(application: Application) -> bytes:
    configured = application.settings.secret_key
    secret = configured.get_secret_value().encode() if configured else secrets.token_bytes(32)
    return hmac.new(secret, b"callerconnect dashboard login csrf v1", hashlib.sha256).digest()


def install_dashboard(api: FastAPI, application: Application) -> None:
    """Add the dashboard's routes and the answers to its refusals to the application."""
    settings = application.settings
    accounts = Accounts(
        application.db,
        application.clock,
        default_agency=settings.agency_id,
        idle=settings.dashboard.session_idle,
        max_age=settings.dashboard.session_max,
    )
    api.state.accounts = accounts
    guard = Guard(accounts)
    render = Renderer({"en": settings.agency_name.en, "fr": settings.agency_name.fr})
    https = settings.public_base_url.startswith("https://")
    tz: ZoneInfo = settings.tz
    login_key = _login_key(application)
    db = application.db

    def language(request: Request, signed_in: SignedIn | None = None) -> str:
        asked = request.query_params.get("lang")
        if asked in LANGUAGES:
            assert asked is not None
            if signed_in is not None and signed_in.language != asked:
                token = request.cookies.get(SESSION_COOKIE, "")
                accounts.remember_language(token, asked)
            return asked
        if signed_in is not None and signed_in.language in LANGUAGES:
            assert signed_in.language is not None
            return signed_in.language
        return negotiate(request.headers.get("accept-language")) or "en"

    def page_of(request: Request, signed_in: SignedIn | None) -> PageContext:
        return PageContext(
            lang=language(request, signed_in),
            path=request.url.path,
            query=list(request.query_params.multi_items()),
            signed_in=signed_in,
        )

    def filters_of(request: Request, signed_in: SignedIn) -> tuple[ViewFilters, str]:
        """The page's filters and the one agency whose figures it shows."""
        today = application.clock.now().astimezone(tz).date()
        try:
            view = parse_filters(request.query_params, today)
        except FilterError as error:
            raise FilterProblem(error) from None
        account = signed_in.account
        if account.agency_id == ALL_AGENCIES:
            return view, view.agency or settings.agency_id
        return ViewFilters(
            view.start, view.end, view.districts, view.priorities, view.call_types, None
        ), account.agency_id

    def record(
        request: Request,
        signed_in: SignedIn,
        action: str,
        agency_id: str,
        *,
        target: str | None = None,
        view: ViewFilters | None = None,
    ) -> None:
        audit.record(
            db,
            application.clock,
            who=signed_in.account.email,
            agency_id=agency_id,
            action=action,
            target=target,
            filters=view.for_audit() if view else None,
            address=client_address(request),
        )

    def agencies_known() -> list[str]:
        with db.transaction() as session:
            found = set(session.scalars(select(CallRow.agency_id).distinct()))
        return sorted(found | {settings.agency_id})

    router = APIRouter(include_in_schema=False)
    viewer = Annotated[SignedIn, Depends(guard.require(Right.OVERVIEW))]
    analyst = Annotated[SignedIn, Depends(guard.require(Right.COMMENTS))]
    exporter = Annotated[SignedIn, Depends(guard.require(Right.EXPORT))]
    supervisor = Annotated[SignedIn, Depends(guard.require(Right.QUEUES))]
    admin_users = Annotated[SignedIn, Depends(guard.require(Right.USERS))]
    admin_audit = Annotated[SignedIn, Depends(guard.require(Right.AUDIT))]

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

    # --- login and logout --------------------------------------------------------------

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
        form = await _form(request)
        check_csrf(signed_in, form.get(CSRF_FIELD))
        await run_in_threadpool(accounts.logout, request.cookies.get(SESSION_COOKIE))
        record(request, signed_in, "logout", signed_in.account.agency_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=https)
        return response

    # --- overview ----------------------------------------------------------------------

    def filter_context(view: ViewFilters, agency_id: str, signed_in: SignedIn) -> dict[str, Any]:
        options = filter_options(db, agency_id)

        def choices(known: tuple[Any, ...], chosen: tuple[Any, ...]) -> list[tuple[str, bool]]:
            values = [str(v) for v in known] + [str(v) for v in chosen if v not in known]
            picked = {str(v) for v in chosen}
            return [(value, value in picked) for value in values]

        return {
            "choices": [
                ("district", _("District"), choices(options.districts, view.districts)),
                ("priority", _("Priority"), choices(options.priorities, view.priorities)),
                ("call_type", _("Call type"), choices(options.call_types, view.call_types)),
            ],
            "view": view,
            "agency_id": agency_id,
            "agencies": agencies_known() if signed_in.account.all_agencies else [],
            "export_query": view.query_items(),
        }

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

    # --- comments -----------------------------------------------------------------------

    def comment_rows(view: ViewFilters, agency_id: str) -> list[dict[str, Any]]:
        found = responses_with_comments(
            db, application.vault, view.for_agency(agency_id), tz, limit=500
        )
        return [
            {
                "answered_at": c.answered_at.astimezone(tz),
                "district": c.district,
                "priority": c.priority,
                "call_type": c.call_type,
                "language": c.language,
                "scores": c.scores,
                "comment": redact_comment(c.comment),
            }
            for c in found
        ]

    @router.get("/dashboard/comments")
    async def comments_page(request: Request, signed_in: analyst) -> Response:
        page = page_of(request, signed_in)
        view, agency_id = filters_of(request, signed_in)
        rows = await run_in_threadpool(comment_rows, view, agency_id)
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

    # --- exports ------------------------------------------------------------------------

    def export_bytes(name: str, view: ViewFilters, agency_id: str, lang: str) -> bytes:
        if name == "comments":
            rows = comment_rows(view, agency_id)
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

    # --- work queues ----------------------------------------------------------------------

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
        form = await _fields(request)
        check_csrf(signed_in, _first(form, CSRF_FIELD))
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
        form = await _form(request)
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

    # --- accounts and audit ------------------------------------------------------------------

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
        form = await _form(request)
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
        form = await _form(request)
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

    @router.get("/static/dashboard.css")
    async def stylesheet() -> Response:
        return Response(
            CSS,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    api.include_router(router)


async def _form(request: Request) -> dict[str, str]:
    """The first value of each posted field (the body limit middleware caps its size)."""
    return {key: values[0] for key, values in (await _fields(request)).items()}


async def _fields(request: Request) -> dict[str, list[str]]:
    body = (await request.body()).decode("utf-8", errors="replace")
    grouped: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=1000)
    except ValueError:
        return grouped
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _first(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None
