"""Where encrypted values live, and the few statements a key rotation needs.

Every column that holds a :class:`~callerconnect.adapters.crypto.Vault` token is listed in
:data:`ENCRYPTED_COLUMNS`; a test checks the list against the models, so a new encrypted
column cannot be forgotten by the rotation. The stored lookup key comes last: a rotation
re-encrypts it once everything else is done, so "the lookup key is under the newest
secret" means "the last rotation finished".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Column, CursorResult, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callerconnect.adapters.db.tables import (
    CadEventRow,
    CallRow,
    DeadLetterRow,
    InboundMessageRow,
    OutboxRow,
    SurveyResponseRow,
    VaultKeyRow,
)

PHONE_LOOKUP_KEY = "phone_lookup"


@dataclass(frozen=True)
class EncryptedColumn:
    table: Table
    column: Column[Any]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    @property
    def key(self) -> Column[Any]:
        (primary,) = self.table.primary_key.columns
        return primary


def _encrypted(model: Any, attribute: str) -> EncryptedColumn:
    table = cast(Table, model.__table__)
    return EncryptedColumn(table, table.c[attribute])


ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    _encrypted(CallRow, "phone_encrypted"),
    _encrypted(OutboxRow, "phone_encrypted"),
    _encrypted(CadEventRow, "payload_encrypted"),
    _encrypted(DeadLetterRow, "payload_encrypted"),
    _encrypted(SurveyResponseRow, "comment_encrypted"),
    _encrypted(InboundMessageRow, "body_encrypted"),
    _encrypted(VaultKeyRow, "key_encrypted"),
)


def read_batch(
    session: Session, column: EncryptedColumn, after: Any, size: int
) -> Sequence[tuple[Any, str]]:
    """Up to ``size`` (primary key, token) pairs past ``after``, in key order."""
    query = select(column.key, column.column).where(column.column.is_not(None))
    if after is not None:
        query = query.where(column.key > after)
    rows = session.execute(query.order_by(column.key).limit(size))
    return [(key, token) for key, token in rows]


def replace_tokens(
    session: Session, column: EncryptedColumn, swaps: Sequence[tuple[Any, str, str]]
) -> int:
    """Swap each ``(key, old, new)`` unless the row changed since it was read (another
    process purged or rewrote it): that change wins. One round trip for the lot (an
    executemany); returns how many swaps happened."""
    if not swaps:
        return 0
    statement = (
        update(column.table)
        .where(column.key == bindparam("row_key"), column.column == bindparam("old_token"))
        .values({column.column.name: bindparam("new_token")})
    )
    result = session.execute(
        statement,
        [{"row_key": key, "old_token": old, "new_token": new} for key, old, new in swaps],
        execution_options={"synchronize_session": False},
    )
    return cast(CursorResult[Any], result).rowcount


def stored_key(session: Session, name: str) -> str | None:
    return session.scalar(select(VaultKeyRow.key_encrypted).where(VaultKeyRow.name == name))


def store_key_once(session: Session, name: str, key_encrypted: str, now: datetime) -> str:
    """Store a key unless another process stored one first; returns the stored one."""
    try:
        with session.begin_nested():
            session.add(VaultKeyRow(name=name, key_encrypted=key_encrypted, created_at=now))
    except IntegrityError:
        pass
    stored = stored_key(session, name)
    assert stored is not None  # just inserted, or inserted by the process that won
    return stored
