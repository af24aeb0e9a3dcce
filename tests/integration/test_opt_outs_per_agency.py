"""Opt-outs are per agency (ADR 10): a phone's choice about one agency never changes
what another agency may send it, and an opt-out recorded before agencies were told apart
(migration 0016) keeps holding for every agency until that agency hears otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from callerconnect.adapters.db import migrate
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.phones import (
    OPT_OUT_EVERY_AGENCY,
    is_opted_out,
    opt_out_phones,
    set_opt_out,
)
from callerconnect.adapters.db.tables import OptOutRow
from callerconnect.bootstrap import Application

NOW = datetime(2026, 1, 16, 14, 0, tzinfo=UTC)
AGENCIES = ["default", "north", "south"]
PHONES = ["hash-a", "hash-b"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{tmp_path_factory.mktemp('optouts')}/o.db")
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


_CHOICES = st.lists(
    st.tuples(
        st.sampled_from([*AGENCIES, OPT_OUT_EVERY_AGENCY]),
        st.sampled_from(PHONES),
        st.booleans(),
    ),
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(choices=_CHOICES)
def test_each_agency_sees_its_own_last_word_else_the_one_for_every_agency(
    db: Database, choices: list[tuple[str, str, bool]]
) -> None:
    with db.transaction() as session:
        session.query(OptOutRow).delete()
    said: dict[tuple[str, str], bool] = {}
    for agency, phone, opted_out in choices:
        with db.transaction() as session:
            set_opt_out(session, agency, phone, opted_out, NOW, "test")
        said[(agency, phone)] = opted_out
    with db.transaction() as session:
        for agency in AGENCIES:
            for phone in PHONES:
                own = said.get((agency, phone))
                expected = own if own is not None else said.get((OPT_OUT_EVERY_AGENCY, phone))
                assert is_opted_out(session, agency, phone) is bool(expected)


def test_an_opt_out_from_before_agencies_holds_for_every_agency_after_the_upgrade(
    tmp_path: Path,
) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path}/old.db")
    try:
        migrate.upgrade(db.engine, "0012")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO opt_outs (phone_hash, opted_out, changed_at, source) "
                    "VALUES ('hash-a', true, :now, 'sms:stop')"
                ),
                {"now": NOW},
            )
        migrate.upgrade(db.engine)
        with db.transaction() as session:
            assert all(is_opted_out(session, agency, "hash-a") for agency in AGENCIES)
            # A START to one agency's number answers for that agency only.
            assert set_opt_out(session, "north", "hash-a", False, NOW, "sms:start")
        with db.transaction() as session:
            assert not is_opted_out(session, "north", "hash-a")
            assert is_opted_out(session, "default", "hash-a")
    finally:
        db.dispose()


def test_the_intakes_opt_outs_at_once_do_what_one_opt_out_each_does(app: Application) -> None:
    """``opt_out_phones`` (the fold's one statement for the phones its events opted out)
    leaves each phone as ``set_opt_out(…, True, …)`` one by one would: a new phone opted
    out, one that said START opted out again, one already opted out kept as it was
    (when and how it first said so); another agency's rows untouched."""
    earlier = NOW - timedelta(days=3)
    before = {"h-new": None, "h-started": False, "h-stopped": True}
    with app.db.transaction() as session:
        for agency in ("batched", "one-by-one", "other"):
            for phone, opted_out in before.items():
                if opted_out is not None:
                    source = "sms:stop" if opted_out else "sms:start"
                    session.add(
                        OptOutRow(
                            agency_id=agency,
                            phone_hash=phone,
                            opted_out=opted_out,
                            changed_at=earlier,
                            source=source,
                        )
                    )
    with app.db.engine.begin() as connection:
        opt_out_phones(connection, "batched", list(before), NOW, "cad")
    for phone in before:
        with app.db.transaction() as session:
            set_opt_out(session, "one-by-one", phone, True, NOW, "cad")

    def rows(agency: str) -> dict[str, tuple[bool, datetime, str]]:
        with app.db.transaction() as session:
            found = session.query(OptOutRow).filter(OptOutRow.agency_id == agency)
            return {r.phone_hash: (r.opted_out, r.changed_at, r.source) for r in found}

    assert rows("batched") == rows("one-by-one")
    assert {phone: row[0] for phone, row in rows("batched").items()} == dict.fromkeys(before, True)
    assert rows("batched")["h-stopped"][2] == "sms:stop"
    assert {phone: row[0] for phone, row in rows("other").items()} == {
        "h-started": False,
        "h-stopped": True,
    }
