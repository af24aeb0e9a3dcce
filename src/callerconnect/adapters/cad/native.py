"""Native CAD events (contract section 1): validate one payload, turn it into a fact.

Validation answers with the field and the rule that failed, for the 422 body and the
dead-letter record. A caller phone that cannot be used is not a reason to reject the
event (its other facts, such as a risk flag, still matter): the fact records it as
``phone_invalid`` and the call is simply not texted.

Beyond the schema (all rules answer without quoting the value):

* ``occurred_at`` is strict RFC 3339 with an offset (:func:`parse_rfc3339`, shared with
  the EIDO adapter), years 1900–9998 as written and in UTC (rule ``format``).
* ``event_id``, ``incident_id`` and ``merged_into`` are trimmed of surrounding white
  space: ``"I-1 "`` is the incident ``"I-1"`` (a risk flag sent with a trailing space
  must reach the call), and ``"e-1 "`` the event ``"e-1"`` (the same id, so a resend
  that differs only there is a duplicate, as the incident it names is the same). Empty
  after trimming, or holding a control or invisible formatting character, is rule
  ``pattern`` (:data:`ID_PATTERN`, also in the schema).
* ``case_number`` is quoted in texts, so it must be safe to quote
  (:func:`callerconnect.texts.quotable_case_number`; rule ``pattern``, also in the
  schema). The fact carries it normalised (trimmed, Unicode dashes made ``-``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from jsonschema.exceptions import ValidationError

from callerconnect.adapters.cad.event_fields import (
    COPIED,
    EVENT_PATHS,
    STORED_TEXT_FIELDS,
    at_path,
)
from callerconnect.adapters.cad.schema_check import schema_errors
from callerconnect.adapters.sms.phone import InvalidPhone, normalize_phone
from callerconnect.domain.case_numbers import DEFAULT_CASE_NUMBER_PATTERN
from callerconnect.domain.facts import CallFact, FactType
from callerconnect.logs import mask_phone_patterns
from callerconnect.texts import (
    AGENCY_PATTERN_RULE,
    CASE_NUMBER_RULE,
    WHITE_SPACE,
    accepted_case_number,
    quotable_case_number,
)


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


def _describe(error: ValidationError) -> EventRejected:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        # jsonschema reports the object; name the missing property instead.
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in error.validator_value if name not in instance]
        field = ".".join(p for p in (path, missing[0] if missing else "") if p)
        return EventRejected(field or "(body)", "required", f"{field} is required")
    field = path or "(body)"
    described = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in ("pattern", "not") and isinstance(described, str):
        # The intake's own rules (ids, case number): said in words, not as a regex.
        return EventRejected(field, "pattern", f"{field}: {described}")
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


FIRST_YEAR, LAST_YEAR = 1900, 9998  # in the time's own offset and in UTC, both adapters

# RFC 3339, section 5.6: full-date "T" full-time, the offset required (a time without one
# is a local time of unknown zone). ASCII digits only (``\d`` would take any script's),
# ``T``/``Z`` in either case (the ABNF is case-insensitive), a fraction of any length.
# Nothing ISO 8601 allows beyond that: no ``+05`` or ``+0500`` offsets, no week dates,
# no basic format (``20261128T134700Z``), no time without seconds, no space for ``T``.
_RFC3339 = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<frac>[0-9]+))?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<off_hour>[0-9]{2}):(?P<off_minute>[0-9]{2}))"
)
RFC3339_EXPECTED = (
    "is not an RFC 3339 date-time with an offset; expected e.g. "
    "'2026-02-10T09:03:40-05:00' or '2026-02-10T14:03:40Z'"
)


class TimeFormatError(ValueError):
    """A time that is not a usable RFC 3339 date-time; the message says why in words and
    never quotes the value (it may be anything, a phone number included)."""


def parse_rfc3339(value: str) -> datetime:
    """A strict RFC 3339 date-time with an offset, kept in that offset, or
    :class:`TimeFormatError`. The one time parser of both adapters.

    The year must lie in ``FIRST_YEAR``..``LAST_YEAR`` both as written and in UTC, so
    that converting to UTC and comparing with other moments cannot overflow and every
    stored moment is a plausible one (``9998-12-31T23:59:59-23:59`` is year 9999 in UTC).
    """
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise TimeFormatError(RFC3339_EXPECTED)
    off_hour, off_minute = int(match["off_hour"] or 0), int(match["off_minute"] or 0)
    if off_hour > 23 or off_minute > 59:
        raise TimeFormatError("has an offset outside -23:59..+23:59")
    sign = -1 if match["sign"] == "-" else 1
    try:
        moment = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int((match["frac"] or "")[:6].ljust(6, "0")),
            tzinfo=timezone(sign * timedelta(hours=off_hour, minutes=off_minute)),
        )
    except ValueError:  # month 13, February 30, hour 24, a leap second...
        raise TimeFormatError("is not a valid date and time") from None
    # The written year first: only then is the conversion to UTC sure not to overflow.
    if not FIRST_YEAR <= moment.year <= LAST_YEAR or not (
        FIRST_YEAR <= moment.astimezone(UTC).year <= LAST_YEAR
    ):
        raise TimeFormatError(f"is outside the years {FIRST_YEAR}–{LAST_YEAR} (in UTC too)")
    return moment


def parse_occurred_at(value: str, field: str = "occurred_at") -> datetime:
    try:
        return parse_rfc3339(value)
    except TimeFormatError as error:
        raise EventRejected(field, "format", f"{field}: {error}") from None


# --------------------------------------------------------------------------- ids

# Ids are compared exactly, so a character nobody sees would make two ids that read the
# same name two incidents (a risk flag for "I-1\u200b" would miss the call "I-1"):
# control characters (C0, DEL, C1), the invisible formatting characters (soft hyphen,
# zero-width and bidi controls, word joiners, BOM, interlinear annotation, tags) and
# line/paragraph separators are refused. Surrounding white space is trimmed.
INVISIBLE = (
    "\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
)  # the inside of a regular-expression character class
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
ID_RULE = "must hold a visible character and no control or invisible formatting character"
#: The id rule as one JSON Schema pattern (searched), in ``cad-event.schema.json`` too:
#: optional surrounding white space, then a visible character, no invisible ones.
ID_PATTERN = (
    f"^[{WHITE_SPACE}]*[^{WHITE_SPACE}{INVISIBLE}](?:[^{INVISIBLE}]*[^{WHITE_SPACE}{INVISIBLE}])?"
    f"[{WHITE_SPACE}]*$"
)


def clean_id(value: str) -> str | None:
    """An id without its surrounding white space, or None when it cannot be used
    (nothing left, or a control or invisible formatting character)."""
    trimmed = value.strip(WHITE_SPACE)
    if not trimmed or _INVISIBLE.search(trimmed):
        return None
    return trimmed


def _clean_id(payload: dict[str, Any], field: str) -> str | None:
    value = payload.get(field)
    if value is None:
        return None
    cleaned = clean_id(str(value))
    if cleaned is None:  # the schema's pattern says the same; this is a second line
        raise EventRejected(field, "pattern", f"{field}: {ID_RULE}")
    return cleaned


def _clean_case_number(payload: dict[str, Any], pattern: str) -> str | None:
    value = payload.get("case_number")
    if value is None:
        return None
    quotable = quotable_case_number(value)
    if quotable is None:
        raise EventRejected("case_number", "pattern", f"case_number: {CASE_NUMBER_RULE}")
    if accepted_case_number(quotable, pattern) is None:
        # The whole event is refused (and dead-lettered, and its incident held if it
        # carried a danger: service/holds.py): docs/intake.md says why.
        raise EventRejected("case_number", "agency_pattern", f"case_number {AGENCY_PATTERN_RULE}")
    return quotable


def normalize_language(value: str | None) -> str | None:
    """``en``/``fr`` (also ``fr-CA``, ``French``...); anything else means "unknown",
    which gets the bilingual text."""
    if not value:
        return None
    head = value.strip().lower()[:2]
    return head if head in ("en", "fr") else None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """Whether every database can store ``text``: no NUL (PostgreSQL's text cannot hold
    it), no half of a UTF-16 surrogate pair (UTF-8 cannot encode it)."""
    return _UNSTORABLE.search(text) is None


def _unstorable_field(payload: dict[str, Any]) -> str | None:
    """The first stored text field that no database can store: one with a NUL character
    (PostgreSQL's text cannot hold it) or half of a UTF-16 surrogate pair (JSON can
    escape one, ``"\\ud800"``, but it is not a character and UTF-8 cannot encode it)."""
    for path in STORED_TEXT_FIELDS:
        value = at_path(payload, path)
        if isinstance(value, str) and not storable(value):
            return path
    return None


#: One event's largest size, serialized as compact UTF-8 JSON (``intake.max_event_bytes``).
#: A real event is a few hundred bytes; the bound keeps one request from storing
#: megabytes of extra properties for good.
DEFAULT_MAX_EVENT_BYTES = 64 * 1024


def event_size(payload: Any) -> int:
    """An event's size in bytes as compact UTF-8 JSON: the same whatever the spacing or
    escaping of the body it came in (a batch counts each of its events alone)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def refuse_oversized_event(payload: Any, limit: int) -> None:
    """:class:`EventRejected` (rule ``maxBytes``) for an event over ``limit`` bytes."""
    size = event_size(payload)
    if size > limit:
        raise EventRejected(
            "(event)",
            "maxBytes",
            f"the event has {size} bytes as compact JSON; at most {limit} are accepted "
            "(intake.max_event_bytes)",
        )


def parse_event(
    payload: Any, *, case_number_pattern: str = DEFAULT_CASE_NUMBER_PATTERN
) -> CallFact:
    """One native event → a fact, or :class:`EventRejected` naming the field and rule.
    ``case_number_pattern`` is the agency's (``intake.case_number_pattern``)."""
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
    errors = schema_errors(payload)
    if errors:
        raise _describe(errors[0])
    event_id = _clean_id(payload, "event_id") or ""  # required: never None here
    incident_id = _clean_id(payload, "incident_id") or ""
    merged_into = _clean_id(payload, "merged_into")
    occurred_at = parse_occurred_at(payload["occurred_at"])
    case_number = _clean_case_number(payload, case_number_pattern)
    phone: str | None = None
    phone_invalid = False
    if given := at_path(payload, EVENT_PATHS["phone"]):
        try:
            phone = normalize_phone(given)
        except InvalidPhone:
            phone_invalid = True
    copied = {name: at_path(payload, EVENT_PATHS[name]) for name in COPIED}
    return CallFact(
        event_id=event_id,
        incident_id=incident_id,
        occurred_at=occurred_at,
        type=FactType(payload["type"]),
        case_number=case_number,
        phone=phone,
        phone_invalid=phone_invalid,
        language=normalize_language(at_path(payload, EVENT_PATHS["language"])),
        merged_into=merged_into,
        **copied,
    )
