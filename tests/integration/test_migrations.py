"""The Alembic migrations build exactly the schema the models describe, on SQLite and
PostgreSQL, from an empty database; and ``callerconnect db upgrade`` can run again.

These also guard future migrations: a model changed without a migration (or a migration
that differs from its model) shows up here as a difference.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from callerconnect.adapters.db import migrate
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import Base
from tests.conftest import PG_ADMIN_URL

CLI = [sys.executable, "-m", "callerconnect.entrypoints.cli"]


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/empty.db"


@pytest.fixture
def empty_postgres_url(pg_database_url: str) -> Iterator[str]:
    """A brand-new PostgreSQL database without any table (``pg_database_url`` is only
    asked for so that an unreachable server skips, or fails in CI, as everywhere)."""
    name = f"callerconnect_mig_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    name = "empty_sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    url: str = request.getfixturevalue(name)
    return url


def schema_differences(db: Database) -> list[Any]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def table_names(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def head_revision(db: Database) -> str:
    heads = ScriptDirectory.from_config(migrate.alembic_config(db.engine)).get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


def test_upgrade_of_an_empty_database_gives_exactly_the_models_schema(empty_url: str) -> None:
    db = Database.from_url(empty_url)
    try:
        assert table_names(db) == set()
        migrate.upgrade(db.engine)
        assert schema_differences(db) == []
        assert table_names(db) == set(Base.metadata.tables) | {"alembic_version"}
        assert migrate.current_revision(db.engine) == head_revision(db)
    finally:
        db.dispose()


def test_migrations_go_down_to_nothing_and_up_again(empty_url: str) -> None:
    db = Database.from_url(empty_url)
    try:
        migrate.upgrade(db.engine)
        config = migrate.alembic_config(db.engine)
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert table_names(db) <= {"alembic_version"}
        migrate.upgrade(db.engine)
        assert schema_differences(db) == []
    finally:
        db.dispose()


def test_db_upgrade_command_twice_is_idempotent(empty_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}
    env["CALLERCONNECT_DATABASE_URL"] = empty_url
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [*CLI, "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    db = Database.from_url(empty_url)
    try:
        head = head_revision(db)
        assert outputs == [f"database is at revision {head}"] * 2
        assert schema_differences(db) == []
    finally:
        db.dispose()
