"""Many rows in one ``INSERT`` whose text does not grow with them (PostgreSQL).

SQLAlchemy sends a multi-row insert with ``RETURNING`` as ``INSERT … VALUES (%(a_0)s,
…), (%(a_1)s, …), …``: a placeholder per column and row, in a statement as long as the
rows are many. psycopg turns each such statement into PostgreSQL's ``$1, $2, …`` form by
scanning it placeholder by placeholder, and caches that only for statements under 4 KiB
and 50 parameters; a chunk of 250 CAD events went through that scan for its events, its
new calls and its texts: a third of ``serve``'s CPU per event on PostgreSQL.

So on PostgreSQL :class:`BulkInsert` sends the rows as one JSON document instead, read
back into rows by the server (``INSERT … SELECT CAST(r.a AS type), … FROM
json_to_recordset(CAST(%(rows)s AS JSON)) AS r(a TEXT, …)``): the same statement whatever
the number of rows, converted once. Each value goes through its column type's own bind
conversion first (a UTC time made aware UTC, then written in ISO 8601), so the server
casts to the column's type what SQLAlchemy would have sent. One array per column
(``unnest``) did the same, but psycopg builds array literals element by element in
Python: 35–42 µs of CPU a row of ``cad_events``, against 12 µs for the document, which
``json.dumps`` writes in C. On SQLite, with no round trip to save, it is the plain
statement, executed for the rows (in one ``executemany`` when nothing is read back).

A single row (a single CAD event's, its call's, its text's) goes as the plain statement,
and so do a few rows on SQLite, one execution each: the rows of a small transaction,
where SQLAlchemy's execution would cost more than the statements
(:class:`~callerconnect.adapters.db.driver_statement.DriverStatement` runs them, and the
document, on the driver's cursor).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    cast,
    column,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import Insert

from callerconnect.adapters.db.driver_statement import DriverStatement

#: A value as it goes into the JSON document of the rows.
Encoder = Callable[[Any], Any]

#: Up to this many rows SQLite takes them one execution each (a few microseconds in
#: the driver); more go as SQLAlchemy's multi-row statement.
SQLITE_ROWS_ONE_BY_ONE = 16


class BulkInsert:
    """``INSERT INTO table`` for many rows (each with the same columns), returning the
    ``returning`` columns of each row stored; ``skip_conflicts_on`` names the columns
    of a unique key whose repeats are skipped (``ON CONFLICT … DO NOTHING``)."""

    def __init__(
        self,
        table: Table,
        *,
        returning: Sequence[Column[Any]] = (),
        skip_conflicts_on: Sequence[Column[Any]] = (),
    ) -> None:
        self._table = table
        self._returning = tuple(returning)
        self._skip_conflicts_on = tuple(skip_conflicts_on)
        self._plain: dict[str, Insert] = {}
        self._one_row: dict[str, DriverStatement] = {}
        #: For each set of columns: the statement, and each column's encoder.
        self._from_json: dict[
            tuple[str, ...], tuple[DriverStatement, list[tuple[str, Encoder]]]
        ] = {}

    def __call__(
        self, connection: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows``: the ``returning`` columns of each row stored."""
        if not rows:
            return []
        dialect = connection.dialect.name
        if dialect != "postgresql" and not self._returning:
            # Nothing to read back: the rows in one executemany.
            self._one_row_for(dialect).run_many(connection, rows)
            return []
        if len(rows) == 1 or (dialect != "postgresql" and len(rows) <= SQLITE_ROWS_ONE_BY_ONE):
            one = self._one_row_for(dialect)
            return [stored for row in rows for stored in one.fetch(connection, row)]
        if dialect != "postgresql":
            return [tuple(row) for row in connection.execute(self._plain_for(dialect), list(rows))]
        columns = tuple(rows[0])
        statement, encoders = self._from_json_for(columns, connection.dialect)
        document = json.dumps(
            [{name: encode(row[name]) for name, encode in encoders} for row in rows],
            separators=(",", ":"),
        )
        return statement.fetch(connection, {"rows": document})

    def _plain_for(self, dialect: str) -> Insert:
        if dialect not in self._plain:
            make = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect, insert)
            statement = make(self._table)
            if self._skip_conflicts_on:
                statement = statement.on_conflict_do_nothing(  # type: ignore[attr-defined]
                    index_elements=list(self._skip_conflicts_on)
                )
            self._plain[dialect] = (
                statement.returning(*self._returning) if self._returning else statement
            )
        return self._plain[dialect]

    def _one_row_for(self, dialect: str) -> DriverStatement:
        if dialect not in self._one_row:
            self._one_row[dialect] = DriverStatement(self._plain_for(dialect))
        return self._one_row[dialect]

    def _from_json_for(
        self, columns: tuple[str, ...], dialect: Dialect
    ) -> tuple[DriverStatement, list[tuple[str, Encoder]]]:
        """The statement for rows of these columns, and each column's encoder (built
        once for each set)."""
        if columns not in self._from_json:
            table = self._table
            rows = (
                func.json_to_recordset(cast(bindparam("rows"), JSON))
                .table_valued(*(column(name, Text) for name in columns))
                .render_derived(name="new_rows", with_types=True)
            )
            statement = postgresql.insert(table).from_select(
                list(columns), select(*(cast(rows.c[name], table.c[name].type) for name in columns))
            )
            if self._skip_conflicts_on:
                statement = statement.on_conflict_do_nothing(
                    index_elements=list(self._skip_conflicts_on)
                )
            encoders = [(name, json_value_encoder(table.c[name], dialect)) for name in columns]
            self._from_json[columns] = (
                DriverStatement(
                    statement.returning(*self._returning) if self._returning else statement
                ),
                encoders,
            )
        return self._from_json[columns]


def json_value_encoder(column: ColumnElement[Any], dialect: Dialect) -> Encoder:
    """What turns a value of ``column`` into the JSON value whose text the server casts
    to the column's type: the column type's own bind conversion first (a UTC time made
    aware UTC, a naive one refused), a time then in ISO 8601, JSON as its text."""
    column_type = column.type
    if isinstance(column_type, JSON):
        # The column's JSON as text, which the server casts: ``None`` is JSON's
        # ``null`` unless the column stores it as SQL NULL.
        none_as_null = getattr(column_type, "none_as_null", False)
        return lambda value: None if value is None and none_as_null else json.dumps(value)
    convert = column_type.dialect_impl(dialect).bind_processor(dialect)
    stored = column_type.impl if isinstance(column_type, TypeDecorator) else column_type
    if isinstance(stored, Date | DateTime):

        def in_iso_8601(value: Any) -> Any:
            if convert is not None:
                value = convert(value)
            return None if value is None else value.isoformat()

        return in_iso_8601
    return convert if convert is not None else _as_is


def _as_is(value: Any) -> Any:
    return value
