"""The phones never texted: opt-outs (per agency) and protected phones."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from callerconnect.adapters.db.tables import Base, OptOutRow, ProtectedPhoneRow

OPT_OUT_EVERY_AGENCY = "*"
"""The agency of an opt-out recorded before agencies were told apart (migration 0016)."""


def is_opted_out(session: Session, agency_id: str, phone_hash: str) -> bool:
    """Whether the phone said STOP to this agency (its own choice about this agency
    wins over one recorded for every agency)."""
    row = session.get(OptOutRow, (agency_id, phone_hash))
    if row is None:
        row = session.get(OptOutRow, (OPT_OUT_EVERY_AGENCY, phone_hash))
    return bool(row and row.opted_out)


def set_opt_out(
    session: Session,
    agency_id: str,
    phone_hash: str,
    opted_out: bool,
    now: datetime,
    source: str,
) -> bool:
    """Record the phone's choice about this agency; True if it changed."""
    was = is_opted_out(session, agency_id, phone_hash)
    row = session.get(OptOutRow, (agency_id, phone_hash), with_for_update=True)
    if row is None:
        session.add(
            OptOutRow(
                agency_id=agency_id,
                phone_hash=phone_hash,
                opted_out=opted_out,
                changed_at=now,
                source=source,
            )
        )
        return was != opted_out
    if row.opted_out == opted_out:
        return False
    row.opted_out = opted_out
    row.changed_at = now
    row.source = source
    return True


def _upserts(
    table: Table,
    key: Sequence[str],
    updated: Sequence[str],
    when: Callable[[Any], ColumnElement[bool]],
) -> dict[str, Any]:
    """For each database, an insert into ``table`` that on a row of the same ``key``
    updates its ``updated`` columns instead, only ``when`` (given the row offered,
    ``excluded``) holds: atomic, so a concurrent first insert is updated, not a failure."""
    upserts = {}
    for dialect, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert)):
        new = insert(table)
        upserts[dialect] = new.on_conflict_do_update(
            index_elements=[table.c[name] for name in key],
            set_={name: new.excluded[name] for name in updated},
            where=when(new.excluded),
        )
    return upserts


_OPT_OUTS: Table = Base.metadata.tables["opt_outs"]
# A new opt-out inserted, a phone that said START opted out again; a phone already opted
# out keeps when and how it first said so.
_OPT_OUT = _upserts(
    _OPT_OUTS,
    key=("agency_id", "phone_hash"),
    updated=("opted_out", "changed_at", "source"),
    when=lambda _offered: _OPT_OUTS.c.opted_out.is_(False),
)


def opt_out_phones(
    connection: Connection,
    agency_id: str,
    phone_hashes: Collection[str],
    now: datetime,
    source: str,
) -> None:
    """Opt these phones out of the agency's texts, as :func:`set_opt_out` with
    ``opted_out=True`` does each: one upsert for them all, atomic on both databases (a
    concurrent first opt-out of the same phone is kept, not a failure)."""
    if not phone_hashes:
        return
    connection.execute(
        _OPT_OUT[connection.dialect.name],
        [
            {
                "agency_id": agency_id,
                "phone_hash": phone_hash,
                "opted_out": True,
                "changed_at": now,
                "source": source,
            }
            for phone_hash in sorted(phone_hashes)  # in key order: no deadlock
        ],
    )


_PROTECTED: Table = Base.metadata.tables["protected_phones"]
# A protection inserted, or the one stored extended if it ends sooner (never shortened).
_PROTECT = _upserts(
    _PROTECTED,
    key=("phone_hash",),
    updated=("protected_until", "reason", "changed_at"),
    when=lambda offered: _PROTECTED.c.protected_until < offered.protected_until,
)


def protect_phones(
    connection: Connection, wanted: Mapping[str, tuple[datetime, str]], now: datetime
) -> None:
    """Keep texts about other calls away from these phones (hash → until, reason): one
    upsert that a later protection extends and never shortens, atomic on both databases
    (a concurrent first protection of the same phone is extended, not a failure)."""
    if not wanted:
        return
    connection.execute(
        _PROTECT[connection.dialect.name],
        [
            {"phone_hash": phone, "protected_until": until, "reason": reason, "changed_at": now}
            for phone, (until, reason) in sorted(wanted.items())  # in key order: no deadlock
        ],
    )


def is_protected(session: Session, phone_hash: str, now: datetime) -> bool:
    until = session.scalar(
        select(ProtectedPhoneRow.protected_until).where(ProtectedPhoneRow.phone_hash == phone_hash)
    )
    return until is not None and until > now
