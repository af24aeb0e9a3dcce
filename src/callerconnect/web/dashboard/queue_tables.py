"""The work queues' tables (``/dashboard/queues``): one function builds the rows that the
page shows and that its CSV exports carry, so the two cannot disagree.

Callers' flagged texts pass through the dashboard's redaction door (``redact.py``) and
keep only their masked number; dead letters come without their payload (it may hold a
phone); failed texts carry why they failed. Times are local to the agency.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.queries import queues
from callerconnect.queries.filters import Filters
from callerconnect.web.dashboard.redact import redact_comment
from callerconnect.web.dashboard.tables import to_csv

#: Export name → (the key of its rows in :func:`queue_rows`, the columns it exports).
QUEUE_EXPORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "flagged_replies": ("flagged", ("id", "received_at", "phone_masked", "terms", "body")),
    "unknown_call_types": ("unknown_types", ("code", "description", "calls", "last_seen")),
    "dead_letters": (
        "letters",
        ("id", "received_at", "source", "status", "field", "error_code"),
    ),
    "failed_texts": (
        "failed",
        ("incident_id", "kind", "status", "error_code", "attempts", "finished_at"),
    ),
}


def queue_rows(
    db: Database, vault: Vault, filters: Filters, agency_id: str, tz: ZoneInfo
) -> dict[str, list[dict[str, Any]]]:
    """The four queues of one agency, as the page shows them. Only the failed texts
    depend on the period and the other filters: the other queues list what is waiting,
    whenever it arrived."""

    def local(moment: datetime | None) -> datetime | None:
        return moment.astimezone(tz) if moment is not None else None

    return {
        "flagged": [
            {
                "id": text.id,
                "received_at": local(text.received_at),
                "phone_masked": text.phone_masked,
                "terms": text.terms,
                "body": redact_comment(text.body),
            }
            for text in queues.flagged_replies(db, vault, agency_id)
        ],
        "unknown_types": [
            {**asdict(row), "last_seen": local(row.last_seen)}
            for row in queues.unknown_call_types(db, agency_id)
        ],
        "letters": [
            {
                "id": letter.id,
                "received_at": local(letter.received_at),
                "source": letter.source,
                "status": letter.status,
                "field": letter.field,
                "error_code": letter.error_code,
            }
            for letter in queues.dead_letters(db, agency_id, status=None)
            if letter.status != "replayed"
        ],
        "failed": [
            {**asdict(text), "finished_at": local(text.finished_at)}
            for text in queues.failed_texts(db, filters, tz)
        ],
    }


def queue_csv(name: str, rows: dict[str, list[dict[str, Any]]]) -> bytes:
    """The CSV of one queue (``name`` a key of :data:`QUEUE_EXPORTS`)."""
    key, columns = QUEUE_EXPORTS[name]
    return to_csv(columns, [[_cell(row[c]) for c in columns] for row in rows[key]])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)
