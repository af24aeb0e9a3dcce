"""``callerconnect serve`` SIGKILLed while a CAD posts batches of events (PostgreSQL).

The CAD re-posts every batch it got no 202 for. Promises: every event answered
``accepted`` is stored once with its effects (the call row, its confirmation in the
outbox, a dispatch folded into its call); after the re-posts every event is stored
exactly once, and the events a killed request had already stored are answered
``duplicate``. Each event is folded in its own transaction, so a kill mid-batch leaves a
committed prefix, never half an event. The heavier version is
``bench/crash_faults.py serve --batches N --kills K``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.crashes import run_intake_crashes

pytestmark = pytest.mark.postgres


def test_killed_web_process_loses_no_accepted_event_and_reposts_store_each_once(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_intake_crashes(postgres_url, tmp_path, batches=10, size=25, kills=3)
    with capsys.disabled():
        print("\n" + run.summary())
    assert run.problems() == [], run.summary()
    assert run.kills == 3
    assert run.answers["accepted"] + run.answers["duplicate"] == run.events
