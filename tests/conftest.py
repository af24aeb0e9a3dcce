"""Shared fixtures: real databases (SQLite and the machine's PostgreSQL), a wired
application, and a real HTTP server for it.

PostgreSQL: each test session creates its own database on the server and drops it at
the end, so runs never see each other's rows. Without a reachable server those tests
are skipped locally; in CI (``CALLERCONNECT_REQUIRE_PG=1``) they fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import Base
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application
from callerconnect.clock import VirtualClock
from callerconnect.config import Settings, load_settings
from callerconnect.service.schema import ensure_schema
from tests.support.live_server import LiveServer

PG_ADMIN_URL = os.environ.get(
    "CALLERCONNECT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("CALLERCONNECT_REQUIRE_PG") == "1"
TEST_SECRET = "test-secret-key-" + "x" * 32
TEST_INTAKE_KEY = "test-intake-key-0123456789abcdef"
T0 = datetime(2026, 1, 16, 14, 0, tzinfo=UTC)  # 09:00 in Ottawa
#: How far ahead of the virtual clock a test's CAD events may be stamped (see
#: app_factory): without limit, so that any time the schema allows is accepted there.
STORY_TIME_TOLERANCE = timedelta.max


def _admin_engine() -> Any:
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    name = f"callerconnect_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = _admin_engine()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (CALLERCONNECT_REQUIRE_PG=1) but: {error}")
        pytest.skip(f"PostgreSQL not reachable: {type(error).__name__}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db = Database.from_url(url)
    ensure_schema(db)
    db.dispose()
    try:
        yield url
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


def _truncate_all(url: str) -> None:
    db = Database.from_url(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Each test that uses it runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/callerconnect.db"
        db = Database.from_url(url)
        ensure_schema(db)
        db.dispose()
        return url
    url: str = request.getfixturevalue("pg_database_url")
    _truncate_all(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    url = f"sqlite:///{tmp_path}/callerconnect.db"
    db = Database.from_url(url)
    ensure_schema(db)
    db.dispose()
    return url


@pytest.fixture
def postgres_url(pg_database_url: str) -> str:
    _truncate_all(pg_database_url)
    return pg_database_url


def make_settings(database_url: str, **env: str) -> Settings:
    """Settings as an operator would give them: through CALLERCONNECT_* variables."""
    environ = {
        "CALLERCONNECT_DATABASE_URL": database_url,
        "CALLERCONNECT_SECRET_KEY": TEST_SECRET,
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{TEST_INTAKE_KEY}"]',
        "CALLERCONNECT_SMS__MAX_PER_SECOND": "1000",
        **env,
    }
    return load_settings(environ=environ)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
def console() -> ConsoleProvider:
    import io

    return ConsoleProvider(io.StringIO())


@pytest.fixture
def app_factory(
    clock: VirtualClock, console: ConsoleProvider
) -> Iterator[Callable[..., Application]]:
    """Build applications on a given database with the virtual clock and a console
    provider that remembers what it sent; closes them at the end."""
    built: list[Application] = []

    def factory(
        database_url: str, provider: Any = None, *, strict_time: bool = False, **env: str
    ) -> Application:
        application = build_application(
            make_settings(database_url, **env), clock=clock, provider=provider or console
        )
        if not strict_time:
            # Most tests tell a call's whole story at once, on a virtual clock that stays
            # at its start: the intake would refuse the later events as stamped ahead of
            # their receipt (intake.max_clock_skew, at most a minute). Those tests are
            # about something else; the bound is tested with ``strict_time=True`` (and
            # by the safety simulations, which model receipt time).
            application.intake.max_clock_skew = STORY_TIME_TOLERANCE
        built.append(application)
        return application

    yield factory
    for application in built:
        application.close()


@pytest.fixture
def app(app_factory: Callable[..., Application], database_url: str) -> Application:
    return app_factory(database_url)


@pytest.fixture
def live_server(app: Application) -> Iterator[LiveServer]:
    """The real web application on a real socket (uvicorn on 127.0.0.1)."""
    from callerconnect.web.app import create_app

    with LiveServer(create_app(app)) as server:
        yield server


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_INTAKE_KEY}"}
