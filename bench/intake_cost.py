"""What an event costs the intake: CPU seconds and SQL statements, batched and alone.

Wall-clock rates on a shared machine say more about the neighbours than about the code;
the process's own CPU time and the statements it sends barely move with the load. This
folds a simulated day through ``Intake.submit_many`` (batches of 500) and then
``Intake.submit`` (one event at a time) in one process and prints, for each, events per
CPU-second, events per second of wall time and statements per event.

    .venv/bin/python bench/intake_cost.py                 # SQLite in a temp folder
    .venv/bin/python bench/intake_cost.py --postgres      # a fresh database on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.intake_rate import database
from sqlalchemy import event

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import build_application
from callerconnect.config import load_settings
from callerconnect.service.schema import ensure_schema
from callerconnect.service.simulation import simulated_day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    url, drop = database(args.postgres)
    environ = {
        "CALLERCONNECT_DATABASE_URL": url,
        "CALLERCONNECT_SECRET_KEY": "bench-secret-key-0123456789",
        "CALLERCONNECT_INTAKE__API_KEYS": '["bench-intake-key-0123456789"]',
        "CALLERCONNECT_LOG_LEVEL": "WARNING",
    }
    sink = open(os.devnull, "w")  # noqa: SIM115 (closed in the finally below)
    application = build_application(load_settings(environ=environ), provider=ConsoleProvider(sink))
    logging.getLogger("callerconnect").setLevel(logging.ERROR)  # merge holds warn
    try:
        ensure_schema(application.db)
        statements = [0]

        def count(*_: object) -> None:
            statements[0] += 1

        event.listen(application.db.engine, "before_cursor_execute", count)
        start = datetime.now(UTC) - timedelta(hours=22)
        feed = [e.payload for e in simulated_day(start, calls=args.calls, seed=7)]
        cut = len(feed) * 4 // 5
        batched, alone = feed[:cut], feed[cut:]
        intake = application.intake

        def in_batches() -> None:
            for offset in range(0, len(batched), 500):
                intake.submit_many(batched[offset : offset + 500], "bench")

        def one_by_one() -> None:
            for payload in alone:
                intake.submit(payload, "bench")

        backend = "postgresql" if args.postgres else "sqlite"
        for name, run, events in (
            ("batches of 500", in_batches, len(batched)),
            ("one event a call", one_by_one, len(alone)),
        ):
            cpu, wall, sent = measure(run, statements)
            print(
                f"{backend} {name}: {events / cpu:,.0f} events per CPU-second, "
                f"{events / wall:,.0f} events/s wall, {sent / events:.2f} statements an event "
                f"({events} events)"
            )
        print(f"load average {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs")
    finally:
        application.close()
        sink.close()
        if drop:
            drop()


def measure(run: Callable[[], None], statements: list[int]) -> tuple[float, float, int]:
    cpu, wall, sent = time.process_time(), time.perf_counter(), statements[0]
    run()
    return time.process_time() - cpu, time.perf_counter() - wall, statements[0] - sent


if __name__ == "__main__":
    main()
