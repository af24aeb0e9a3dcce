"""Engines and transactions for SQLite (embedded default) and PostgreSQL (production).

SQLite: WAL, a busy timeout, foreign keys on, and every transaction opened with
``BEGIN IMMEDIATE`` so that writers queue instead of failing on a lock upgrade — this
makes SQLite the "single claimer" DESIGN asks for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
        )
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook issue BEGIN itself (pysqlite's default defers it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A read-only transaction (Database.reading) takes no write lock: under WAL it
        # reads one snapshot while writers go on.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


#: Execution option of the connections that :meth:`Database.reading` hands out.
READ_ONLY = "callerconnect_read_only"


class Database:
    """The unit of work: ``with db.transaction() as session:`` commits or rolls back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction on a plain connection, for Core statements only (the
        intake's fold): the session's identity map and unit of work cost more than the
        few statements of a small transaction."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction for the read side: every query in it sees one snapshot
        (``REPEATABLE READ`` on PostgreSQL; a deferred transaction under WAL on SQLite),
        and it never holds the write lock that :meth:`transaction` takes on SQLite, so a
        long report does not hold up the intake."""
        options: dict[str, Any] = {READ_ONLY: True}
        if self.is_postgresql:
            options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with (
            self.engine.connect().execution_options(**options) as connection,
            connection.begin(),
        ):
            yield connection

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:  # any driver error means "not reachable" to a health check
            return False

    def dispose(self) -> None:
        self.engine.dispose()
