"""``callerconnect user add|list|disable|passwd`` (contract section 9) as an operator runs
it: a real process, the password read as one line from standard input, on SQLite (the
accounts' SQL is exercised on PostgreSQL by the dashboard tests)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import AuditLogRow, DashboardUserRow
from callerconnect.clock import SystemClock
from callerconnect.entrypoints.cli import main
from callerconnect.service.accounts import Accounts, LoginStatus

CLI = [sys.executable, "-m", "callerconnect.entrypoints.cli"]


@pytest.fixture
def run(tmp_path: Path, sqlite_url: str) -> Any:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}
    env = {**inherited, "CALLERCONNECT_DATABASE_URL": sqlite_url}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "user", *args],
            input=stdin,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def accounts(url: str) -> Accounts:
    return Accounts(
        Database.from_url(url),
        SystemClock(),
        default_agency="default",
        idle=timedelta(minutes=30),
        max_age=timedelta(hours=12),
    )


@pytest.mark.production_password_hashing  # logs in to what the CLI processes hashed
def test_add_list_passwd_disable(run: Any, sqlite_url: str) -> None:
    added = run("add", "Ana@Example.org", "--role", "analyst", stdin="a long first password\n")
    assert added.returncode == 0, added.stderr
    assert "added ana@example.org (analyst, agency default)" in added.stdout
    assert "a long first password" not in added.stdout + added.stderr

    everyone = run("add", "root@example.org", "--role", "admin", "--agency", "*", stdin="x" * 12)
    assert everyone.returncode == 0, everyone.stderr
    listed = run("list").stdout
    assert "ana@example.org" in listed and "analyst" in listed and "active" in listed
    assert "root@example.org" in listed and "*" in listed

    service = accounts(sqlite_url)
    assert service.login("ana@example.org", "a long first password").status is LoginStatus.OK
    assert run("passwd", "ana@example.org", stdin="a new long password\n").returncode == 0
    assert service.login("ana@example.org", "a long first password").status is not LoginStatus.OK
    assert service.login("ana@example.org", "a new long password").status is LoginStatus.OK

    assert run("disable", "ana@example.org").returncode == 0
    assert "disabled" in run("list").stdout
    assert service.login("ana@example.org", "a new long password").status is LoginStatus.REFUSED
    with service.db.transaction() as session:
        stored = session.scalar(select(DashboardUserRow.password_hash))
        actions = list(session.scalars(select(AuditLogRow.action).order_by(AuditLogRow.id)))
    assert stored is not None and stored.startswith("$argon2id$")
    assert actions == ["user.add", "user.add", "user.passwd", "user.disable"]
    service.db.dispose()


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capsys: Any) -> Any:
    """``main(["user", ...])`` in this process (start-up costs seconds per process on a
    loaded machine): standard input is not a terminal, as in a script."""
    for name in [k for k in os.environ if k.startswith("CALLERCONNECT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CALLERCONNECT_DATABASE_URL", sqlite_url)

    def call(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["user", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


BAD = [
    (["add", "not-an-address", "--role", "viewer"], "a long password!", "e-mail address"),
    (["add", "a@example.org", "--role", "viewer"], "short", "at least 12 characters"),
    (["add", "a@example.org"], "a long password!", "--role"),
    (["add", "a@example.org", "--role", "viewer", "--agency", "*"], "a long password!", "admin"),
    (
        ["add", "a@example.org", "--role", "viewer", "--agency", "Bad Id"],
        "long password!",
        "agency",
    ),
    (["disable", "nobody@example.org"], "", "no account"),
    (["passwd", "nobody@example.org"], "a long password!", "no account"),
    (["disable"], "", "e-mail address"),
]


def test_bad_input_is_a_clear_error_and_changes_nothing(in_process: Any) -> None:
    for args, stdin, message in BAD:
        code, _out, err = in_process(*args, stdin=stdin)
        assert code == 2, args
        assert message in err, (args, err)
        assert "Traceback" not in err
    assert "no accounts" in in_process("list")[1]


def test_an_existing_address_is_refused(in_process: Any) -> None:
    assert in_process("add", "a@example.org", "--role", "viewer", stdin="a long password!")[0] == 0
    code, _out, err = in_process("add", "A@example.org", "--role", "admin", stdin="a long password")
    assert code == 2 and "already exists" in err
