"""A Core statement of the intake's fold run on the driver's cursor, in the transaction
of a SQLAlchemy ``Connection``.

A single CAD event's transaction is half a dozen small statements: the event stored, its
call read and locked, the call and its texts written, their history and decisions. Each
one through ``Connection.execute`` builds an execution context and a result object, and
on PostgreSQL the result reads psycopg's ``cursor.description``, which builds a column
description for each of the forty columns the call is read with. Measured in process on
single events, that machinery was a third of the intake's CPU on PostgreSQL
(``docs/scaling.md``).

So :class:`DriverStatement` compiles its statement once for each dialect and set of
parameter names, keeps the bind and result converters SQLAlchemy would apply (so what is
written and read is the same as through a ``Connection``), and runs it on the cursor of
the connection's own driver connection, inside the connection's transaction, which
SQLAlchemy still begins, commits and rolls back. What a ``Connection`` does around a
statement that matters here is kept:

* a driver error is raised as SQLAlchemy's own exception (``IntegrityError``,
  ``OperationalError``, …), which the intake's retries and the web's error answers know;
* a connection the server dropped is invalidated, so it never goes back to the pool;
* the engine's ``before_cursor_execute`` listeners see every statement (the tests count
  statements and make them fail through them).

A statement that needs a column default computed in Python is refused when compiled:
SQLAlchemy's execution context, which fills those in, is the part skipped here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    """The statement as compiled for one dialect and set of parameter names."""

    sql: str
    #: Parameter names in the order the driver takes them (positional drivers), or the
    #: names alone (named ones); with the converter of each, if its type has one.
    binds: tuple[tuple[str, Converter | None], ...]
    positional: bool
    #: Values of parameters the statement itself carries (a literal in a WHERE clause).
    own_values: Mapping[str, Any]
    #: A converter for each column the statement returns (None: as the driver gives it);
    #: none for a statement that returns no rows.
    results: tuple[Converter | None, ...]
    #: Whether any of them converts.
    converts: bool


class DriverStatement:
    """``statement`` run on the driver's cursor: :meth:`fetch` once with its rows back,
    :meth:`run_many` for many sets of parameters."""

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        # Only an INSERT or an UPDATE writes the columns its parameters name.
        self._is_dml = bool(getattr(statement, "is_dml", False))
        self._compiled: dict[tuple[str, bool, tuple[str, ...] | None], _Compiled] = {}

    def fetch(self, connection: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement once with ``values``: the rows it returns, converted."""
        compiled = self._compiled_for(connection.dialect, False, tuple(values))
        parameters = _parameters(compiled, values)
        cursor = connection.connection.cursor()
        try:
            _run(connection, cursor, compiled.sql, parameters, many=False)
            # (Not ``cursor.description``: psycopg builds it anew, a column at a time.)
            rows = cursor.fetchall() if compiled.results else []
        finally:
            cursor.close()
        results = compiled.results
        if not compiled.converts:
            return [tuple(row) for row in rows]
        return [
            tuple(
                value if convert is None else convert(value)
                for value, convert in zip(row, results, strict=True)
            )
            for row in rows
        ]

    def run_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement for each of ``rows`` (each with the same names), in one
        ``executemany`` (psycopg sends them in one round trip); nothing comes back. A
        single row is executed plainly, as SQLAlchemy does (psycopg's executemany opens a
        pipeline, which costs more than one statement)."""
        if not rows:
            return
        many = len(rows) > 1
        # Compiled as for many rows either way: no RETURNING of the new ids added.
        compiled = self._compiled_for(connection.dialect, True, tuple(rows[0]))
        parameters = (
            [_parameters(compiled, row) for row in rows] if many else _parameters(compiled, rows[0])
        )
        cursor = connection.connection.cursor()
        try:
            _run(connection, cursor, compiled.sql, parameters, many=many)
        finally:
            cursor.close()

    def _compiled_for(self, dialect: Dialect, many: bool, names: tuple[str, ...]) -> _Compiled:
        key = (dialect.name, many, tuple(sorted(names)) if self._is_dml else None)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = self._compile(
                dialect, many, names if self._is_dml else None
            )
        return found

    def _compile(self, dialect: Dialect, many: bool, names: Sequence[str] | None) -> _Compiled:
        compiled = self._statement.compile(
            dialect=dialect,
            column_keys=list(names) if names is not None else None,
            # For many rows no RETURNING of the new ids is added (as SQLAlchemy does).
            for_executemany=many,
        )
        assert isinstance(compiled, SQLCompiler)
        defaults = [c.name for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        if defaults:
            raise ValueError(
                f"columns {defaults} would take their Python-side default, which only "
                "SQLAlchemy's execution fills in: give them a value"
            )
        if compiled.escaped_bind_names:
            raise ValueError("parameter names that need escaping are not supported")
        order = compiled.positiontup if compiled.positiontup is not None else list(compiled.binds)
        binds = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in order
        )
        own_values = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        columns = list(getattr(self._statement, "exported_columns", ()))
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        return _Compiled(
            compiled.string,
            binds,
            compiled.positiontup is not None,
            own_values,
            results,
            any(results),
        )


def _parameters(compiled: _Compiled, values: Mapping[str, Any]) -> Any:
    """The driver's parameters for ``values``: a tuple (positional) or a dict."""
    own = compiled.own_values
    if compiled.positional:
        return tuple(
            _value(name, values, own) if convert is None else convert(_value(name, values, own))
            for name, convert in compiled.binds
        )
    return {
        name: _value(name, values, own) if convert is None else convert(_value(name, values, own))
        for name, convert in compiled.binds
    }


def _value(name: str, values: Mapping[str, Any], own: Mapping[str, Any]) -> Any:
    if name in values:
        return values[name]
    if name in own:
        return own[name]
    raise KeyError(f"no value for the statement's parameter {name!r}")


def _run(connection: Connection, cursor: Any, sql: str, parameters: Any, *, many: bool) -> None:
    """Send the statement, first seen by the engine's ``before_cursor_execute`` listeners
    as a ``Connection`` calls them (with no execution context: a listener may change what
    is sent, or raise)."""
    for listener in connection.dispatch.before_cursor_execute:
        sql, parameters = listener(connection, cursor, sql, parameters, None, many)
    dialect = connection.dialect
    driver_error: type[Exception] = dialect.loaded_dbapi.Error
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
    except driver_error as error:
        lost = dialect.is_disconnect(
            error,  # type: ignore[arg-type]  # the driver's own error, as SQLAlchemy passes
            connection.connection.dbapi_connection,
            cursor,
        )
        if lost:
            # Never back to the pool; the transaction around it fails as it would have.
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql, parameters, error, driver_error, connection_invalidated=lost, dialect=dialect
        ) from error
