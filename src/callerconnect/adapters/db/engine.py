"""Engines and transactions for SQLite (embedded default) and PostgreSQL (production).

SQLite: WAL, a busy timeout, foreign keys on, and every transaction opened with
``BEGIN IMMEDIATE`` so that writers queue instead of failing on a lock upgrade — this
makes SQLite the "single claimer" DESIGN asks for. Writers of one database file queue
at :class:`SqliteWriterGate` first, so the next one starts the moment the last commits.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from callerconnect.adapters.db.compiled_read import close_reads_of


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
    engine = create_engine(url, pool_size=5, max_overflow=10)
    _ping_idle_connections(engine)
    return engine


#: A pooled PostgreSQL connection unused for longer than this is pinged before it is
#: handed out. ``pool_pre_ping`` pinged on every checkout: a round trip and a tenth of
#: the CPU of a single event's transaction, for a connection checked in milliseconds
#: before. A restart of the server takes longer than this, so a connection it dropped
#: has been idle that long and is replaced before use; one that breaks while in steady
#: use fails its statement, SQLAlchemy replaces the pool's connections, and the caller
#: tries again as after any failed transaction (the intake folds the event again, a
#: worker at its next poll).
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or in use moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards the connection and checks out another (a new one).
            raise DisconnectionError("the server closed an idle connection") from error


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
        # On the driver's connection: through exec_driver_sql, SQLAlchemy's execution
        # machinery cost more than the BEGIN itself (a twentieth of a single event).
        connection.connection.driver_connection.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")


#: Execution option of the connections that :meth:`Database.reading` hands out.
READ_ONLY = "callerconnect_read_only"


class SqliteWriterGate:
    """One write transaction at a time on a SQLite file, handed on the moment it ends.

    SQLite lets one writer in; the others wait in its busy handler, which sleeps and
    tries again (1, 2, 5, 10, … up to 100 ms between tries). Under load — eight CAD
    connections posting one event each, a worker claiming texts — the writers spent
    more time asleep in it than working: one ``serve`` folded 58 single events a second
    where its CPU allowed 160. Here the threads of a process queue on a lock, and the
    processes on the same file on an exclusive ``flock`` of ``<database>-writer``
    (released by the kernel if a process dies), both of which wake the next writer at
    once. ``BEGIN IMMEDIATE`` and the busy timeout stay underneath, for writers that do
    not pass here (migrations, tools opening the file themselves).

    A transaction opened inside another by the same thread (none should be: on SQLite it
    would wait for itself) passes without queueing, so it fails on the busy timeout as
    before instead of hanging."""

    def __init__(self, path: str | None) -> None:
        self._threads = threading.Lock()
        self._inside = threading.local()
        self._file: int | None = None
        if path is not None:
            try:
                self._file = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only folder: only the threads of this process queue
                self._file = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        if getattr(self._inside, "depth", 0):
            yield
            return
        with self._threads:
            if self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_EX)
            self._inside.depth = 1
            try:
                yield
            finally:
                self._inside.depth = 0
                if self._file is not None:
                    fcntl.flock(self._file, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None


class Database:
    """The unit of work: ``with db.transaction() as session:`` commits or rolls back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writers: SqliteWriterGate | None = None
        if engine.dialect.name == "sqlite":
            path = engine.url.database
            if not path or path == ":memory:" or path.startswith("file::memory:"):
                self._writers = SqliteWriterGate(None)  # one process: its threads queue
            else:
                self._writers = SqliteWriterGate(os.path.abspath(path))

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._writer_turn(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction on a plain connection, for Core statements only (the
        intake's fold): the session's identity map and unit of work cost more than the
        few statements of a small transaction."""
        with self._writer_turn(), self.engine.begin() as connection:
            yield connection

    def _writer_turn(self) -> AbstractContextManager[None]:
        """On SQLite, this writer's turn at :class:`SqliteWriterGate`."""
        return self._writers.writing() if self._writers is not None else nullcontext()

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
        close_reads_of(self.engine)
        self.engine.dispose()
        if self._writers is not None:
            self._writers.close()
