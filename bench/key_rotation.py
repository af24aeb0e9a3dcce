"""Key rotation: stored values re-encrypted per second by ``keys rotate``, and checked
per second by ``keys check``.

A year in Ottawa stores ~1.4 M CAD events and ~274,000 calls, each with an encrypted
value; this shows how long rotating a year of data takes. The data comes from the
simulated feed through the real intake, then the CAD events are copied (same encrypted
payloads, new ids) until the table holds ``--events`` rows.

    .venv/bin/python bench/key_rotation.py                       # SQLite in a temp folder
    .venv/bin/python bench/key_rotation.py --postgres --events 200000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.intake_rate import database
from sqlalchemy import func, select, text

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.tables import CadEventRow
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import build_application
from callerconnect.config import load_settings
from callerconnect.service.keys import check_keys, rotate_keys
from callerconnect.service.simulation import simulated_day

OLD_SECRET = "bench-old-secret-key-0123456789"
NEW_SECRET = "bench-new-secret-key-9876543210"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls through the intake")
    parser.add_argument("--events", type=int, default=50_000, help="CAD events to rotate")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    url, drop = database(args.postgres)
    environ = {
        "CALLERCONNECT_DATABASE_URL": url,
        "CALLERCONNECT_SECRET_KEY": OLD_SECRET,
        "CALLERCONNECT_INTAKE__API_KEYS": '["bench-intake-key-0123456789"]',
    }
    sink = open(os.devnull, "w")  # noqa: SIM115 (closed in the finally below)
    application = build_application(load_settings(environ=environ), provider=ConsoleProvider(sink))
    try:
        start = datetime.now(UTC) - timedelta(days=2)
        for event in simulated_day(start, calls=args.calls, seed=7):
            application.intake.submit(event.payload, "bench")
        fill_events(application.db, args.events)
        with application.db.transaction() as session:
            events = session.scalar(select(func.count()).select_from(CadEventRow))
        print(
            f"{'sqlite' if not args.postgres else 'postgresql'}: {events} CAD events, "
            f"{args.calls} calls, batches of {args.batch_size}"
        )

        vault = Vault(NEW_SECRET, [OLD_SECRET])
        began = time.perf_counter()
        report = rotate_keys(application.db, vault, batch_size=args.batch_size)
        rotated = time.perf_counter() - began
        began = time.perf_counter()
        check = check_keys(application.db, Vault(NEW_SECRET), batch_size=args.batch_size)
        checked = time.perf_counter() - began
        for column in report.columns:
            print(f"  {column.column:<34} rotated {column.rotated:>8}  old after {column.old}")
        print(
            f"rotate: {report.rotated} values in {rotated:.1f} s "
            f"({report.rotated / rotated:,.0f} values/s, including the final check)"
        )
        print(
            f"check:  {check.total} values in {checked:.1f} s "
            f"({check.total / checked:,.0f} values/s); old {check.old}, "
            f"unreadable {check.unreadable}"
        )
    finally:
        application.close()
        sink.close()
        if drop is not None:
            drop()


def fill_events(db: object, target: int) -> None:
    """Copy the stored events (payloads as they are) until ``target`` rows exist."""
    from callerconnect.adapters.db.engine import Database

    assert isinstance(db, Database)
    columns = "agency_id, incident_id, type, occurred_at, received_at, source, payload_encrypted"
    copy = 0
    while True:
        with db.transaction() as session:
            count = session.scalar(select(func.count()).select_from(CadEventRow)) or 0
            if count >= target:
                return
            copy += 1
            session.execute(
                text(
                    f"INSERT INTO cad_events (event_id, {columns}) "
                    f"SELECT event_id || '-copy{copy}', {columns} FROM cad_events "
                    f"WHERE event_id NOT LIKE '%-copy%' LIMIT :n"
                ),
                {"n": target - count},
            )


if __name__ == "__main__":
    main()
