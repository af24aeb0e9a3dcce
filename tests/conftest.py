"""Shared fixtures: real databases (SQLite and the machine's PostgreSQL), a wired
application, and the web application answering HTTP in process (``live_server``) or on a
real socket (``live_socket_server``). docs/testing.md says which to take and where the
suite's time goes.

PostgreSQL: each test session creates its own database on the server and drops it at
the end, so runs never see each other's rows. Without a reachable server those tests
are skipped locally; in CI (``CALLERCONNECT_REQUIRE_PG=1``) they fail instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
from tests.support.in_process import InProcessServer
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


@pytest.fixture(autouse=True)
def _cheap_password_hashing(request: pytest.FixtureRequest) -> Iterator[None]:
    """argon2id at its smallest cost for dashboard passwords: the same algorithm and code
    path, without each application spending ~0.5 s of a shared core on the production
    work factor (every ``create_app`` hashes a dummy password at start-up). Only tests
    change this, by replacing the class the service looks up; a test marked
    ``production_password_hashing`` keeps argon2-cffi's defaults."""
    if request.node.get_closest_marker("production_password_hashing") is not None:
        yield
        return
    from argon2 import PasswordHasher

    from callerconnect.service import accounts

    def cheapest() -> PasswordHasher:
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "PasswordHasher", cheapest)
        yield


@pytest.fixture(scope="session", autouse=True)
def _migration_scripts_read_once() -> Iterator[None]:
    """Alembic reads and compiles every migration script each time it is asked for the
    head (``build_application`` and the readiness probe ask in every test). The scripts do
    not change during a run, so each test process reads them once."""
    from alembic.script import ScriptDirectory

    read = ScriptDirectory.from_config.__func__  # type: ignore[attr-defined]
    maps: dict[tuple[str, tuple[str, ...]], Any] = {}

    def from_config(cls: type[ScriptDirectory], config: Any) -> ScriptDirectory:
        script: ScriptDirectory = read(cls, config)
        key = (script.dir, tuple(script.version_locations))
        script.revision_map = maps.setdefault(key, script.revision_map)
        return script

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ScriptDirectory, "from_config", classmethod(from_config))
        yield


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
    """Empty every table and restart every identity, as a fresh migration leaves them.

    Only the tables the last test dirtied are truncated (a TRUNCATE costs a new file per
    table on the server, whether the table held rows or not): those that hold a row, or
    whose identity sequence was drawn from (an insert rolled back still draws). The others
    are already in the state a TRUNCATE ... RESTART IDENTITY would leave.
    """
    db = Database.from_url(url)
    names = [t.name for t in Base.metadata.sorted_tables]
    holds_rows = " UNION ALL ".join(
        f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in names
    )
    drew_a_sequence = (
        "SELECT DISTINCT owner.relname FROM pg_sequences used "
        "JOIN pg_class seq ON seq.relname = used.sequencename AND seq.relkind = 'S' "
        "JOIN pg_namespace ns ON ns.oid = seq.relnamespace AND ns.nspname = used.schemaname "
        "JOIN pg_depend dep ON dep.objid = seq.oid AND dep.deptype IN ('a', 'i') "
        "JOIN pg_class owner ON owner.oid = dep.refobjid "
        "WHERE used.last_value IS NOT NULL AND used.schemaname = current_schema()"
    )
    with db.engine.begin() as connection:
        dirty = {row[0] for row in connection.execute(text(holds_rows))}
        dirty |= {row[0] for row in connection.execute(text(drew_a_sequence))}
        dirty &= set(names)
        if dirty:
            tables = ", ".join(f'"{name}"' for name in names if name in dirty)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per test process; tests get copies."""
    path = tmp_path_factory.mktemp("sqlite-template") / "callerconnect.db"
    db = Database.from_url(f"sqlite:///{path}")
    ensure_schema(db)
    db.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


def _fresh_sqlite(template: Path, directory: Path) -> str:
    """A migrated SQLite database of the test's own: a copy of the template's bytes,
    which is what running the migrations again would write."""
    path = directory / "callerconnect.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (the bounded long runs: the 100,000 histories, the fuzzing)
    go first, in their order, then the rest in theirs: under ``-n 2`` a long test that
    starts last leaves the other process idle until it ends."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``database_url`` runs each test on SQLite and on PostgreSQL, except a test marked
    ``database_blind`` (it never reaches the database) or ``browser``: once, on SQLite."""
    if "database_url" not in metafunc.fixturenames or _parametrizes_itself(metafunc):
        return
    databases: list[Any] = ["sqlite"]
    # The browser tests drive the pages on SQLite only (tests/browser/conftest.py): the
    # HTTP tests cover PostgreSQL.
    once = ("database_blind", "browser")
    if not any(metafunc.definition.get_closest_marker(name) for name in once):
        databases.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    metafunc.parametrize("database_url", databases, indirect=True)


def _parametrizes_itself(metafunc: pytest.Metafunc) -> bool:
    """A test that names its own databases (``parametrize("database_url", …)``)."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        if "database_url" in names:
            return True
    return False


@pytest.fixture
def database_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    """Each test that uses it runs twice: on SQLite and on PostgreSQL (see
    pytest_generate_tests)."""
    if request.param == "sqlite":
        return _fresh_sqlite(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("pg_database_url")
    _truncate_all(url)
    return url


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    return _fresh_sqlite(sqlite_template, tmp_path)


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
def live_server(app: Application) -> Iterator[InProcessServer]:
    """The real web application, answering httpx requests to ``live_server.url`` in
    process (tests/support/in_process.py): the whole application and its middleware,
    without uvicorn's socket. A test about the socket itself (chunked bodies, hang-ups,
    slow clients, uvicorn's parsing) takes ``live_socket_server`` instead."""
    from callerconnect.web.app import create_app

    with InProcessServer(create_app(app)) as server:
        yield server


@pytest.fixture
def live_socket_server(app: Application) -> Iterator[LiveServer]:
    """The real web application on a real socket (uvicorn on 127.0.0.1)."""
    from callerconnect.web.app import create_app

    with LiveServer(create_app(app)) as server:
        yield server


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_INTAKE_KEY}"}
