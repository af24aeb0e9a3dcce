"""``Database.reading``: the read side's transactions see one snapshot and never hold up
the intake's writes (SQLite's write lock), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import DBAPIError

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import DeadLetterRow

MOMENT = datetime(2026, 1, 26, 15, tzinfo=UTC)


def add_letter(db: Database) -> None:
    with db.transaction() as session:
        session.execute(
            insert(DeadLetterRow).values(
                agency_id="default",
                received_at=MOMENT,
                source="test",
                payload_encrypted="-",
                error_code="schema",
                error="-",
                status="new",
            )
        )


def letters(connection: Connection) -> int:
    count: int = connection.execute(select(func.count()).select_from(DeadLetterRow)).scalar_one()
    return count


def test_a_write_goes_through_while_a_read_is_open_and_the_read_keeps_its_snapshot(
    database_url: str,
) -> None:
    db = Database.from_url(database_url)
    try:
        add_letter(db)
        with db.reading() as connection:
            assert letters(connection) == 1
            writer = threading.Thread(target=add_letter, args=(db,))
            writer.start()
            writer.join(timeout=10)
            assert not writer.is_alive(), "the write waited for the read to end"
            assert letters(connection) == 1  # the snapshot the read began with
        with db.reading() as connection:
            assert letters(connection) == 2
    finally:
        db.dispose()


def test_a_read_transaction_refuses_to_write(postgres_url: str) -> None:
    db = Database.from_url(postgres_url)
    try:
        with pytest.raises(DBAPIError, match="read-only"), db.reading() as connection:
            connection.execute(
                insert(DeadLetterRow).values(
                    agency_id="default",
                    received_at=MOMENT,
                    source="test",
                    payload_encrypted="-",
                    error_code="schema",
                    error="-",
                    status="new",
                )
            )
    finally:
        db.dispose()
