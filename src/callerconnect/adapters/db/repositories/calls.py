"""Calls: the calls table turned into domain ``Call`` objects and back, and the decisions
recorded about them. (The intake reads and writes its calls in bulk through
call_batch.py, with the same two conversions.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.tables import CallRow, DecisionRow
from callerconnect.domain.calls import Call

# Domain fields stored one-to-one in the calls table: every field of ``Call`` that has a
# column of the same name, derived from the two declarations (domain/calls.py,
# tables.py) rather than listed a third time. The identity is set on its own; the text
# kinds and the field versions have a representation of their own in the row.
_STORED_APART = frozenset({"agency_id", "incident_id", "texts_scheduled", "field_times"})
_PLAIN_FIELDS = tuple(
    field.name
    for field in fields(Call)
    if field.name in CallRow.__table__.columns and field.name not in _STORED_APART
)

#: The columns :func:`call_from_columns` reads.
CALL_STATE_COLUMNS = (
    "agency_id",
    "incident_id",
    "phone_encrypted",
    "texts_scheduled",
    "field_times",
    *_PLAIN_FIELDS,
)


def call_from_columns(columns: Mapping[str, Any], vault: Vault) -> Call:
    """The call a row holds (its :data:`CALL_STATE_COLUMNS`), the phone decrypted."""
    values: dict[str, Any] = {name: columns[name] for name in _PLAIN_FIELDS}
    encrypted = columns["phone_encrypted"]
    phone = vault.decrypt(encrypted) if encrypted else None
    versions = columns["field_times"] or {}
    times = {name: datetime.fromisoformat(v[0]) for name, v in versions.items()}
    events = {name: v[1] for name, v in versions.items()}
    seen = {name: datetime.fromisoformat(v[2]) for name, v in versions.items()}
    kinds = frozenset(k for k in columns["texts_scheduled"].split(",") if k)
    return Call(
        agency_id=columns["agency_id"],
        incident_id=columns["incident_id"],
        phone=phone,
        texts_scheduled=kinds,
        field_times=MappingProxyType(times),
        field_events=MappingProxyType(events),
        first_seen=MappingProxyType(seen),
        **values,
    )


def call_state_columns(call: Call) -> dict[str, Any]:
    """The columns that hold the call's state, but for its identity and its phone (stored
    encrypted, and only when it changed: see call_batch.py)."""
    columns: dict[str, Any] = {name: getattr(call, name) for name in _PLAIN_FIELDS}
    columns["texts_scheduled"] = ",".join(sorted(call.texts_scheduled))
    columns["field_times"] = {
        name: [at.isoformat(), call.field_events.get(name, ""), call.first_seen[name].isoformat()]
        for name, at in call.field_times.items()
    }
    return columns


@dataclass
class StoredCall:
    row: CallRow
    call: Call


class CallRepository:
    def __init__(self, session: Session, vault: Vault) -> None:
        self.session = session
        self.vault = vault

    def get_by_id(self, call_id: int, *, for_share: bool = False) -> StoredCall | None:
        query = select(CallRow).where(CallRow.id == call_id)
        if for_share:
            query = query.with_for_update(read=True)
        row = self.session.scalar(query)
        if row is None:
            return None
        columns = {name: getattr(row, name) for name in CALL_STATE_COLUMNS}
        return StoredCall(row, call_from_columns(columns, self.vault))


def record_decision(
    session: Session,
    call_id: int,
    code: str,
    *,
    decided_at: datetime,
    event_id: str | None = None,
    event_at: datetime | None = None,
    kind: str | None = None,
) -> None:
    session.add(
        DecisionRow(
            call_id=call_id,
            code=code,
            decided_at=decided_at,
            event_id=event_id,
            event_at=event_at,
            kind=kind,
        )
    )
