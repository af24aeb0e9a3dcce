"""How long the read side takes over a year of Ottawa's calls (274,075 priority-3 and -4
calls in 2024, DESIGN.md), on SQLite and PostgreSQL.

The rows are written straight into the tables (a year through the intake would take
hours and measure the intake): calls spread over 2025 in Ottawa local time, six districts,
priorities 2-4, a confirmation for most eligible calls, delay notices, surveys, openings,
responses with five scale answers, and STOP replies. Then each query runs and its time
is printed. Each run gets a fresh database, dropped afterwards.

    .venv/bin/python bench/figures_year.py                 # both databases, 274,075 calls
    .venv/bin/python bench/figures_year.py --calls 50000 --database sqlite
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, text
from sqlalchemy.pool import NullPool

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import (
    CallRow,
    InboundMessageRow,
    OutboxRow,
    SurveyAnswerRow,
    SurveyInvitationRow,
    SurveyResponseRow,
)
from callerconnect.queries.figures import SCALE_QUESTIONS, figures
from callerconnect.queries.filters import Filters
from callerconnect.queries.not_texted import not_texted_reasons
from callerconnect.service.schema import ensure_schema

PG_ADMIN = os.environ.get(
    "CALLERCONNECT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
OTTAWA = ZoneInfo("America/Toronto")
DISTRICTS = ("Central", "East", "West", "South", "Rural East", "Rural West")
YEAR = Filters("ottawa", date(2025, 1, 1), date(2025, 12, 31))
BATCH = 20_000


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="callerconnect-bench-") as folder:
        yield f"sqlite:///{folder}/bench.db"


@contextmanager
def postgresql_database() -> Iterator[str]:
    name = f"callerconnect_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def year_of_rows(calls: int, seed: int) -> dict[Any, list[dict[str, Any]]]:
    """Rows for ``calls`` calls of agency ``ottawa`` over 2025 (ids given here)."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=OTTAWA).astimezone(UTC)
    span = (datetime(2026, 1, 1, tzinfo=OTTAWA).astimezone(UTC) - start).total_seconds()
    rows: dict[Any, list[dict[str, Any]]] = {
        table: []
        for table in (
            CallRow,
            OutboxRow,
            SurveyInvitationRow,
            SurveyResponseRow,
            SurveyAnswerRow,
            InboundMessageRow,
        )
    }
    texts = 0
    for call_id in range(1, calls + 1):
        at = start + timedelta(seconds=rng.random() * span)
        priority = rng.choices((2, 3, 4), weights=(10, 62, 211))[0]
        eligible = priority in (3, 4) and rng.random() < 0.7
        phone_hash = secrets.token_hex(8)
        rows[CallRow].append(
            {
                "id": call_id,
                "agency_id": "ottawa",
                "incident_id": f"I-{call_id}",
                "priority": priority,
                "call_type_code": rng.choice(("THEFT", "MVC", "BE", "MISCHIEF")),
                "district": rng.choice(DISTRICTS),
                "phone_hash": phone_hash,
                "unit_id": f"U{rng.randrange(80)}" if rng.random() < 0.6 else None,
                "first_fact_at": at,
                "received_at": at,
                "eligible_at": at if eligible else None,
                "reason": "eligible" if eligible else "ineligible:priority",
                "created_at": at,
                "updated_at": at,
            }
        )
        if not eligible:
            continue
        kinds = ["confirmation"]
        if rng.random() < 0.2:
            kinds.append("delay_notice")
        if rng.random() < 0.6:
            kinds.append("survey_invitation")
        for kind in kinds:
            texts += 1
            sent = at + timedelta(seconds=rng.uniform(5, 90))
            rows[OutboxRow].append(
                {
                    "id": texts,
                    "agency_id": "ottawa",
                    "dedupe_key": f"ottawa:{call_id}:{kind}:0",
                    "call_id": call_id,
                    "kind": kind,
                    "status": rng.choices(("delivered", "sent", "failed"), (90, 8, 2))[0],
                    "send_rank": 0,
                    "not_before": sent,
                    "expires_at": sent + timedelta(hours=4),
                    "phone_hash": phone_hash,
                    "created_at": at,
                    "updated_at": sent,
                    "sent_at": sent,
                }
            )
            if kind == "survey_invitation":
                opened = rng.random() < 0.4
                rows[SurveyInvitationRow].append(
                    {
                        "id": texts,
                        "token_hash": secrets.token_hex(32),
                        "outbox_id": texts,
                        "call_id": call_id,
                        "created_at": sent,
                        "expires_at": sent + timedelta(days=7),
                        "opened_at": sent + timedelta(hours=1) if opened else None,
                    }
                )
                if opened and rng.random() < 0.6:
                    rows[SurveyResponseRow].append(
                        {
                            "id": call_id,
                            "agency_id": "ottawa",
                            "call_id": call_id,
                            "invitation_id": texts,
                            "channel": "link",
                            "survey_version": "1",
                            "language": "en",
                            "answered_at": sent + timedelta(hours=1),
                        }
                    )
                    rows[SurveyAnswerRow].extend(
                        {"response_id": call_id, "question_id": q, "score": rng.randint(1, 5)}
                        for q in SCALE_QUESTIONS
                    )
        if rng.random() < 0.01:
            rows[InboundMessageRow].append(
                {
                    "agency_id": "ottawa",
                    "provider": "console",
                    "provider_message_id": f"in-{call_id}",
                    "phone_masked": "+1613***0000",
                    "phone_hash": phone_hash,
                    "body_encrypted": "-",
                    "classification": "opt_out",
                    "received_at": at + timedelta(minutes=5),
                }
            )
    return rows


def load(db: Database, rows: dict[Any, list[dict[str, Any]]]) -> None:
    for table, values in rows.items():
        for offset in range(0, len(values), BATCH):
            with db.engine.begin() as connection:
                connection.execute(insert(table), values[offset : offset + BATCH])
    if db.is_postgresql:
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def timed(label: str, run: Callable[[], Any]) -> Any:
    began = time.perf_counter()
    result = run()
    print(f"  {label:<46} {time.perf_counter() - began:7.2f} s")
    return result


def bench(url: str, rows: dict[Any, list[dict[str, Any]]]) -> None:
    db = Database.from_url(url)
    try:
        ensure_schema(db)
        timed("load rows", lambda: load(db, rows))
        (total,) = timed("totals (group_by=())", lambda: figures(db, YEAR, OTTAWA, group_by=()))
        grouped = timed(
            "month x district x priority",
            lambda: figures(db, YEAR, OTTAWA, ("month", "district", "priority")),
        )
        timed("week", lambda: figures(db, YEAR, OTTAWA, ("week",)))
        timed("day x district", lambda: figures(db, YEAR, OTTAWA, ("day", "district")))
        timed("hour", lambda: figures(db, YEAR, OTTAWA, ("hour",)))
        timed("not texted by reason", lambda: not_texted_reasons(db, YEAR, OTTAWA))
        print(
            f"  calls {total.calls_received:,}, texts sent {total.texts_sent:,}, responses "
            f"{total.surveys_completed:,}, groups month x district x priority {len(grouped)}, "
            f"median to confirmation {total.median_seconds_to_confirmation:.1f} s"
        )
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=274_075)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    rows = year_of_rows(args.calls, args.seed)
    print(f"{args.calls:,} calls, {len(rows[OutboxRow]):,} texts over 2025 (Ottawa time)")
    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    for name in databases:
        print(name)
        context = sqlite_database() if name == "sqlite" else postgresql_database()
        with context as url:
            bench(url, rows)


if __name__ == "__main__":
    main()
