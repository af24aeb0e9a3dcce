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
statement, executed for the rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Table, Text, bindparam, cast, column, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.sql.dml import Insert

#: A value as it goes into the JSON document of the rows.
Encoder = Callable[[Any], Any]

#: Up to this many parameters psycopg caches a statement's conversion, so a few rows
#: (a single event's call and text) go as the plain statement, whose conversion is cached
#: and whose values need no document built.
PSYCOPG_CACHED_PARAMETERS = 50


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
        self._from_json: dict[tuple[str, ...], Insert] = {}
        self._encoders: dict[tuple[str, ...], list[tuple[str, Encoder]]] = {}

    def __call__(
        self, connection: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> CursorResult[*tuple[Any, ...]]:
        dialect = connection.dialect.name
        if dialect != "postgresql" or len(rows) * len(rows[0]) <= PSYCOPG_CACHED_PARAMETERS:
            return connection.execute(self._plain_for(dialect), list(rows))
        columns = tuple(rows[0])
        encoders = self._encoders_for(columns, connection.dialect)
        document = json.dumps(
            [{name: encode(row[name]) for name, encode in encoders} for row in rows],
            separators=(",", ":"),
        )
        return connection.execute(self._from_json_for(columns), {"rows": document})

    def _encoders_for(
        self, columns: tuple[str, ...], dialect: Dialect
    ) -> list[tuple[str, Encoder]]:
        """For each column, what turns a value into the JSON value whose text the server
        casts to the column's type (built once for each set of columns)."""
        if columns not in self._encoders:
            self._encoders[columns] = [
                (name, self._encoder(self._table.c[name], dialect)) for name in columns
            ]
        return self._encoders[columns]

    @staticmethod
    def _encoder(column: Column[Any], dialect: Dialect) -> Encoder:
        column_type = column.type
        if isinstance(column_type, JSON):
            # The column's JSON as text, which the server casts: ``None`` is JSON's
            # ``null`` unless the column stores it as SQL NULL.
            none_as_null = getattr(column_type, "none_as_null", False)
            return lambda value: None if value is None and none_as_null else json.dumps(value)
        convert = column_type.dialect_impl(dialect).bind_processor(dialect)

        def encode(value: Any) -> Any:
            if convert is not None:
                value = convert(value)
            if isinstance(value, datetime | date):
                return value.isoformat()
            return value

        return encode

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

    def _from_json_for(self, columns: tuple[str, ...]) -> Insert:
        """The statement for rows of these columns (built once for each set)."""
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
            self._from_json[columns] = (
                statement.returning(*self._returning) if self._returning else statement
            )
        return self._from_json[columns]
