"""What each route of the survey pages declares: its path, method and endpoint (a
method of ``SurveyPages``, web/survey.py), and its parameters and answers for the
OpenAPI document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path
from fastapi.responses import Response

from callerconnect.domain.survey import SurveyDefinition
from callerconnect.web.openapi import LANG_QUERY, form_body, html_answer, media_answer, see_other
from callerconnect.web.survey_csrf import LANDLINE_COOKIE
from callerconnect.web.survey_forms import form_schema
from callerconnect.web.survey_rendering import CSS_URL

if TYPE_CHECKING:
    from callerconnect.web.survey import SurveyPages

#: The survey link's token, as the routes' path parameter declares it.
Token = Annotated[
    str, Path(description="the survey link's token (at least 128 random bits, base64url)")
]
#: The agency of a landline page, with several agencies configured.
AgencyId = Annotated[str, Path(description="the agency's id (agency_id, or a key of [agencies])")]
_LANDLINE_NONCE = {
    "name": LANDLINE_COOKIE,
    "in": "cookie",
    "required": False,
    "description": "set by GET /feedback; the form's token signs it",
    "schema": {"type": "string"},
}
_LINK_PAGES: dict[int | str, dict[str, Any]] = {
    404: html_answer("No survey has this token"),
    409: html_answer("This survey was already answered"),
    410: html_answer("This survey is closed (expired, or the call may not be surveyed)"),
    429: html_answer("Too many unknown tokens from this client; try again later"),
}
_FORM_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: html_answer("The form is too long; nothing recorded"),
    422: html_answer("The form again, with what to correct"),
}

#: What a posted landline form may meet, for one agency or the deployment's page.
_LANDLINE_SENT: dict[int | str, dict[str, Any]] = {
    200: html_answer("The form again, in the other language"),
    303: see_other("Received (the same whether the case number matched or not)"),
    403: html_answer("The form's CSRF token or cookie is missing or wrong"),
    **_FORM_REFUSALS,
    429: html_answer("Too many attempts from this client; try again later"),
}


def declared_routes(pages: SurveyPages, definition: SurveyDefinition) -> list[dict[str, Any]]:
    """Each route with what it declares (FastAPI's ``add_api_route`` arguments)."""
    lang = {"parameters": [LANG_QUERY]}
    landline_form = form_body(form_schema(definition, landline=True))
    return [
        dict(
            path="/s/{token}",
            endpoint=pages.open_survey,
            methods=["GET"],
            summary="The survey form",
            responses={200: html_answer("The survey form"), **_LINK_PAGES},
            openapi_extra=lang,
        ),
        dict(
            path="/s/{token}",
            endpoint=pages.submit_survey,
            methods=["POST"],
            summary="Answer the survey (or switch the form's language)",
            responses={
                200: html_answer("The form again: in the other language, or to re-confirm"),
                303: see_other("Recorded; see the thanks page"),
                403: html_answer("The form's CSRF token is missing or wrong; nothing recorded"),
                **_FORM_REFUSALS,
                **_LINK_PAGES,
            },
            openapi_extra=form_body(form_schema(definition, landline=False)),
        ),
        dict(
            path="/s/{token}/thanks",
            endpoint=pages.survey_thanks,
            methods=["GET"],
            summary="Thanks, after answering",
            responses={
                200: html_answer("Thanks"),
                303: see_other("Not answered yet: to the form"),
                **_LINK_PAGES,
            },
            openapi_extra=lang,
        ),
        dict(
            path="/feedback",
            endpoint=pages.landline_page,
            methods=["GET"],
            summary="Feedback with a case number (no text received)",
            description="With several agencies, the list of police services to choose from "
            "(each one's form is /feedback/{agency}, or ?agency=).",
            responses={
                200: html_answer("The form, with its CSRF cookie (or the choice of agencies)"),
                404: html_answer("?agency= names no configured agency: the choice of agencies"),
            },
            openapi_extra=lang,
        ),
        dict(
            path="/feedback",
            endpoint=pages.landline_submit,
            methods=["POST"],
            summary="Feedback with a case number",
            responses={
                **_LANDLINE_SENT,
                400: html_answer("Several agencies and none named: the choice; nothing recorded"),
                404: html_answer("?agency= names no configured agency; nothing recorded"),
            },
            openapi_extra={"parameters": [_LANDLINE_NONCE], **landline_form},
        ),
        # Before the agency's path, so that "thanks" is never taken for an agency id.
        dict(
            path="/feedback/thanks",
            endpoint=pages.landline_thanks,
            methods=["GET"],
            summary="Thanks, after feedback",
            responses={200: html_answer("Thanks")},
            openapi_extra=lang,
        ),
        dict(
            path="/feedback/{agency}",
            endpoint=pages.agency_landline_page,
            methods=["GET"],
            summary="One agency's feedback form (several agencies)",
            responses={
                200: html_answer("The form, with its CSRF cookie"),
                404: html_answer("No such agency: the choice of agencies"),
            },
            openapi_extra=lang,
        ),
        dict(
            path="/feedback/{agency}",
            endpoint=pages.agency_landline_submit,
            methods=["POST"],
            summary="Feedback with a case number, for one agency",
            responses={
                **_LANDLINE_SENT,
                404: html_answer("No such agency: the choice of agencies; nothing recorded"),
            },
            openapi_extra={"parameters": [_LANDLINE_NONCE], **landline_form},
        ),
        dict(
            path="/feedback/{agency}/thanks",
            endpoint=pages.agency_landline_thanks,
            methods=["GET"],
            summary="Thanks, after feedback to one agency",
            responses={200: html_answer("Thanks"), 404: html_answer("No such agency")},
            openapi_extra=lang,
        ),
        dict(
            path=CSS_URL,
            endpoint=pages.stylesheet,
            methods=["GET"],
            summary="The pages' one stylesheet",
            response_class=Response,
            responses={200: media_answer("CSS", "text/css")},
        ),
    ]
