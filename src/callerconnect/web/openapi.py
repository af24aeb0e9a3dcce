"""The OpenAPI document of the public HTTP interface (``GET /openapi.json``).

FastAPI describes the routes; the routes read their bodies themselves (to keep every
payload, to limit sizes while streaming, to render pages), so FastAPI cannot see what
they accept or answer. This module adds that, from the same sources the code uses: the
native event's JSON Schema (``cad-event.schema.json``), the survey definition (its
question ids and answers), and the error bodies of ``web/intake.py``.

It is the contract that ``tests/integration/test_api_fuzz.py`` holds the application to:
schemathesis generates requests from it and checks that every answer is one of the
status codes and media types declared here, and never a 5xx. Declare what an endpoint
really does, including its refusals, rather than what would be convenient; and keep
every public route in the document (no ``include_in_schema=False``), or it is not fuzzed.

Longer than most modules on purpose: it is one document whose parts (error bodies, forms,
operations, marked below) refer to each other, and reading it whole is how a route's
declaration is checked against the code.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from callerconnect.adapters.cad.native import (
    FIRST_YEAR,
    ID_PATTERN,
    LAST_YEAR,
    STORED_TEXT_FIELDS,
)
from callerconnect.domain.survey import SurveyDefinition
from callerconnect.web import twilio_fields

__all__ = ["install_openapi", "openapi_document"]

Json = dict[str, Any]

_REF = "#/components/schemas/"


def _ref(name: str) -> Json:
    return {"$ref": _REF + name}


# Years 1900 to 9998, where both adapters accept them (adapters/cad/native.py).
_RFC3339: Json = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^(19\d\d|[2-8]\d\d\d|9[0-8]\d\d|99[0-8]\d|999[0-8])-",
    "description": f"RFC 3339 with an offset, years {FIRST_YEAR} to {LAST_YEAR}",
}


@cache
def _cad_event_schema() -> str:
    return (
        resources.files("callerconnect.adapters.cad")
        .joinpath("cad-event.schema.json")
        .read_text(encoding="utf-8")
    )


def cad_event_schema() -> Json:
    """The native event's JSON Schema (2020-12, which OpenAPI 3.1 uses as is), with the
    one rule the intake adds: the fields stored in columns of their own must not hold a
    NUL or an unpaired surrogate, which no database stores (rule ``characters``)."""
    schema: Json = json.loads(_cad_event_schema())
    schema.pop("$schema", None)
    schema.pop("$id", None)
    for path in STORED_TEXT_FIELDS:
        field: Json = schema
        for name in path.split("."):
            field = field["properties"][name]
        # No NUL; an unpaired surrogate (which generators never produce, and some do
        # not translate to a regex correctly) is said in words.
        field["pattern"] = "^[^\\u0000]*$"
        field["description"] = "no NUL character and no unpaired surrogate"
    schema["properties"]["occurred_at"] = dict(_RFC3339)
    schema["properties"]["case_number"]["description"] = (
        "no NUL character and no unpaired surrogate; must also match the agency's "
        "intake.case_number_pattern (rule agency_pattern; strict by default: no spaces, "
        "at most 20 characters, an optional letter prefix and digit groups joined by '-' "
        "or '/', no run of 10 or more digits, nothing written as a phone number)"
    )
    return schema


# --- error bodies -------------------------------------------------------------------------

_ERROR: Json = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, for programs"},
                "message": {"type": "string", "description": "what to do, for people"},
                "field": {"type": "string", "description": "dotted path of the field"},
                "rule": {"type": "string", "description": "the rule it broke"},
            },
        },
        "results": {"type": "array", "items": _ref("IntakeResult")},
    },
}

_INTAKE_RESULT: Json = {
    "type": "object",
    "required": ["event_id", "status"],
    "properties": {
        "event_id": {"type": ["string", "null"]},
        "status": {"enum": ["accepted", "duplicate", "rejected"]},
        "error": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "rule": {"type": ["string", "null"]},
    },
}

_INTAKE_RESULTS: Json = {
    "type": "object",
    "required": ["results"],
    "properties": {"results": {"type": "array", "items": _ref("IntakeResult")}},
}

_BATCH: Json = {
    "type": "object",
    "description": (
        "Up to 1,000 events (intake.max_batch), answered in request order. A batch is "
        "accepted as a whole (202) and each event gets its own status: an event that "
        "breaks the schema is `rejected` (kept as a dead letter) without holding the "
        "others back."
    ),
    "required": ["events"],
    # An object with an event_id is one event, whatever else it holds.
    "not": {"required": ["event_id"]},
    "properties": {
        "events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _ref("CadEvent")}
    },
}

# A subset of NENA-STA-021's EIDO: the elements callerconnect reads (see
# adapters/cad/eido/ for the mapping). The reading is lenient, as published samples
# differ: keys match in any case, ``null`` counts as absent, a component may be one
# object or a list of them.


def _or_null(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def _one_or_list(item: Json) -> Json:
    return {"anyOf": [item, {"type": "array", "maxItems": 3, "items": item}, {"type": "null"}]}


# The same rule as a native incident id: some visible character, none invisible.
_EIDO_ID = {"type": "string", "maxLength": 128, "pattern": ID_PATTERN}
_EIDO: Json = {
    "type": "object",
    "description": (
        "One EIDO document (JSON), a snapshot of the whole incident; the elements that "
        "callerconnect reads are described here, anything else is kept but not used."
    ),
    "required": ["$id", "lastUpdateTimeStamp"],
    "properties": {
        "$id": {**_EIDO_ID, "description": "the incident tracking identifier"},
        "lastUpdateTimeStamp": _RFC3339,
        "incidentComponent": _one_or_list(
            {
                "type": "object",
                "properties": {
                    "incidentTrackingIdentifier": _or_null(_EIDO_ID),
                    "lastUpdateTimeStamp": _or_null(_RFC3339),
                    "documentIdentification": _one_or_list({"type": "string", "maxLength": 32}),
                    "incidentPriorityInternalText": {
                        "anyOf": [
                            {"type": "string", "pattern": r"^\s*[1-9]\s*$"},
                            {"type": "integer", "minimum": 1, "maximum": 9},
                            {"type": "null"},
                        ],
                        "description": "the agency's own priority, 1 (most urgent) to 9",
                    },
                    "incidentTypeInternalCode": _or_null({"type": "string", "maxLength": 32}),
                    "incidentTypeInternalText": _or_null({"type": "string"}),
                    "incidentStatusInternalText": _one_or_list({"type": "string"}),
                    "beatOrDispatchGroupText": _or_null({"type": "string", "maxLength": 64}),
                },
            }
        ),
        "callbackComponent": _one_or_list(
            {
                "type": "object",
                "properties": {
                    "$id": _or_null({"type": "string"}),
                    "callBackInformationUri": _or_null(
                        {"type": "string", "description": "a tel: URI, e.g. tel:+16135550142"}
                    ),
                },
            }
        ),
    },
}


def _error_response(description: str, *, media: str = "application/json") -> Json:
    schema: Json = _ref("Error") if media == "application/json" else {"type": "string"}
    return {"description": description, "content": {media: {"schema": schema}}}


def _html(description: str, **extra: Any) -> Json:
    return {
        "description": description,
        "content": {"text/html": {"schema": {"type": "string"}}},
        **extra,
    }


# A body over the path's limit (web/limits.py), for routes that do not answer it themselves.
_TOO_LARGE = _error_response("The request body is over this endpoint's limit; nothing was read")


# --- forms ------------------------------------------------------------------------------

_NOT_BLANK = r"[^\s\x00-\x1f]"


def _answer_pattern(values: list[str]) -> str:
    # One of the form's values, or blank (not answered); surrounding blanks are ignored.
    return r"^\s*(?:" + "|".join(values) + r")?\s*$"


def survey_form_schema(definition: SurveyDefinition, *, landline: bool) -> Json:
    """The fields of the survey form, as the page posts them.

    ``action`` is ``submit`` (the default) or ``lang:en``/``lang:fr``, which re-renders
    the form in that language with what was typed, validating nothing; any other value
    is not a button of the form and gets the form back (422), nothing recorded. A
    submission needs at least one answer or a comment.
    """
    answers: Json = {}
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
    common: Json = {
        "csrf_token": {"type": "string", "description": "the token the page put in the form"},
        "lang": {"type": "string", "description": "en or fr; anything else is ignored"},
    }
    one_answer: list[Json] = [
        {"required": [q.id], "properties": {q.id: {"pattern": r"\S"}}} for q in definition.questions
    ]
    one_answer.append(
        {"required": [comment.id], "properties": {comment.id: {"pattern": _NOT_BLANK}}}
    )
    submit: Json = {
        "properties": {
            **common,
            **answers,
            "action": {"enum": ["submit"]},
        },
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
    switch: Json = {
        "required": ["action"],
        "properties": {
            **common,
            "action": {"enum": ["lang:en", "lang:fr"]},
            **{name: {"type": "string"} for name in answers},
        },
    }
    return {"type": "object", "oneOf": [submit, switch]}


def _twilio_form(required: tuple[str, ...], described: Json) -> Json:
    """A Twilio webhook form: the fields Twilio always sends (``required``), the patterns
    the webhook enforces (web/twilio_fields.py); Twilio's other fields are accepted and
    not used. A field sent twice, or an older name (``SmsSid``) whose value differs from
    the current one, is refused too (``400``)."""
    properties: Json = {
        name: {"type": "string", "pattern": pattern}
        for name, pattern in twilio_fields.FIELDS.items()
    }
    for name, extra in described.items():
        properties[name] = {**properties.get(name, {"type": "string"}), **extra}
    return {
        "type": "object",
        "required": list(required),
        "properties": properties,
        "propertyNames": {"pattern": "^" + twilio_fields.FIELD_NAME.pattern + "$"},
        "additionalProperties": {"type": "string"},
    }


_TWILIO_STATUS_FORM = _twilio_form(
    twilio_fields.STATUS_REQUIRED,
    {
        "MessageSid": {"description": "the text's SID: SM or MM and 32 hex digits"},
        "MessageStatus": {
            "description": "queued, sending, sent, delivered, undelivered, failed..."
        },
        "ErrorCode": {"description": "Twilio's error code when the text failed"},
    },
)

_TWILIO_INBOUND_FORM = _twilio_form(
    twilio_fields.INBOUND_REQUIRED,
    {
        "From": {"description": "the sender: E.164, a short code or an alphanumeric id"},
        "Body": {"description": "the text"},
    },
)


# --- the operations -----------------------------------------------------------------------


def _operations(definition: SurveyDefinition) -> dict[tuple[str, str], Json]:
    token = {
        "name": "token",
        "in": "path",
        "required": True,
        "description": "the survey link's token (at least 128 random bits, base64url)",
        "schema": {"type": "string"},
    }
    agency = {
        "name": "agency",
        "in": "path",
        "required": True,
        "description": "the agency's id (agency_id, or a key of [agencies])",
        "schema": {"type": "string"},
    }
    lang = {
        "name": "lang",
        "in": "query",
        "required": False,
        "description": "the page's language, en or fr (anything else is ignored)",
        "schema": {"type": "string"},
    }
    signature = {
        "name": "X-Twilio-Signature",
        "in": "header",
        "required": True,
        "description": "HMAC-SHA1 of the public URL and the sorted form, keyed with the "
        "auth token (Twilio's documented algorithm)",
        "schema": {"type": "string"},
    }
    twilio_refusals = {
        "400": _error_response("Signed, but a field Twilio always sends is missing or wrong"),
        "403": _error_response("Missing or invalid X-Twilio-Signature; nothing changed"),
        "404": _error_response("Twilio is not configured on this deployment"),
        "413": _TOO_LARGE,
    }
    survey_link_pages = {
        "404": _html("No survey has this token"),
        "409": _html("This survey was already answered"),
        "410": _html("This survey is closed (expired, or the call may not be surveyed)"),
        "429": _html("Too many unknown tokens from this client; try again later"),
    }
    see_other = {"Location": {"schema": {"type": "string"}, "required": True}}
    form_body = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": survey_form_schema(definition, landline=False)
            }
        },
    }
    landline_body = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": survey_form_schema(definition, landline=True)
            }
        },
    }
    return {
        ("/api/v1/cad/events", "post"): {
            "description": (
                'One native CAD event, or a batch `{"events": [...]}`. Every payload is '
                "kept: accepted events in the event store, anything else in the dead letters."
            ),
            "security": [{"intakeKey": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [_ref("CadEvent"), _ref("CadEventBatch")]}
                    }
                },
            },
            "responses": {
                "202": {
                    "description": "Each event's status, in request order",
                    "content": {"application/json": {"schema": _ref("IntakeResults")}},
                },
                "400": _error_response("The body is not JSON (or not UTF-8, or nested too deep)"),
                "401": {
                    **_error_response("Missing or unknown intake key"),
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                },
                "413": _error_response(
                    "The body is over intake.max_body_bytes; split the batch (kept in part)"
                ),
                "409": _error_response(
                    "One event whose event_id was first used for another incident: kept, "
                    "and the incident it names held"
                ),
                "422": _error_response(
                    "A schema violation, naming the field and the rule (an occurred_at "
                    "ahead of the receipt included)"
                ),
            },
        },
        ("/api/v1/cad/eido", "post"): {
            "security": [{"intakeKey": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("EidoDocument")}},
            },
            "responses": {
                "202": {
                    "description": "The events the snapshot implies, each with its status",
                    "content": {"application/json": {"schema": _ref("IntakeResults")}},
                },
                "400": _error_response("The body is not JSON (or not UTF-8, or nested too deep)"),
                "401": {
                    **_error_response("Missing or unknown intake key"),
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                },
                "413": _error_response("The body is over intake.max_body_bytes"),
                "422": _error_response("An element callerconnect cannot map, named by its path"),
            },
        },
        ("/webhooks/twilio/status", "post"): {
            "description": "Twilio's status callback; statuses only move forward.",
            "parameters": [
                signature,
                {
                    "name": "ref",
                    "in": "query",
                    "required": False,
                    "description": "the reference put in StatusCallback when the text was sent",
                    "schema": {
                        "type": "string",
                        "maxLength": twilio_fields.REF_MAX,
                        "pattern": "^[^\\u0000]*$",
                    },
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": _TWILIO_STATUS_FORM}},
            },
            "responses": {"200": {"description": "Recorded (or already known)"}, **twilio_refusals},
        },
        ("/webhooks/twilio/inbound", "post"): {
            "description": "A text a caller sent to the sender number.",
            "parameters": [signature],
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": _TWILIO_INBOUND_FORM}},
            },
            "responses": {
                "200": {
                    "description": "Stored; replies go through the outbox, never in the TwiML",
                    "content": {"application/xml": {"schema": {"type": "string"}}},
                },
                **twilio_refusals,
            },
        },
        ("/s/{token}", "get"): {
            "summary": "The survey form",
            "parameters": [token, lang],
            "responses": {"200": _html("The survey form"), **survey_link_pages},
        },
        ("/s/{token}", "post"): {
            "summary": "Answer the survey (or switch the form's language)",
            "parameters": [token],
            "requestBody": form_body,
            "responses": {
                "200": _html("The form again: in the other language, or to re-confirm"),
                "303": {"description": "Recorded; see the thanks page", "headers": see_other},
                "403": _html("The form's CSRF token is missing or wrong; nothing recorded"),
                "413": _html("The form is too long; nothing recorded"),
                "422": _html("The form again, with what to correct"),
                **survey_link_pages,
            },
        },
        ("/s/{token}/thanks", "get"): {
            "summary": "Thanks, after answering",
            "parameters": [token, lang],
            "responses": {
                "200": _html("Thanks"),
                "303": {"description": "Not answered yet: to the form", "headers": see_other},
                **survey_link_pages,
            },
        },
        ("/feedback", "get"): {
            "summary": "Feedback with a case number (no text received)",
            "description": "With several agencies, the list of police services to choose "
            "from (each one's form is /feedback/{agency}, or ?agency=).",
            "parameters": [lang],
            "responses": {
                "200": _html("The form, with its CSRF cookie (or the choice of agencies)"),
                "404": _html("?agency= names no configured agency: the choice of agencies"),
            },
        },
        ("/feedback/{agency}", "get"): {
            "summary": "One agency's feedback form (several agencies)",
            "parameters": [agency, lang],
            "responses": {
                "200": _html("The form, with its CSRF cookie"),
                "404": _html("No such agency: the choice of agencies"),
            },
        },
        ("/feedback", "post"): {
            "summary": "Feedback with a case number",
            "parameters": [
                {
                    "name": "cc_feedback_nonce",
                    "in": "cookie",
                    "required": False,
                    "description": "set by GET /feedback; the form's token signs it",
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": landline_body,
            "responses": {
                "200": _html("The form again, in the other language"),
                "303": {
                    "description": "Received (the same whether the case number matched or not)",
                    "headers": see_other,
                },
                "400": _html("Several agencies and none named: the choice; nothing recorded"),
                "403": _html("The form's CSRF token or cookie is missing or wrong"),
                "413": _html("The form is too long; nothing recorded"),
                "422": _html("The form again, with what to correct"),
                "429": _html("Too many attempts from this client; try again later"),
            },
        },
        ("/feedback/{agency}", "post"): {
            "summary": "Feedback with a case number, for one agency",
            "parameters": [
                agency,
                {
                    "name": "cc_feedback_nonce",
                    "in": "cookie",
                    "required": False,
                    "description": "set by GET /feedback; the form's token signs it",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": landline_body,
            "responses": {
                "200": _html("The form again, in the other language"),
                "303": {
                    "description": "Received (the same whether the case number matched or not)",
                    "headers": see_other,
                },
                "403": _html("The form's CSRF token or cookie is missing or wrong"),
                "413": _html("The form is too long; nothing recorded"),
                "422": _html("The form again, with what to correct"),
                "404": _html("No such agency: the choice of agencies; nothing recorded"),
                "429": _html("Too many attempts from this client; try again later"),
            },
        },
        ("/feedback/thanks", "get"): {
            "summary": "Thanks, after feedback",
            "parameters": [lang],
            "responses": {"200": _html("Thanks")},
        },
        ("/feedback/{agency}/thanks", "get"): {
            "summary": "Thanks, after feedback to one agency",
            "parameters": [agency, lang],
            "responses": {"200": _html("Thanks"), "404": _html("No such agency")},
        },
        ("/static/survey.css", "get"): {
            "summary": "The pages' one stylesheet",
            "responses": {
                "200": {
                    "description": "CSS",
                    "content": {"text/css": {"schema": {"type": "string"}}},
                }
            },
        },
        **_open_data_operations(lang),
        ("/healthz", "get"): {
            "responses": {
                "200": {
                    "description": "The database is reachable",
                    "content": {"application/json": {"schema": _ref("Health")}},
                },
                "503": {
                    "description": "The database is not reachable",
                    "content": {"application/json": {"schema": _ref("Health")}},
                },
            }
        },
        ("/readyz", "get"): {
            "responses": {
                "200": {
                    "description": "Ready: the database is reachable and at this version's "
                    "schema, the SMS provider configured",
                    "content": {"application/json": {"schema": _ref("Readiness")}},
                },
                "503": {
                    "description": "Not ready: the database is unreachable or not migrated",
                    "content": {"application/json": {"schema": _ref("Readiness")}},
                },
            }
        },
    }


def _open_data_operations(lang: Json) -> dict[tuple[str, str], Json]:
    """The public open data (contract section 10): page, files and catalogs, cacheable."""
    not_modified = {"description": "The client's copy (If-None-Match) is current"}
    file_types = ("text/csv", "application/json", "text/markdown", "application/geo+json")
    file_answers = {
        "200": {
            "description": "The file, from the latest publication",
            "content": {kind: {"schema": {}} for kind in file_types},
        },
        "304": not_modified,
        "404": _error_response("No such file, or nothing published yet"),
    }
    catalog = {"type": "object"}
    return {
        ("/open-data", "get"): {
            "summary": "The public open-data page (bilingual, no script)",
            "parameters": [lang],
            "responses": {"200": _html("The page"), "304": not_modified},
        },
        ("/static/open-data.css", "get"): {
            "summary": "The open-data page's stylesheet",
            "responses": {
                "200": {"description": "CSS", "content": {"text/css": {"schema": {}}}},
                "304": not_modified,
            },
        },
        ("/open-data/{name}", "get"): {
            "description": "A file of the (default) agency's latest publication; with "
            "several agencies, an agency id gives that agency's page (HTML).",
            "responses": {
                **file_answers,
                "200": {
                    "description": "The file, or an agency's page",
                    "content": {
                        **{kind: {"schema": {}} for kind in file_types},
                        "text/html": {"schema": {"type": "string"}},
                    },
                },
            },
        },
        ("/open-data/{agency}/{name}", "get"): {"responses": file_answers},
        ("/api/feed/dcat-us/1.1.json", "get"): {
            "responses": {
                "200": {
                    "description": "DCAT-US 1.1 catalog (Project Open Data data.json)",
                    "content": {"application/json": {"schema": catalog}},
                },
                "304": not_modified,
            }
        },
        ("/api/feed/dcat-ap/2.1.1.json", "get"): {
            "responses": {
                "200": {
                    "description": "DCAT-AP 2.1.1 catalog, JSON-LD",
                    "content": {"application/ld+json": {"schema": catalog}},
                },
                "304": not_modified,
            }
        },
    }


_HEALTH: Json = {
    "type": "object",
    "required": ["status", "database"],
    "properties": {
        "status": {"enum": ["ok", "unavailable"]},
        "database": {"enum": ["ok", "unreachable"]},
        "version": {"type": "string"},
    },
}


_READINESS: Json = {
    "type": "object",
    "required": ["status", "database", "provider"],
    "properties": {
        "status": {"enum": ["ready", "not ready"]},
        "database": {"type": "string", "description": "ok, unreachable, or not migrated (at R)"},
        "provider": {"type": "string"},
    },
}


def openapi_document(api: FastAPI, definition: SurveyDefinition) -> Json:
    """FastAPI's document of ``api`` with the bodies and answers described."""
    document = get_openapi(
        title=api.title, version=api.version, description=api.description, routes=api.routes
    )
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(
        {
            "CadEvent": cad_event_schema(),
            "CadEventBatch": _BATCH,
            "EidoDocument": _EIDO,
            "IntakeResult": _INTAKE_RESULT,
            "IntakeResults": _INTAKE_RESULTS,
            "Error": _ERROR,
            "Health": _HEALTH,
            "Readiness": _READINESS,
        }
    )
    components["securitySchemes"] = {
        "intakeKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "one of intake.api_keys",
        }
    }
    paths = document.setdefault("paths", {})
    for (path, method), description in _operations(definition).items():
        operation = paths.get(path, {}).get(method)
        if operation is None:  # a route that is not mounted in this application
            continue
        operation.pop("requestBody", None)
        operation["responses"] = {}
        operation.update(copy.deepcopy(description))
    return document


def install_openapi(api: FastAPI, definition: SurveyDefinition) -> None:
    """Serve :func:`openapi_document` at ``api.openapi_url`` (built once)."""

    def openapi() -> Json:
        if api.openapi_schema is None:
            api.openapi_schema = openapi_document(api, definition)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
