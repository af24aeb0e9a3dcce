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
``pool_pre_ping`` still replaces a connection the server dropped).

One statement needs no transaction around it: it reads one snapshot on both databases.
It is run outside any transaction — SQLite's connections are in autocommit mode already
(``engine.py``), a PostgreSQL connection is put in autocommit for the statement — so a
look-up costs one round trip, without a ``BEGIN`` and a ``ROLLBACK`` around it.
Only for statements that read: nothing here commits.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

Converter = Callable[[Any], Any]


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
        if len(rows) > 1:
            raise ValueError("the statement found more than one row")
        if not rows:
            return None
        return self._row(
            *(
                value if convert is None else convert(value)
                for value, convert in zip(rows[0], self._result_converters, strict=True)
            )
        )

    def _parameters(self, values: Mapping[str, Any]) -> Any:
        bound = self._compiled.construct_params(values)
        for name, convert in self._bind_converters.items():
            bound[name] = convert(bound[name])
        if self._positions is None:
            return bound
        return tuple(bound[name] for name in self._positions)
