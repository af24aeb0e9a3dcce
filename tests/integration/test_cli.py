"""The ``callerconnect`` command as an operator runs it: a real process, configured only
through ``CALLERCONNECT_*`` environment variables, on SQLite and PostgreSQL.

The contract's example feeds are copied into ``tests/fixtures/examples`` so these tests
do not depend on anything outside the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CadEventRow, CallRow, DeadLetterRow, OutboxRow
from callerconnect.bootstrap import build_application
from callerconnect.entrypoints.cli import main
from tests.conftest import TEST_INTAKE_KEY, TEST_SECRET, make_settings

CLI = [sys.executable, "-m", "callerconnect.entrypoints.cli"]
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "examples"
# Every form of the test phones that must never reach an operator's terminal in clear.
PHONE_DIGITS = ("5550142", "555-0142", "555 0142", "5550199", "555-0199", "555 0199")
MASKED = ("613***0142", "613***0199")


class Cli:
    def __init__(self, cwd: Path, **env: str) -> None:
        self.cwd = cwd
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}
        self.env = {**inherited, **env}

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return finish(self.start(*args, **env))

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, *args],
            env={**self.env, **env},
            cwd=self.cwd,  # no ./callerconnect.toml from the repository
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def together(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands at the same time (each is mostly start-up)."""
        return [finish(run) for run in [self.start(*command) for command in commands]]


def finish(run: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = run.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        run.kill()
        out, err = run.communicate()
        raise AssertionError(f"{run.args} did not finish: {err}") from None
    return subprocess.CompletedProcess(run.args, run.returncode, out, err)


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(
        tmp_path, CALLERCONNECT_DATABASE_URL=database_url, CALLERCONNECT_SECRET_KEY=TEST_SECRET
    )


@pytest.fixture
def sqlite_cli(sqlite_url: str, tmp_path: Path) -> Cli:
    return Cli(
        tmp_path, CALLERCONNECT_DATABASE_URL=sqlite_url, CALLERCONNECT_SECRET_KEY=TEST_SECRET
    )


def count(database_url: str, table: type) -> int:
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            return session.scalar(select(func.count()).select_from(table)) or 0
    finally:
        db.dispose()


def write_lines(path: Path, *lines: str | dict[str, Any]) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    return path


def now_event(event_id: str, incident: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "incident_id": incident,
        "occurred_at": datetime.now(UTC).isoformat(),
        "type": "call.received",
        "priority": 4,
        "case_number": "26-55501",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": "613-555-0142", "language": "en"},
        **fields,
    }


def ingest_directly(database_url: str, *events: dict[str, Any]) -> None:
    """Set a database up without a process (``ingest`` itself is tested above)."""
    app = build_application(make_settings(database_url))
    try:
        for payload in events:
            app.intake.submit(payload, "test")
    finally:
        app.close()


def assert_no_phone(text: str) -> None:
    for digits in PHONE_DIGITS:
        assert digits not in text, f"{digits!r} shown in clear"


# --- help and configuration errors (no database) ---------------------------------------


SUBCOMMANDS = [
    ["demo"],
    ["serve"],
    ["worker"],
    ["db"],
    ["db", "upgrade"],
    ["ingest"],
    ["deadletters"],
    ["calltypes"],
]


def test_help_works_for_the_command_and_each_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = Cli(tmp_path)("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: callerconnect")
    for name in ("demo", "serve", "worker", "db", "ingest", "deadletters", "calltypes"):
        assert name in done.stdout
    # Each subcommand's help from the same parser, in this process (argparse exits 0).
    helps = {}
    for command in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--help"])
        assert exit_.value.code == 0, command
        out = capsys.readouterr().out
        assert out.startswith(f"usage: callerconnect {' '.join(command)}"), out
        helps[" ".join(command)] = out
    assert "--once" in helps["worker"] and "--once" in helps["demo"]
    assert "--port" in helps["serve"] and "FILE.jsonl" in helps["ingest"]
    assert "replay" in helps["deadletters"] and "unknown" in helps["calltypes"]


def test_serve_refuses_to_start_without_a_secret_key_or_an_intake_key(tmp_path: Path) -> None:
    env = {
        "CALLERCONNECT_DATABASE_URL": f"sqlite:///{tmp_path}/cc.db",
        "CALLERCONNECT_SECRET_KEY": TEST_SECRET,
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{TEST_INTAKE_KEY}"]',
    }
    missing = ["CALLERCONNECT_SECRET_KEY", "CALLERCONNECT_INTAKE__API_KEYS"]
    started = [
        Cli(tmp_path, **{k: v for k, v in env.items() if k != key}).start("serve", "--port", "0")
        for key in missing
    ]
    for key, done in zip(missing, map(finish, started), strict=True):
        assert done.returncode != 0
        assert key in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert TEST_SECRET not in done.stderr + done.stdout


WEAK = "a"  # and an intake key "k": what a probe of a running instance found accepted
WEAK_SETTINGS = [
    # (command, variable, weak value as set)
    (("serve", "--port", "0"), "CALLERCONNECT_SECRET_KEY", WEAK),
    (("worker", "--once"), "CALLERCONNECT_SECRET_KEY", WEAK),
    (("serve", "--port", "0"), "CALLERCONNECT_INTAKE__API_KEYS", f'["{TEST_INTAKE_KEY}", "k"]'),
    (("worker", "--once"), "CALLERCONNECT_OLD_SECRET_KEYS", '["fifteen-chars-x"]'),
    (("keys", "check"), "CALLERCONNECT_SECRET_KEY", "fifteen-chars-x"),
    (("deadletters", "list"), "CALLERCONNECT_INTAKE__API_KEYS", '["k"]'),
]


def test_a_secret_or_intake_key_shorter_than_16_characters_stops_every_command(
    tmp_path: Path,
) -> None:
    cli = Cli(
        tmp_path,
        CALLERCONNECT_DATABASE_URL=f"sqlite:///{tmp_path}/cc.db",
        CALLERCONNECT_SECRET_KEY=TEST_SECRET,
        CALLERCONNECT_INTAKE__API_KEYS=f'["{TEST_INTAKE_KEY}"]',
    )
    started = [cli.start(*command, **{var: value}) for command, var, value in WEAK_SETTINGS]
    for (command, variable, _), done in zip(WEAK_SETTINGS, map(finish, started), strict=True):
        assert done.returncode == 2, (command, done.stderr)
        setting = variable.removeprefix("CALLERCONNECT_").replace("__", ".").lower()
        assert setting in done.stderr and variable in done.stderr, done.stderr
        assert "shorter than 16 characters" in done.stderr
        assert "secrets.token_urlsafe(32)" in done.stderr  # how to make a good one
        assert "Traceback" not in done.stderr
        assert "fifteen-chars-x" not in done.stderr + done.stdout
    assert not (tmp_path / "cc.db").exists()  # stopped before touching the database


def test_the_demo_makes_its_own_strong_keys_whatever_the_environment_holds(
    tmp_path: Path,
) -> None:
    weak = Cli(
        tmp_path,
        CALLERCONNECT_SECRET_KEY=WEAK,
        CALLERCONNECT_OLD_SECRET_KEYS='["b"]',
        CALLERCONNECT_INTAKE__API_KEYS='["k"]',
    )
    done = weak("demo", "--once", "--calls", "3")
    # The weak keys in the environment are not used: the demo ran on keys of its own
    # (the running demo prints its intake key; tests/e2e/test_demo_hints.py posts with it).
    assert done.returncode == 0, done.stderr
    assert "=== Summary ===" in done.stdout and "intake_key" not in done.stderr


BAD_SETTINGS = {  # bad values in depth: tests/unit/test_config.py; here, the process
    "CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "soon",
    "CALLERCONNECT_SMS__MAX_PER_SECOND": "fast",
}


def test_bad_setting_stops_start_up_with_a_message_naming_the_key(tmp_path: Path) -> None:
    cli = Cli(
        tmp_path,
        CALLERCONNECT_DATABASE_URL=f"sqlite:///{tmp_path}/cc.db",
        CALLERCONNECT_SECRET_KEY=TEST_SECRET,
    )
    started = [cli.start("worker", "--once", **{var: value}) for var, value in BAD_SETTINGS.items()]
    for variable, done in zip(BAD_SETTINGS, map(finish, started), strict=True):
        assert done.returncode != 0, variable
        assert variable in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "cc.db").exists()  # stopped before touching the database


# --- ingest, dead letters, call types, worker (SQLite and PostgreSQL) -------------------


def test_ingest_of_the_contract_examples_prints_counts_and_stores_events(
    cli: Cli, database_url: str
) -> None:
    expected = {
        "eligible-theft-en.jsonl": "5 accepted, 0 duplicate, 0 rejected",
        "delayed-out-of-order.jsonl": "4 accepted, 1 duplicate, 0 rejected",
        "excluded-ipv-fr.jsonl": "2 accepted, 0 duplicate, 0 rejected",
        "reclassified-after-confirmation.jsonl": "3 accepted, 0 duplicate, 0 rejected",
    }
    runs = cli.together(*(["ingest", str(EXAMPLES / name)] for name in expected))
    for counts, done in zip(expected.values(), runs, strict=True):
        assert done.returncode == 0, done.stderr
        assert counts in done.stdout, done.stdout
        assert_no_phone(done.stdout + done.stderr)
    again = cli("ingest", str(EXAMPLES / "eligible-theft-en.jsonl"))
    assert again.returncode == 0
    assert "0 accepted, 5 duplicate, 0 rejected" in again.stdout

    assert count(database_url, CadEventRow) == 14
    assert count(database_url, DeadLetterRow) == 0
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            reasons = dict(session.execute(select(CallRow.incident_id, CallRow.reason)).all())
            outcomes = Counter(session.execute(select(OutboxRow.status, OutboxRow.reason)).all())
    finally:
        db.dispose()
    assert reasons == {
        "I-26-1001": "eligible",
        "I-26-1002": "excluded:intimate_partner_violence",
        "I-26-1003": "excluded:sexual_assault",
        "I-26-1004": "eligible",
    }
    # The examples happened in January 2026: replayed now, every text's moment has
    # passed, so each is kept as suppressed (stale) and none would be sent late.
    assert set(outcomes) == {("suppressed", "suppressed:stale")}


def test_bad_lines_go_to_dead_letters_which_list_show_and_replay_without_phones(
    cli: Cli, database_url: str, tmp_path: Path
) -> None:
    feed = write_lines(
        tmp_path / "feed.jsonl",
        now_event("ok-1", "I-OK"),
        '{"event_id": "bad-json", "incident_id": "I-B", "caller": {"phone": "613-555-0142"',
        now_event(
            "bad-schema",
            "I-C",
            priority=12,
            caller={"phone": "+1 (613) 555-0199", "language": "fr"},
        ),
    )
    done = cli("ingest", str(feed))
    assert done.returncode == 1
    assert "1 accepted, 0 duplicate, 2 rejected" in done.stdout
    assert count(database_url, DeadLetterRow) == 2
    assert count(database_url, CadEventRow) == 1

    bad_json, bad_schema = "1", "2"  # a fresh database numbers them from 1
    listed, *shown = cli.together(
        ["deadletters", "list"],
        ["deadletters", "show", bad_json],
        ["deadletters", "show", bad_schema],
    )
    assert listed.returncode == 0
    lines = [line for line in listed.stdout.splitlines() if line.strip()]
    assert len(lines) == 2, listed.stdout
    assert [line.split()[0] for line in lines] == [bad_json, bad_schema]
    assert "not valid JSON" in lines[0] and "priority" in lines[1]
    assert_no_phone(listed.stdout)
    for letter_id, masked, done in zip((bad_json, bad_schema), MASKED, shown, strict=True):
        assert done.returncode == 0
        assert f"dead letter {letter_id}" in done.stdout
        assert masked in done.stdout, done.stdout
        assert_no_phone(done.stdout)

    replayed = cli("deadletters", "replay", bad_schema)  # still invalid
    assert replayed.returncode == 1
    assert f"{bad_schema}: failed: priority" in replayed.stdout, replayed.stdout
    assert_no_phone(replayed.stdout + replayed.stderr)
    assert count(database_url, DeadLetterRow) == 2  # no second dead letter
    assert count(database_url, CadEventRow) == 1
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            statuses = dict(session.execute(select(DeadLetterRow.id, DeadLetterRow.status)).all())
    finally:
        db.dispose()
    assert statuses == {int(bad_json): "new", int(bad_schema): "failed"}


def test_deadletters_show_masks_an_international_number(sqlite_cli: Cli, sqlite_url: str) -> None:
    bad = now_event("intl", "I-INTL", priority=12, caller={"phone": "+44 7911 123456"})
    ingest_directly(sqlite_url, bad)
    shown = sqlite_cli("deadletters", "show", "1")
    assert "7911 123456" not in shown.stdout and "7911123456" not in shown.stdout


def test_calltypes_unknown_lists_a_code_missing_from_the_table(cli: Cli, database_url: str) -> None:
    ingest_directly(
        database_url,
        now_event("u-1", "I-U1", call_type={"code": "ZZSTRANGE", "description": "New code"}),
        now_event("u-2", "I-U2", call_type={"code": "ZZSTRANGE"}, case_number="26-55502"),
        now_event("k-1", "I-K1", case_number="26-55503"),
    )
    listed = cli("calltypes", "unknown")
    assert listed.returncode == 0
    assert listed.stdout.split()[:3] == ["ZZSTRANGE", "2", "call(s)"], listed.stdout
    assert "THEFT" not in listed.stdout


def test_worker_once_sends_what_is_due_and_exits(cli: Cli, database_url: str) -> None:
    ingest_directly(database_url, now_event("w-1", "I-W1"))
    first = cli("worker", "--once")
    assert first.returncode == 0, first.stderr
    assert "handled 1 due text(s)" in first.stdout
    assert "+1613***0142" in first.stdout and "26-55501" in first.stdout  # the console text
    assert_no_phone(first.stdout + first.stderr)
    again = cli("worker", "--once")
    assert again.returncode == 0
    assert "handled 0 due text(s)" in again.stdout
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            texts = session.execute(select(OutboxRow.kind, OutboxRow.status)).all()
    finally:
        db.dispose()
    assert sorted(texts) == [("confirmation", "sent"), ("delay_notice", "scheduled")]
