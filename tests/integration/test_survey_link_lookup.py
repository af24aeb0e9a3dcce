"""The survey page's look-up of its link (``survey_store.LinkLookup``: compiled once, run
on a driver connection outside a transaction) answers what ``link_state`` answers inside
a transaction, on both databases: the same values, types and time zones."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import column, literal, select, table, text
from sqlalchemy.exc import DBAPIError

from callerconnect.adapters.db import survey_store as store
from callerconnect.adapters.db.compiled_read import CompiledRead
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.survey_store import LinkLookup, LinkState
from callerconnect.adapters.db.tables import CallRow, SurveyInvitationRow

NOW = datetime(2026, 3, 2, 14, 30, 5, 123456, tzinfo=UTC)
WINDOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
CLIENT = "c" * 64


def opened(url: str) -> Iterator[Database]:
    database = Database.from_url(url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    yield from opened(database_url)


def add_link(
    db: Database,
    token_hash: str,
    *,
    reason: str = "eligible",
    blocked_reason: str | None = None,
    opened: bool = False,
) -> None:
    with db.transaction() as session:
        call = CallRow(
            agency_id="default",
            incident_id=f"INC-{token_hash}",
            reason=reason,
            blocked_reason=blocked_reason,
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(call)
        session.flush()
        session.add(
            SurveyInvitationRow(
                token_hash=token_hash,
                call_id=call.id,
                language="fr",
                created_at=NOW,
                expires_at=NOW + timedelta(days=7),
                opened_at=NOW if opened else None,
            )
        )


def in_transaction(db: Database, token_hash: str) -> LinkState | None:
    with db.transaction() as session:
        return store.link_state(
            session, token_hash, bucket="survey_token", client_hash=CLIENT, window_start=WINDOW
        )


def looked_up(db: Database, token_hash: str) -> LinkState | None:
    return LinkLookup(db.engine)(
        token_hash, bucket="survey_token", client_hash=CLIENT, window_start=WINDOW
    )


def test_the_lookup_reads_what_the_transaction_reads(db: Database) -> None:
    add_link(db, "a" * 64)
    add_link(db, "b" * 64, opened=True, reason="excluded:domestic")
    add_link(db, "d" * 64, blocked_reason="ineligible:opted_out")
    with db.transaction() as session:
        for _ in range(3):
            store.record_hit(
                session, "survey_token", CLIENT, WINDOW, forget_before=WINDOW - timedelta(hours=1)
            )
    for token_hash in ("a" * 64, "b" * 64, "d" * 64):
        link = looked_up(db, token_hash)
        assert link == in_transaction(db, token_hash)
        assert link is not None
        assert link.client_hits == 3
        assert link.expires_at == NOW + timedelta(days=7)
        assert link.expires_at.tzinfo is not None
        assert link.expires_at.utcoffset() == timedelta(0)
    assert looked_up(db, "b" * 64) == in_transaction(db, "b" * 64)
    assert not looked_up(db, "b" * 64).accepts_feedback  # type: ignore[union-attr]
    assert looked_up(db, "b" * 64).opened  # type: ignore[union-attr]


def test_an_unknown_token_is_none(db: Database) -> None:
    add_link(db, "a" * 64)
    assert looked_up(db, "e" * 64) is None
    assert in_transaction(db, "e" * 64) is None


def test_hits_of_another_window_do_not_count(db: Database) -> None:
    add_link(db, "a" * 64)
    earlier = WINDOW - timedelta(minutes=1)
    with db.transaction() as session:
        store.record_hit(
            session, "survey_token", CLIENT, earlier, forget_before=earlier - timedelta(hours=1)
        )
    link = looked_up(db, "a" * 64)
    assert link is not None and link.client_hits == 0
    assert link == in_transaction(db, "a" * 64)


def test_a_lookup_leaves_the_pooled_connection_as_it_found_it(db: Database) -> None:
    """Outside a transaction for the look-up only: the next unit of work on the same
    pooled connection still commits and rolls back as before."""
    add_link(db, "a" * 64)
    assert looked_up(db, "a" * 64) is not None
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.add(
            CallRow(
                agency_id="default",
                incident_id="INC-rolled-back",
                reason="eligible",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        session.flush()
        raise RuntimeError("roll it back")
    with db.transaction() as session:
        assert session.query(CallRow).filter_by(incident_id="INC-rolled-back").count() == 0


def test_a_failed_read_raises_sqlalchemys_error_and_the_pool_goes_on(db: Database) -> None:
    add_link(db, "a" * 64)
    broken = CompiledRead(db.engine, select(column("id")).select_from(table("no_such_table")))
    with pytest.raises(DBAPIError):
        broken.one_or_none({})
    assert looked_up(db, "a" * 64) is not None


# --- on the event loop (PostgreSQL's asynchronous connection; SQLite reads in line) -----


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    yield from opened(postgres_url)


def on_loop(lookup: LinkLookup, token_hash: str) -> LinkState | None:
    return asyncio.run(
        lookup.on_loop(token_hash, bucket="survey_token", client_hash=CLIENT, window_start=WINDOW)
    )


def test_on_the_loop_the_lookup_reads_what_the_transaction_reads(pg: Database) -> None:
    add_link(pg, "a" * 64)
    add_link(pg, "b" * 64, opened=True, reason="excluded:domestic")
    lookup = LinkLookup(pg.engine)
    for token_hash in ("a" * 64, "b" * 64, "e" * 64):
        assert on_loop(lookup, token_hash) == in_transaction(pg, token_hash)
    link = on_loop(lookup, "a" * 64)
    assert link is not None and link.expires_at.utcoffset() == timedelta(0)


def test_on_the_loop_a_connection_the_server_dropped_is_replaced(pg: Database) -> None:
    """A PostgreSQL restart (here: the server ends the connection's backend) costs the
    next page nothing: the look-up connects again and answers."""
    add_link(pg, "a" * 64)
    lookup = LinkLookup(pg.engine)

    async def twice() -> tuple[LinkState | None, LinkState | None]:
        first = await lookup.on_loop(
            "a" * 64, bucket="survey_token", client_hash=CLIENT, window_start=WINDOW
        )
        connection = await lookup._together._read._loop_connection()
        with pg.engine.begin() as admin:
            admin.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": connection.info.backend_pid}
            )
        second = await lookup.on_loop(
            "a" * 64, bucket="survey_token", client_hash=CLIENT, window_start=WINDOW
        )
        return first, second

    first, second = asyncio.run(twice())
    assert first is not None and first == second


def test_on_the_loop_a_failed_read_raises_sqlalchemys_error(pg: Database) -> None:
    broken = CompiledRead(pg.engine, select(column("id")).select_from(table("no_such_table")))
    with pytest.raises(DBAPIError):
        asyncio.run(broken.all_on_loop({}))


def test_on_the_loop_look_ups_waiting_together_each_read_what_they_read_alone(
    pg: Database,
) -> None:
    """Pages whose look-ups come while another is out are read in one statement
    (``LinkLookupsTogether``): each still gets its own link's state, its own client's
    hits in its own window, or None, whatever else is in the group (more than one
    statement's worth included)."""
    links = [f"{n:064x}" for n in range(12)]
    for n, token_hash in enumerate(links):
        add_link(
            pg,
            token_hash,
            opened=n % 3 == 0,
            reason="excluded:domestic" if n % 4 == 1 else "eligible",
            blocked_reason="ineligible:opted_out" if n % 5 == 2 else None,
        )
    clients = [f"{n:x}" * 64 for n in range(3)]
    windows = [WINDOW, WINDOW - timedelta(minutes=1)]
    with pg.transaction() as session:
        for n, client in enumerate(clients):
            for _ in range(n + 1):
                store.record_hit(
                    session, "survey_token", client, WINDOW, forget_before=WINDOW - timedelta(1)
                )
    unknown = ["f" * 64, "e" * 64]
    wanted = [
        (token_hash, clients[n % 3], windows[n % 2])
        for n, token_hash in enumerate(links * 12 + unknown * 5)  # 154: three statements
    ]

    def alone(token_hash: str, client: str, window: datetime) -> LinkState | None:
        with pg.transaction() as session:
            return store.link_state(
                session, token_hash, bucket="survey_token", client_hash=client, window_start=window
            )

    expected = {key: alone(*key) for key in set(wanted)}
    lookup = LinkLookup(pg.engine)
    statements: list[int] = []
    read = lookup._together._read
    all_on_loop = read.all_on_loop

    async def counted(values: dict[str, str]) -> list[object]:
        statements.append(1)
        return await all_on_loop(values)

    read.all_on_loop = counted  # type: ignore[method-assign]

    async def together() -> list[LinkState | None]:
        return await asyncio.gather(
            *(
                lookup.on_loop(
                    token_hash, bucket="survey_token", client_hash=client, window_start=window
                )
                for token_hash, client, window in wanted
            )
        )

    answers = asyncio.run(together())
    assert answers == [expected[key] for key in wanted]
    assert any(link is not None and link.client_hits == 3 for link in answers)
    assert sum(link is None for link in answers) == len(unknown) * 5
    assert len(statements) == 3  # 64 + 64 + 26


def test_on_the_loop_a_failed_group_fails_each_of_its_pages_and_the_next_is_read(
    pg: Database,
) -> None:
    add_link(pg, "a" * 64)
    lookup = LinkLookup(pg.engine)
    read = lookup._together._read
    all_on_loop = read.all_on_loop
    failures = [1]

    async def failing_once(values: dict[str, str]) -> list[object]:
        if failures:
            failures.pop()
            raise DBAPIError("SELECT", {}, Exception("injected"))
        return await all_on_loop(values)

    read.all_on_loop = failing_once  # type: ignore[method-assign]

    async def pages() -> list[object]:
        def page() -> object:
            return lookup.on_loop(
                "a" * 64, bucket="survey_token", client_hash=CLIENT, window_start=WINDOW
            )

        first = await asyncio.gather(page(), page(), return_exceptions=True)
        return [*first, await page()]

    first, second, later = asyncio.run(pages())
    assert isinstance(first, DBAPIError) and isinstance(second, DBAPIError)
    assert later == in_transaction(pg, "a" * 64)


def test_on_the_loop_a_page_given_up_leaves_the_others_answered(pg: Database) -> None:
    add_link(pg, "a" * 64)
    lookup = LinkLookup(pg.engine)

    async def pages() -> list[object]:
        def page() -> asyncio.Task[LinkState | None]:
            return asyncio.ensure_future(
                lookup.on_loop(
                    "a" * 64, bucket="survey_token", client_hash=CLIENT, window_start=WINDOW
                )
            )

        tasks = [page() for _ in range(5)]
        await asyncio.sleep(0)
        tasks[2].cancel()  # its client went away
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    answers = asyncio.run(pages())
    assert isinstance(answers[2], asyncio.CancelledError)
    expected = in_transaction(pg, "a" * 64)
    assert [a for n, a in enumerate(answers) if n != 2] == [expected] * 4


def test_on_the_loop_each_connection_is_closed_by_the_next_loop_or_the_disposal(
    postgres_url: str,
) -> None:
    """The loop's connections are no pool's: one left open warns wherever the collector
    finds it. A read on a new loop closes the old loop's; disposing of the database, the
    last one."""
    database = Database.from_url(postgres_url)
    read = CompiledRead(database.engine, select(literal(1).label("one")))

    async def connection_of_this_loop() -> Any:
        await read.all_on_loop({})
        return await read._loop_connection()

    first = asyncio.run(connection_of_this_loop())
    second = asyncio.run(connection_of_this_loop())
    assert first is not second
    assert first.closed and not second.closed
    database.dispose()
    assert second.closed


# --- in line on the event loop (SQLite's connection of the loop's own) ------------------


@pytest.fixture
def lite(sqlite_url: str) -> Iterator[Database]:
    yield from opened(sqlite_url)


def test_in_line_the_lookup_reads_what_the_transaction_reads_even_with_the_pool_empty(
    lite: Database,
) -> None:
    """On the loop's own connection: the same answers, and no wait for the pool, whose
    connections the threads (intake, webhooks) may all hold at that moment."""
    add_link(lite, "a" * 64)
    add_link(lite, "b" * 64, opened=True, reason="excluded:domestic")
    expected = {h: in_transaction(lite, h) for h in ("a" * 64, "b" * 64, "e" * 64)}
    lookup = LinkLookup(lite.engine)
    held = [lite.engine.raw_connection() for _ in range(15)]  # the pool and its overflow
    try:

        async def read_all() -> dict[str, LinkState | None]:
            return {
                h: lookup.in_line(h, bucket="survey_token", client_hash=CLIENT, window_start=WINDOW)
                for h in expected
            }

        assert asyncio.run(read_all()) == expected
    finally:
        for connection in held:
            connection.close()


def test_in_line_each_connection_is_closed_by_the_next_loop_or_the_disposal(
    sqlite_url: str,
) -> None:
    database = Database.from_url(sqlite_url)
    read = CompiledRead(database.engine, select(literal(1).label("one")))

    async def connection_of_this_loop() -> Any:
        assert read.one_or_none_in_line({}) == (1,)
        return read._loop_sqlite_connection()

    first = asyncio.run(connection_of_this_loop())
    second = asyncio.run(connection_of_this_loop())
    assert first is not second
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        first.execute("SELECT 1")
    second.execute("SELECT 1")
    database.dispose()
    with pytest.raises(sqlite3.ProgrammingError):
        second.execute("SELECT 1")
