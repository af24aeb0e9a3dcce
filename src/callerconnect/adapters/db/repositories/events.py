"""The CAD events kept once each, and the dead letters of the payloads refused."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from callerconnect.adapters.db.bulk_insert import BulkInsert
from callerconnect.adapters.db.tables import Base, DeadLetterRow

_EVENTS: Table = Base.metadata.tables["cad_events"]

# Statements built once: building one costs more than running it for a single event.
_STORED = select(_EVENTS.c.event_id, _EVENTS.c.incident_id, _EVENTS.c.payload_encrypted).where(
    _EVENTS.c.agency_id == bindparam("agency_id"),
    _EVENTS.c.event_id.in_(bindparam("event_ids", expanding=True)),
)
# The events whose id is new, stored; the others left as they are, their ids not
# returned (SQLite >= 3.35 and PostgreSQL both know ON CONFLICT … RETURNING).
_INSERT_NEW = BulkInsert(
    _EVENTS,
    returning=[_EVENTS.c.event_id],
    skip_conflicts_on=[_EVENTS.c.agency_id, _EVENTS.c.event_id],
)
_DELETE = delete(_EVENTS).where(
    _EVENTS.c.agency_id == bindparam("agency_id"),
    _EVENTS.c.event_id.in_(bindparam("event_ids", expanding=True)),
)


@dataclass(frozen=True)
class StoredEvent:
    """What an event id was first stored for: its incident, and its payload (encrypted)
    to compare a repeat with."""

    incident_id: str
    payload_encrypted: str


def stored_events(
    connection: Connection, agency_id: str, event_ids: Collection[str]
) -> dict[str, StoredEvent]:
    """The events already stored under any of these ids: one query for a whole batch."""
    if not event_ids:
        return {}
    found = connection.execute(_STORED, {"agency_id": agency_id, "event_ids": sorted(event_ids)})
    return {event_id: StoredEvent(incident, payload) for event_id, incident, payload in found}


def add_new_events(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Store the events (the columns of ``cad_events`` but its id) whose ids are not
    stored yet, in one statement; the ids stored. An id stored by a transaction still
    open is waited for (PostgreSQL), then counts as stored before."""
    if not rows:
        return set()
    return {event_id for (event_id,) in _INSERT_NEW(connection, rows)}


def take_back_events(connection: Connection, agency_id: str, event_ids: Collection[str]) -> None:
    """Remove events this transaction stored (and will not fold after all)."""
    if event_ids:
        connection.execute(_DELETE, {"agency_id": agency_id, "event_ids": sorted(event_ids)})


def add_dead_letter(session: Session, row: DeadLetterRow) -> int:
    session.add(row)
    session.flush()
    return row.id
