"""Keys at rest: open the vault against a database, rotate to a new secret, and check
what a rotation left behind.

Rotating ``secret_key`` (docs/security.md has the runbook):

1. configure the new key as ``secret_key`` and the previous one in ``old_secret_keys``,
   and restart every process: new values are written under the new key, old ones
   still read;
2. ``callerconnect keys rotate`` re-encrypts every stored value under the new key, in
   small transactions, while the system runs;
3. ``callerconnect keys check`` says whether anything is still under an old key; when it
   answers 0, remove the old key and restart.

A rotation never loses a value: a row is swapped only if it still holds what was read
(a concurrent purge or rewrite wins), and a value no configured key can read is counted
and left as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from callerconnect.adapters.crypto import Vault, VaultError, first_lookup_key
from callerconnect.adapters.db.encrypted_values import (
    ENCRYPTED_COLUMNS,
    PHONE_LOOKUP_KEY,
    EncryptedColumn,
    read_batch,
    replace_tokens,
    store_key_once,
    stored_key,
)
from callerconnect.adapters.db.engine import Database
from callerconnect.logs import log_event

log = logging.getLogger(__name__)

ROTATION_BATCH = 500


class UnknownKeyError(Exception):
    """The database's data is encrypted under a secret that is not configured."""


def open_vault(
    db: Database, secret_key: str, old_secret_keys: Sequence[str], now: datetime
) -> Vault:
    """A vault with the database's lookup key, storing one on first use.

    Refuses (``UnknownKeyError``) when the stored lookup key cannot be read: the old key
    was removed before a rotation finished. Carrying on would hash phones differently and
    forget every opt-out, so nothing starts.
    """
    vault = Vault(secret_key, old_secret_keys)
    with db.transaction() as session:
        stored = stored_key(session, PHONE_LOOKUP_KEY)
        if stored is None:
            first = vault.wrap_lookup_key(first_lookup_key(secret_key, old_secret_keys))
            stored = store_key_once(session, PHONE_LOOKUP_KEY, first, now)
    try:
        lookup_key = vault.unwrap_lookup_key(stored)
    except VaultError:
        raise UnknownKeyError(
            "the data in this database is encrypted under a secret key that is not "
            "configured: put the previous secret_key back in old_secret_keys "
            "(CALLERCONNECT_OLD_SECRET_KEYS), run `callerconnect keys rotate`, and remove "
            "it only when `callerconnect keys check` reports nothing under old keys"
        ) from None
    if not vault.is_current(stored):
        log_event(
            log,
            "vault_old_key_in_use",
            logging.WARNING,
            hint="run `callerconnect keys rotate`",
        )
    return vault.with_lookup_key(lookup_key)


@dataclass
class ColumnReport:
    """What a rotation or a check found in one encrypted column."""

    column: str
    current: int = 0  # already under the newest key
    rotated: int = 0  # re-encrypted by this rotation
    old: int = 0  # still under an old key (after a rotation: written while it ran)
    unreadable: int = 0  # under no configured key: left untouched

    @property
    def total(self) -> int:
        return self.current + self.rotated + self.old + self.unreadable


@dataclass
class KeysReport:
    columns: list[ColumnReport] = field(default_factory=list)

    @property
    def old(self) -> int:
        return sum(c.old for c in self.columns)

    @property
    def unreadable(self) -> int:
        return sum(c.unreadable for c in self.columns)

    @property
    def rotated(self) -> int:
        return sum(c.rotated for c in self.columns)

    @property
    def total(self) -> int:
        return sum(c.total for c in self.columns)


Progress = Callable[[str, int], None]


def rotate_keys(
    db: Database,
    vault: Vault,
    *,
    batch_size: int = ROTATION_BATCH,
    progress: Progress | None = None,
) -> KeysReport:
    """Re-encrypt every stored value under the newest key; the lookup key last."""
    report = KeysReport()
    for column in ENCRYPTED_COLUMNS:
        result = ColumnReport(column.name)
        report.columns.append(result)

        _each_batch(db, column, batch_size, partial(_rotate, vault, column, result), progress)
        log_event(
            log,
            "keys_rotated",
            column=column.name,
            rotated=result.rotated,
            current=result.current,
            unreadable=result.unreadable,
        )
    # A process still running with the old secret_key keeps writing under it, behind the
    # rotation's back: count what is under an old key now, so the report says so.
    recheck = check_keys(db, vault, batch_size=batch_size)
    for rotated, checked in zip(report.columns, recheck.columns, strict=True):
        rotated.old = checked.old
    return report


def check_keys(
    db: Database,
    vault: Vault,
    *,
    batch_size: int = ROTATION_BATCH,
    progress: Progress | None = None,
) -> KeysReport:
    """Count, per column, the values under the newest key, under an old one, and under
    none of the configured keys. Reads only."""
    report = KeysReport()
    for column in ENCRYPTED_COLUMNS:
        result = ColumnReport(column.name)
        report.columns.append(result)

        _each_batch(db, column, batch_size, partial(_count, vault, result), progress)
    return report


Rows = Sequence[tuple[Any, str]]


def _rotate(
    vault: Vault, column: EncryptedColumn, result: ColumnReport, session: Session, rows: Rows
) -> None:
    swaps = []
    for key, token in rows:
        if vault.is_current(token):
            result.current += 1
            continue
        try:
            swaps.append((key, token, vault.reencrypt(token)))
        except VaultError:
            result.unreadable += 1
    # A row rewritten or purged since it was read keeps what it holds now; the check
    # that ends a rotation sees it.
    result.rotated += replace_tokens(session, column, swaps)


def _count(vault: Vault, result: ColumnReport, _session: Session, rows: Rows) -> None:
    for _key, token in rows:
        if vault.is_current(token):
            result.current += 1
            continue
        try:
            vault.decrypt(token)
        except VaultError:
            result.unreadable += 1
        else:
            result.old += 1


def _each_batch(
    db: Database,
    column: EncryptedColumn,
    size: int,
    handle: Callable[[Session, Rows], None],
    progress: Progress | None,
) -> None:
    """One short transaction per batch, so a rotation never holds a lock for long;
    progress is told after each commit."""
    after = None
    while True:
        with db.transaction() as session:
            rows = read_batch(session, column, after, size)
            if not rows:
                return
            handle(session, rows)
        after = rows[-1][0]
        if progress is not None:
            progress(column.name, len(rows))
