"""The provider misbehaving while a backlog drains through real worker processes on
PostgreSQL: down for a while, slow past the client's timeout, throttling. And the
PostgreSQL server restarted mid-run (a server of the test's own, not the shared one).

Each run: confirmations for N calls wait in the outbox, worker processes drain them
through a Twilio-compatible server that misbehaves once the backlog is under way. The
system must recover by itself and send each text once — except where a duplicate is
the documented price of an answer we never saw (a read timeout), which is measured.
An SMPP link dropped mid-run is covered by ``test_smpp.py``. Heavier runs:
``bench/crash_faults.py faults --calls N``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.crashes import KillingTwilio, run_backlog, run_database_restart
from tests.support.fake_twilio import Fault
from tests.support.private_postgresql import private_postgresql

pytestmark = pytest.mark.postgres


def outage(seconds: float) -> Any:
    """HTTP 500 from Twilio, then 503 from its load balancer, ``seconds`` in all."""

    def fault(fake: KillingTwilio) -> float:
        fake.fail_for(seconds / 2, Fault.HTTP_500)
        fake.fail_for(seconds, Fault.HTTP_503)
        time.sleep(seconds)
        return seconds

    return fault


def test_provider_down_for_a_while_the_backlog_drains_once_it_is_back(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_backlog(
        postgres_url,
        tmp_path,
        name="provider down",
        calls=40,
        fault=outage(4.0),
        start_fault_after=5,
    )
    with capsys.disabled():
        print("\n" + run.summary())
    assert run.problems() == [], run.summary()
    assert run.statuses[500] + run.statuses[503] > 0
    assert max(run.attempts) < 8  # the outage did not use up the attempts
    assert run.after_fault_seconds < 10, run.summary()  # back within a few retries


def test_throttling_slows_the_backlog_down_and_fails_nothing(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def throttle(fake: KillingTwilio) -> float:
        fake.fail_for(3.0, Fault.THROTTLE)  # 429, code 20429, Retry-After: 1
        time.sleep(3.0)
        return 3.0

    run = run_backlog(
        postgres_url, tmp_path, name="throttled", calls=40, fault=throttle, start_fault_after=5
    )
    with capsys.disabled():
        print("\n" + run.summary())
    assert run.problems() == [], run.summary()
    assert run.statuses[429] > 0
    assert set(run.attempts) == {1}  # a 429 is not a failed attempt
    assert not any(reason.startswith("failed") for reason in run.reasons)


SLOW = 4  # requests answered after the client's timeout


def slow_answers(fake: KillingTwilio) -> float:
    # Twilio took the text but answered after 1.5 s; the client gave up after 1 s.
    fake.fail_next(SLOW, Fault.SLOW, delay=1.5)
    time.sleep(1.5)
    return 1.5


def test_slow_provider_is_retried_and_each_read_timeout_can_cost_a_duplicate(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without status callbacks a read timeout on a text the provider did take is a
    duplicate: the retry cannot know. Measured, and each one shows in ``attempts``."""
    run = run_backlog(
        postgres_url,
        tmp_path,
        name="slow provider, no callbacks",
        calls=30,
        fault=slow_answers,
        start_fault_after=3,
        env={"CALLERCONNECT_SMS__TWILIO__TIMEOUT": "1s"},
    )
    run.notes.append(f"{SLOW} requests answered after the 1 s timeout")
    with capsys.disabled():
        print("\n" + run.summary())
    assert run.problems(duplicates_allowed=SLOW) == [], run.summary()
    assert sum(run.duplicates.values()) == SLOW  # every late acceptance was sent again
    assert run.attempts[2] >= SLOW


def test_status_callbacks_close_the_read_timeout_window(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``serve`` receiving Twilio's status callbacks, the callback of a text whose
    answer timed out carries its outbox key (``ref``): the id is adopted before the
    retry is due, and nothing goes twice."""
    run = run_backlog(
        postgres_url,
        tmp_path,
        name="slow provider, status callbacks",
        calls=30,
        fault=slow_answers,
        start_fault_after=3,
        callbacks=True,
        env={"CALLERCONNECT_SMS__TWILIO__TIMEOUT": "1s", "CALLERCONNECT_WORKER__RETRY_BASE": "3s"},
    )
    run.notes.append(f"{SLOW} requests answered after the 1 s timeout")
    with capsys.disabled():
        print("\n" + run.summary())
    assert run.problems() == [], run.summary()
    assert run.adopted == SLOW


# --- PostgreSQL restarted (a server of the test's own: the machine's is shared) -----------


@pytest.fixture
def restartable_database() -> Iterator[tuple[str, Callable[[], None]]]:
    """A database on a PostgreSQL server of the test's own (the machine's is shared),
    and the function that restarts that server."""
    with private_postgresql() as server:
        yield server.url, server.restart


@pytest.mark.timeout(300)
def test_postgresql_restart_mid_run_serve_and_workers_recover_by_themselves(
    restartable_database: tuple[str, Callable[[], None]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from callerconnect.adapters.db.engine import Database
    from callerconnect.service.schema import ensure_schema

    url, restart = restartable_database
    db = Database.from_url(url)
    ensure_schema(db)
    db.dispose()
    run = run_database_restart(url, tmp_path, calls=60, restart=restart)
    with capsys.disabled():
        print("\n" + run.summary())
    # A worker whose status write fails in the restart leaves its text to be sent
    # again after the lease: at most one per worker. Measured and reported.
    assert run.problems(duplicates_allowed=run.workers) == [], run.summary()
