"""``BulkInsert`` (adapters/db/bulk_insert.py) stores what SQLAlchemy's own multi-row
insert stores, on both databases: every column type the intake writes (text, integers,
booleans, UTC times, JSON, NULLs), the ids returned for every row, repeats of a unique
key skipped. On PostgreSQL it sends the rows as one JSON document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    MetaData,
    create_engine,
    event,
    insert,
)
from sqlalchemy.engine import Engine

from callerconnect.adapters.db.bulk_insert import BulkInsert
from tests.support.typed_rows import row_values, stored, tables_created, typed_rows_table

METADATA = MetaData()
ROWS = typed_rows_table("bulk_insert_check", METADATA)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    with tables_created(database_url, METADATA) as engine:
        yield engine


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(row_values, min_size=1, max_size=40))
def test_it_stores_what_a_plain_insert_stores_and_returns_every_row(
    engine: Engine, rows: list[dict[str, Any]]
) -> None:
    with engine.begin() as connection:
        connection.execute(ROWS.delete())
    bulk = [{"key": f"bulk-{n}", **values} for n, values in enumerate(rows)]
    plain = [{"key": f"plain-{n}", **values} for n, values in enumerate(rows)]
    with engine.begin() as connection:
        returned = BulkInsert(ROWS, returning=[ROWS.c.id, ROWS.c.key])(connection, bulk)
        connection.execute(insert(ROWS), plain)
    assert sorted(key for _, key in returned) == sorted(row["key"] for row in bulk)
    assert len({row_id for row_id, _ in returned}) == len(bulk)
    found = stored(engine, ROWS)
    for n in range(len(rows)):
        assert found[f"bulk-{n}"] == found[f"plain-{n}"]


@pytest.mark.parametrize("count", [1, 5, 40])
def test_without_returning_it_stores_every_row_and_returns_none(engine: Engine, count: int) -> None:
    """A table whose new ids nobody needs (a text's history, a call's decisions): one
    row, a few (one by one on SQLite), many (one statement)."""
    rows = [{"key": f"k-{n}", "count": n, "notes": None} for n in range(count)]
    with engine.begin() as connection:
        assert BulkInsert(ROWS)(connection, rows) == []
    assert {key: values[0] for key, values in stored(engine, ROWS).items()} == {
        f"k-{n}": n for n in range(count)
    }


def test_repeats_of_the_unique_key_are_skipped_and_not_returned(engine: Engine) -> None:
    add = BulkInsert(ROWS, returning=[ROWS.c.key], skip_conflicts_on=[ROWS.c.key])
    first = [{"key": "a", "count": 1}, {"key": "b", "count": 2}]
    with engine.begin() as connection:
        assert {key for (key,) in add(connection, first)} == {"a", "b"}
    again = [{"key": "b", "count": 20}, {"key": "c", "count": 3}]
    with engine.begin() as connection:
        assert {key for (key,) in add(connection, again)} == {"c"}
    assert {key: values[0] for key, values in stored(engine, ROWS).items()} == {
        "a": 1,
        "b": 2,
        "c": 3,
    }


def test_on_postgresql_the_statement_is_the_same_for_any_number_of_rows(
    postgres_url: str,
) -> None:
    """What the module is for: one statement text (converted once by psycopg), one
    JSON document of the rows, however many rows; a few rows (a single event's) go as
    the plain statement, whose conversion psycopg caches."""
    engine = create_engine(postgres_url)
    METADATA.drop_all(engine)
    METADATA.create_all(engine)
    sent: list[tuple[str, Any]] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _k, statement, parameters, *_: sent.append((statement, parameters)),
    )
    try:
        add = BulkInsert(ROWS, returning=[ROWS.c.id])
        for size in (1, 30, 70, 300):
            with engine.begin() as connection:
                rows = [{"key": f"{size}-{n}", "count": n} for n in range(size)]
                assert len(add(connection, rows)) == size
        inserts = [(s, p) for s, p in sent if s.startswith("INSERT")]
        assert len(inserts) == 4
        single, *many = inserts
        assert "json_to_recordset" not in single[0] and single[1] == {"key": "1-0", "count": 0}
        assert len({statement for statement, _ in many}) == 1
        assert "json_to_recordset" in many[0][0]
        assert [len(json.loads(parameters["rows"])) for _, parameters in many] == [30, 70, 300]
    finally:
        METADATA.drop_all(engine)
        engine.dispose()
