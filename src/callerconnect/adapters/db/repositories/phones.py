"""The phones never texted: opt-outs (per agency) and protected phones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callerconnect.adapters.db.tables import OptOutRow, ProtectedPhoneRow

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


def protect_phone(
    session: Session, phone_hash: str, until: datetime, reason: str, now: datetime
) -> None:
    """Keep texts about other calls away from this phone until ``until`` (a later
    protection extends an earlier one, never shortens it)."""
    row = session.get(ProtectedPhoneRow, phone_hash, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    ProtectedPhoneRow(
                        phone_hash=phone_hash, protected_until=until, reason=reason, changed_at=now
                    )
                )
            return
        except IntegrityError:  # another transaction protected it first: extend theirs
            row = session.get(ProtectedPhoneRow, phone_hash, with_for_update=True)
            assert row is not None
    if row.protected_until < until:
        row.protected_until, row.reason, row.changed_at = until, reason, now


def protect_phones(
    session: Session, wanted: Mapping[str, tuple[datetime, str]], now: datetime
) -> None:
    """:func:`protect_phone` for many phones (hash → until, reason) in two statements: one
    locking read of those already protected, one insert of the others. A concurrent
    first protection of one of them fails the transaction (IntegrityError), and the
    caller folds its events one by one (service/intake.py)."""
    if not wanted:
        return
    rows = session.scalars(
        select(ProtectedPhoneRow)
        .where(ProtectedPhoneRow.phone_hash.in_(sorted(wanted)))
        .order_by(ProtectedPhoneRow.phone_hash)
        .with_for_update()
    )
    found = set()
    for row in rows:
        found.add(row.phone_hash)
        until, reason = wanted[row.phone_hash]
        if row.protected_until < until:
            row.protected_until, row.reason, row.changed_at = until, reason, now
    session.add_all(
        ProtectedPhoneRow(phone_hash=phone, protected_until=until, reason=reason, changed_at=now)
        for phone, (until, reason) in sorted(wanted.items())
        if phone not in found
    )


def is_protected(session: Session, phone_hash: str, now: datetime) -> bool:
    until = session.scalar(
        select(ProtectedPhoneRow.protected_until).where(ProtectedPhoneRow.phone_hash == phone_hash)
    )
    return until is not None and until > now
