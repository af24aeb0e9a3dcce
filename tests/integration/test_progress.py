"""Progress of long commands (``ingest``, ``deadletters replay --all``, ``report daily``):
the services tell ``on_progress(done, total)`` the right counts; the command draws a bar
on standard error only when it is a terminal, and a script reading its output sees
exactly what it saw before. On SQLite only: the counting does not depend on the database
(the services themselves are tested on both)."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import threading
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callerconnect.adapters.db.tables import DeadLetterRow
from callerconnect.bootstrap import Application
from callerconnect.service import deadletters
from callerconnect.service.envelopes import Envelopes
from callerconnect.service.ingest_file import ingest_lines
from callerconnect.terminal_progress import progress_bar
from callerconnect.text_reports import DAILY_REPORT_STEPS, daily_report
from tests.conftest import TEST_SECRET
from tests.integration.test_cli import CLI, Cli, now_event, write_lines


@pytest.fixture
def sqlite_cli(sqlite_url: str, tmp_path: Path) -> Cli:
    return Cli(
        tmp_path, CALLERCONNECT_DATABASE_URL=sqlite_url, CALLERCONNECT_SECRET_KEY=TEST_SECRET
    )


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))


def test_ingest_tells_its_progress_line_by_line(app_factory: Any, sqlite_url: str) -> None:
    app: Application = app_factory(sqlite_url)
    lines = [
        json.dumps(now_event("p-1", "I-P1")),
        "",
        "{not json",
        json.dumps(now_event("p-2", "I-P2")),
    ]
    seen = Recorder()
    counts = ingest_lines(Envelopes(app.intake), lines, on_progress=seen)
    assert seen.calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert counts["accepted"] == 2 and counts["rejected"] == 1


def test_replay_all_tells_its_progress_letter_by_letter(app_factory: Any, sqlite_url: str) -> None:
    app: Application = app_factory(sqlite_url)
    bad = [json.dumps(now_event(f"b-{n}", f"I-B{n}", priority=12)) for n in range(3)]
    ingest_lines(Envelopes(app.intake), bad)
    seen = Recorder()
    outcome = deadletters.replay(
        app.db, app.vault, app.intake, [], replay_all=True, on_progress=seen
    )
    assert len(outcome) == 3
    assert seen.calls == [(1, 3), (2, 3), (3, 3)]
    with app.db.transaction() as session:
        assert set(session.scalars(select(DeadLetterRow.status))) == {"failed"}
    again = Recorder()
    deadletters.replay(app.db, app.vault, app.intake, [], replay_all=True, on_progress=again)
    assert again.calls == []  # nothing new waiting: nothing to count


def test_the_daily_report_tells_each_of_its_steps(app_factory: Any, sqlite_url: str) -> None:
    app: Application = app_factory(sqlite_url)
    seen = Recorder()
    quiet = daily_report(app.db, app.vault, "test", date(2026, 1, 20), app.settings.tz)
    told = daily_report(
        app.db, app.vault, "test", date(2026, 1, 20), app.settings.tz, on_progress=seen
    )
    assert told == quiet
    assert seen.calls == [(n, DAILY_REPORT_STEPS) for n in range(1, DAILY_REPORT_STEPS + 1)]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_only_on_a_terminal_and_only_once_it_is_due() -> None:
    plain = io.StringIO()
    with progress_bar("ingesting", stream=plain) as on_progress:
        for done in range(1, 6):
            on_progress(done, 5)
    assert plain.getvalue() == ""

    terminal = _Terminal()
    with progress_bar("ingesting feed.jsonl", stream=terminal) as on_progress:
        for done in range(1, 6):
            on_progress(done, 5)
    assert "ingesting feed.jsonl" in terminal.getvalue()

    not_yet = _Terminal()
    with progress_bar("daily report", stream=not_yet, show_after=60) as on_progress:
        on_progress(1, 7)
    assert not_yet.getvalue() == ""


def test_commands_print_the_same_without_a_terminal_and_a_bar_with_one(
    sqlite_cli: Cli, tmp_path: Path
) -> None:
    feed = write_lines(
        tmp_path / "feed.jsonl",
        now_event("c-1", "I-C1"),
        now_event("c-2", "I-C2", priority=12),
    )
    piped = sqlite_cli("ingest", str(feed))
    assert (
        piped.stdout
        == "1 accepted, 0 duplicate, 1 rejected (see: callerconnect deadletters list)\n"
    )
    # standard error holds the log lines only: no bar, no terminal control sequence
    assert all(line.startswith("ts=") for line in piped.stderr.splitlines()), piped.stderr
    assert "ingesting" not in piped.stderr and "\x1b" not in piped.stderr
    replayed = sqlite_cli("deadletters", "replay", "--all", "--yes")
    assert replayed.stdout == "1: failed: priority: priority: must be at most 9\n"
    assert "replaying" not in replayed.stderr and "\x1b" not in replayed.stderr

    # the same command with standard error on a terminal: the bar goes there, stdout is as before
    again = write_lines(tmp_path / "again.jsonl", now_event("c-3", "I-C3"))
    main_fd, terminal_fd = pty.openpty()
    run = subprocess.Popen(
        [*CLI, "ingest", str(again)],
        env={**sqlite_cli.env, "TERM": "xterm", "COLUMNS": "100"},
        cwd=sqlite_cli.cwd,
        stdout=subprocess.PIPE,
        stderr=terminal_fd,
        text=True,
    )
    os.close(terminal_fd)
    drawn: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            drawn.append(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    out, _ = run.communicate(timeout=60)
    reader.join(timeout=10)
    os.close(main_fd)
    assert out == "1 accepted, 0 duplicate, 0 rejected (see: callerconnect deadletters list)\n"
    assert b"ingesting again.jsonl" in b"".join(drawn)
