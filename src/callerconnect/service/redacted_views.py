"""Personal data as the internal dashboard shows it: redacted.

Survey comments are redacted when they are stored (``service/survey.py``); callers' texts
and dead-lettered CAD payloads are kept as they arrived (encrypted), because an operator
may need the original — a STOP must be read exactly, a payload replayed byte for byte.
Supervisors reviewing dead letters get them through these functions instead, with
phones and e-mails replaced (``domain/redaction.py``). Callers' flagged texts are read
on the read side, redacted there too (``queries/queues.py``, ``flagged_replies_redacted``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import DeadLetterRow
from callerconnect.domain.redaction import redact_contacts, redact_payload

__all__ = ["RedactedDeadLetter", "dead_letter_redacted"]


@dataclass(frozen=True)
class RedactedDeadLetter:
    id: int
    received_at: datetime
    source: str
    status: str
    field: str | None
    error: str
    payload: str
    """The payload as JSON with phones and e-mails redacted (``redact_payload``), or, when
    it was not valid JSON, the text with them redacted and every ``"phone": "…"`` value
    hidden."""


def dead_letter_redacted(
    db: Database, vault: Vault, letter_id: int, *, agency_id: str | None = None
) -> RedactedDeadLetter | None:
    """One dead letter, redacted; None if there is none with that id (in ``agency_id``,
    when given)."""
    with db.transaction() as session:
        letter = session.get(DeadLetterRow, letter_id)
        if letter is None or (agency_id is not None and letter.agency_id != agency_id):
            return None
        return RedactedDeadLetter(
            id=letter.id,
            received_at=letter.received_at,
            source=letter.source,
            status=letter.status,
            field=letter.field,
            error=redact_contacts(letter.error),
            payload=redact_raw_payload(vault.decrypt(letter.payload_encrypted)),
        )


# A phone-named key's string value in text that is not valid JSON (a truncated body):
# the value is hidden whatever it holds, even a partial number the patterns would not see.
_PHONE_VALUE = re.compile(
    r"(\"[^\"]*(?:phone|callback|tel|mobile|cell)[^\"]*\"\s*:\s*)\"(?:[^\"\\]|\\.)*\"?",
    re.IGNORECASE,
)


def redact_raw_payload(raw: str) -> str:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return redact_contacts(_PHONE_VALUE.sub(r'\1"[phone]"', raw))
    return json.dumps(redact_payload(parsed), ensure_ascii=False, indent=2)
