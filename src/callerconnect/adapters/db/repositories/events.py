"""The CAD events kept once each, and the dead letters of the payloads refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callerconnect.adapters.db.tables import CadEventRow, DeadLetterRow


def event_exists(session: Session, agency_id: str, event_id: str) -> bool:
    found = session.scalar(
        select(CadEventRow.id).where(
            CadEventRow.agency_id == agency_id, CadEventRow.event_id == event_id
        )
    )
    return found is not None


@dataclass(frozen=True)
class StoredEvent:
    """What an event id was first stored for: its incident, and its payload (encrypted)
    to compare a repeat with."""

    incident_id: str
    payload_encrypted: str


def stored_event(session: Session, agency_id: str, event_id: str) -> StoredEvent | None:
    """The event first stored under this id, if any."""
    found = session.execute(
        select(CadEventRow.incident_id, CadEventRow.payload_encrypted).where(
            CadEventRow.agency_id == agency_id, CadEventRow.event_id == event_id
        )
    ).first()
    return None if found is None else StoredEvent(found[0], found[1])


def stored_events(
    session: Session, agency_id: str, event_ids: Sequence[str]
) -> dict[str, StoredEvent]:
    """The events already stored under any of these ids: one query for a whole batch."""
    if not event_ids:
        return {}
    events = CadEventRow.__table__.c
    # Core on the session's connection: plain columns need none of the ORM's work,
    # which costs more than the query itself for a single event.
    found = session.connection().execute(
        select(events.event_id, events.incident_id, events.payload_encrypted).where(
            events.agency_id == agency_id, events.event_id.in_(set(event_ids))
        )
    )
    return {event_id: StoredEvent(incident, payload) for event_id, incident, payload in found}


def add_events(session: Session, rows: Sequence[CadEventRow]) -> None:
    """Store a batch's new events in one multi-row insert. A concurrent insert of one
    of the ids fails the whole transaction (IntegrityError): the caller folds the
    events one by one then (service/intake.py)."""
    if rows:
        # Core, not the unit of work: no ids are needed back, so one executemany.
        columns = [column.key for column in CadEventRow.__table__.columns if column.key != "id"]
        session.connection().execute(
            insert(CadEventRow),
            [{key: getattr(row, key) for key in columns} for row in rows],
        )


def add_event(session: Session, row: CadEventRow) -> bool:
    """Store an accepted event; False if another transaction stored the same id first."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def add_dead_letter(session: Session, row: DeadLetterRow) -> int:
    session.add(row)
    session.flush()
    return row.id
