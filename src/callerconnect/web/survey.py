"""The survey pages (contract section 6) and the landline feedback page.

Routes (all server-rendered HTML, no JavaScript, no third-party resource):

- ``GET /s/{token}``: the survey, in the invitation's language, with a switch to the other;
  ``404`` unknown, ``409`` answered, ``410`` closed (expired, or the call may no longer be
  surveyed), ``429`` after too many unknown tokens from one client.
- ``POST /s/{token}``: one response (``action=submit``), or the same form re-rendered in
  the other language with the answers kept (``action=lang:fr`` / ``lang:en``: the language
  switch is a submit button of the form, so nothing typed is lost). Success is a ``303``
  to ``GET /s/{token}/thanks``.
- ``GET /feedback``, ``POST /feedback``, ``GET /feedback/thanks``: the same questions
  for someone without a survey text (a landline), identified by their case number.
  With several agencies (contract section 11) ``GET /feedback`` asks which police service
  was called (a list of links), and each agency's form is ``/feedback/{agency}`` (also
  reached as ``/feedback?agency={agency}``), posting there and thanking at
  ``/feedback/{agency}/thanks``; a case number is looked up in that agency's calls only.
  With one agency ``/feedback`` is its form, as it always was.
- ``GET /static/survey.css``: the one stylesheet.

Language: ``?lang=`` (or the posted ``lang`` field) first, then the invitation's language,
then the browser's ``Accept-Language`` (French when preferred over English), else English.

CSRF: a survey form carries a token signed with a key derived from ``secret_key``
(itsdangerous) that names the survey token's hash, so it is valid for that survey only.
The landline form has no such secret to tie to, so it uses a signed double-submit: a
random nonce in a ``SameSite=Strict`` cookie and its signature in the form.

Where the rest lives: the language in survey_language.py, what the pages say in
survey_pages.py, the templates' rendering in survey_rendering.py, the CSRF tokens and
keys in survey_csrf.py, the posted form in survey_forms.py, what each route declares
(path, method, answers for the OpenAPI document) in survey_routes.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from importlib import resources
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from callerconnect.bootstrap import Application
from callerconnect.domain.survey import (
    ErrorCode,
    SurveyDefinition,
    Validation,
    normalize_case_number,
    read_answers,
)
from callerconnect.service.agencies import Agency, UnknownAgency
from callerconnect.service.survey import (
    LandlineStatus,
    LinkOutcome,
    LinkStatus,
    SurveyLimits,
    SurveyService,
    load_definition,
)
from callerconnect.web.survey_csrf import (
    CSRF_FIELD,
    LANDLINE_COOKIE,
    LinkCsrf,
    SurveyCsrf,
    derive,
    survey_keys,
)
from callerconnect.web.survey_forms import FormTooLarge, client_address, read_form
from callerconnect.web.survey_language import LANGUAGES, OTHER, pick_language
from callerconnect.web.survey_pages import (
    FORBIDDEN,
    LANDLINE_THANKS,
    LIMITED,
    RESUBMIT_NOTICE,
    STATUS_PAGES,
    THANKS,
    TOO_LARGE,
)
from callerconnect.web.survey_rendering import CASE_FIELD, Renderer
from callerconnect.web.survey_routes import AgencyId, Token, declared_routes
from callerconnect.web.threads import Threads

#: Threads for what a survey link's page writes: its first opening, an unknown token's
#: count (the look-ups themselves run on the event loop; submissions and landline
#: feedback, rarer, use the shared thread pool). Short work: more threads would only
#: contend with the event loop for the GIL.
DATABASE_THREADS = 4


def _with_lang(path: str, lang: str) -> str:
    return f"{path}?lang={lang}"


def _language_switch(action: str) -> str | None:
    """The language a form's ``lang:xx`` button asks for, if it is one."""
    return action[5:] if action.startswith("lang:") and action[5:] in LANGUAGES else None


def build_survey_router(
    application: Application,
    *,
    definition: SurveyDefinition | None = None,
    limits: SurveyLimits | None = None,
) -> APIRouter:
    definition = definition or load_definition()
    pages = SurveyPages(application, definition, limits)
    router = APIRouter(tags=["survey"])
    for route in declared_routes(pages, definition):
        route.setdefault("response_class", HTMLResponse)
        router.add_api_route(**route)
    return router


class SurveyPages:
    """The routes of the survey link and of the landline page, one method each."""

    def __init__(
        self,
        application: Application,
        definition: SurveyDefinition,
        limits: SurveyLimits | None,
    ) -> None:
        keys = survey_keys(application)
        self.definition = definition
        self.service = SurveyService(
            application.db,
            application.vault,
            application.clock,
            definition,
            client_key=derive(keys[-1], b"callerconnect survey client v1"),
            limits=limits,
        )
        self.csrf = SurveyCsrf(keys)
        self.agencies = application.agencies
        # Each agency's pages name it and quote its own number and survey lifetime.
        self.renderers = {agency.id: Renderer(agency, definition) for agency in self.agencies}
        self.render = self.renderers[self.agencies.default.id]
        self.https = application.settings.public_base_url.startswith("https://")
        self.css = (resources.files("callerconnect.web") / "static" / "survey.css").read_bytes()
        self.threads = Threads(DATABASE_THREADS, "survey-pages")
        # A link is read on the event loop, never in a thread: the hand-off put the loop,
        # the threads (and PostgreSQL's processes) in a queue for the two cores and the
        # GIL (a p99 of 100–130 ms at 50 clients, 20–40 ms without). SQLite reads it
        # from the page cache in about 40 µs that never wait for a writer (WAL), in
        # line; PostgreSQL's round trip is awaited on an asynchronous connection.
        self.reads_in_line = not application.db.is_postgresql

    async def link(self, token: str, request: Request, *, opening: bool) -> LinkOutcome:
        """The outcome of ``token``'s link for ``request``'s client (its first opening
        recorded when ``opening``): read on the event loop where that is cheap, any
        write in a thread."""
        client = client_address(request)
        if self.reads_in_line:
            seen = self.service.seen_in_line(token, client, opening=opening)
        else:
            seen = await self.service.seen_on_loop(token, client, opening=opening)
        if seen is not None:
            return seen
        return await self.threads.run(
            partial(self.service.recorded, token, client, opening=opening)
        )

    def language_of(
        self, request: Request, invitation: str | None, posted: str | None = None
    ) -> str:
        return pick_language(
            posted or request.query_params.get("lang"),
            invitation,
            request.headers.get("accept-language"),
        )

    def renderer(self, agency_id: str | None) -> Renderer:
        """The pages of ``agency_id`` (the default agency's when not known)."""
        return self.renderers.get(agency_id or "", self.render)

    def status_page(self, outcome: LinkOutcome, lang: str, path: str) -> HTMLResponse:
        page = STATUS_PAGES[outcome.status]
        return self.renderer(outcome.agency_id).page(page, lang, _with_lang(path, OTHER[lang]))

    # --- the survey link ----------------------------------------------------------------

    def link_form(
        self,
        token: str,
        outcome: LinkOutcome,
        lang: str,
        values: Mapping[str, str],
        validation: Validation | None,
        status: int,
        *,
        focus_switch: bool = False,
        notice: str | None = None,
    ) -> HTMLResponse:
        render = self.renderer(outcome.agency_id)
        action, csrf = f"/s/{quote(token)}", self.csrf.link_token(token)
        if not values and validation is None and not focus_switch and notice is None:
            return render.empty_form(lang, status, action=action, csrf=csrf, landline=False)
        view = render.form_view(
            lang=lang,
            action=action,
            csrf=csrf,
            values=values,
            validation=validation,
            landline=False,
        )
        view.focus_switch = focus_switch
        view.notice = notice
        return render.form(view, status, landline=False)

    async def open_survey(self, token: Token, request: Request) -> Response:
        outcome = await self.link(token, request, opening=True)
        lang = self.language_of(request, outcome.language)
        if outcome.status is not LinkStatus.OPEN:
            return self.status_page(outcome, lang, request.url.path)
        return self.link_form(token, outcome, lang, {}, None, 200)

    async def submit_survey(self, token: Token, request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormTooLarge:
            return self.render.page(TOO_LARGE, self.language_of(request, None), None)
        client = client_address(request)
        outcome = await self.link(token, request, opening=False)
        lang = self.language_of(request, outcome.language, form.get("lang"))
        if outcome.status is not LinkStatus.OPEN:
            return self.status_page(outcome, lang, request.url.path)
        render = self.renderer(outcome.agency_id)
        csrf = self.csrf.check_link(form.get(CSRF_FIELD, ""), token)
        if csrf is LinkCsrf.EXPIRED:
            notice = render.gettext(lang)(RESUBMIT_NOTICE)
            return self.link_form(token, outcome, lang, form, None, 200, notice=notice)
        if csrf is not LinkCsrf.VALID:
            return render.page(FORBIDDEN, lang, None)
        action = form.get("action", "submit")
        if switch := _language_switch(action):
            return self.link_form(token, outcome, switch, form, None, 200, focus_switch=True)
        if action != "submit":  # not a button of ours: the form again, nothing recorded
            return self.link_form(token, outcome, lang, form, None, 422)
        validation = read_answers(self.definition, form)
        if not validation.ok:
            return self.link_form(token, outcome, lang, form, validation, 422)
        result = await run_in_threadpool(
            self.service.submit, token, validation.answers, lang, client
        )
        if result.status is LinkStatus.RECORDED:
            return RedirectResponse(_with_lang(f"/s/{quote(token)}/thanks", lang), status_code=303)
        return self.status_page(result, lang, request.url.path)

    async def survey_thanks(self, token: Token, request: Request) -> Response:
        outcome = await self.link(token, request, opening=False)
        lang = self.language_of(request, outcome.language)
        if outcome.status is LinkStatus.ANSWERED:
            return self.renderer(outcome.agency_id).page(
                THANKS, lang, _with_lang(request.url.path, OTHER[lang])
            )
        if outcome.status is LinkStatus.OPEN:
            return RedirectResponse(_with_lang(f"/s/{quote(token)}", lang), status_code=303)
        return self.status_page(outcome, lang, f"/s/{quote(token)}")

    # --- the landline page ---------------------------------------------------------------
    #
    # One agency: /feedback is its form. Several: /feedback asks which one was called and
    # /feedback/{agency} is each one's form. The form posts back to its own path, so the
    # agency never rides in a field that could be changed on the way.

    @property
    def several_agencies(self) -> bool:
        return len(self.agencies) > 1

    def landline_path(self, agency: Agency) -> str:
        return f"/feedback/{agency.id}" if self.several_agencies else "/feedback"

    def agency_named(self, agency_id: str | None) -> Agency | None:
        if agency_id is None:
            return None if self.several_agencies else self.agencies.default
        try:
            return self.agencies.get(agency_id)
        except UnknownAgency:
            return None

    def agency_choice(self, lang: str, status: int) -> HTMLResponse:
        choices = [
            {
                "href": _with_lang(f"/feedback/{agency.id}", lang),
                "name": agency.name[lang],
                "number": agency.non_emergency_number,
            }
            for agency in self.agencies
        ]
        return self.render.agency_choice(
            lang, choices, status, _with_lang("/feedback", OTHER[lang])
        )

    def landline_form(
        self,
        request: Request,
        agency: Agency,
        lang: str,
        values: Mapping[str, str],
        validation: Validation | None,
        status: int,
        *,
        focus_switch: bool = False,
    ) -> HTMLResponse:
        render = self.renderers[agency.id]
        nonce = self.csrf.landline_nonce(request.cookies.get(LANDLINE_COOKIE, ""))
        csrf = self.csrf.landline_token(nonce)
        action = self.landline_path(agency)
        response: HTMLResponse
        if not values and validation is None and not focus_switch:
            response = render.empty_form(lang, status, action=action, csrf=csrf, landline=True)
        else:
            view = render.form_view(
                lang=lang,
                action=action,
                csrf=csrf,
                values=values,
                validation=validation,
                landline=True,
            )
            view.focus_switch = focus_switch
            response = render.form(view, status, landline=True)
        response.set_cookie(
            LANDLINE_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=self.https,
            path="/feedback",
        )
        return response

    async def landline_page(self, request: Request) -> Response:
        named = request.query_params.get("agency")
        return self.show_landline(request, named)

    async def agency_landline_page(self, agency: AgencyId, request: Request) -> Response:
        return self.show_landline(request, agency)

    def show_landline(self, request: Request, agency_id: str | None) -> Response:
        lang = self.language_of(request, None)
        agency = self.agency_named(agency_id)
        if agency is None:
            # No agency named yet (200), or one that is not configured (404): the choice.
            return self.agency_choice(lang, 200 if agency_id is None else 404)
        return self.landline_form(request, agency, lang, {}, None, 200)

    async def landline_submit(self, request: Request) -> Response:
        return await self.submit_landline(request, request.query_params.get("agency"))

    async def agency_landline_submit(self, agency: AgencyId, request: Request) -> Response:
        return await self.submit_landline(request, agency)

    async def submit_landline(self, request: Request, agency_id: str | None) -> Response:
        agency = self.agency_named(agency_id)
        try:
            form = await read_form(request)
        except FormTooLarge:
            render = self.renderers[agency.id] if agency else self.render
            return render.page(TOO_LARGE, self.language_of(request, None), None)
        lang = self.language_of(request, None, form.get("lang"))
        if agency is None:  # nothing is recorded without knowing whose case number it is
            return self.agency_choice(lang, 404 if agency_id else 400)
        render = self.renderers[agency.id]
        nonce = request.cookies.get(LANDLINE_COOKIE, "")
        if not self.csrf.landline_ok(form.get(CSRF_FIELD, ""), nonce):
            return render.page(FORBIDDEN, lang, None)
        action = form.get("action", "submit")
        if switch := _language_switch(action):
            return self.landline_form(request, agency, switch, form, None, 200, focus_switch=True)
        if action != "submit":
            return self.landline_form(request, agency, lang, form, None, 422)
        validation = read_answers(self.definition, form)
        case_number = normalize_case_number(form.get(CASE_FIELD, ""))
        if not validation.ok or isinstance(case_number, ErrorCode):
            return self.landline_form(request, agency, lang, form, validation, 422)
        status = await run_in_threadpool(
            self.service.landline,
            agency,
            case_number,
            validation.answers,
            lang,
            client_address(request),
        )
        if status is LandlineStatus.LIMITED:
            return render.page(LIMITED, lang, None)
        thanks = f"{self.landline_path(agency)}/thanks"
        return RedirectResponse(_with_lang(thanks, lang), status_code=303)

    async def landline_thanks(self, request: Request) -> Response:
        return self.show_thanks(request, self.agencies.default)

    async def agency_landline_thanks(self, agency: AgencyId, request: Request) -> Response:
        named = self.agency_named(agency)
        if named is None:
            return self.agency_choice(self.language_of(request, None), 404)
        return self.show_thanks(request, named)

    def show_thanks(self, request: Request, agency: Agency) -> Response:
        lang = self.language_of(request, None)
        path = request.url.path
        return self.renderers[agency.id].page(LANDLINE_THANKS, lang, _with_lang(path, OTHER[lang]))

    async def stylesheet(self) -> Response:
        return Response(
            self.css,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )
