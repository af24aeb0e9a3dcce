"""The intake's read of several incidents' calls on PostgreSQL (``call_batch``) looks
each incident up in the (agency, incident) index whatever the table's statistics say.

A young table (a new deployment, a history being loaded: never analysed, or analysed
when it held something else) misleads the planner. With a plain join it read every call
of the agency and kept the few asked for: 40-80 ms a batch, growing with the table.
Here the statistics are made to mislead on purpose: analysed while each call had an
agency of its own, then thousands of calls of one agency added."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from sqlalchemy.pool import NullPool

from callerconnect.adapters.db.repositories.call_batch import _listed_calls_with_texts
from callerconnect.adapters.db.tables import CallRow

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def calls(agency: str | None, count: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "agency_id": agency or f"{prefix}-agency-{n}",
            "incident_id": f"{prefix}-{n:05d}",
            "reason": "eligible",
            "created_at": NOW,
            "updated_at": NOW,
        }
        for n in range(count)
    ]


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in nodes(child))]


def test_each_incident_is_one_index_look_up_even_when_the_statistics_mislead(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(insert(CallRow.__table__), calls(None, 3000, "OTHER"))
            connection.execute(text("ANALYZE calls"))
            connection.execute(insert(CallRow.__table__), calls("default", 3000, "INC"))
        wanted = [f"INC-{n:05d}" for n in range(0, 3000, 15)] + ["INC-none"]
        statement = _listed_calls_with_texts().compile(dialect=engine.dialect)
        with engine.begin() as connection:
            found = connection.exec_driver_sql(
                str(statement), {"incident_ids": wanted, "agency_id": "default"}
            ).all()
            [(plan,)] = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}",
                {"incident_ids": wanted, "agency_id": "default"},
            ).all()
        assert sorted(row.incident_id for row in found) == wanted[:-1]
        on_calls = [n for n in nodes(plan[0]["Plan"]) if n.get("Relation Name") == "calls"]
        assert on_calls, json.dumps(plan, indent=1)
        for node in on_calls:
            # Looked up by both columns; no call of the agency read only to be dropped.
            assert "incident_id" in node.get("Index Cond", ""), json.dumps(node, indent=1)
            assert node.get("Rows Removed by Filter", 0) == 0, json.dumps(node, indent=1)
            assert node["Actual Rows"] * node["Actual Loops"] <= len(wanted)
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM calls"))
            connection.execute(text("ANALYZE calls"))
        engine.dispose()
