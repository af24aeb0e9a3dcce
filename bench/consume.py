"""Events per second through NATS JetStream into SQLite and PostgreSQL.

Publishes a simulated feed (service/cad_feed.py) to a private stream on the machine's
NATS server, then times ``callerconnect consume`` processes draining it into a fresh
database: a temporary SQLite file, and a new database on 127.0.0.1:5432 (dropped after).

    .venv/bin/python bench/consume.py --events 5000 --consumers 1
    .venv/bin/python bench/consume.py --events 5000 --consumers 2 --database postgresql
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from tests.support.nats_feed import NATS_URL, PrivateFeed

from callerconnect.adapters.db.engine import Database
from callerconnect.entrypoints.simulate import bundled_call_types
from callerconnect.service.cad_feed import FeedPlan, generate
from callerconnect.service.schema import ensure_schema

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "bench-secret-key-" + "x" * 32


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            _migrate(url)
            yield url
        return
    name = f"callerconnect_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        _migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str) -> None:
    db = Database.from_url(url)
    ensure_schema(db)
    db.dispose()


def run(kind: str, events: int, consumers: int) -> None:
    token = secrets.token_hex(6)
    feed = PrivateFeed(NATS_URL, f"CADBENCH_{token}", f"bench_{token}", f"cadbench{token}")
    plan = FeedPlan(datetime.now(UTC) - timedelta(days=30), days=30, seed=1)
    payloads = [e.payload for e in islice(generate(plan, bundled_call_types()), events)]
    unique = len({p["event_id"] for p in payloads})
    try:
        feed.publish((feed.subject(), json.dumps(p).encode(), p["event_id"]) for p in payloads)
        with database(kind) as url, tempfile.TemporaryDirectory() as logs:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")},
                **feed.env(),
                "CALLERCONNECT_DATABASE_URL": url,
                "CALLERCONNECT_SECRET_KEY": SECRET,
                "CALLERCONNECT_LOG_LEVEL": "WARNING",
            }
            began = time.monotonic()
            processes = [
                subprocess.Popen(
                    [sys.executable, "-m", "callerconnect.entrypoints.cli", "consume"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(Path(logs) / f"consume-{n}.log", "w"),  # noqa: SIM115
                )
                for n in range(consumers)
            ]
            while feed.consumer_state() != (0, 0):
                time.sleep(0.1)
            took = time.monotonic() - began
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    finally:
        feed.delete()
    print(
        f"{kind:<10} consumers={consumers} messages={unique} seconds={took:.1f} "
        f"events/s={unique / took:.0f} (includes process start-up)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--consumers", type=int, default=1)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    for kind in kinds:
        run(kind, args.events, args.consumers)


if __name__ == "__main__":
    main()
