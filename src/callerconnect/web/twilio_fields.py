"""The shapes of form Twilio sends to the webhooks, checked once the signature is good.

The signature is not enough on its own. Twilio signs the URL followed by each field's
name and value, sorted by name, with no separator, so the same signed string can be cut
into fields in more than one way: a captured inbound text whose ``NumMedia`` and
``NumSegments`` are dropped and appended to ``MessageSid`` still carries a valid
signature, and reads as a text never seen before (a captured ``START`` replayed after
the caller's ``STOP``). A field sent twice is signed as two pairs but read as one value.

So a signed form is accepted only in the shape Twilio documents:

* every field Twilio always sends for that webhook is present (:data:`STATUS_REQUIRED`,
  :data:`INBOUND_REQUIRED`), each exactly once;
* each field this service knows has the form Twilio gives it (:data:`FIELDS`): a message
  SID is ``SM`` or ``MM`` and 32 hex digits, an account SID ``AC`` and 32, a count is
  digits — which pins the boundaries between fields, so no text can move across them;
* the older names Twilio still sends (``SmsSid``, ``SmsMessageSid``, ``SmsStatus``)
  agree with the current ones where both are sent;
* a field's name is a plain word, as all of Twilio's are (``MediaUrl0``).

Anything else is a ``400`` that changes nothing. The same exact request sent again (a
Twilio retry, or a replay) keeps its ``MessageSid``, and both handlers are idempotent
by it. The same checks keep a surprising value from reaching the database as something
it cannot store (a ``ref`` with a NUL character that PostgreSQL refuses). The patterns
are the ones ``GET /openapi.json`` declares (:func:`form_schema`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

MESSAGE_SID = r"^(SM|MM)[0-9a-fA-F]{32}$"
ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"
SERVICE_SID = r"^MG[0-9a-fA-F]{32}$"
API_VERSION = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
ADDRESS = r"^\+?[A-Za-z0-9]{1,31}$"  # E.164, a short code or an alphanumeric sender id
STATUS = r"^[A-Za-z_]{1,32}$"
ERROR_CODE = r"^[0-9]{0,10}$"
COUNT = r"^[0-9]{1,4}$"
#: Twilio's field names are words and digits (``MessageSid``, ``MediaContentType0``).
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
#: The ``ref`` this service puts in ``StatusCallback`` is an outbox key (up to 300).
REF_MAX = 300

FIELDS: Mapping[str, str] = {
    "MessageSid": MESSAGE_SID,
    "SmsSid": MESSAGE_SID,
    "SmsMessageSid": MESSAGE_SID,
    "AccountSid": ACCOUNT_SID,
    "MessagingServiceSid": SERVICE_SID,
    "ApiVersion": API_VERSION,
    "From": ADDRESS,
    "To": ADDRESS,
    "MessageStatus": STATUS,
    "SmsStatus": STATUS,
    "ErrorCode": ERROR_CODE,
    "NumMedia": COUNT,
    "NumSegments": COUNT,
}
_COMPILED = {name: re.compile(pattern) for name, pattern in FIELDS.items()}

#: What every status callback carries (Twilio's "StatusCallback parameters").
STATUS_REQUIRED = ("MessageSid", "MessageStatus", "AccountSid", "ApiVersion", "From", "To")
#: What every incoming text carries (Twilio's "request to your incoming message webhook").
INBOUND_REQUIRED = ("MessageSid", "AccountSid", "From", "To", "Body", "NumMedia", "NumSegments")
#: Older names Twilio still sends beside the current ones: the same value, or not Twilio.
SAME_VALUE = (
    ("SmsSid", "MessageSid"),
    ("SmsMessageSid", "MessageSid"),
    ("SmsStatus", "MessageStatus"),
)


def form_schema(required: tuple[str, ...], described: Mapping[str, str]) -> dict[str, Any]:
    """The JSON Schema of a webhook's form for the OpenAPI document: the fields Twilio
    always sends (``required``), the patterns :func:`form_problem` enforces, a sentence
    for the fields worth one (``described``); Twilio's other fields are accepted and not
    used. A field sent twice, or an older name (``SmsSid``) whose value differs from the
    current one, is refused too (``400``): rules JSON Schema cannot state on a form."""
    properties: dict[str, Any] = {
        name: {"type": "string", "pattern": pattern} for name, pattern in FIELDS.items()
    }
    for name, description in described.items():
        properties[name] = {**properties.get(name, {"type": "string"}), "description": description}
    return {
        "type": "object",
        "required": list(required),
        "properties": properties,
        "propertyNames": {"pattern": "^" + FIELD_NAME.pattern + "$"},
        "additionalProperties": {"type": "string"},
    }


def form_problem(
    fields: Iterable[tuple[str, object]], required: Iterable[str], ref: str | None
) -> str | None:
    """Why this signed form is not one Twilio sends to this webhook, or ``None``.

    ``fields`` are the form's name/value pairs as received, repeats included.
    """
    pairs = list(fields)
    repeated = sorted(
        name for name, times in Counter(name for name, _ in pairs).items() if times > 1
    )
    if repeated:
        return f"{_name(repeated[0])} is sent more than once; Twilio sends each field once"
    form: dict[str, object] = dict(pairs)
    for key, value in form.items():
        if not FIELD_NAME.fullmatch(key):
            return "a field name is not one Twilio sends"
        if not isinstance(value, str):
            return f"{key} is a file; Twilio posts text fields only"
        rule = _COMPILED.get(key)
        if rule is not None and not rule.fullmatch(value):
            return f"{key} is not in the form Twilio sends"
    for key in required:
        if key not in form:
            return f"{key} is missing; Twilio always sends it"
    for older, current in SAME_VALUE:
        if older in form and current in form and form[older] != form[current]:
            return f"{older} differs from {current}; Twilio sends the same value"
    if ref is not None and (len(ref) > REF_MAX or "\x00" in ref):
        return "ref is not a reference this service sent"
    return None


def _name(key: str) -> str:
    """A field's name for an error message: only when it is a plain word."""
    return key if FIELD_NAME.fullmatch(key) else "a field"
