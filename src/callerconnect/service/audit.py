"""The dashboard's audit log: every view of personal data, every export and every
account change, with who, what, which filters, when and from where.

Only :func:`record` writes, and only by inserting; nothing updates or deletes a row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import AuditLogRow
from callerconnect.clock import Clock


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    agency_id: str
    user_email: str
    action: str
    target: str | None
    filters: str | None
    client_address: str | None


def record(
    db: Database,
    clock: Clock,
    *,
    who: str,
    agency_id: str,
    action: str,
    target: str | None = None,
    filters: Mapping[str, Sequence[str] | str] | None = None,
    address: str | None = None,
) -> None:
    written = (
        json.dumps({k: v for k, v in sorted(filters.items()) if v}, ensure_ascii=False)
        if filters
        else None
    )
    with db.transaction() as session:
        session.add(
            AuditLogRow(
                at=clock.now(),
                agency_id=agency_id,
                user_email=who,
                action=action,
                target=target[:254] if target else None,
                filters=written,
                client_address=(address or "")[:64] or None,
            )
        )


def entries(
    db: Database, agencies: frozenset[str] | None, *, limit: int = 200, offset: int = 0
) -> tuple[list[AuditEntry], int]:
    """The newest entries first (of ``agencies``, or all when ``None``) and the total."""
    with db.transaction() as session:
        query = select(AuditLogRow)
        count = select(func.count(AuditLogRow.id))
        if agencies is not None:
            query = query.where(AuditLogRow.agency_id.in_(sorted(agencies)))
            count = count.where(AuditLogRow.agency_id.in_(sorted(agencies)))
        rows = session.scalars(
            query.order_by(AuditLogRow.at.desc(), AuditLogRow.id.desc()).limit(limit).offset(offset)
        )
        found = [
            AuditEntry(
                id=r.id,
                at=r.at,
                agency_id=r.agency_id,
                user_email=r.user_email,
                action=r.action,
                target=r.target,
                filters=r.filters,
                client_address=r.client_address,
            )
            for r in rows
        ]
        return found, int(session.scalar(count) or 0)
