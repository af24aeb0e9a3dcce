"""Dashboard login timing: a wrong password for a known account, an unknown address and
a disabled account should take about as long (an unknown address is checked against a
dummy argon2id hash), so the time of an answer does not tell which addresses have
accounts. Prints the median and 90th percentile of each, with argon2-cffi's default
(production) parameters, on SQLite in a temporary folder.

    .venv/bin/python bench/login_timing.py [--tries 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callerconnect.adapters.db.engine import Database
from callerconnect.clock import SystemClock
from callerconnect.service.accounts import Accounts, LoginStatus
from callerconnect.service.schema import ensure_schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=40)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="callerconnect-bench-")
    db = Database.from_url(f"sqlite:///{folder}/bench.db")
    ensure_schema(db)
    accounts = Accounts(
        db,
        SystemClock(),
        default_agency="default",
        idle=timedelta(minutes=30),
        max_age=timedelta(hours=12),
    )
    accounts.add("known@example.org", "viewer", "the right password")
    accounts.add("gone@example.org", "viewer", "the right password")
    accounts.disable("gone@example.org")
    cases = {
        "wrong password, known address": ("known@example.org", "a wrong password"),
        "unknown address": ("nobody@example.org", "a wrong password"),
        "disabled account, right password": ("gone@example.org", "the right password"),
        "right password (signs in)": ("known@example.org", "the right password"),
    }
    print(f"{'case':<34} {'median ms':>10} {'p90 ms':>8}  ({args.tries} tries each)")
    for name, (email, password) in cases.items():
        times = []
        for n in range(args.tries):
            # an unknown address is a new one each time, as an attacker's guesses would be
            address = f"nobody{n}@example.org" if "unknown" in name else email
            started = time.perf_counter()
            outcome = accounts.login(address, password)
            times.append((time.perf_counter() - started) * 1000)
            if outcome.status is LoginStatus.LOCKED:
                # five failures lock the address; a new password clears the count, so the
                # next tries time the real check again (the locked answer is timed too)
                accounts.set_password(email, "the right password")
        p90 = statistics.quantiles(times, n=10, method="inclusive")[8]
        print(f"{name:<34} {statistics.median(times):>10.1f} {p90:>8.1f}")
    db.dispose()


if __name__ == "__main__":
    main()
