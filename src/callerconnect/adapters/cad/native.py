"""Native CAD events (contract section 1): validate one payload, turn it into a fact.

Validation answers with the field and the rule that failed, for the 422 body and the
dead-letter record. A caller phone that cannot be used is not a reason to reject the
event (its other facts, such as a risk flag, still matter): the fact records it as
``phone_invalid`` and the call is simply not texted.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from callerconnect.adapters.sms.phone import InvalidPhone, normalize_phone
from callerconnect.domain.facts import CallFact, FactType
from callerconnect.logs import mask_phone_patterns


class EventRejected(ValueError):
    """An event we cannot accept: ``field`` is a dotted path, ``rule`` the failed rule."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        # Messages are written not to quote values; masking is the second line of defence.
        message = mask_phone_patterns(message)
        super().__init__(message)
        self.field = field
        self.rule = rule
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(
        resources.files("callerconnect.adapters.cad")
        .joinpath("cad-event.schema.json")
        .read_text(encoding="utf-8")
    )
    return Draft202012Validator(schema)


def _describe(error: ValidationError) -> EventRejected:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        # jsonschema reports the object; name the missing property instead.
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in error.validator_value if name not in instance]
        field = ".".join(p for p in (path, missing[0] if missing else "") if p)
        return EventRejected(field or "(body)", "required", f"{field} is required")
    field = path or "(body)"
    # Never echo the value back: a CAD that puts the caller's number in the wrong field
    # (or in the right one, wrongly shaped) must not find it in an error answer, a dead
    # letter's error column or a log. Say which rule it broke, from the schema.
    if "phone" in field:
        rule = _PHONE_RULES.get(str(error.validator), "is not a valid phone value")
    else:
        rule = _rule(str(error.validator), error.validator_value)
    return EventRejected(field, str(error.validator), f"{field}: {rule}")


_PHONE_RULES = {
    "type": "must be a string holding a North American or E.164 number",
    "maxLength": "is longer than 32 characters",
}

_JSON_TYPES = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _rule(validator: str, expected: Any) -> str:
    """The schema rule a value broke, in words, without the value."""
    if validator == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return "must be " + " or ".join(_JSON_TYPES.get(str(k), str(k)) for k in kinds)
    if validator == "enum":
        return "must be one of " + ", ".join(json.dumps(v) for v in expected)
    if validator == "const":
        return f"must be {json.dumps(expected)}"
    words = {
        "minLength": f"must be at least {expected} character(s) long",
        "maxLength": f"must be at most {expected} characters long",
        "minimum": f"must be at least {expected}",
        "maximum": f"must be at most {expected}",
        "exclusiveMinimum": f"must be more than {expected}",
        "exclusiveMaximum": f"must be less than {expected}",
        "pattern": f"must match the pattern {expected}",
        "format": f"must be a valid {expected}",
        "minItems": f"must hold at least {expected} item(s)",
        "maxItems": f"must hold at most {expected} items",
        "additionalProperties": "has a property the contract does not define",
        "minProperties": f"must have at least {expected} propert(ies)",
    }
    return words.get(validator, f"breaks the schema rule '{validator}'")


FIRST_YEAR, LAST_YEAR = 1900, 9998  # as the EIDO adapter accepts


def parse_occurred_at(value: str, field: str = "occurred_at") -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise EventRejected(field, "format", f"{field}: is not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise EventRejected(
            field,
            "format",
            f"{field}: needs a UTC offset, e.g. 2026-01-16T09:02:11-05:00",
        )
    # Far from the ends of datetime's range, so that converting to UTC and comparing
    # with other moments cannot overflow (year 1 at +01:00 is before year 1 in UTC).
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise EventRejected(
            field,
            "format",
            f"{field}: is outside the years {FIRST_YEAR}–{LAST_YEAR}",
        )
    return moment


def normalize_language(value: str | None) -> str | None:
    """``en``/``fr`` (also ``fr-CA``, ``French``...); anything else means "unknown",
    which gets the bilingual text."""
    if not value:
        return None
    head = value.strip().lower()[:2]
    return head if head in ("en", "fr") else None


#: The text fields that are stored in columns of their own (the payload as a whole is
#: kept encrypted, as escaped JSON, whatever it holds; the caller's phone and language
#: are stored normalized, or not at all).
STORED_TEXT_FIELDS = (
    "event_id",
    "incident_id",
    "case_number",
    "district",
    "merged_into",
    "call_type.code",
    "call_type.description",
    "unit.id",
    "disposition.code",
    "disposition.description",
)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_field(payload: dict[str, Any]) -> str | None:
    """The first stored text field that no database can store: one with a NUL character
    (PostgreSQL's text cannot hold it) or half of a UTF-16 surrogate pair (JSON can
    escape one, ``"\\ud800"``, but it is not a character and UTF-8 cannot encode it)."""
    for path in STORED_TEXT_FIELDS:
        value: Any = payload
        for name in path.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if isinstance(value, str) and _UNSTORABLE.search(value):
            return path
    return None


def parse_event(payload: Any) -> CallFact:
    """One native event → a fact, or :class:`EventRejected` naming the field and rule."""
    if not isinstance(payload, dict):
        raise EventRejected("(body)", "type", "an event must be a JSON object")
    unstorable = _unstorable_field(payload)
    if unstorable is not None:
        raise EventRejected(
            unstorable,
            "characters",
            f"{unstorable}: text must not contain NUL (\\u0000) or an unpaired surrogate "
            "(\\ud800-\\udfff)",
        )
    errors = sorted(_validator().iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        raise _describe(errors[0])
    occurred_at = parse_occurred_at(payload["occurred_at"])
    caller = payload.get("caller") or {}
    phone: str | None = None
    phone_invalid = False
    if caller.get("phone"):
        try:
            phone = normalize_phone(caller["phone"])
        except InvalidPhone:
            phone_invalid = True
    call_type = payload.get("call_type") or {}
    unit = payload.get("unit") or {}
    disposition = payload.get("disposition") or {}
    return CallFact(
        event_id=payload["event_id"],
        incident_id=payload["incident_id"],
        occurred_at=occurred_at,
        type=FactType(payload["type"]),
        case_number=payload.get("case_number"),
        priority=payload.get("priority"),
        call_type_code=call_type.get("code"),
        call_type_description=call_type.get("description"),
        district=payload.get("district"),
        phone=phone,
        phone_invalid=phone_invalid,
        language=normalize_language(caller.get("language")),
        sms_opt_out=caller.get("sms_opt_out"),
        in_progress=payload.get("in_progress"),
        risk_flag=payload.get("risk_flag"),
        unit_id=unit.get("id"),
        eta_minutes=unit.get("eta_minutes"),
        disposition_code=disposition.get("code"),
        disposition_description=disposition.get("description"),
        merged_into=payload.get("merged_into"),
    )
