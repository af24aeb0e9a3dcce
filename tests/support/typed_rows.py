"""A table with every column type the intake writes (text, integers, booleans, UTC
times, JSON, NULLs), rows of random values for it, and what SQLAlchemy reads back: for
the tests that hold a faster way of writing or reading (``BulkInsert``,
``DriverStatement``) to ``Connection.execute``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    select,
)
from sqlalchemy.engine import Engine

from callerconnect.adapters.db.tables import UtcDateTime

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def typed_rows_table(name: str, metadata: MetaData) -> Table:
    """``id``, a unique ``key``, then a column of each type."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("key", String(32), nullable=False),
        Column("count", Integer),
        Column("flag", Boolean),
        Column("at", UtcDateTime),
        Column("notes", Text),
        Column("extra", JSON),
        UniqueConstraint("key"),
    )


#: The values of a row but its id and key, NULLs included.
row_values = st.fixed_dictionaries(
    {
        "count": st.none() | st.integers(-(2**31), 2**31 - 1),
        "flag": st.none() | st.booleans(),
        "at": st.none() | st.integers(0, 10**6).map(lambda s: T0 + timedelta(seconds=s)),
        "notes": st.none()
        | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")),
        "extra": st.none()
        | st.dictionaries(st.text(max_size=5), st.lists(st.text(max_size=5), max_size=3)),
    }
)


@contextmanager
def tables_created(url: str, metadata: MetaData) -> Iterator[Engine]:
    """An engine on ``url`` with ``metadata``'s tables created anew, dropped after."""
    engine = create_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def stored(engine: Engine, table: Table) -> dict[str, tuple[Any, ...]]:
    """Every row as SQLAlchemy reads it, by key: its values but the id and the key."""
    with engine.connect() as connection:
        found = connection.execute(select(table).order_by(table.c.key))
        return {row.key: tuple(row)[2:] for row in found}
