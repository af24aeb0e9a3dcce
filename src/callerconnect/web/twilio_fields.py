"""What the fields of a Twilio webhook may hold (checked once its signature is good).

Only Twilio can sign, so these checks are not the defence against outsiders; they keep
a surprising value (a gateway that signs like Twilio, a change on Twilio's side) from
reaching the database as something it cannot store — a SID longer than its column, a
``ref`` with a NUL character that PostgreSQL refuses — and turn it into a ``400`` that Twilio's
debugger shows, instead of a ``500`` that Twilio retries. The patterns are the ones
``GET /openapi.json`` declares (``web/openapi.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SID = r"^[A-Za-z0-9]{1,64}$"  # Twilio's are 34: two letters and 32 hex digits
ADDRESS = r"^\+?[A-Za-z0-9]{1,31}$"  # E.164, a short code or an alphanumeric sender id
STATUS = r"^[A-Za-z_]{1,32}$"
ERROR_CODE = r"^[0-9]{0,10}$"
#: The ``ref`` this service puts in ``StatusCallback`` is an outbox key (up to 300).
REF_MAX = 300

FIELDS: Mapping[str, str] = {
    "MessageSid": SID,
    "SmsSid": SID,
    "From": ADDRESS,
    "To": ADDRESS,
    "MessageStatus": STATUS,
    "SmsStatus": STATUS,
    "ErrorCode": ERROR_CODE,
}
_COMPILED = {name: re.compile(pattern) for name, pattern in FIELDS.items()}


def form_problem(form: Mapping[str, object], ref: str | None) -> str | None:
    """Why this signed form cannot be a Twilio webhook, or ``None``."""
    for key, value in form.items():
        if not isinstance(value, str):
            return f"{key} is a file; Twilio posts text fields only"
        rule = _COMPILED.get(key)
        if rule is not None and not rule.fullmatch(value):
            return f"{key} is not in the form Twilio sends"
    if ref is not None and (len(ref) > REF_MAX or "\x00" in ref):
        return "ref is not a reference this service sent"
    return None
