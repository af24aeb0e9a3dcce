"""One read-only ``SELECT``, compiled once and run on the driver's own connection.

For a statement run hundreds of times a second whose own work is tiny — the survey
page's look-up of its link — SQLAlchemy's per-execution machinery is most of the cost:
a ``Connection`` object, the transaction and its ``begin`` event (an explicit ``BEGIN``
on SQLite), an execution context, a result object. Measured in process CPU per look-up:
about 330 µs on SQLite and 700–1,000 µs on PostgreSQL, against 40 µs and 400 µs for the
same statement on a pooled driver connection.

So :class:`CompiledRead` compiles the statement once for the engine's dialect, keeps
its parameter order and the column types' converters (the same bind and result
processors SQLAlchemy would apply, so values read and written are the same as through
a ``Connection``), and runs it on a connection checked out of the engine's pool (its
the pool's ping of a connection left idle still replaces one the server dropped).

One statement needs no transaction around it: it reads one snapshot on both databases.
It is run outside any transaction — SQLite's connections are in autocommit mode already
(``engine.py``), a PostgreSQL connection is put in autocommit for the statement — so a
look-up costs one round trip, without a ``BEGIN`` and a ``ROLLBACK`` around it.
Only for statements that read: nothing here commits.

On SQLite, :meth:`CompiledRead.one_or_none_in_line` runs it on the event loop itself,
on a connection of the loop's own (a read under WAL takes about 40 µs and waits for no
writer). On PostgreSQL, :meth:`CompiledRead.all_on_loop` runs the statement on the
event loop itself, on an asynchronous connection of its own: a page waits for the
server's answer without a thread. Handing the look-up to a thread put four hops on the
operating system's scheduler (loop → thread → server → thread → loop) with every
process's threads and the server's on two cores: a p99 of 130 ms at 50 clients.

Those connections of a loop's own are no pool's: :func:`close_reads_of` closes them
when the engine is disposed (``Database.dispose``), and a loop's connection is closed
when a read on another loop replaces it (each test's ``asyncio.run`` is a new loop).
One left to the garbage collector warns, in whatever later code it is collected.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from sqlalchemy import Select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

Converter = Callable[[Any], Any]

#: Seconds a read on the event loop waits for a SQLite lock before it fails (rare: a WAL
#: read takes no lock but while the file is recovered).
IN_LINE_BUSY_TIMEOUT = 0.1

#: The reads of each engine, whose own connections its disposal closes.
_READS_OF: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[CompiledRead]] = (
    weakref.WeakKeyDictionary()
)


def close_reads_of(engine: Engine) -> None:
    """Close the connections of their own that ``engine``'s reads opened (on an event
    loop, or in line); a later read opens another."""
    for read in list(_READS_OF.get(engine, ())):
        read.close()


class CompiledRead:
    """``statement`` compiled for ``engine``; :meth:`one_or_none` runs it."""

    def __init__(self, engine: Engine, statement: Select[*tuple[Any, ...]]) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self._engine = engine
        self._compiled = compiled
        self._sql = compiled.string
        # qmark (SQLite) binds by position, pyformat (psycopg) by name.
        self._positions = compiled.positiontup
        self._bind_converters: dict[str, Converter] = {}
        for name, bind in compiled.binds.items():
            converter = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if converter is not None:
                self._bind_converters[name] = converter
        columns = list(statement.selected_columns)
        self._result_converters: list[Converter | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self._row = namedtuple("_Row", [column.key for column in columns])  # type: ignore[misc]
        self._autocommit = dialect.name == "postgresql"
        self._driver_error: type[Exception] = dialect.loaded_dbapi.Error
        # The event loop's own connection (all_on_loop, one_or_none_in_line) and
        # the loop it is on.
        self._on_loop: tuple[asyncio.AbstractEventLoop, psycopg.AsyncConnection[Any]] | None = None
        self._in_line: tuple[asyncio.AbstractEventLoop, Any] | None = None
        # An in-memory database lives in the pool's one connection: no other can see it.
        self._own_connection_possible = not isinstance(engine.pool, StaticPool)
        _READS_OF.setdefault(engine, weakref.WeakSet()).add(self)

    def close(self) -> None:
        """Close the connections of this read's own. Synchronous, so that it also works
        once their event loop has ended: libpq's connection is finished directly."""
        on_loop, self._on_loop = self._on_loop, None
        if on_loop is not None:
            on_loop[1].pgconn.finish()
        in_line, self._in_line = self._in_line, None
        if in_line is not None:
            in_line[1].close()

    def one_or_none(self, values: Mapping[str, Any]) -> Any:
        """The one row the statement finds for ``values`` (its columns by name), or None."""
        parameters = self._parameters(values)
        connection = self._engine.raw_connection()
        try:
            driver = connection.driver_connection
            if self._autocommit:
                driver.autocommit = True  # type: ignore[union-attr]
            try:
                cursor = connection.cursor()
                try:
                    cursor.execute(self._sql, parameters)
                    rows = cursor.fetchmany(2)
                finally:
                    cursor.close()
            finally:
                if self._autocommit:
                    driver.autocommit = False  # type: ignore[union-attr]
        except self._driver_error as error:
            # A connection the server dropped (a restart) must not go back to the pool;
            # any other failure of a read is rare enough that a new one costs nothing.
            connection.invalidate(error)
            # The same exception as through a Connection, so callers see one kind.
            raise DBAPIError.instance(self._sql, parameters, error, self._driver_error) from error
        finally:
            connection.close()  # back to the pool (or, invalidated, discarded)
        return self._row_of(rows)

    def one_or_none_in_line(self, values: Mapping[str, Any]) -> Any:
        """:meth:`one_or_none` on SQLite, run on the event loop itself, on a connection
        of the loop's own: never waiting for the pool (whose connections the threads may
        all hold), and waiting at most :data:`IN_LINE_BUSY_TIMEOUT` for a lock (a WAL
        read takes none but during a recovery), not the writers' 30 s."""
        if not self._own_connection_possible:
            return self.one_or_none(values)
        parameters = self._parameters(values)
        connection = self._loop_sqlite_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._sql, parameters)
                rows = cursor.fetchmany(2)
            finally:
                cursor.close()
        except self._driver_error as error:
            self._in_line = None
            connection.close()
            raise DBAPIError.instance(self._sql, parameters, error, self._driver_error) from error
        return self._row_of(rows)

    def _loop_sqlite_connection(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._in_line is not None and self._in_line[0] is loop:
            return self._in_line[1]
        self.close()  # another loop's connection, if any: that loop ended or reads no more
        arguments, options = self._engine.dialect.create_connect_args(self._engine.url)
        connection = self._engine.dialect.loaded_dbapi.connect(
            *arguments,
            **{
                **options,
                "timeout": IN_LINE_BUSY_TIMEOUT,
                "isolation_level": None,  # autocommit: one statement, one snapshot
                "check_same_thread": False,  # a test's loop may run in another thread
            },
        )
        self._in_line = (loop, connection)
        return connection

    async def all_on_loop(self, values: Mapping[str, Any]) -> list[Any]:
        """Every row the statement finds for ``values``, read on the running event loop,
        on PostgreSQL only: one asynchronous connection per loop, in autocommit, shared
        by the loop's pages (psycopg runs their statements one after another on it;
        ``survey_store.LinkLookupsTogether`` reads the pages waiting in one). A
        connection the server dropped is replaced and the statement sent once more, as
        the pool's ping does for :meth:`one_or_none` (``engine.py``)."""
        parameters = self._parameters(values)
        for attempt in (1, 2):
            connection = await self._loop_connection()
            try:
                async with connection.cursor() as cursor:
                    await cursor.execute(self._sql, parameters)
                    rows = await cursor.fetchall()
                return [self._converted(row) for row in rows]
            except psycopg.Error as error:
                self._on_loop = None
                await connection.close()
                if attempt == 1 and connection.broken:
                    continue
                raise DBAPIError.instance(self._sql, parameters, error, psycopg.Error) from error
        raise AssertionError("unreachable")

    async def _loop_connection(self) -> psycopg.AsyncConnection[Any]:
        loop = asyncio.get_running_loop()
        if self._on_loop is not None and self._on_loop[0] is loop:
            return self._on_loop[1]
        self.close()  # another loop's connection, if any: that loop ended or reads no more
        # The arguments SQLAlchemy's engine would connect with (URL, options).
        arguments, options = self._engine.dialect.create_connect_args(self._engine.url)
        options.setdefault("connect_timeout", 10)  # a page does not wait minutes for it
        connection = await psycopg.AsyncConnection.connect(
            *arguments, **{**options, "autocommit": True}
        )
        self._on_loop = (loop, connection)
        return connection

    def _row_of(self, rows: Any) -> Any:
        if len(rows) > 1:
            raise ValueError("the statement found more than one row")
        if not rows:
            return None
        return self._converted(rows[0])

    def _converted(self, row: Any) -> Any:
        return self._row(
            *(
                value if convert is None else convert(value)
                for value, convert in zip(row, self._result_converters, strict=True)
            )
        )

    def _parameters(self, values: Mapping[str, Any]) -> Any:
        bound = self._compiled.construct_params(values)
        for name, convert in self._bind_converters.items():
            bound[name] = convert(bound[name])
        if self._positions is None:
            return bound
        return tuple(bound[name] for name in self._positions)
