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
- ``GET /static/survey.css``: the one stylesheet.

Language: ``?lang=`` (or the posted ``lang`` field) first, then the invitation's language,
then the browser's ``Accept-Language`` (French when preferred over English), else English.

CSRF: a survey form carries a token signed with a key derived from ``secret_key``
(itsdangerous) that names the survey token's hash, so it is valid for that survey only.
The landline form has no such secret to tie to, so it uses a signed double-submit: a
random nonce in a ``SameSite=Strict`` cookie and its signature in the form.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from callerconnect.adapters.crypto import token_hash
from callerconnect.bootstrap import Application
from callerconnect.domain.survey import (
    FORM,
    ErrorCode,
    Question,
    SurveyDefinition,
    Validation,
    normalize_case_number,
    normalize_comment,
    read_answers,
)
from callerconnect.i18n.pages import pages_translator
from callerconnect.service.survey import (
    LandlineStatus,
    LinkStatus,
    SurveyLimits,
    SurveyService,
    load_definition,
)
from callerconnect.web.clients import client_of
from callerconnect.web.limits import BodyTooLarge

LANGUAGES = ("en", "fr")
OTHER = {"en": "fr", "fr": "en"}
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
CSS_URL = "/static/survey.css"
CSRF_FIELD = "csrf_token"
CASE_FIELD = "case_number"
LANDLINE_COOKIE = "cc_feedback_nonce"
MAX_FORM_BYTES = 32 * 1024  # a full response with a 1,000-character comment is ~5 KB
CSRF_MAX_AGE = timedelta(hours=24)
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")


def _(message: str) -> str:
    """Mark a msgid for the pages catalog (translated at render time)."""
    return message


def _n(singular: str, plural: str) -> tuple[str, str]:
    """Mark a msgid with a plural form; rendered with ``n`` = the survey's days."""
    return (singular, plural)


RESUBMIT_NOTICE = _("This page was open for a long time. Check your answers and send them again.")


ERROR_MESSAGES: Mapping[ErrorCode, str] = {
    ErrorCode.NO_ANSWER: _("Answer at least one question or write a comment."),
    ErrorCode.INVALID_CHOICE: _("Choose one of the answers shown."),
    ErrorCode.COMMENT_TOO_LONG: _(
        "Your comment is %(length)s characters long. Shorten it to %(max)s characters or fewer."
    ),
    ErrorCode.CASE_NUMBER_MISSING: _("Enter the case number of your call."),
    ErrorCode.CASE_NUMBER_INVALID: _(
        "Enter the case number as it was given to you, for example 26-00123."
    ),
}


# --- language ---------------------------------------------------------------------------


def negotiate(accept_language: str | None) -> str | None:
    """The preferred of English and French in an ``Accept-Language`` header, if any."""
    best: str | None = None
    best_q = 0.0
    for part in (accept_language or "").split(","):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _eq, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > best_q:
            best, best_q = primary, quality
    return best


def pick_language(explicit: str | None, invitation: str | None, accept_language: str | None) -> str:
    for candidate in (explicit, invitation):
        if candidate is not None and candidate in LANGUAGES:
            return candidate
    return negotiate(accept_language) or "en"


# --- rendering --------------------------------------------------------------------------


@dataclass
class Page:
    """What a status page says, as msgids (translated when rendered)."""

    title: str
    paragraphs: tuple[str | tuple[str, str], ...]
    status: int
    link: tuple[str, str] | None = None  # (href, msgid)


def _days(duration: timedelta) -> int:
    return max(1, round(duration / timedelta(days=1)))


@dataclass
class _View:
    """Everything the form template shows, already in the page's language."""

    lang: str
    action: str
    csrf: str
    questions: list[dict[str, Any]]
    comment: dict[str, Any]
    errors: list[dict[str, str]] = field(default_factory=list)
    case_number: dict[str, Any] | None = None
    form_error: str | None = None
    notice: str | None = None
    focus_switch: bool = False


class Renderer:
    def __init__(self, application: Application, definition: SurveyDefinition) -> None:
        settings = application.settings
        self.definition = definition
        self.agency = {"en": settings.agency_name.en, "fr": settings.agency_name.fr}
        self.non_emergency = settings.non_emergency_number
        self.survey_days = _days(settings.policy.survey_expires)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("callerconnect.web", "templates"),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def gettext(self, lang: str) -> Callable[..., str]:
        translations = pages_translator(lang)

        def translate(message: str, **values: object) -> str:
            text = translations.gettext(message)
            return text % values if values else text

        return translate

    def text(self, localized: Mapping[str, str], lang: str) -> str:
        """A text of the survey definition, with its placeholders filled."""
        return (
            localized[lang]
            .replace("{agency}", self.agency[lang])
            .replace("{non_emergency_number}", self.non_emergency)
        )

    def html(
        self,
        template: str,
        lang: str,
        status: int,
        *,
        switch_href: str | None = None,
        **context: object,
    ) -> HTMLResponse:
        translate = self.gettext(lang)
        translations = pages_translator(lang)

        def plural(singular: str, plural_: str, n: int, **values: object) -> str:
            return translations.ngettext(singular, plural_, n) % {"n": n, **values}

        body = self.env.get_template(f"survey/{template}.html").render(
            lang=lang,
            other=OTHER[lang],
            other_name=LANGUAGE_NAMES[OTHER[lang]],
            agency=self.agency[lang],
            non_emergency=self.non_emergency,
            css=CSS_URL,
            switch_href=switch_href,
            _=translate,
            ngettext=plural,
            **context,
        )
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def page(self, page: Page, lang: str, switch_href: str | None) -> HTMLResponse:
        translate = self.gettext(lang)
        values = {"days": self.survey_days, "number": self.non_emergency}
        return self.html(
            "message",
            lang,
            page.status,
            switch_href=switch_href,
            page_title=translate(page.title),
            paragraphs=[
                translate(p, **values)
                if isinstance(p, str)
                else pages_translator(lang).ngettext(*p, self.survey_days) % values
                for p in page.paragraphs
            ],
            link={"href": page.link[0], "text": translate(page.link[1])} if page.link else None,
        )

    # --- the form --------------------------------------------------------------------

    def form_view(
        self,
        *,
        lang: str,
        action: str,
        csrf: str,
        values: Mapping[str, str],
        validation: Validation | None,
        landline: bool,
    ) -> _View:
        translate = self.gettext(lang)
        d = self.definition
        errors: list[dict[str, str]] = []
        first_question = d.questions[0].id

        def error_text(code: ErrorCode, length: int = 0) -> str:
            return translate(
                ERROR_MESSAGES[code],
                **(
                    {"length": length, "max": d.comment.max_length}
                    if code is ErrorCode.COMMENT_TOO_LONG
                    else {}
                ),
            )

        case_view: dict[str, Any] | None = None
        if landline:
            case_code = normalize_case_number(values.get(CASE_FIELD, ""))
            case_error = (
                error_text(case_code)
                if validation is not None and isinstance(case_code, ErrorCode)
                else None
            )
            case_view = {"value": values.get(CASE_FIELD, ""), "error": case_error}
            if case_error:
                errors.append({"target": CASE_FIELD, "message": case_error})

        form_code = validation.error_for(FORM) if validation else None
        form_error = error_text(form_code) if form_code else None
        if form_error:
            errors.append({"target": f"{first_question}-1", "message": form_error})
        questions: list[dict[str, Any]] = []
        for question in d.questions:
            code = validation.error_for(question.id) if validation else None
            message = error_text(code) if code else None
            if message:
                errors.append({"target": f"{question.id}-1", "message": message})
            questions.append(self._question_view(question, lang, values, message))
        raw_comment = values.get(d.comment.id, "")
        comment_code = validation.error_for(d.comment.id) if validation else None
        comment_error = (
            error_text(comment_code, len(normalize_comment(raw_comment))) if comment_code else None
        )
        if comment_error:
            errors.append({"target": d.comment.id, "message": comment_error})
        return _View(
            lang=lang,
            action=action,
            csrf=csrf,
            questions=questions,
            comment={
                "id": d.comment.id,
                "label": self.text(d.comment.label, lang),
                "hint": self.text(d.comment.hint, lang),
                "value": raw_comment,
                "max_length": d.comment.max_length,
                "error": comment_error,
            },
            errors=errors,
            case_number=case_view,
            form_error=form_error,
        )

    def _question_view(
        self, question: Question, lang: str, values: Mapping[str, str], error: str | None
    ) -> dict[str, Any]:
        scale = question.scale
        low, high = self.text(scale.low, lang), self.text(scale.high, lang)
        points = [
            {
                "value": str(n),
                "end": low if n == 1 else high if n == scale.points else None,
            }
            for n in range(1, scale.points + 1)
        ]
        return {
            "id": question.id,
            "legend": self.text(question.text, lang),
            "points": points,
            "low": low,
            "high": high,
            "top": scale.points,
            "choices": [
                {"value": c.value, "label": self.text(c.label, lang)} for c in question.choices
            ],
            "selected": (values.get(question.id) or "").strip(),
            "error": error,
        }

    def form(self, view: _View, status: int, *, landline: bool) -> HTMLResponse:
        translate = self.gettext(view.lang)
        d = self.definition
        title = (
            translate("Give feedback without a text message")
            if landline
            else self.text(d.title, view.lang)
        )
        return self.html(
            "form",
            view.lang,
            status,
            page_title=(translate("Error:") + " " + title) if view.errors else title,
            heading=title,
            intro=self.text(d.intro, view.lang),
            privacy=self.text(d.privacy_notice, view.lang),
            view=view,
            landline=landline,
            survey_days=self.survey_days,
        )


# --- keys -------------------------------------------------------------------------------


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def _secrets(application: Application) -> list[bytes]:
    """Keys derive from ``secret_key`` and, so that a form shown before a key rotation
    can still be sent after it, from ``old_secret_keys``: oldest first, newest last (the
    order itsdangerous verifies and signs in). The demo has none configured (it generates
    the encryption key itself), so it gets a random one per process, which is enough for
    a single-process demo: forms signed before a restart are refused, nothing else."""
    configured = application.settings.secret_key
    if configured is None:
        return [secrets.token_bytes(32)]
    old = [k.get_secret_value().encode() for k in application.settings.old_secret_keys]
    return [*reversed(old), configured.get_secret_value().encode()]


# --- HTTP helpers -----------------------------------------------------------------------


class FormTooLarge(Exception):
    pass


async def read_form(request: Request) -> dict[str, str]:
    """The posted URL-encoded fields (first value of each), refusing oversized bodies
    before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_FORM_BYTES:
                raise FormTooLarge
    except BodyTooLarge:  # the middleware's count (web/limits.py) got there first
        raise FormTooLarge from None
    fields: dict[str, str] = {}
    try:
        pairs = parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=100
        )
    except ValueError:
        return fields
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def client_address(request: Request) -> str:
    """The client as the per-client limits count it (web/clients.py)."""
    return client_of(request)


def _with_lang(path: str, lang: str) -> str:
    return f"{path}?lang={lang}"


# --- pages ------------------------------------------------------------------------------

NOT_FOUND = Page(
    _("Survey link not found"),
    (
        _(
            "This link does not match any survey. Check that you opened the whole link "
            "from the text message."
        ),
        _("If you did not receive a text, you can give feedback with your case number."),
    ),
    404,
    ("/feedback", _("Give feedback with a case number")),
)
ANSWERED = Page(
    _("You have already answered this survey"),
    (
        _("Each survey link can be used once, and we have your answers."),
        _("Thank you for your feedback."),
    ),
    409,
)
CLOSED = Page(
    _("This survey is closed"),
    (
        _n(
            "Survey links can be used for %(days)s day after they are sent, and this one "
            "is no longer open.",
            "Survey links can be used for %(days)s days after they are sent, and this one "
            "is no longer open.",
        ),
        _("Thank you for your interest."),
    ),
    410,
)
LIMITED = Page(
    _("Too many attempts"),
    (
        _("We received too many requests from your connection."),
        _("Please wait a few minutes and try again."),
    ),
    429,
)
FORBIDDEN = Page(
    _("Please try again"),
    (
        _(
            "We could not accept this form because it was not sent from our survey page. "
            "Nothing was recorded."
        ),
        _("Open the page again to answer."),
    ),
    403,
)
TOO_LARGE = Page(
    _("This form is too long"),
    (_("Nothing was recorded. Please shorten your answers and try again."),),
    413,
)
THANKS = Page(
    _("Thank you"),
    (
        _("Your answers have been recorded."),
        _("They help us improve how we answer and respond to calls."),
    ),
    200,
)
LANDLINE_THANKS = Page(
    _("Thank you"),
    (
        _n(
            "If this case number matches a call cleared in the last day that can receive "
            "feedback, your answers have been recorded.",
            "If this case number matches a call cleared in the last %(days)s days that can "
            "receive feedback, your answers have been recorded.",
        ),
        _("Each call can receive one response."),
    ),
    200,
)

_STATUS_PAGES: Mapping[LinkStatus, Page] = {
    LinkStatus.UNKNOWN: NOT_FOUND,
    LinkStatus.ANSWERED: ANSWERED,
    LinkStatus.CLOSED: CLOSED,
    LinkStatus.LIMITED: LIMITED,
}


def build_survey_router(
    application: Application,
    *,
    definition: SurveyDefinition | None = None,
    limits: SurveyLimits | None = None,
) -> APIRouter:
    definition = definition or load_definition()
    keys = _secrets(application)
    service = SurveyService(
        application.db,
        application.vault,
        application.clock,
        definition,
        agency_id=application.settings.agency_id,
        survey_expires=application.settings.policy.survey_expires,
        client_key=_derive(keys[-1], b"callerconnect survey client v1"),
        limits=limits,
    )
    csrf_keys = [_derive(key, b"callerconnect survey csrf v1") for key in keys]
    link_signer = URLSafeTimedSerializer(csrf_keys, salt="survey-link")
    landline_signer = URLSafeTimedSerializer(csrf_keys, salt="landline-feedback")
    render = Renderer(application, definition)
    https = application.settings.public_base_url.startswith("https://")
    css = (resources.files("callerconnect.web") / "static" / "survey.css").read_bytes()
    router = APIRouter(tags=["survey"])

    def language_of(request: Request, invitation: str | None, posted: str | None = None) -> str:
        return pick_language(
            posted or request.query_params.get("lang"),
            invitation,
            request.headers.get("accept-language"),
        )

    def status_page(status: LinkStatus, lang: str, path: str) -> HTMLResponse:
        return render.page(_STATUS_PAGES[status], lang, _with_lang(path, OTHER[lang]))

    # --- the survey link ----------------------------------------------------------------

    def link_form(
        token: str,
        lang: str,
        values: Mapping[str, str],
        validation: Validation | None,
        status: int,
        *,
        focus_switch: bool = False,
        notice: str | None = None,
    ) -> HTMLResponse:
        view = render.form_view(
            lang=lang,
            action=f"/s/{quote(token)}",
            csrf=link_signer.dumps(token_hash(token)),
            values=values,
            validation=validation,
            landline=False,
        )
        view.focus_switch = focus_switch
        view.notice = notice
        return render.form(view, status, landline=False)

    @router.get("/s/{token}", response_class=HTMLResponse)
    async def open_survey(token: str, request: Request) -> Response:
        outcome = await run_in_threadpool(service.open, token, client_address(request))
        lang = language_of(request, outcome.language)
        if outcome.status is not LinkStatus.OPEN:
            return status_page(outcome.status, lang, request.url.path)
        return link_form(token, lang, {}, None, 200)

    @router.post("/s/{token}", response_class=HTMLResponse)
    async def submit_survey(token: str, request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormTooLarge:
            return render.page(TOO_LARGE, language_of(request, None), None)
        client = client_address(request)
        outcome = await run_in_threadpool(service.check, token, client)
        posted_lang = form.get("lang")
        lang = language_of(request, outcome.language, posted_lang)
        if outcome.status is not LinkStatus.OPEN:
            return status_page(outcome.status, lang, request.url.path)
        try:
            signed = link_signer.loads(
                form.get(CSRF_FIELD, ""), max_age=int(CSRF_MAX_AGE.total_seconds())
            )
        except SignatureExpired:
            notice = render.gettext(lang)(RESUBMIT_NOTICE)
            return link_form(token, lang, form, None, 200, notice=notice)
        except BadSignature:
            signed = None
        if signed != token_hash(token):
            return render.page(FORBIDDEN, lang, None)
        action = form.get("action", "submit")
        if action.startswith("lang:") and action[5:] in LANGUAGES:
            return link_form(token, action[5:], form, None, 200, focus_switch=True)
        if action != "submit":  # not a button of ours: the form again, nothing recorded
            return link_form(token, lang, form, None, 422)
        validation = read_answers(definition, form)
        if not validation.ok:
            return link_form(token, lang, form, validation, 422)
        result = await run_in_threadpool(service.submit, token, validation.answers, lang, client)
        if result.status is LinkStatus.RECORDED:
            return RedirectResponse(_with_lang(f"/s/{quote(token)}/thanks", lang), status_code=303)
        return status_page(result.status, lang, request.url.path)

    @router.get("/s/{token}/thanks", response_class=HTMLResponse)
    async def survey_thanks(token: str, request: Request) -> Response:
        outcome = await run_in_threadpool(service.check, token, client_address(request))
        lang = language_of(request, outcome.language)
        if outcome.status is LinkStatus.ANSWERED:
            return render.page(THANKS, lang, _with_lang(request.url.path, OTHER[lang]))
        if outcome.status is LinkStatus.OPEN:
            return RedirectResponse(_with_lang(f"/s/{quote(token)}", lang), status_code=303)
        return status_page(outcome.status, lang, f"/s/{quote(token)}")

    # --- the landline page ---------------------------------------------------------------

    def landline_form(
        request: Request,
        lang: str,
        values: Mapping[str, str],
        validation: Validation | None,
        status: int,
        *,
        focus_switch: bool = False,
    ) -> HTMLResponse:
        nonce = request.cookies.get(LANDLINE_COOKIE, "")
        if not _NONCE.fullmatch(nonce):
            nonce = secrets.token_urlsafe(24)
        view = render.form_view(
            lang=lang,
            action="/feedback",
            csrf=landline_signer.dumps(nonce),
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
            secure=https,
            path="/feedback",
        )
        return response

    @router.get("/feedback", response_class=HTMLResponse)
    async def landline_page(request: Request) -> Response:
        return landline_form(request, language_of(request, None), {}, None, 200)

    @router.post("/feedback", response_class=HTMLResponse)
    async def landline_submit(request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormTooLarge:
            return render.page(TOO_LARGE, language_of(request, None), None)
        lang = language_of(request, None, form.get("lang"))
        nonce = request.cookies.get(LANDLINE_COOKIE, "")
        try:
            signed = landline_signer.loads(
                form.get(CSRF_FIELD, ""), max_age=int(CSRF_MAX_AGE.total_seconds())
            )
        except BadSignature:  # SignatureExpired included: nothing to lose but the form
            signed = None
        if not nonce or not isinstance(signed, str) or not hmac.compare_digest(signed, nonce):
            return render.page(FORBIDDEN, lang, None)
        action = form.get("action", "submit")
        if action.startswith("lang:") and action[5:] in LANGUAGES:
            return landline_form(request, action[5:], form, None, 200, focus_switch=True)
        if action != "submit":
            return landline_form(request, lang, form, None, 422)
        validation = read_answers(definition, form)
        case_number = normalize_case_number(form.get(CASE_FIELD, ""))
        if not validation.ok or isinstance(case_number, ErrorCode):
            return landline_form(request, lang, form, validation, 422)
        status = await run_in_threadpool(
            service.landline, case_number, validation.answers, lang, client_address(request)
        )
        if status is LandlineStatus.LIMITED:
            return render.page(LIMITED, lang, None)
        return RedirectResponse(_with_lang("/feedback/thanks", lang), status_code=303)

    @router.get("/feedback/thanks", response_class=HTMLResponse)
    async def landline_thanks(request: Request) -> Response:
        lang = language_of(request, None)
        return render.page(LANDLINE_THANKS, lang, _with_lang("/feedback/thanks", OTHER[lang]))

    @router.get(CSS_URL)
    async def stylesheet() -> Response:
        return Response(
            css,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return router
