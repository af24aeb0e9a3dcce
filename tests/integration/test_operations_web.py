"""What the running service tells an operator: readiness, metrics, one log line a request."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from callerconnect.bootstrap import Application
from callerconnect.logs import configure_logging, log_event
from tests.conftest import T0
from tests.support.in_process import InProcessServer

PHONE = "613-555-0142"


def event(event_id: str, incident: str, **fields: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "incident_id": incident,
        "occurred_at": T0.isoformat(),
        "type": "call.received",
        "priority": 4,
        "case_number": "26-00001",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": PHONE, "language": "en"},
        **fields,
    }


@pytest.fixture
def client(live_server: InProcessServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url) as http:
        yield http


@pytest.fixture
def request_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("callerconnect.web.requests")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)


def metric_values(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_readyz_says_ready_on_a_migrated_database(client: httpx.Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "provider": "ok"}


def test_readyz_refuses_traffic_on_a_database_behind_the_code(
    client: httpx.Client, app: Application
) -> None:
    with app.db.engine.begin() as connection:
        head = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["database"] == "not migrated (at 0005)"
        assert client.get("/healthz").status_code == 200  # alive all the same
    finally:
        with app.db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})


def test_metrics_count_what_the_database_holds(
    client: httpx.Client, app: Application, auth: dict[str, str]
) -> None:
    posted = client.post(
        "/api/v1/cad/events",
        json={
            "events": [
                event("m-1", "I-M1"),
                event("m-2", "I-M2", priority=1),
                event("m-3", "I-M3", priority=12),  # rejected: a dead letter
            ]
        },
        headers=auth,
    )
    assert [r["status"] for r in posted.json()["results"]] == ["accepted", "accepted", "rejected"]
    before = metric_values(client.get("/metrics").text)
    assert before[("callerconnect_database_up", ())] == 1
    assert before[("callerconnect_intake_events_total", (("result", "accepted"),))] == 2
    assert before[("callerconnect_intake_events_total", (("result", "rejected"),))] == 1
    assert before[("callerconnect_decisions_total", (("reason", "eligible"),))] >= 1
    assert before[("callerconnect_decisions_total", (("reason", "ineligible:priority"),))] >= 1
    scheduled = (("kind", "confirmation"), ("status", "scheduled"))
    assert before[("callerconnect_texts", scheduled)] == 1
    assert before[("callerconnect_outbox_backlog", ())] == 1

    app.clock.advance(timedelta(seconds=60))  # type: ignore[attr-defined]
    assert app.dispatcher.run_due() == 1
    after = metric_values(client.get("/metrics").text)
    assert after[("callerconnect_texts", (("kind", "confirmation"), ("status", "sent")))] == 1
    assert after[("callerconnect_outbox_backlog", ())] == 0
    assert after[("callerconnect_outbox_oldest_due_age_seconds", ())] == 0
    assert ("callerconnect_provider_latency_seconds", (("quantile", "0.5"),)) in after
    assert after[("callerconnect_survey_responses_total", ())] == 0


def test_each_request_is_logged_without_tokens_or_phone_numbers(
    client: httpx.Client, request_lines: io.StringIO
) -> None:
    client.post(
        "/api/v1/cad/events",
        json=event("l-1", "I-L1"),
        headers={"Authorization": "Bearer a-wrong-key"},
    )
    client.get("/s/AbCdEfGhIjKlMnOpQrStUv12?phone=6135550142")
    client.get(f"/healthz/{PHONE}")
    # The line is written once the last byte is out, just after the client has it.
    deadline = time.monotonic() + 5
    while len(request_lines.getvalue().splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = request_lines.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "method=POST path=/api/v1/cad/events status=401 ms=" in lines[0]
    assert "path=/s/<token> status=" in lines[1]
    assert "AbCdEfGhIjKlMnOpQrStUv12" not in request_lines.getvalue()
    assert "0142" not in lines[1]  # the query string is never logged
    assert "555-0142" not in lines[2] and "613***0142" in lines[2]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    ours, root = logging.getLogger("callerconnect"), logging.getLogger()
    saved = (ours.handlers[:], ours.level, ours.propagate, root.handlers[:])
    yield
    ours.handlers[:], ours.level, ours.propagate, root.handlers[:] = saved


@pytest.mark.usefixtures("restore_logging")
def test_json_log_format_is_one_masked_object_a_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream, log_format="json")
    log = logging.getLogger("callerconnect.test")
    log_event(log, "http_request", method="GET", path=f"/x/{PHONE}", status=401, ms=1.5)
    log.info("free text about +1 613 555 0142")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["action"] == "http_request" and first["status"] == "401"
    assert first["level"] == "INFO" and first["logger"] == "callerconnect.test"
    assert first["path"] == "/x/613***0142"
    assert "555" not in second["message"]
