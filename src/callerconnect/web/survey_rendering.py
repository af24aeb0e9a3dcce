"""Rendering the survey pages: Jinja2 templates in the page's language, the form with
its answers and errors kept.

The empty form (a link just opened, the landline page) is the page served most, and it
is the same for every respondent in a language but for two values: the form's action
(the link's own path) and its CSRF token. So it is rendered once per language and form,
with a slot for each, and each request fills the slots in (escaped, as the template
would). A form with answers, errors or a notice is always rendered in full."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi.responses import HTMLResponse
from markupsafe import escape

from callerconnect.domain.survey import (
    FORM,
    ErrorCode,
    Question,
    SurveyDefinition,
    Validation,
    normalize_case_number,
    normalize_comment,
)
from callerconnect.i18n.pages import pages_translator
from callerconnect.service.agencies import Agency
from callerconnect.web.survey_language import LANGUAGE_NAMES, OTHER
from callerconnect.web.survey_pages import ERROR_MESSAGES, Page
from callerconnect.web.templating import template_environment, translator

CSS_URL = "/static/survey.css"
CASE_FIELD = "case_number"


def _days(duration: timedelta) -> int:
    return max(1, round(duration / timedelta(days=1)))


@dataclass
class FormView:
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
    """The pages of one agency: its name, its non-emergency number, its survey's life."""

    def __init__(self, agency: Agency, definition: SurveyDefinition) -> None:
        self.definition = definition
        self.agency = {"en": agency.name["en"], "fr": agency.name["fr"]}
        self.non_emergency = agency.non_emergency_number
        self.survey_days = _days(agency.policy.survey_expires)
        self.env = template_environment()
        # Slots of the pre-rendered empty forms: letters and digits only, so escaping
        # leaves them as they are, and random, so no text of a page can contain one.
        self._action_slot = f"action-slot-{secrets.token_hex(16)}"
        self._csrf_slot = f"csrf-slot-{secrets.token_hex(16)}"
        self._empty_forms: dict[tuple[str, bool], str] = {}  # (lang, landline): 4 at most

    def gettext(self, lang: str) -> Callable[..., str]:
        return translator(pages_translator(lang))

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
        body = self._render(template, lang, switch_href=switch_href, **context)
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def _render(self, template: str, lang: str, **context: object) -> str:
        translate = self.gettext(lang)
        translations = pages_translator(lang)

        def plural(singular: str, plural_: str, n: int, **values: object) -> str:
            return translations.ngettext(singular, plural_, n) % {"n": n, **values}

        values: dict[str, object] = {
            "lang": lang,
            "other": OTHER[lang],
            "other_name": LANGUAGE_NAMES[OTHER[lang]],
            "agency": self.agency[lang],
            "non_emergency": self.non_emergency,
            "css": CSS_URL,
            "_": translate,
            "ngettext": plural,
        }
        # A page of the whole deployment (the choice of agency) blanks the agency's own.
        values.update(context)
        return self.env.get_template(f"survey/{template}.html").render(**values)

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
    ) -> FormView:
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
        return FormView(
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

    def form(self, view: FormView, status: int, *, landline: bool) -> HTMLResponse:
        return HTMLResponse(
            self._form_body(view, landline=landline),
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )

    def empty_form(
        self, lang: str, status: int, *, action: str, csrf: str, landline: bool
    ) -> HTMLResponse:
        """The form as first shown (no answers, errors or notice), the same page as
        :meth:`form` renders, from the language's pre-rendered copy."""
        page = self._empty_forms.get((lang, landline))
        if page is None:
            view = self.form_view(
                lang=lang,
                action=self._action_slot,
                csrf=self._csrf_slot,
                values={},
                validation=None,
                landline=landline,
            )
            page = self._empty_forms[(lang, landline)] = self._form_body(view, landline=landline)
        body = page.replace(self._action_slot, escape(action)).replace(
            self._csrf_slot, escape(csrf)
        )
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def _form_body(self, view: FormView, *, landline: bool) -> str:
        translate = self.gettext(view.lang)
        d = self.definition
        title = (
            translate("Give feedback without a text message")
            if landline
            else self.text(d.title, view.lang)
        )
        return self._render(
            "form",
            view.lang,
            switch_href=None,
            page_title=(translate("Error:") + " " + title) if view.errors else title,
            heading=title,
            intro=self.text(d.intro, view.lang),
            privacy=self.text(d.privacy_notice, view.lang),
            view=view,
            landline=landline,
            survey_days=self.survey_days,
        )

    def agency_choice(
        self, lang: str, choices: list[dict[str, str]], status: int, switch_href: str
    ) -> HTMLResponse:
        """The landline page of a deployment with several agencies: which one was called.
        ``choices`` are each agency's ``href``, ``name`` (in ``lang``) and ``number``."""
        title = self.gettext(lang)("Which police service did you call?")
        return self.html(
            "agencies",
            lang,
            status,
            switch_href=switch_href,
            page_title=title,
            agency=None,
            non_emergency=None,
            choices=choices,
        )
