"""What every group of the dashboard's routes shares (built once per application):
the accounts, the guard, the renderer, and the helpers each page uses — its language,
its filters and agency, the audit record of what was seen, the posted form."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import Request
from sqlalchemy import select

from callerconnect.adapters.db.tables import CallRow
from callerconnect.bootstrap import Application
from callerconnect.domain.access import ALL_AGENCIES
from callerconnect.i18n.dashboard import _
from callerconnect.queries.filter_options import filter_options
from callerconnect.service import audit
from callerconnect.service.accounts import Accounts, SignedIn
from callerconnect.web.dashboard.access import SESSION_COOKIE, Guard
from callerconnect.web.dashboard.filters import FilterError, ViewFilters, parse_filters
from callerconnect.web.dashboard.render import LANGUAGES, PageContext, Renderer
from callerconnect.web.survey_forms import client_address
from callerconnect.web.survey_language import negotiate


class FilterProblem(Exception):
    def __init__(self, error: FilterError) -> None:
        self.error = error


class NotFound(Exception):
    pass


class DashboardPages:
    """The dashboard's shared parts and the helpers of its pages."""

    def __init__(self, application: Application) -> None:
        settings = application.settings
        self.application = application
        self.settings = settings
        self.db = application.db
        self.tz: ZoneInfo = settings.tz
        self.https = settings.public_base_url.startswith("https://")
        self.accounts = Accounts(
            application.db,
            application.clock,
            default_agency=settings.agency_id,
            idle=settings.dashboard.session_idle,
            max_age=settings.dashboard.session_max,
        )
        self.guard = Guard(self.accounts)
        self.render = Renderer({"en": settings.agency_name.en, "fr": settings.agency_name.fr})

    def language(self, request: Request, signed_in: SignedIn | None = None) -> str:
        asked = request.query_params.get("lang")
        if asked in LANGUAGES:
            assert asked is not None
            if signed_in is not None and signed_in.language != asked:
                token = request.cookies.get(SESSION_COOKIE, "")
                self.accounts.remember_language(token, asked)
            return asked
        if signed_in is not None and signed_in.language in LANGUAGES:
            assert signed_in.language is not None
            return signed_in.language
        return negotiate(request.headers.get("accept-language")) or "en"

    def page_of(self, request: Request, signed_in: SignedIn | None) -> PageContext:
        return PageContext(
            lang=self.language(request, signed_in),
            path=request.url.path,
            query=list(request.query_params.multi_items()),
            signed_in=signed_in,
        )

    def filters_of(self, request: Request, signed_in: SignedIn) -> tuple[ViewFilters, str]:
        """The page's filters and the one agency whose figures it shows."""
        today = self.application.clock.now().astimezone(self.tz).date()
        try:
            view = parse_filters(request.query_params, today)
        except FilterError as error:
            raise FilterProblem(error) from None
        account = signed_in.account
        if account.agency_id == ALL_AGENCIES:
            return view, view.agency or self.settings.agency_id
        return ViewFilters(
            view.start, view.end, view.districts, view.priorities, view.call_types, None
        ), account.agency_id

    def record(
        self,
        request: Request,
        signed_in: SignedIn,
        action: str,
        agency_id: str,
        *,
        target: str | None = None,
        view: ViewFilters | None = None,
    ) -> None:
        audit.record(
            self.db,
            self.application.clock,
            who=signed_in.account.email,
            agency_id=agency_id,
            action=action,
            target=target,
            filters=view.for_audit() if view else None,
            address=client_address(request),
        )

    def agencies_known(self) -> list[str]:
        with self.db.transaction() as session:
            found = set(session.scalars(select(CallRow.agency_id).distinct()))
        return sorted(found | {self.settings.agency_id})

    def filter_context(
        self, view: ViewFilters, agency_id: str, signed_in: SignedIn
    ) -> dict[str, Any]:
        options = filter_options(self.db, agency_id)

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
            "agencies": self.agencies_known() if signed_in.account.all_agencies else [],
            "export_query": view.query_items(),
        }


async def posted_form(request: Request) -> dict[str, str]:
    """The first value of each posted field (the body limit middleware caps its size)."""
    return {key: values[0] for key, values in (await posted_fields(request)).items()}


async def posted_fields(request: Request) -> dict[str, list[str]]:
    body = (await request.body()).decode("utf-8", errors="replace")
    grouped: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=1000)
    except ValueError:
        return grouped
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def first_value(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None
