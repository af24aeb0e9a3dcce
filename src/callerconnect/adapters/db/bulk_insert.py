"""Many rows in one ``INSERT`` whose text does not grow with them (PostgreSQL).

SQLAlchemy sends a multi-row insert with ``RETURNING`` as ``INSERT … VALUES (%(a_0)s,
…), (%(a_1)s, …), …``: a placeholder per column and row, in a statement as long as the
rows are many. psycopg turns each such statement into PostgreSQL's ``$1, $2, …`` form by
scanning it placeholder by placeholder, and caches that only for statements under 4 KiB
and 50 parameters; a chunk of 250 CAD events went through that scan for its events, its
new calls and its texts: a third of ``serve``'s CPU per event on PostgreSQL.

So on PostgreSQL :class:`BulkInsert` sends one array per column instead, unnested into
rows (``INSERT … SELECT * FROM unnest(CAST(%(a)s AS type[]), …)``): the same statement
whatever the number of rows, converted once, and each value converted by the column's own
type as before (SQLAlchemy's ``ARRAY`` applies the column type to each element). On
SQLite, with no round trip to save, it is the plain statement, executed for the rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Column, Table, Text, bindparam, cast, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql.dml import Insert

#: Up to this many parameters psycopg caches a statement's conversion, so a few rows
#: (a single event's call and text) go as the plain statement, whose conversion is cached
#: and whose values need no arrays built.
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
        self._unnested: dict[tuple[str, ...], Insert] = {}

    def __call__(
        self, connection: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> CursorResult[*tuple[Any, ...]]:
        dialect = connection.dialect.name
        if dialect != "postgresql" or len(rows) * len(rows[0]) <= PSYCOPG_CACHED_PARAMETERS:
            return connection.execute(self._plain_for(dialect), list(rows))
        columns = tuple(rows[0])
        arrays = {name: [row[name] for row in rows] for name in columns}
        for name in columns:
            if self._is_json(name):
                arrays[name] = [self._json_text(name, value) for value in arrays[name]]
        return connection.execute(self._unnested_for(columns), arrays)

    def _is_json(self, name: str) -> bool:
        return isinstance(self._table.c[name].type, JSON)

    def _json_text(self, name: str, value: Any) -> str | None:
        """A JSON column's value as the text SQLAlchemy would send (its JSON type does
        not convert the elements of an array): ``None`` is JSON's ``null`` unless the
        column stores it as SQL NULL."""
        column_type = self._table.c[name].type
        if value is None and getattr(column_type, "none_as_null", False):
            return None
        return json.dumps(value)

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

    def _unnested_for(self, columns: tuple[str, ...]) -> Insert:
        """The statement for rows of these columns (built once for each set)."""
        if columns not in self._unnested:
            table = self._table
            arrays = [
                # JSON goes as text (encoded above), cast to the column's type there.
                cast(cast(bindparam(name), postgresql.ARRAY(Text)), postgresql.ARRAY(JSON))
                if self._is_json(name)
                else cast(bindparam(name), postgresql.ARRAY(table.c[name].type))
                for name in columns
            ]
            rows = func.unnest(*arrays).table_valued(*columns).render_derived(name="new_rows")
            statement = postgresql.insert(table).from_select(
                list(columns), select(*(rows.c[name] for name in columns))
            )
            if self._skip_conflicts_on:
                statement = statement.on_conflict_do_nothing(
                    index_elements=list(self._skip_conflicts_on)
                )
            self._unnested[columns] = (
                statement.returning(*self._returning) if self._returning else statement
            )
        return self._unnested[columns]
