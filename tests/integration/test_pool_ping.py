"""The PostgreSQL pool pings a connection only when it has been idle (engine.py): one
checked in moments ago goes straight back to work, one the server dropped while it sat
idle is replaced before anyone uses it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from callerconnect.adapters.db import engine as engine_module
from callerconnect.adapters.db.engine import Database


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    database = Database.from_url(postgres_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def pings(pg: Database, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ping the pool sends, counted (and still sent)."""
    sent: list[Any] = []
    ping = pg.engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        sent.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(pg.engine.dialect, "do_ping", counted)
    return sent


def backend_pid(db: Database) -> int:
    with db.engine.connect() as connection:
        pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        return pid


def test_a_connection_in_steady_use_is_not_pinged(pg: Database, pings: list[Any]) -> None:
    first = backend_pid(pg)
    for _ in range(20):
        assert backend_pid(pg) == first  # the pool's one connection, reused
    assert pings == []


def test_an_idle_connection_is_pinged_before_use(
    pg: Database, pings: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend_pid(pg)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert backend_pid(pg) == first
    assert len(pings) == 1


def test_a_connection_the_server_dropped_while_idle_is_replaced_unnoticed(
    pg: Database, pings: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart of the server (here: its backend ended) while the pool sat idle costs
    the next transaction nothing: the ping finds the connection dead and the pool opens
    another."""
    first = backend_pid(pg)
    admin = Database.from_url(str(pg.engine.url.render_as_string(hide_password=False)))
    try:
        with admin.engine.begin() as connection:
            ended = connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            assert ended.scalar_one() is True
    finally:
        admin.dispose()
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    with pg.writing() as connection:
        second = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert second != first
    assert len(pings) >= 1
