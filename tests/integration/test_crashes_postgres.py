"""Worker processes SIGKILLed while a burst of calls drains through PostgreSQL.

Three real ``callerconnect worker`` processes send to a Twilio-compatible server; they
are killed at random moments and, on purpose, right after the provider accepted a text
and before the worker could record it (the server kills the process that sent the
request, found from its TCP connection), and restarted at once, as a service manager
would. Leases are 2 s so a dead worker's texts come back quickly.

Promises checked (see ``tests/support/crashes.py``): no eligible text lost; every
duplicate is a copy its worker's kill left unrecorded — a send the provider had accepted
or was still receiving when the worker died, at most one per send in flight of that
worker — and shows in the row's ``attempts``; every kill in that window did leave a
duplicate (the window is real and measured, not assumed away); nothing else in the
worker logs (no failed pass, no traceback, no phone number). The heavier version is
``bench/crash_faults.py workers --calls N --kills K``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callerconnect.service.dispatch_options import MAX_IN_FLIGHT
from tests.support.crashes import run_worker_crashes

pytestmark = pytest.mark.postgres


def test_killed_workers_lose_no_text_and_every_duplicate_is_a_kill_in_the_window(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_worker_crashes(
        postgres_url, tmp_path, calls=90, workers=3, random_kills=4, window_kills=4
    )
    with capsys.disabled():
        print("\n" + run.summary())
    assert run.problems() == []
    assert run.window_kills_fired >= 3, run.summary()
    assert len(run.kills_fired) >= 6, run.summary()
    # A kill can leave each of the worker's sends in flight accepted and unrecorded (on a
    # starved machine several are): each copy is matched to one kill above, at most
    # MAX_IN_FLIGHT a kill.
    assert sum(run.duplicates.values()) <= len(run.kills_fired) * MAX_IN_FLIGHT
