"""What parsing one native CAD event costs: CPU microseconds per event, by part.

Parses a simulated day's events (the intake bench's feed) with ``parse_event`` again and
again and prints the process's CPU time per event: the whole parse with the schema
checked by the reference validator alone (as before the compiled one) and with the
compiled validator first (as the intake runs), then the schema check on its own both ways.
CPU time, not wall time: the neighbours' load barely moves it.

    .venv/bin/python bench/parse_cost.py
    .venv/bin/python bench/parse_cost.py --calls 600 --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callerconnect.adapters.cad import native
from callerconnect.adapters.cad.native import EventRejected, parse_event
from callerconnect.adapters.cad.schema_check import reference_errors, schema_errors
from callerconnect.service.simulation import simulated_day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the feed; best kept")
    args = parser.parse_args()
    start = datetime.now(UTC) - timedelta(hours=22)
    feed = [e.payload for e in simulated_day(start, calls=args.calls, seed=7)]

    def parse_all() -> None:
        for payload in feed:
            with contextlib.suppress(EventRejected):  # none in the simulated feed
                parse_event(payload)

    def check_all(check: Callable[[Any], object]) -> Callable[[], None]:
        def run() -> None:
            for payload in feed:
                check(payload)

        return run

    with mock.patch.object(native, "schema_errors", reference_errors):
        reference_parse = per_event(parse_all, len(feed), args.rounds)
    compiled_parse = per_event(parse_all, len(feed), args.rounds)
    reference_check = per_event(check_all(reference_errors), len(feed), args.rounds)
    compiled_check = per_event(check_all(schema_errors), len(feed), args.rounds)
    print(f"{len(feed)} events, best of {args.rounds} passes, CPU µs per event")
    print(f"parse_event, schema by the reference alone: {reference_parse:7.1f}")
    print(f"parse_event, compiled validator first:      {compiled_parse:7.1f}")
    print(f"schema check alone, reference:              {reference_check:7.1f}")
    print(f"schema check alone, compiled first:         {compiled_check:7.1f}")
    print(f"parse_event, all but the schema check:      {compiled_parse - compiled_check:7.1f}")


def per_event(run: Callable[[], None], events: int, rounds: int) -> float:
    """The least CPU time of ``rounds`` runs, in microseconds per event."""
    run()  # warm: compiled patterns, caches, the validators themselves
    best = float("inf")
    for _ in range(rounds):
        cpu = time.process_time()
        run()
        best = min(best, time.process_time() - cpu)
    return best / events * 1e6


if __name__ == "__main__":
    main()
