"""Intake throughput: CAD events folded per second, through the service and over HTTP.

Ottawa's scale is ~274,000 priority 3-4 calls a year (~750 a day, about 5 events each);
a blizzard day is several times that. This prints how many events a second one process
folds (validate, store, lock the call, decide, write outbox rows), so the margin is known.

    .venv/bin/python bench/intake_rate.py                 # SQLite in a temp folder
    .venv/bin/python bench/intake_rate.py --postgres      # a fresh database on 127.0.0.1:5432
    .venv/bin/python bench/intake_rate.py --calls 2000 --http
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text

from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import build_application
from callerconnect.config import load_settings
from callerconnect.service.schema import ensure_schema
from callerconnect.service.simulation import simulated_day

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEY = "bench-intake-key-0123456789"


def database(postgres: bool) -> tuple[str, Any]:
    if not postgres:
        folder = tempfile.mkdtemp(prefix="callerconnect-bench-")
        return f"sqlite:///{folder}/bench.db", None
    name = f"callerconnect_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--http", action="store_true", help="also post batches over HTTP")
    args = parser.parse_args()

    url, drop = database(args.postgres)
    environ = {
        "CALLERCONNECT_DATABASE_URL": url,
        "CALLERCONNECT_SECRET_KEY": "bench-secret-key-0123456789",
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{KEY}"]',
    }
    sink = open(os.devnull, "w")  # noqa: SIM115 (closed in the finally below)
    application = build_application(load_settings(environ=environ), provider=ConsoleProvider(sink))
    try:
        ensure_schema(application.db)
        start = datetime.now(UTC) - timedelta(hours=24)
        feed = [e.payload for e in simulated_day(start, calls=args.calls, seed=7)]
        latencies: list[float] = []
        began = time.perf_counter()
        for payload in feed:
            t = time.perf_counter()
            application.intake.submit(payload, "bench")
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - began
        backend = "postgresql" if args.postgres else "sqlite"
        print(f"backend={backend} calls={args.calls} events={len(feed)}")
        print(f"service: {len(feed) / elapsed:,.0f} events/s in one process ({elapsed:.2f} s)")
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"per event: p50={cuts[49] * 1000:.2f} ms p95={cuts[94] * 1000:.2f} ms "
            f"p99={cuts[98] * 1000:.2f} ms"
        )
        busiest_hour = 300 / (len(feed) / elapsed)
        print(f"Ottawa's busiest hour (~60 calls, ~300 events) takes {busiest_hour:.2f} s")
        if args.http:
            bench_http(application, start, args.calls)
    finally:
        application.close()
        sink.close()
        if drop:
            drop()


def bench_http(application: Any, start: datetime, calls: int) -> None:
    import httpx

    from callerconnect.web.app import create_app

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.live_server import LiveServer

    feed = [e.payload for e in simulated_day(start + timedelta(days=1), calls=calls, seed=8)]
    for payload in feed:
        payload["event_id"] = "http-" + payload["event_id"]
        payload["incident_id"] = "HTTP-" + payload["incident_id"]
    with LiveServer(create_app(application)) as server, httpx.Client() as client:
        began = time.perf_counter()
        for offset in range(0, len(feed), 100):
            response = client.post(
                f"{server.url}/api/v1/cad/events",
                json={"events": feed[offset : offset + 100]},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=60,
            )
            response.raise_for_status()
        elapsed = time.perf_counter() - began
    print(f"http (batches of 100): {len(feed) / elapsed:,.0f} events/s ({elapsed:.2f} s)")


if __name__ == "__main__":
    main()
