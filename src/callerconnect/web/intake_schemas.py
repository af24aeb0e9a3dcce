"""The bodies of CAD intake in the OpenAPI document: what ``web/intake.py``'s routes
accept and answer, as named component schemas.

The native event is not written here: it is the contract's JSON Schema
(``adapters/cad/cad-event.schema.json``, 2020-12, which OpenAPI 3.1 uses as it is), the
one the intake validates with, plus the rules the intake adds beyond it (stored text,
years), derived from the same declarations ``adapters/cad/native.py`` uses.
"""

from __future__ import annotations

from typing import Any

from callerconnect.adapters.cad.event_fields import STORED_TEXT_FIELDS, event_schema
from callerconnect.adapters.cad.native import FIRST_YEAR, ID_PATTERN, LAST_YEAR
from callerconnect.web.openapi import ERROR_SCHEMA, ref

__all__ = ["INTAKE_SCHEMAS", "cad_event_schema"]

Json = dict[str, Any]

# Years 1900 to 9998, where both adapters accept them (adapters/cad/native.py).
_RFC3339: Json = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^(19\d\d|[2-8]\d\d\d|9[0-8]\d\d|99[0-8]\d|999[0-8])-",
    "description": f"RFC 3339 with an offset, years {FIRST_YEAR} to {LAST_YEAR}",
}


def cad_event_schema() -> Json:
    """The native event's JSON Schema, with the rules the intake adds: the fields stored
    in columns of their own must not hold a NUL or an unpaired surrogate, which no
    database stores (rule ``characters``); ``occurred_at``'s years; the agency's case
    number pattern (in words: it is a setting)."""
    schema = event_schema()
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
    "properties": {"results": {"type": "array", "items": ref("IntakeResult")}},
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
        "events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": ref("CadEvent")}
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

#: The named schemas of the intake routes' declarations (and of every JSON refusal).
INTAKE_SCHEMAS: dict[str, Json] = {
    "CadEvent": cad_event_schema(),
    "CadEventBatch": _BATCH,
    "EidoDocument": _EIDO,
    "IntakeResult": _INTAKE_RESULT,
    "IntakeResults": _INTAKE_RESULTS,
    "Error": ERROR_SCHEMA,
}
