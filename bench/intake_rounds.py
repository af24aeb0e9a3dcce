"""Intake over HTTP, the same load in rounds against one node: does a round cost more
than the one before as the tables grow?

``bench/run.py`` times each intake figure once, on fresh tables. A cost that grows with
the tables (a plan that reads every call of the agency, say) shows only in later rounds:
here each round posts a new simulated day's events to the same two ``serve`` processes,
and prints events a second, ``serve``'s CPU an event, the load's own (this process: it
shares the cores, so it must stay small beside ``serve``) and, on PostgreSQL, the
server's own CPU an event (every ``postgres`` process on this machine: run it on a quiet
one).

    .venv/bin/python bench/intake_rounds.py postgresql batch 2
    .venv/bin/python bench/intake_rounds.py postgresql single 8 --rounds 3
    .venv/bin/python bench/intake_rounds.py postgresql batch 2 --log-slower-than 3
    .venv/bin/python bench/intake_rounds.py postgresql single 8 --serve 1

``--serve N`` runs N ``serve`` processes instead of ``bench/run.py``'s two (the clients
are spread over them, so it sets how many requests each process can fold together).

``--log-slower-than MS`` has PostgreSQL log each statement of the bench's database that
takes longer (``log_min_duration_statement``; the server's log, e.g.
/var/log/postgresql/postgresql-15-main.log).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import (
    PG_ADMIN,
    batch_load,
    cpu_seconds,
    database,
    node,
    post_all,
    single_load,
)
from sqlalchemy import create_engine, text


def postgres_cpu_seconds() -> float:
    """CPU time used so far by every PostgreSQL process on this machine."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(entry.name))
        except OSError:
            continue
    return total


def log_slow_statements(url: str, milliseconds: int) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as connection:
        connection.execute(
            text(f'ALTER DATABASE "{name}" SET log_min_duration_statement = {int(milliseconds)}')
        )
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["sqlite", "postgresql"])
    parser.add_argument("mode", choices=["batch", "single"])
    parser.add_argument("clients", type=int)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=1000, help="incidents a round")
    parser.add_argument("--log-slower-than", type=int, metavar="MS")
    parser.add_argument("--serve", type=int, default=2, help="serve processes (default 2)")
    args = parser.parse_args()
    with database(args.kind) as url:
        if args.log_slower_than is not None and args.kind == "postgresql":
            log_slow_statements(url, args.log_slower_than)
        with node(url) as running:
            running.serve(args.serve)
            for round_number in range(args.rounds):
                prefix = f"R{round_number}-{args.mode}-{args.clients}"
                load = batch_load if args.mode == "batch" else single_load
                bodies = load(prefix, args.calls, args.clients)
                server_before = postgres_cpu_seconds()
                serve_before = running.cpu_seconds("serve")
                load_before = time.process_time()
                events, elapsed = post_all(running.urls, bodies)
                load_ms = 1000 * (time.process_time() - load_before) / events
                serve_ms = 1000 * (running.cpu_seconds("serve") - serve_before) / events
                server_ms = 1000 * (postgres_cpu_seconds() - server_before) / events
                line = (
                    f"round {round_number}: {events} events in {elapsed:.2f} s = "
                    f"{events / elapsed:,.0f} events/s; serve's CPU {serve_ms:.3f} ms an event"
                    f"; the load's {load_ms:.3f} ms"
                )
                if args.kind == "postgresql":
                    line += f"; PostgreSQL's CPU {server_ms:.3f} ms an event"
                print(line, flush=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
