"""Bring the database to the current schema, safely when several processes start at once."""

from __future__ import annotations

from sqlalchemy import text

from callerconnect.adapters.db import migrate
from callerconnect.adapters.db.engine import Database

# Any constant will do: it names "callerconnect migrations" among PostgreSQL advisory locks.
_MIGRATION_LOCK = 0x63616C6C


def ensure_schema(db: Database) -> str | None:
    """Apply pending migrations; returns the revision the database is now at.

    ``serve``, ``worker`` and ``demo`` call this at start-up, so a fresh database just
    works; on PostgreSQL an advisory lock makes concurrent starts take turns.
    """
    if db.is_postgresql:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                migrate.upgrade(db.engine)
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                )
                connection.commit()
    else:
        migrate.upgrade(db.engine)
    return migrate.current_revision(db.engine)
