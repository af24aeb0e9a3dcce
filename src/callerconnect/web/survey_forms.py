"""A posted survey form: reading it (URL-encoded, bounded in size before it is read
whole) and its fields as the OpenAPI document declares them (:func:`form_schema`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from callerconnect.domain.survey import SurveyDefinition
from callerconnect.web.clients import client_of
from callerconnect.web.limits import BodyTooLarge

MAX_FORM_BYTES = 32 * 1024  # a full response with a 1,000-character comment is ~5 KB


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


_NOT_BLANK = r"[^\s\x00-\x1f]"


def _answer_pattern(values: list[str]) -> str:
    # One of the form's values, or blank (not answered); surrounding blanks are ignored.
    return r"^\s*(?:" + "|".join(values) + r")?\s*$"


def form_schema(definition: SurveyDefinition, *, landline: bool) -> dict[str, Any]:
    """The fields of the survey form, as the page posts them, from the survey's
    definition (its question ids and answers).

    ``action`` is ``submit`` (the default) or ``lang:en``/``lang:fr``, which re-renders
    the form in that language with what was typed, validating nothing; any other value
    is not a button of the form and gets the form back (422), nothing recorded. A
    submission needs at least one answer or a comment.
    """
    answers: dict[str, Any] = {}
    for question in definition.questions:
        values = [str(n) for n in range(1, question.scale.points + 1)]
        values += [choice.value for choice in question.choices]
        answers[question.id] = {
            "type": "string",
            "pattern": _answer_pattern(values),
            "description": "one of: " + ", ".join(values) + " (blank: not answered)",
        }
    comment = definition.comment
    answers[comment.id] = {"type": "string", "maxLength": comment.max_length}
    common: dict[str, Any] = {
        "csrf_token": {"type": "string", "description": "the token the page put in the form"},
        "lang": {"type": "string", "description": "en or fr; anything else is ignored"},
    }
    one_answer: list[dict[str, Any]] = [
        {"required": [q.id], "properties": {q.id: {"pattern": r"\S"}}} for q in definition.questions
    ]
    one_answer.append(
        {"required": [comment.id], "properties": {comment.id: {"pattern": _NOT_BLANK}}}
    )
    submit: dict[str, Any] = {
        "properties": {**common, **answers, "action": {"enum": ["submit"]}},
        "anyOf": one_answer,
    }
    if landline:
        submit["required"] = ["case_number"]
        submit["properties"]["case_number"] = {
            "type": "string",
            "pattern": r"^\s*[A-Za-z0-9][A-Za-z0-9 ./_-]{0,31}\s*$",
            "maxLength": 32,
            "description": "the case number given on the call, e.g. 26-00123",
        }
    switch: dict[str, Any] = {
        "required": ["action"],
        "properties": {
            **common,
            "action": {"enum": ["lang:en", "lang:fr"]},
            **{name: {"type": "string"} for name in answers},
        },
    }
    return {"type": "object", "oneOf": [submit, switch]}
