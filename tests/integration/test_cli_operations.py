"""The command line keeps its word: help everywhere, ids that exist or a clear refusal,
filters that filter, bulk actions that ask, and failures that name what to fix.

Commands run in-process through ``main`` (the same code as the installed script) with
``CALLERCONNECT_*`` variables, which keeps these many small runs fast; test_cli.py runs
the real process.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import DeadLetterRow, OutboxRow
from callerconnect.config import Settings, load_settings
from callerconnect.entrypoints.cli import build_parser, main
from callerconnect.entrypoints.support import walk_commands
from callerconnect.service.restamp import restamp_lines
from tests.conftest import TEST_INTAKE_KEY, TEST_SECRET

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # the repository's own
ALL_COMMANDS = list(walk_commands(build_parser()))


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No variable or ./callerconnect.toml from outside; logging put back afterwards
    (the commands configure it for the whole process)."""
    for name in [n for n in __import__("os").environ if n.startswith("CALLERCONNECT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    ours, root = logging.getLogger("callerconnect"), logging.getLogger()
    saved = (ours.handlers[:], ours.level, ours.propagate, root.handlers[:])
    yield
    ours.handlers[:], ours.level, ours.propagate, root.handlers[:] = saved


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("CALLERCONNECT_DATABASE_URL", database_url)
    monkeypatch.setenv("CALLERCONNECT_SECRET_KEY", TEST_SECRET)
    return database_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- help ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parser"), ALL_COMMANDS, ids=[" ".join(p) or "callerconnect" for p, _ in ALL_COMMANDS]
)
def test_every_command_and_subcommand_answers_help(
    path: tuple[str, ...], parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: callerconnect {' '.join(path)}".rstrip())
    # Each subcommand is described in its parent's list, so `--help` tells what it does.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{' '.join(path)} {choice.dest} has no help"


def test_the_help_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in ALL_COMMANDS}
    assert {"deadletters show", "inbound reviewed", "config check", "sms check"} <= names


# --- ids that do not exist -----------------------------------------------------------

ID_COMMANDS = [
    path
    for path, parser in ALL_COMMANDS
    # Positional ids only: ``--agency ID`` names an agency, not a stored record.
    if any(action.metavar == "ID" and not action.option_strings for action in parser._actions)
]


def test_commands_taking_ids_are_discovered() -> None:
    assert {
        ("deadletters", "list"),
        ("deadletters", "show"),
        ("deadletters", "replay"),
        ("inbound", "reviewed"),
    } <= set(ID_COMMANDS)


@pytest.mark.parametrize("path", ID_COMMANDS, ids=" ".join)
@pytest.mark.usefixtures("configured")
def test_an_id_that_does_not_exist_exits_non_zero_with_a_message(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *path, "987654")
    assert code != 0
    assert "987654" in err and err.startswith("error: ")


# --- dead letters --------------------------------------------------------------------


def rejected_event(event_id: str, **fields: object) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "incident_id": f"I-{event_id}",
            "occurred_at": datetime.now(UTC).isoformat(),
            "type": "call.received",
            "priority": 12,
            **fields,
        }
    )


@pytest.fixture
def two_dead_letters(configured: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(rejected_event("d-1") + "\n" + rejected_event("d-2") + "\n")
    code, out, _ = run(capsys, "ingest", str(feed))
    assert code == 1 and "2 rejected" in out
    return configured


def statuses(database_url: str) -> dict[int, str]:
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            return dict(session.execute(select(DeadLetterRow.id, DeadLetterRow.status)).all())
    finally:
        db.dispose()


def test_deadletters_list_with_an_id_lists_only_that_one(
    two_dead_letters: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "deadletters", "list", "2")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].split()[0] == "2"
    assert "priority: priority" not in out and "priority" in out


def test_replay_all_asks_first_and_does_nothing_without_an_answer(
    two_dead_letters: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "deadletters", "replay", "--all")
    assert code == 1
    assert "replays 2 dead letter(s)" in err and "--yes" in err
    assert statuses(two_dead_letters) == {1: "new", 2: "new"}


def test_replay_all_leaves_failed_letters_unless_asked(
    two_dead_letters: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "deadletters", "replay", "1")  # still invalid: failed
    assert statuses(two_dead_letters) == {1: "failed", 2: "new"}
    code, out, err = run(capsys, "deadletters", "replay", "--all", "--yes")
    assert "1 dead letter(s) with status new" in err and "--include-failed" in err
    assert out.splitlines() == [out.splitlines()[0]] and out.startswith("2: failed")
    code, out, err = run(capsys, "deadletters", "replay", "--all", "--include-failed", "--yes")
    assert code == 1  # both are still invalid
    assert "2 dead letter(s) with status new or failed" in err
    assert {line.split(":")[0] for line in out.splitlines()} == {"1", "2"}


# --- failures that name their cause --------------------------------------------------


def test_an_unreachable_database_is_two_lines_naming_the_setting_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql+psycopg://cc:hunter2-secret@127.0.0.1:{port}/callerconnect"
    monkeypatch.setenv("CALLERCONNECT_DATABASE_URL", url)
    monkeypatch.setenv("CALLERCONNECT_SECRET_KEY", TEST_SECRET)
    code, out, err = run(capsys, "worker", "--once")
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert "database_url" in err and "CALLERCONNECT_DATABASE_URL" in err
    assert "hunter2" not in err + out and "cc:***@127.0.0.1" in err
    assert "Traceback" not in err
    with pytest.raises(Exception, match=r"Connection refused|connection failed"):
        main(["--debug", "worker", "--once"])


def test_a_port_in_use_is_named(
    configured: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLERCONNECT_INTAKE__API_KEYS", f'["{TEST_INTAKE_KEY}"]')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "serve", "--port", str(port))
    assert code == 1
    assert f"port {port} on 127.0.0.1 is already in use (--port)" in err


@pytest.mark.usefixtures("configured")
def test_a_file_that_is_not_readable_text_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "feed.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    code, _, err = run(capsys, "ingest", str(binary))
    assert code == 2 and "feed.jsonl is not UTF-8 text" in err
    code, _, err = run(capsys, "ingest", str(tmp_path))
    assert code == 2 and "is not a readable file" in err


# --- restamp -------------------------------------------------------------------------


def test_an_old_example_says_why_nothing_will_be_texted(
    configured: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ingest", str(EXAMPLES / "awaiting-unit-en.jsonl"))
    assert code == 0 and "--restamp" in err and "suppressed:stale" in err


def test_a_restamped_example_is_texted(configured: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "ingest", "--restamp", str(EXAMPLES / "awaiting-unit-en.jsonl"))
    assert code == 0 and "--restamp" not in err
    code, out, _ = run(capsys, "worker", "--once")
    assert code == 0 and "handled 1" in out
    db = Database.from_url(configured)
    try:
        with db.transaction() as session:
            texts = session.execute(select(OutboxRow.kind, OutboxRow.status)).all()
    finally:
        db.dispose()
    assert sorted(texts) == [("confirmation", "sent"), ("delay_notice", "scheduled")]


def test_restamp_moves_the_latest_event_to_now_keeping_order_and_gaps() -> None:
    lines = (EXAMPLES / "eligible-theft-en.jsonl").read_text().splitlines()
    now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    moved = [json.loads(line) for line in restamp_lines(lines, now=now)]
    before = [datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in lines]
    after = [datetime.fromisoformat(event["occurred_at"]) for event in moved]
    assert max(after) == now
    shifts = {b - a for a, b in zip(before, after, strict=True)}
    assert len(shifts) == 1  # one shift for all: order and gaps kept
    assert [e["event_id"] for e in moved] == [json.loads(line)["event_id"] for line in lines]
    assert restamp_lines(["not json", ""], now=now) == ["not json", ""]


# --- config check and example --------------------------------------------------------


def test_config_check_shows_sources_masks_secrets_and_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "callerconnect.toml"
    config.write_text('[policy]\nquiet_hours = "off"\n', encoding="utf-8")
    monkeypatch.setenv("CALLERCONNECT_SECRET_KEY", "short-secret-of-20ch")
    monkeypatch.setenv("CALLERCONNECT_DATABASE_URL", "postgresql+psycopg://cc:pw-123@db/cc")
    monkeypatch.setenv("CALLERCONNECT_SMS__PROVIDER", "twilio")
    monkeypatch.setenv("CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN", "token-value-xyz")
    code, out, err = run(capsys, "config", "check")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert rows["secret_key"].endswith("(environment)") and "short-secret-of-20ch" not in out
    assert "token-value-xyz" not in out and "pw-123" not in out
    assert "cc:***@db/cc" in rows["database_url"]
    assert (
        rows["policy.quiet_hours"].endswith(f"(file {config.name})")
        or str(config) in (rows["policy.quiet_hours"])
    )
    assert rows["timezone"].endswith("(default)")
    for key in ("public_base_url", "secret_key", "policy.quiet_hours", "intake.api_keys"):
        assert f"warning: {key}:" in err
    assert "loopback" in err


def test_config_check_exits_1_on_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config", "check")
    assert code == 1 and "error: secret_key" in err


def test_config_check_names_a_misspelt_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLERCONNECT_SMS_PROVIDER", "twilio")
    code, _, err = run(capsys, "config", "check")
    assert code == 1 and "CALLERCONNECT_SMS__PROVIDER" in err


def test_config_example_has_every_setting_and_loads_to_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "example.toml"
    code, out, _ = run(capsys, "config", "example", "--out", str(target))
    assert code == 0 and out.startswith("wrote ")
    text = target.read_text(encoding="utf-8")
    tomllib.loads(text)
    loaded = load_settings(target, environ={})
    assert loaded.model_dump() == Settings().model_dump()
    # Every setting appears, set or commented out.
    for name in Settings.model_fields:
        assert name in text, name
    assert "# secret_key = " in text and "[policy.delay_notice_after]" in text
    code, _, err = run(capsys, "config", "example", "--out", str(target))  # exists: asks
    assert code == 1 and "--yes" in err


def test_delay_thresholds_in_the_example_are_durations() -> None:
    assert Settings().policy.delay_notice_after[3] == timedelta(minutes=30)
