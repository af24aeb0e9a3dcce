"""Rotating ``secret_key`` as an operator does it (docs/security.md): new key in
``secret_key``, previous one in ``old_secret_keys``, ``callerconnect keys rotate``,
``callerconnect keys check``, then the old key removed. Nothing stored is lost, every
opt-out still holds, and a form shown before the rotation can still be sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from callerconnect.adapters.crypto import Vault, VaultError
from callerconnect.adapters.db.encrypted_values import (
    ENCRYPTED_COLUMNS,
    read_batch,
    replace_tokens,
)
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import Base, CallRow, OutboxRow
from callerconnect.adapters.sms.base import InboundSms
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application
from callerconnect.clock import VirtualClock
from callerconnect.config import ConfigError
from callerconnect.queries.queues import flagged_replies
from callerconnect.service.deadletters import show_letter
from callerconnect.service.keys import check_keys, rotate_keys
from callerconnect.web.app import create_app
from tests.conftest import TEST_SECRET, make_settings
from tests.integration.test_cli import Cli
from tests.support.dispatch import received, submit
from tests.support.in_process import InProcessServer
from tests.support.survey import ANSWERS, csrf_of, invite

NEW_SECRET = "rotated-" + secrets.token_urlsafe(32)
CALLER = "613-555-0142"
STOPPED = "613-555-0199"
SURVEY_COMMENT = "The officer was kind."
INBOUND_TEXT = "Someone is following me"


def stored_tokens(url: str) -> dict[str, list[str]]:
    """Every encrypted value in the database, by column."""
    db = Database.from_url(url)
    try:
        with db.transaction() as session:
            return {
                column.name: [
                    token
                    for (token,) in session.execute(
                        select(column.column).where(column.column.is_not(None))
                    )
                ]
                for column in ENCRYPTED_COLUMNS
            }
    finally:
        db.dispose()


def populate(
    app: Application,
    clock: VirtualClock,
    console: ConsoleProvider,
    auth: dict[str, str],
) -> str:
    """Data in every encrypted column, written under the current key: calls and texts
    with phones, their CAD events, a dead letter, an answered survey with a comment, a
    STOP and a flagged text from callers. Returns a survey page's form token, signed
    before the rotation and sent after it."""
    with InProcessServer(create_app(app)) as server:
        token = invite(app, clock, console, server.url, auth, incident="I-ANSWERED")
        form = httpx.get(f"{server.url}/s/{token}", timeout=10)
        response = httpx.post(
            f"{server.url}/s/{token}",
            data={**ANSWERS, "comment": SURVEY_COMMENT, "csrf_token": csrf_of(form.text)},
            timeout=10,
        )
        assert response.status_code == 303, response.text
        pending = invite(app, clock, console, server.url, auth, incident="I-PENDING")
        pending_form = httpx.get(f"{server.url}/s/{pending}", timeout=10)
        bad = httpx.post(
            f"{server.url}/api/v1/cad/events",
            json={"event_id": "bad-1", "type": "call.received", "caller": {"phone": CALLER}},
            headers=auth,
            timeout=10,
        )
        assert bad.status_code in (400, 422)
    app.inbound.handle(InboundSms(STOPPED, app.settings.sms.sender, "STOP", "SM-stop"), "console")
    app.inbound.handle(
        InboundSms(CALLER, app.settings.sms.sender, INBOUND_TEXT, "SM-text"), "console"
    )
    clock.advance(timedelta(minutes=1))
    app.dispatcher.run_due()
    tokens = stored_tokens(app.settings.database_url)
    assert all(tokens.values()), {name: len(values) for name, values in tokens.items()}
    return f"{pending}|{csrf_of(pending_form.text)}"


@pytest.mark.parametrize("batch_size", ["2"])
def test_rotation_reencrypts_everything_and_the_old_key_can_go(
    app: Application,
    app_factory: Callable[..., Application],
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
    auth: dict[str, str],
    tmp_path: Path,
    batch_size: str,
) -> None:
    pending_form = populate(app, clock, console, auth)
    before = stored_tokens(database_url)
    app.close()

    cli = Cli(
        tmp_path,
        CALLERCONNECT_DATABASE_URL=database_url,
        CALLERCONNECT_SECRET_KEY=NEW_SECRET,
        CALLERCONNECT_OLD_SECRET_KEYS=f'["{TEST_SECRET}"]',
    )
    check = cli("keys", "check")
    assert check.returncode == 1, check.stderr
    assert "run `callerconnect keys rotate`" in check.stderr

    rotation = cli("keys", "rotate", "--batch-size", batch_size)
    assert rotation.returncode == 0, rotation.stdout + rotation.stderr
    assert "old_secret_keys can be removed" in rotation.stdout
    for column, values in before.items():
        # Every value of every column was re-encrypted (the lookup key included).
        line = next(row for row in rotation.stdout.splitlines() if row.startswith(column))
        assert line.split()[1:] == ["0", str(len(values)), "0", "0"], line

    after = stored_tokens(database_url)
    only_new = Vault(NEW_SECRET)
    for column, values in before.items():
        assert len(after[column]) == len(values), column
        decrypted = sorted(only_new.decrypt(token) for token in after[column])
        assert decrypted == sorted(Vault(TEST_SECRET).decrypt(token) for token in values)
    assert cli("keys", "check").returncode == 0

    # During the change-over every process has both keys: a form signed before is valid.
    both = app_factory(
        database_url,
        CALLERCONNECT_SECRET_KEY=NEW_SECRET,
        CALLERCONNECT_OLD_SECRET_KEYS=f'["{TEST_SECRET}"]',
    )
    token, csrf = pending_form.split("|")
    with InProcessServer(create_app(both)) as server:
        sent = httpx.post(
            f"{server.url}/s/{token}", data={**ANSWERS, "csrf_token": csrf}, timeout=10
        )
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"].startswith(f"/s/{token}/thanks")
    both.close()

    # The old key removed: everything still reads, and the STOP still holds.
    new = app_factory(database_url, CALLERCONNECT_SECRET_KEY=NEW_SECRET)
    with new.db.transaction() as session:
        phones = {new.vault.decrypt(p) for p in session.scalars(select(CallRow.phone_encrypted))}
    assert phones == {"+16135550142"}
    assert [t.body for t in flagged_replies(new.db, new.vault, None)] == [INBOUND_TEXT]
    assert CALLER not in show_letter(new.db, new.vault, 1)
    assert '"bad-1"' in show_letter(new.db, new.vault, 1)

    sent_before = len(console.sent)
    submit(new, received("I-AFTER-STOP", clock.now(), phone=STOPPED))
    submit(new, received("I-AFTER", clock.now(), phone="613-555-0123"))
    new.dispatcher.run_due()
    recipients = [sms.to for _, sms in console.sent[sent_before:]]
    assert recipients == ["+16135550123"], recipients
    with new.db.transaction() as session:
        stopped = session.scalars(
            select(OutboxRow)
            .join(CallRow)
            .where(CallRow.incident_id == "I-AFTER-STOP", OutboxRow.kind == "confirmation")
        ).one()
    assert (stopped.status, stopped.reason) == ("suppressed", "suppressed:opted_out")


def test_removing_the_old_key_before_rotating_stops_start_up_and_loses_nothing(
    app: Application,
    database_url: str,
    clock: VirtualClock,
    console: ConsoleProvider,
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    submit(app, received("I-1", clock.now(), phone=STOPPED))
    app.inbound.handle(InboundSms(STOPPED, app.settings.sms.sender, "STOP", "SM-1"), "console")
    before = stored_tokens(database_url)
    app.close()

    cli = Cli(tmp_path, CALLERCONNECT_DATABASE_URL=database_url)
    worker = cli("worker", "--once", CALLERCONNECT_SECRET_KEY=NEW_SECRET)
    assert worker.returncode == 2
    assert "old_secret_keys" in worker.stderr and "keys rotate" in worker.stderr
    assert "555" not in worker.stderr + worker.stdout

    check = cli("keys", "check", CALLERCONNECT_SECRET_KEY=NEW_SECRET)
    assert check.returncode == 2
    assert "cannot be read with the configured keys" in check.stderr
    rotation = cli("keys", "rotate", CALLERCONNECT_SECRET_KEY=NEW_SECRET)
    assert rotation.returncode == 2
    assert stored_tokens(database_url) == before  # nothing was touched

    # With the old key back, rotation finishes and the same STOP still blocks the phone.
    rotation = cli(
        "keys",
        "rotate",
        CALLERCONNECT_SECRET_KEY=NEW_SECRET,
        CALLERCONNECT_OLD_SECRET_KEYS=f'["{TEST_SECRET}"]',
    )
    assert rotation.returncode == 0, rotation.stderr
    again = cli("worker", "--once", CALLERCONNECT_SECRET_KEY=NEW_SECRET)
    assert again.returncode == 0, again.stderr


def test_values_written_under_the_old_key_during_a_rotation_are_reported(
    app: Application, database_url: str, clock: VirtualClock
) -> None:
    """A process still running with the previous ``secret_key`` writes behind the
    rotation's back; the rotation says so instead of claiming the old key can go."""
    submit(app, received("I-1", clock.now()))
    rotating = Vault(NEW_SECRET, [TEST_SECRET])

    written: list[str] = []

    def old_process_writes(column: str, _rows: int) -> None:
        if column == "cad_events.payload_encrypted" and not written:  # calls are done
            written.append(column)
            submit(app, received("I-2", clock.now(), phone="613-555-0123"))

    report = rotate_keys(app.db, rotating, batch_size=1, progress=old_process_writes)
    calls = next(c for c in report.columns if c.column == "calls.phone_encrypted")
    assert calls.rotated == 1 and calls.old == 1
    assert report.old >= 1
    assert check_keys(app.db, rotating).old == report.old
    # A second rotation (after the straggler restarted) finishes the job.
    assert rotate_keys(app.db, rotating).old == 0


def test_a_row_changed_while_rotating_keeps_its_new_value(
    app: Application, clock: VirtualClock
) -> None:
    """The swap is conditional: a purge or rewrite between read and write wins."""
    submit(app, received("I-1", clock.now()))
    rotating = Vault(NEW_SECRET, [TEST_SECRET])
    calls = next(c for c in ENCRYPTED_COLUMNS if c.name == "calls.phone_encrypted")
    with app.db.transaction() as session:
        ((key, token),) = read_batch(session, calls, None, 10)
    with app.db.transaction() as session:  # the retention purge, between read and swap
        session.execute(update(CallRow).values(phone_encrypted=None))
    with app.db.transaction() as session:
        assert replace_tokens(session, calls, [(key, token, rotating.reencrypt(token))]) == 0
    with app.db.transaction() as session:
        assert session.scalars(select(CallRow.phone_encrypted)).one() is None


def test_every_encrypted_column_is_rotated() -> None:
    """A new ``*_encrypted`` column must join the rotation's list."""
    in_models = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("_encrypted")
    }
    assert in_models == {column.name for column in ENCRYPTED_COLUMNS}


def test_the_lookup_hash_survives_the_secret() -> None:
    lookup_key = secrets.token_bytes(32)
    before = Vault(TEST_SECRET, lookup_key=lookup_key)
    during = Vault(NEW_SECRET, [TEST_SECRET], lookup_key=lookup_key)
    after = Vault(NEW_SECRET, lookup_key=lookup_key)
    assert before.phone_hash("+16135550142") == during.phone_hash("+16135550142")
    assert during.phone_hash("+16135550142") == after.phone_hash("+16135550142")
    token = before.encrypt("+16135550142")
    assert not during.is_current(token)
    assert during.is_current(during.reencrypt(token))
    assert after.decrypt(during.reencrypt(token)) == "+16135550142"
    with pytest.raises(VaultError):
        after.decrypt(token)
    with pytest.raises(VaultError):
        after.reencrypt(token)


def test_start_up_with_an_unknown_key_names_the_setting(
    app: Application, database_url: str
) -> None:
    app.close()
    with pytest.raises(ConfigError) as raised:
        build_application(make_settings(database_url, CALLERCONNECT_SECRET_KEY=NEW_SECRET))
    assert raised.value.key == "old_secret_keys"
    assert raised.value.env_var == "CALLERCONNECT_OLD_SECRET_KEYS"
