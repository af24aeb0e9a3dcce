"""Several ``callerconnect worker`` processes against one PostgreSQL database, sending
through a Twilio-compatible HTTP server: every text exactly once, none lost, and the
global ``sms.max_per_second`` held across the processes.

The workers are configured only through the contract's environment variables. The
calls are ingested through the intake (as ``serve`` would) with the real clock, so
their confirmations are due at once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from callerconnect.adapters.db.tables import OutboxRow
from callerconnect.bootstrap import build_application
from callerconnect.clock import SystemClock
from tests.conftest import TEST_SECRET, make_settings
from tests.support.dispatch import TimedFakeTwilio, gaps, most_in_window, received, twilio_env

pytestmark = pytest.mark.postgres

CLI = [sys.executable, "-m", "callerconnect.entrypoints.cli"]
CASE = re.compile(r"26-3\d{4}")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Workers:
    def __init__(self, database_url: str, fake: TimedFakeTwilio, log_dir: Path) -> None:
        self.database_url = database_url
        self.fake = fake
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def env(self, rate: float) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}
        return {
            **inherited,
            **twilio_env(self.fake),
            "CALLERCONNECT_DATABASE_URL": self.database_url,
            "CALLERCONNECT_SECRET_KEY": TEST_SECRET,
            "CALLERCONNECT_SMS__MAX_PER_SECOND": str(rate),
            "CALLERCONNECT_WORKER__POLL_INTERVAL": "1s",
            "CALLERCONNECT_WORKER__BATCH_SIZE": "5",  # several claim rounds per worker
        }

    def ingest(self, count: int, rate: float, *, due_in: float = 0.0) -> list[str]:
        """``count`` eligible calls, each from its own phone, received ``due_in`` seconds
        from now (so their confirmations all fall due together); returns the case numbers."""
        env = {k: v for k, v in self.env(rate).items() if k.startswith("CALLERCONNECT_")}
        settings = make_settings(self.database_url, **env)
        clock = SystemClock()
        app = build_application(settings, clock=clock)
        cases = [f"26-3{n:04d}" for n in range(count)]
        at = clock.now() + timedelta(seconds=due_in)
        try:
            for n, case in enumerate(cases):
                payload = received(f"I-BURST-{n}", at, phone=f"613-555-{n:04d}", case_number=case)
                assert app.intake.submit(payload, "test").status == "accepted"
        finally:
            app.close()
        return cases

    def start(self, count: int, rate: float) -> None:
        env = self.env(rate)
        for n in range(count):
            with (self.log_dir / f"worker-{n}.log").open("wb") as log:
                self.processes.append(
                    subprocess.Popen([*CLI, "worker"], env=env, stdout=log, stderr=log)
                )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> list[str]:
        return [(self.log_dir / f"worker-{n}.log").read_text() for n in range(len(self.processes))]


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    with TimedFakeTwilio() as fake:
        group = Workers(postgres_url, fake, tmp_path)
        try:
            yield group
        finally:
            group.stop()
        assert not fake.errors, fake.errors


def confirmations(database_url: str) -> list[tuple[str, int]]:
    settings = make_settings(database_url)
    app = build_application(settings, clock=SystemClock())
    try:
        with app.db.transaction() as session:
            rows = session.execute(
                select(OutboxRow.status, OutboxRow.attempts).where(OutboxRow.kind == "confirmation")
            ).all()
            return [(status, attempts) for status, attempts in rows]
    finally:
        app.close()


def run_burst(
    workers: Workers, *, calls: int, processes: int, rate: float, warm: bool
) -> list[float]:
    """Cold: the calls wait in the database and the workers start together (they race
    for the first claims). Warm: the workers are up and polling when the calls fall due,
    as in production."""
    if warm:
        workers.start(processes, rate)
        wait_until(
            lambda: all("action=worker_started" in log for log in workers.logs()),
            30,
            "the workers to start",
        )
        cases = workers.ingest(calls, rate, due_in=2.0)
    else:
        cases = workers.ingest(calls, rate)
        workers.start(processes, rate)
    started = time.monotonic()
    fake = workers.fake
    wait_until(lambda: len(fake.messages) >= calls, 60, f"{calls} texts at the provider")
    done = time.monotonic()
    time.sleep(1.2)  # more than a poll interval: anything sent twice would show by now
    workers.stop()
    assert all(p.returncode == 0 for p in workers.processes), workers.logs()

    sent_cases = Counter(m for msg in fake.messages for m in CASE.findall(msg.body))
    duplicates = {case: n for case, n in sent_cases.items() if n > 1}
    per_phone = Counter(msg.to for msg in fake.messages)
    per_worker = [log.count("action=sms_sent") for log in workers.logs()]
    arrivals = [a.at for a in fake.arrivals]
    spacing = gaps(arrivals)
    print(
        f"\n[{processes} workers, {calls} calls, max {rate}/s] texts={len(fake.messages)} "
        f"requests={len(arrivals)} duplicates={len(duplicates)} per worker={per_worker} "
        f"time to last text={done - started:.2f}s "
        f"send span={arrivals[-1] - arrivals[0]:.2f}s min gap={min(spacing):.4f}s "
        f"max gap={max(spacing):.4f}s max in any 1 s={most_in_window(arrivals, 1.0)}"
    )
    assert duplicates == {}
    assert set(sent_cases) == set(cases)  # none lost
    assert len(fake.messages) == calls == len(arrivals)
    assert max(per_phone.values()) == 1
    assert sum(per_worker) == calls
    assert sorted(confirmations(workers.database_url)) == [("sent", 1)] * calls
    for log in workers.logs():
        assert "555-00" not in log and "55500" not in log  # phones are masked in logs
    return arrivals


def test_three_worker_processes_send_every_confirmation_exactly_once(workers: Workers) -> None:
    run_burst(workers, calls=60, processes=3, rate=50, warm=False)
    per_worker = [log.count("action=sms_sent") for log in workers.logs()]
    assert sum(1 for n in per_worker if n) >= 2, per_worker  # they really did share


def test_rate_limit_holds_across_worker_processes(workers: Workers) -> None:
    rate = 10.0
    arrivals = run_burst(workers, calls=20, processes=3, rate=rate, warm=True)
    per_worker = [log.count("action=sms_sent") for log in workers.logs()]
    figures = f"per worker {per_worker}, gaps {[round(g, 3) for g in gaps(arrivals)]}"
    assert sum(1 for n in per_worker if n) >= 2, figures
    # Slots are 1/rate apart across the processes and a text leaves at most half an
    # interval after its slot: never more than rate + 1 in any second (3 processes each
    # limited on its own would send 25 texts in well under a second).
    assert most_in_window(arrivals, 1.0) <= rate + 1, figures
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) / rate - 0.5 / rate, figures
