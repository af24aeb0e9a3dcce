"""What one ``GET /metrics`` scrape costs, computed from the database (web/metrics.py).

Fills a database with simulated days of calls (intake, then the worker on a virtual
clock, so there are texts in every status and their status changes), then times
scrapes of the collector. Ottawa's volume is ~750 texted-priority calls a day.

    .venv/bin/python bench/metrics_scrape.py                     # SQLite, 3 days of 750 calls
    .venv/bin/python bench/metrics_scrape.py --postgres --days 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.intake_rate import KEY, database

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import build_application
from callerconnect.clock import VirtualClock
from callerconnect.config import load_settings
from callerconnect.entrypoints.simulation import replay, simulated_day
from callerconnect.web.metrics import metrics_registry, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=750, help="calls a day")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    url, drop = database(args.postgres)
    environ = {
        "CALLERCONNECT_DATABASE_URL": url,
        "CALLERCONNECT_SECRET_KEY": "bench-secret-key-0123456789",
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{KEY}"]',
        "CALLERCONNECT_SMS__MAX_PER_SECOND": "1000",
    }
    sink = open(os.devnull, "w")  # noqa: SIM115 (closed in the finally below)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=args.days + 1)
    clock = VirtualClock(start)
    application = build_application(
        load_settings(environ=environ), clock=clock, provider=ConsoleProvider(sink)
    )
    try:
        began = time.perf_counter()
        for day in range(args.days):
            feed = simulated_day(start + timedelta(days=day), calls=args.calls, seed=day)
            replay(
                feed,
                clock,
                submit=lambda payload: application.intake.submit(payload, "bench"),
                run_due=application.dispatcher.run_due,
                next_due_at=application.dispatcher.next_due_at,
                until=start + timedelta(days=day + 1),
            )
        filled = time.perf_counter() - began
        registry = metrics_registry(application)
        body = render(registry)  # warm
        timings = []
        for _ in range(args.scrapes):
            t = time.perf_counter()
            body = render(registry)
            timings.append(time.perf_counter() - t)
        backend = "postgresql" if args.postgres else "sqlite"
        samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        print(
            f"backend={backend} calls={args.calls * args.days} ({args.days} days) "
            f"filled in {filled:.1f} s"
        )
        print(
            f"scrape: median {statistics.median(timings) * 1000:.1f} ms, "
            f"max {max(timings) * 1000:.1f} ms over {args.scrapes}; {samples} samples, "
            f"{len(body):,} bytes"
        )
    finally:
        application.close()
        sink.close()
        if drop:
            drop()


if __name__ == "__main__":
    main()
