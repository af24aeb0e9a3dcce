"""Crash and fault runs at any size: real worker / serve processes on PostgreSQL.

The bounded versions run in the test suite (tests/integration/test_crashes_postgres.py,
tests/e2e/test_serve_crash.py, tests/integration/test_faults_postgres.py); this runs
the same code with the sizes you give and prints the figures. Each run gets a fresh
database on 127.0.0.1:5432, dropped afterwards; process logs stay in a temp folder.

    .venv/bin/python bench/crash_faults.py workers --calls 1000 --kills 40
    .venv/bin/python bench/crash_faults.py serve --batches 60 --kills 15
    .venv/bin/python bench/crash_faults.py faults --calls 300 --outage 60
    .venv/bin/python bench/crash_faults.py faults --calls 300 --restart-postgres
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from tests.support.crashes import (
    BacklogRun,
    KillingTwilio,
    run_backlog,
    run_database_restart,
    run_intake_crashes,
    run_worker_crashes,
)
from tests.support.fake_twilio import Fault
from tests.support.private_postgresql import private_postgresql

from callerconnect.adapters.db.engine import Database
from callerconnect.service.schema import ensure_schema

PG_ADMIN = os.environ.get(
    "CALLERCONNECT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def fresh_database() -> tuple[str, Callable[[], None]]:
    name = f"callerconnect_crash_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    db = Database.from_url(url)
    ensure_schema(db)
    db.dispose()

    def drop() -> None:
        for _ in range(30):  # after a restart the server may still be starting
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except Exception:
                time.sleep(1)
        admin.dispose()

    return url, drop


def in_fresh_database(run: Callable[[str, Path], Any], duplicates_expected: int = 0) -> bool:
    """Run one scenario; print its figures and any broken promise. True if none.
    ``duplicates_expected``: a fault run's duplicates that are the documented price."""
    url, drop = fresh_database()
    logs = Path(tempfile.mkdtemp(prefix="callerconnect-crash-"))
    try:
        result = run(url, logs)
    finally:
        drop()
    print(result.summary(), flush=True)
    if isinstance(result, BacklogRun):
        problems = result.problems(duplicates_allowed=duplicates_expected)
    else:
        problems = result.problems()
    for problem in problems:
        print(f"  PROBLEM {problem}")
    print(f"  (process logs in {logs})")
    return not problems


def restart_on_private_server(calls: int, logs: Path) -> BacklogRun:
    """The restart run, on a PostgreSQL server of its own (the machine's is shared)."""
    with private_postgresql() as server:
        db = Database.from_url(server.url)
        ensure_schema(db)
        db.dispose()
        return run_database_restart(server.url, logs, calls=calls, restart=server.restart)


def for_seconds(seconds: float, *faults: Fault) -> Callable[[KillingTwilio], float]:
    def fault(fake: KillingTwilio) -> float:
        for n, kind in enumerate(faults, start=1):
            fake.fail_for(seconds * n / len(faults), kind)
        time.sleep(seconds)
        return seconds

    return fault


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["workers", "serve", "faults"])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs (half in the window)")
    parser.add_argument("--rate", type=float, default=20.0, help="sms.max_per_second")
    parser.add_argument("--batches", type=int, default=40, help="serve: batches of 25 events")
    parser.add_argument("--outage", type=float, default=20.0, help="faults: seconds of 5xx")
    parser.add_argument("--throttle", type=float, default=10.0, help="faults: seconds of 429")
    parser.add_argument("--slow", type=int, default=10, help="faults: answers past the timeout")
    parser.add_argument(
        "--restart-postgres",
        action="store_true",
        help="faults: also restart PostgreSQL mid-run (a private server, started for it)",
    )
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    ok = True
    if args.scenario == "workers":
        ok = in_fresh_database(
            lambda url, logs: run_worker_crashes(
                url,
                logs,
                calls=args.calls,
                workers=args.workers,
                random_kills=args.kills - args.kills // 2,
                window_kills=args.kills // 2,
                rate=args.rate,
                seed=args.seed,
                drain_timeout=max(120.0, 3 * args.calls / args.rate),
            )
        )
    elif args.scenario == "serve":
        ok = in_fresh_database(
            lambda url, logs: run_intake_crashes(
                url, logs, batches=args.batches, size=25, kills=args.kills, seed=args.seed
            )
        )
    else:
        timeout = max(120.0, 3 * args.calls / args.rate + args.outage + args.throttle)
        common = {"calls": args.calls, "workers": 2, "rate": args.rate}
        start = max(1, args.calls // 10)

        def slow(fake: KillingTwilio) -> float:
            fake.fail_next(args.slow, Fault.SLOW, delay=1.5)
            time.sleep(1.5)
            return 1.5

        slow_env = {"CALLERCONNECT_SMS__TWILIO__TIMEOUT": "1s"}
        runs: list[tuple[Callable[[str, Path], Any], int]] = [
            (
                lambda url, logs: run_backlog(
                    url,
                    logs,
                    name=f"provider down {args.outage:g}s",
                    fault=for_seconds(args.outage, Fault.HTTP_500, Fault.HTTP_503),
                    start_fault_after=start,
                    drain_timeout=timeout,
                    **common,
                ),
                0,
            ),
            (
                lambda url, logs: run_backlog(
                    url,
                    logs,
                    name=f"throttled {args.throttle:g}s",
                    fault=for_seconds(args.throttle, Fault.THROTTLE),
                    start_fault_after=start,
                    drain_timeout=timeout,
                    **common,
                ),
                0,
            ),
            (
                lambda url, logs: run_backlog(
                    url,
                    logs,
                    name=f"slow x{args.slow}, no callbacks",
                    fault=slow,
                    start_fault_after=start,
                    env=slow_env,
                    drain_timeout=timeout,
                    **common,
                ),
                args.slow,  # each late acceptance is sent again: the measured price
            ),
            (
                lambda url, logs: run_backlog(
                    url,
                    logs,
                    name=f"slow x{args.slow}, status callbacks",
                    fault=slow,
                    start_fault_after=start,
                    callbacks=True,
                    env={**slow_env, "CALLERCONNECT_WORKER__RETRY_BASE": "3s"},
                    drain_timeout=timeout,
                    **common,
                ),
                0,
            ),
        ]
        if args.restart_postgres:
            runs.append(
                (
                    lambda _url, logs: restart_on_private_server(args.calls, logs),
                    2,  # at most one per worker whose status write outlived its retries
                )
            )
        for run, expected in runs:
            ok = in_fresh_database(run, expected) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
