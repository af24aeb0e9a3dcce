"""The phones never texted: opt-outs (per agency) and protected phones."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
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


_OPT_OUTS: Table = Base.metadata.tables["opt_outs"]


def _opt_out(insert: Any) -> Any:
    """Insert an opt-out, or turn back to opted out a phone that said START; a phone
    already opted out keeps when and how it first said so."""
    new = insert(_OPT_OUTS)
    return new.on_conflict_do_update(
        index_elements=[_OPT_OUTS.c.agency_id, _OPT_OUTS.c.phone_hash],
        set_={
            "opted_out": new.excluded.opted_out,
            "changed_at": new.excluded.changed_at,
            "source": new.excluded.source,
        },
        where=_OPT_OUTS.c.opted_out.is_(False),
    )


_OPT_OUT = {"sqlite": _opt_out(sqlite.insert), "postgresql": _opt_out(postgresql.insert)}


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


def _protect(insert: Any) -> Any:
    """Insert a protection, or extend the one stored if it ends sooner."""
    new = insert(_PROTECTED)
    return new.on_conflict_do_update(
        index_elements=[_PROTECTED.c.phone_hash],
        set_={
            "protected_until": new.excluded.protected_until,
            "reason": new.excluded.reason,
            "changed_at": new.excluded.changed_at,
        },
        where=_PROTECTED.c.protected_until < new.excluded.protected_until,
    )


_PROTECT = {"sqlite": _protect(sqlite.insert), "postgresql": _protect(postgresql.insert)}


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
