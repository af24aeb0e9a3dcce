"""``DriverStatement`` (adapters/db/driver_statement.py) runs a Core statement on the
driver's cursor inside a ``Connection``'s transaction, and must be indistinguishable from
``Connection.execute`` wherever the intake could tell: the values written and read back
(every column type the fold uses, NULLs), SQLAlchemy's exceptions, the transaction's
rollback, the engine's listeners, a connection the server dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from callerconnect.adapters.db.driver_statement import DriverStatement
from tests.support.crashes import wait_until
from tests.support.typed_rows import row_values, stored, tables_created, typed_rows_table

METADATA = MetaData()
ROWS = typed_rows_table("driver_statement_check", METADATA)
WITH_DEFAULT = Table(
    "driver_statement_default",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("count", Integer, default=0),
)
VALUES = ("count", "flag", "at", "notes", "extra")

INSERT = DriverStatement(insert(ROWS))
INSERT_RETURNING = DriverStatement(insert(ROWS).returning(ROWS.c.id, ROWS.c.key, ROWS.c.at))
READ = DriverStatement(select(ROWS).where(ROWS.c.key == bindparam("key")))
UPDATE = DriverStatement(update(ROWS).where(ROWS.c.key == bindparam("row_key")))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    with tables_created(database_url, METADATA) as engine:
        yield engine


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(row_values, min_size=1, max_size=12), st.lists(row_values, min_size=1))
def test_it_writes_and_reads_what_a_connection_writes_and_reads(
    engine: Engine, rows: list[dict[str, Any]], changes: list[dict[str, Any]]
) -> None:
    with engine.begin() as connection:
        connection.execute(ROWS.delete())
    driver = [{"key": f"driver-{n}", **values} for n, values in enumerate(rows)]
    plain = [{"key": f"plain-{n}", **values} for n, values in enumerate(rows)]
    with engine.begin() as connection:
        INSERT.run_many(connection, driver[1:])
        returned = INSERT_RETURNING.fetch(connection, driver[0])
        connection.execute(insert(ROWS), plain)
    assert [(key, at) for _, key, at in returned] == [("driver-0", driver[0]["at"])]
    found = stored(engine, ROWS)
    for n in range(len(rows)):
        assert found[f"driver-{n}"] == found[f"plain-{n}"]
    # Changed (each row a few of its columns), then read back, both ways.
    driver_changes, plain_changes = [], []
    for n, change in enumerate(changes[: len(rows)]):
        columns = dict(list(change.items())[: 1 + n % len(VALUES)])
        driver_changes.append({"row_key": f"driver-{n}", **columns})
        plain_changes.append({"row_key": f"plain-{n}", **columns})
    with engine.begin() as connection:
        for change in driver_changes:  # one set of columns each: one executemany each
            UPDATE.run_many(connection, [change])
        for change in plain_changes:
            connection.execute(update(ROWS).where(ROWS.c.key == bindparam("row_key")), change)
    with engine.connect() as connection:
        for n in range(len(rows)):
            (read,) = READ.fetch(connection, {"key": f"driver-{n}"})
            (through_connection,) = connection.execute(
                select(ROWS).where(ROWS.c.key == f"plain-{n}")
            )
            assert read[2:] == tuple(through_connection)[2:]
            assert type(read[3]) is type(through_connection[3])  # a bool stays a bool


def test_a_constraint_it_breaks_raises_sqlalchemys_error_and_the_transaction_rolls_back(
    engine: Engine,
) -> None:
    with pytest.raises(IntegrityError), engine.begin() as connection:
        INSERT.fetch(connection, {"key": "a", "count": 1})
        INSERT.fetch(connection, {"key": "a", "count": 2})
    assert stored(engine, ROWS) == {}
    with engine.begin() as connection:  # the pool's connection works on
        INSERT.fetch(connection, {"key": "a", "count": 3})
    assert stored(engine, ROWS)["a"][0] == 3


def test_the_engines_listeners_see_each_statement_and_can_make_it_fail(engine: Engine) -> None:
    seen: list[tuple[str, bool]] = []

    def on_execute(_c: Any, _k: Any, statement: str, parameters: Any, _x: Any, many: bool) -> None:
        seen.append((statement.split()[0], many))
        if "refuse-me" in str(parameters):
            raise OperationalError(statement, parameters, Exception("injected"))

    event.listen(engine, "before_cursor_execute", on_execute)
    with engine.begin() as connection:
        INSERT.fetch(connection, {"key": "a"})
        INSERT.run_many(connection, [{"key": "b"}, {"key": "c"}])
        READ.fetch(connection, {"key": "a"})
    assert seen == [("INSERT", False), ("INSERT", True), ("SELECT", False)]
    with pytest.raises(OperationalError), engine.begin() as connection:
        INSERT.fetch(connection, {"key": "d"})
        INSERT.fetch(connection, {"key": "refuse-me"})
    assert set(stored(engine, ROWS)) == {"a", "b", "c"}


def test_a_literal_of_the_statement_itself_is_sent_with_the_values_given(engine: Engine) -> None:
    flagged = DriverStatement(
        select(ROWS.c.key).where(ROWS.c.flag.is_(True), ROWS.c.count > 5).order_by(ROWS.c.key)
    )
    with engine.begin() as connection:
        INSERT.run_many(
            connection,
            [
                {"key": "a", "flag": True, "count": 9},
                {"key": "b", "flag": False, "count": 9},
                {"key": "c", "flag": True, "count": 1},
            ],
        )
        assert flagged.fetch(connection, {}) == [("a",)]


def test_a_statement_that_needs_a_python_side_default_is_refused(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(ValueError, match="count"):
        DriverStatement(insert(WITH_DEFAULT)).fetch(connection, {"id": 1})
    with engine.begin() as connection:  # given a value, it runs
        DriverStatement(insert(WITH_DEFAULT)).fetch(connection, {"id": 1, "count": 4})


def test_on_postgresql_a_connection_the_server_dropped_is_invalidated(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    # Autocommit: PostgreSQL keeps one view of pg_stat_activity for a whole transaction, so
    # polling inside one would never see the backend leave if it had not left by the first
    # look (it can take a moment on a loaded machine).
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    METADATA.drop_all(engine)
    METADATA.create_all(engine)
    try:
        with engine.connect() as connection:
            lost = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": lost})
            listed = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            wait_until(
                lambda: not connection.execute(listed, {"pid": lost}).scalar_one(),
                10,
                "the ended backend to leave pg_stat_activity",
            )
        with pytest.raises(OperationalError) as failed, engine.begin() as connection:
            INSERT.fetch(connection, {"key": "lost"})
        assert failed.value.connection_invalidated
        with engine.begin() as connection:  # on a new connection: it never went back
            INSERT.fetch(connection, {"key": "after"})
            now = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert now != lost
        assert set(stored(engine, ROWS)) == {"after"}
    finally:
        engine.dispose()  # first, so a connection the server dropped is not reused here
        try:
            METADATA.drop_all(engine)
        finally:
            engine.dispose()
            admin.dispose()
