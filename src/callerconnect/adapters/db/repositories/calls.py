"""Calls: the calls table turned into domain ``Call`` objects and back, and the decisions
recorded about them."""

from __future__ import annotations

from collections.abc import Collection
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


@dataclass
class StoredCall:
    row: CallRow
    call: Call


class CallRepository:
    def __init__(self, session: Session, vault: Vault) -> None:
        self.session = session
        self.vault = vault

    def get(
        self, agency_id: str, incident_id: str, *, for_update: bool = False
    ) -> StoredCall | None:
        query = select(CallRow).where(
            CallRow.agency_id == agency_id, CallRow.incident_id == incident_id
        )
        if for_update:
            query = query.with_for_update()
        row = self.session.scalar(query)
        return None if row is None else StoredCall(row, self._to_domain(row))

    def get_many(
        self, agency_id: str, incident_ids: Collection[str], *, for_update: bool = False
    ) -> dict[str, StoredCall | None]:
        """Each incident's call (None when there is none yet), read in one query and,
        ``for_update``, locked in incident order so that two transactions locking
        overlapping sets never wait on each other crosswise."""
        known: dict[str, StoredCall | None] = dict.fromkeys(sorted(incident_ids))
        if not known:
            return known
        query = (
            select(CallRow)
            .where(CallRow.agency_id == agency_id, CallRow.incident_id.in_(list(known)))
            .order_by(CallRow.incident_id)
        )
        if for_update:
            query = query.with_for_update()
        for row in self.session.scalars(query):
            known[row.incident_id] = StoredCall(row, self._to_domain(row))
        return known

    def get_by_id(self, call_id: int, *, for_share: bool = False) -> StoredCall | None:
        query = select(CallRow).where(CallRow.id == call_id)
        if for_share:
            query = query.with_for_update(read=True)
        row = self.session.scalar(query)
        return None if row is None else StoredCall(row, self._to_domain(row))

    def save(self, call: Call, row: CallRow | None, now: datetime, category: str | None) -> CallRow:
        """Write the call into its row (a new one added to the session). Not flushed:
        what refers to a new row does so through the row itself, and the session writes
        every call of a batch together (or when a query needs them)."""
        new = row is None
        if row is None:
            row = CallRow(agency_id=call.agency_id, incident_id=call.incident_id, created_at=now)
            self.session.add(row)
        # Only what changed is set: an event changes a field or two, and each set
        # attribute costs the session's bookkeeping and a column in the UPDATE.
        for name in _PLAIN_FIELDS:
            value = getattr(call, name)
            if new or getattr(row, name) != value:
                setattr(row, name, value)
        if new or row.call_category != category:
            row.call_category = category
        if call.phone is not None:
            phone_hash = self.vault.phone_hash(call.phone)
            if row.phone_hash != phone_hash or row.phone_encrypted is None:
                row.phone_encrypted = self.vault.encrypt(call.phone)
                row.phone_hash = phone_hash
        texts = ",".join(sorted(call.texts_scheduled))
        if new or row.texts_scheduled != texts:
            row.texts_scheduled = texts
        versions = {
            name: [
                at.isoformat(),
                call.field_events.get(name, ""),
                call.first_seen[name].isoformat(),
            ]
            for name, at in call.field_times.items()
        }
        if new or row.field_times != versions:
            row.field_times = versions
        row.updated_at = now
        return row

    def _to_domain(self, row: CallRow) -> Call:
        values: dict[str, Any] = {name: getattr(row, name) for name in _PLAIN_FIELDS}
        phone = self.vault.decrypt(row.phone_encrypted) if row.phone_encrypted else None
        versions = row.field_times or {}
        times = {name: datetime.fromisoformat(v[0]) for name, v in versions.items()}
        events = {name: v[1] for name, v in versions.items()}
        seen = {name: datetime.fromisoformat(v[2]) for name, v in versions.items()}
        kinds = frozenset(k for k in row.texts_scheduled.split(",") if k)
        return Call(
            agency_id=row.agency_id,
            incident_id=row.incident_id,
            phone=phone,
            texts_scheduled=kinds,
            field_times=MappingProxyType(times),
            field_events=MappingProxyType(events),
            first_seen=MappingProxyType(seen),
            **values,
        )


def record_decision(
    session: Session,
    call: int | CallRow,
    code: str,
    *,
    decided_at: datetime,
    event_id: str | None = None,
    event_at: datetime | None = None,
    kind: str | None = None,
) -> None:
    # A row not yet flushed gets its id when the decision is written with it.
    link: dict[str, Any] = {"call": call} if isinstance(call, CallRow) else {"call_id": call}
    session.add(
        DecisionRow(
            **link,
            code=code,
            decided_at=decided_at,
            event_id=event_id,
            event_at=event_at,
            kind=kind,
        )
    )
