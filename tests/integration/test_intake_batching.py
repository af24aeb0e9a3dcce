"""The batched intake (service/intake.py, ``submit_many``) on SQLite and PostgreSQL.

A batch is folded in one transaction per chunk; these tests hold it to the same answers
and the same calls and texts as folding the events one by one, count the statements and
transactions an event costs (a bound on counts, never a timing), and show that an event
that fails inside a batched transaction is folded again on its own without taking the
others down.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from callerconnect.adapters.db.tables import CadEventRow, CallRow, DeadLetterRow, OutboxRow
from callerconnect.bootstrap import Application
from callerconnect.service.envelopes import Delivery, Envelopes
from callerconnect.service.intake import FOLD_CHUNK
from callerconnect.service.simulation import simulated_day
from tests.conftest import T0
from tests.support.dispatch import event, received
from tests.support.live_server import LiveServer

AppFactory = Callable[..., Application]


@dataclass
class Counts:
    statements: int = 0
    commits: int = 0
    sql: list[str] = field(default_factory=list)


@contextmanager
def counting(app: Application) -> Iterator[Counts]:
    """Statements sent to the database and transactions committed while inside."""
    counts = Counts()
    engine = app.db.engine

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counts.statements += 1
        counts.sql.append(" ".join(statement.split()[:3]))

    def on_commit(_conn: Any) -> None:
        counts.commits += 1

    sa_event.listen(engine, "before_cursor_execute", on_execute)
    sa_event.listen(engine, "commit", on_commit)
    try:
        yield counts
    finally:
        sa_event.remove(engine, "before_cursor_execute", on_execute)
        sa_event.remove(engine, "commit", on_commit)


def feed(prefix: str, calls: int, seed: int = 11) -> list[dict[str, Any]]:
    """A simulated day's events (every kind of story), renamed under ``prefix``."""
    events = [copy.deepcopy(e.payload) for e in simulated_day(T0, calls=calls, seed=seed)]
    for payload in events:
        payload["event_id"] = f"{prefix}-{payload['event_id']}"
        payload["incident_id"] = f"{prefix}-{payload['incident_id']}"
        if isinstance(payload.get("merged_into"), str):
            payload["merged_into"] = f"{prefix}-{payload['merged_into']}"
    return events


def outcome(app: Application, prefix: str) -> dict[str, Any]:
    """What the events made, per incident with the prefix taken off: the call's state
    and its texts (kind, status, reason, time)."""
    with app.db.transaction() as session:
        calls = session.scalars(select(CallRow).where(CallRow.incident_id.like(f"{prefix}-%")))
        state: dict[str, Any] = {}
        for call in calls:
            texts = session.scalars(
                select(OutboxRow).where(OutboxRow.call_id == call.id).order_by(OutboxRow.kind)
            )
            state[call.incident_id.removeprefix(f"{prefix}-")] = (
                call.priority,
                call.call_type_code,
                call.blocked_reason,
                call.reason,
                call.merged_into.removeprefix(f"{prefix}-") if call.merged_into else None,
                call.risk_flag,
                call.cleared_at,
                [(t.kind, t.status, t.reason, t.not_before) for t in texts],
            )
        return state


def test_a_batch_folds_to_the_same_calls_and_texts_as_one_event_at_a_time(
    app: Application,
) -> None:
    alone, together = feed("A", 60), feed("B", 60)
    one_by_one = [app.intake.submit(payload, "test") for payload in alone]
    batched: list[Any] = []
    for start in range(0, len(together), 97):  # chunks that cut incidents in two
        batched += app.intake.submit_many(together[start : start + 97], "test")

    assert [r.status for r in batched] == [r.status for r in one_by_one]
    assert [r.event_id for r in batched] == [p["event_id"] for p in together]
    assert outcome(app, "B") == outcome(app, "A")
    assert len(outcome(app, "A")) == 60


def incident_lanes(events: list[dict[str, Any]], count: int) -> list[list[dict[str, Any]]]:
    """The events dealt to ``count`` clients, each incident's events all to one client in
    their order (as a CAD sends them)."""
    by_incident: dict[str, list[dict[str, Any]]] = {}
    for payload in events:
        by_incident.setdefault(payload["incident_id"], []).append(payload)
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for number, incident_events in enumerate(by_incident.values()):
        lanes[number % count] += incident_events
    return lanes


def lanes_fold_as_one_by_one(
    app: Application, calls: int, post: Callable[[list[dict[str, Any]]], list[tuple[str, str]]]
) -> None:
    """A day of ``calls`` calls posted by twelve clients at once (``post`` sends one
    client's events, one a request, and gives each event's status) makes what one event
    at a time makes, each answered as alone, in fewer transactions than requests."""
    alone, together = feed("A", calls), feed("B", calls)
    one_by_one = {p["event_id"]: app.intake.submit(p, "test").status for p in alone}
    lanes = incident_lanes(together, 12)
    with counting(app) as counts, ThreadPoolExecutor(len(lanes)) as pool:
        answered = [answer for lane in pool.map(post, lanes) for answer in lane]

    assert len(answered) == len(together)
    assert {event_id.removeprefix("B-"): status for event_id, status in answered} == {
        event_id.removeprefix("A-"): status for event_id, status in one_by_one.items()
    }
    assert outcome(app, "B") == outcome(app, "A")
    assert counts.commits < len(together)  # requests that waited were folded together


def test_concurrent_single_requests_fold_together_to_the_same_calls_and_texts(
    app: Application,
) -> None:
    """Group commit (service/intake_groups.py): one event a request from many threads
    at once, each thread with its own incidents (in order, as a CAD sends them), folds
    to what one event at a time makes, each request answered as it would be alone, in
    fewer transactions than requests."""

    def post(lane: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(p["event_id"], app.intake.submit(p, "test").status) for p in lane]

    lanes_fold_as_one_by_one(app, 40, post)


def test_answers_come_in_request_order_with_rejections_and_repeats_in_place(
    app: Application,
) -> None:
    first = received("I-1", T0)
    other_incident = {**received("I-2", T0), "event_id": first["event_id"]}
    bad = {**received("I-3", T0), "occurred_at": "yesterday"}
    cleared = event("I-1", "call.cleared", T0 + timedelta(minutes=30))
    results = app.intake.submit_many(
        [first, bad, dict(first), other_incident, cleared, received("I-4", T0)], "test"
    )
    assert [(r.event_id, r.status) for r in results] == [
        (first["event_id"], "accepted"),
        (bad["event_id"], "rejected"),
        (first["event_id"], "duplicate"),
        (first["event_id"], "rejected"),  # the id belongs to I-1: a conflict, I-2 held
        (cleared["event_id"], "accepted"),
        (results[5].event_id, "accepted"),
    ]
    assert results[3].rule == "conflict"
    with app.db.transaction() as session:
        i1 = session.scalar(select(CallRow).where(CallRow.incident_id == "I-1"))
        i2 = session.scalar(select(CallRow).where(CallRow.incident_id == "I-2"))
        assert i1 is not None and i1.cleared_at is not None  # received, then cleared
        assert i2 is not None and (i2.blocked_reason or "").startswith("held:")


def test_a_batch_costs_one_transaction_per_chunk_and_few_statements_per_event(
    app: Application,
) -> None:
    events = feed("C", 60)[:200]
    with counting(app) as counts:
        results = app.intake.submit_many(events, "test")
    assert all(r.status in ("accepted", "duplicate") for r in results), results
    assert counts.commits == -(-len(events) // FOLD_CHUNK)
    # Per event: its share of the call's insert or update, its texts and their history,
    # its decisions; never a round trip per event for ids, locks or savepoints.
    assert counts.statements <= 4 * len(events), counts.statements
    assert counts.sql.count("INSERT INTO cad_events") == 1
    # The insert skips the ids already stored; only those are read back (none here).
    assert sum(s.startswith("SELECT cad_events") for s in counts.sql) == 0


def test_a_batch_reads_its_texts_once_and_writes_each_table_together(
    app: Application,
) -> None:
    events = feed("W", 60)[:200]
    with counting(app) as counts:
        results = app.intake.submit_many(events, "test")
    assert all(r.status in ("accepted", "duplicate") for r in results), results
    # The existing texts of the chunk's calls: one read, never one per event or text.
    assert sum(s.startswith("SELECT outbox") for s in counts.sql) <= 1, counts.sql
    # Calls, texts, their history and decisions written together (multi-row inserts,
    # executemany updates; a CAD opt-out or a merge hold writes what came before it),
    # never a flush per event. SQLite, in process, has no round trip to save: the
    # session writes its rows one statement each there.
    assert counts.statements <= 2 * len(events), counts.statements
    if app.db.is_postgresql:
        assert counts.statements <= len(events), counts.statements
        for table in ("calls", "outbox", "text_status_changes", "decisions"):
            inserts = counts.sql.count(f"INSERT INTO {table}")
            assert inserts <= len(events) // 20, (table, counts.sql)


def test_a_single_event_costs_one_transaction_and_a_handful_of_statements(
    app: Application,
) -> None:
    with counting(app) as counts:
        assert app.intake.submit(received("I-1", T0), "test").status == "accepted"
    # (SQLite's BEGIN IMMEDIATE,) the event's insert that skips a stored id, the call read
    # with its texts, the call's insert, its texts, their history, its decisions
    assert counts.commits == 1
    assert counts.statements <= 7, counts.sql
    with counting(app) as counts:
        dispatched = event("I-1", "unit.dispatched", T0 + timedelta(minutes=5), unit_id="2A1")
        assert app.intake.submit(dispatched, "test").status == "accepted"
    assert counts.commits == 1
    assert counts.statements <= 6, counts.sql


@contextmanager
def failing_once_for(app: Application, incident: str, times: int) -> Iterator[list[int]]:
    """The database refuses, ``times`` times, the statement that writes ``incident``'s
    call (as a lock timeout or a dropped connection would)."""
    failures: list[int] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        flat = params if isinstance(params, list | tuple) else [params]
        mentions = any(incident in str(p) for p in flat)
        writes_it = statement.lstrip().upper().startswith("INSERT INTO CALLS") and mentions
        if writes_it and len(failures) < times:
            failures.append(1)
            raise OperationalError(statement, params, Exception("injected"))

    sa_event.listen(app.db.engine, "before_cursor_execute", on_execute)
    try:
        yield failures
    finally:
        sa_event.remove(app.db.engine, "before_cursor_execute", on_execute)


def test_an_event_that_fails_in_a_batch_is_folded_again_alone_and_the_others_stand(
    app: Application,
) -> None:
    events = [received(f"I-{n}", T0) for n in range(10)]
    with failing_once_for(app, "I-4", times=1) as failures:
        results = app.intake.submit_many(events, "test")
    assert failures == [1]
    assert [r.status for r in results] == ["accepted"] * 10
    with app.db.transaction() as session:
        assert len(session.scalars(select(CadEventRow)).all()) == 10
        assert len(session.scalars(select(CallRow)).all()) == 10


def test_an_event_that_fails_even_alone_loses_none_of_the_others(app: Application) -> None:
    events = [received(f"I-{n}", T0) for n in range(10)]
    with failing_once_for(app, "I-4", times=100), pytest.raises(OperationalError):
        app.intake.submit_many(events, "test")
    with app.db.transaction() as session:
        incidents = {row.incident_id for row in session.scalars(select(CallRow))}
        letters = session.scalars(select(DeadLetterRow)).all()
    assert incidents == {f"I-{n}" for n in range(10)} - {"I-4"}
    assert [letter.error_code for letter in letters] == ["internal"]
    # The CAD, seeing the error, sends the batch again: the others are duplicates.
    again = app.intake.submit_many(events, "test")
    assert [r.status for r in again] == ["duplicate"] * 4 + ["accepted"] + ["duplicate"] * 5


def test_ingest_and_replay_go_through_the_batched_intake(app: Application, tmp_path: Any) -> None:
    from callerconnect.service.deadletters import replay
    from callerconnect.service.envelopes import Envelopes
    from callerconnect.service.ingest_file import ingest_lines

    events = feed("D", 40)
    lines = [json.dumps(e) for e in events] + ["not json"]
    with counting(app) as counts:
        totals = ingest_lines(Envelopes(app.intake), lines)
    assert totals["accepted"] + totals["duplicate"] == len(events) and totals["rejected"] == 1
    assert counts.commits <= -(-len(events) // FOLD_CHUNK) + 1  # + the dead letter
    assert len(outcome(app, "D")) == 40
    with app.db.transaction() as session:
        [letter] = session.scalars(select(DeadLetterRow)).all()
    assert replay(app.db, app.vault, app.intake, [letter.id])[letter.id].startswith("failed")


# --- batching never changes what the events decide (hypothesis) -------------------------

_runs = itertools.count()
INCIDENTS = ["P", "Q", "R"]


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few incidents' events in a random order: receptions, upgrades and downgrades,
    risk flags, calls in progress, dispatches, clearances, cancellations, merges, an
    unknown call type, and repeats of earlier ids (same or other content)."""
    events: list[dict[str, Any]] = []
    for step in range(draw(st.integers(min_value=1, max_value=14))):
        incident = draw(st.sampled_from(INCIDENTS))
        at = T0 + timedelta(minutes=draw(st.integers(min_value=0, max_value=240)))
        kind = draw(
            st.sampled_from(
                [
                    "call.received",
                    "call.updated",
                    "unit.dispatched",
                    "call.cleared",
                    "call.cancelled",
                    "call.merged",
                    "repeat",
                ]
            )
        )
        if kind == "repeat" and events:
            earlier = draw(st.sampled_from(events))
            if draw(st.booleans()):
                events.append(dict(earlier))
            else:
                events.append({**earlier, "priority": 1})
            continue
        if kind in ("call.received", "repeat"):
            payload = received(
                incident,
                at,
                priority=draw(st.sampled_from([1, 3, 4])),
                code=draw(st.sampled_from(["THEFT", "THEFT", "UNHEARD-OF"])),
            )
        elif kind == "call.updated":
            change = draw(
                st.sampled_from(
                    [
                        {"priority": 1},
                        {"priority": 4},
                        {"risk_flag": True},
                        {"in_progress": True},
                        {"in_progress": False},
                    ]
                )
            )
            payload = event(incident, kind, at, **change)
        elif kind == "unit.dispatched":
            payload = event(incident, kind, at, unit={"id": "2A1"})
        elif kind == "call.merged":
            target = draw(st.sampled_from([i for i in INCIDENTS if i != incident]))
            payload = event(incident, kind, at, merged_into=target)
        else:
            payload = event(incident, kind, at)
        payload["event_id"] = f"h{step}-{payload['event_id']}"
        events.append(payload)
    return events


def renamed(events: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    copies = copy.deepcopy(events)
    for payload in copies:
        payload["event_id"] = f"{prefix}-{payload['event_id']}"
        payload["incident_id"] = f"{prefix}-{payload['incident_id']}"
        if "merged_into" in payload:
            payload["merged_into"] = f"{prefix}-{payload['merged_into']}"
    return copies


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=histories(), cut=st.integers(min_value=1, max_value=15))
def test_batching_never_changes_what_the_events_decide(
    app: Application, events: list[dict[str, Any]], cut: int
) -> None:
    run = next(_runs)
    alone, together = renamed(events, f"A{run}"), renamed(events, f"B{run}")
    one_by_one = [app.intake.submit(payload, "test") for payload in alone]
    batched: list[Any] = []
    for start in range(0, len(together), cut):
        batched += app.intake.submit_many(together[start : start + cut], "test")
    assert [(r.status, r.rule) for r in batched] == [(r.status, r.rule) for r in one_by_one]
    assert outcome(app, f"B{run}") == outcome(app, f"A{run}")


def test_concurrent_single_requests_over_http_fold_together_to_the_same_calls_and_texts(
    app: Application, live_socket_server: LiveServer, auth: dict[str, str]
) -> None:
    """Over the real HTTP stack the requests that wait are gathered on the event loop
    (web/request_groups.py): twelve clients posting one event a request, each with its
    own incidents in order, make what one event at a time makes, each request answered
    as alone, in fewer transactions than requests."""

    def post(lane: list[dict[str, Any]]) -> list[tuple[str, str]]:
        answered = []
        with httpx.Client(base_url=live_socket_server.url, headers=auth, timeout=60) as client:
            for payload in lane:
                response = client.post("/api/v1/cad/events", json=payload)
                # A lone rejected event is refused whole (422), its result still given.
                assert response.status_code in (202, 422), response.text
                (result,) = response.json()["results"]
                answered.append((result["event_id"], result["status"]))
        return answered

    lanes_fold_as_one_by_one(app, 30, post)


def answer_of(delivery: Delivery | Exception) -> Any:
    """What a CAD is told of a body: its results and refusal, without the dead letters'
    ids (numbered as they are written)."""
    if isinstance(delivery, Exception):
        return type(delivery).__name__
    refusal = delivery.refusal
    return (
        [(r.event_id, r.status, r.field, r.rule) for r in delivery.results],
        None if refusal is None else (refusal.kind, refusal.rejected.rule),
    )


def test_bodies_received_together_are_answered_as_each_alone(app: Application) -> None:
    """``Envelopes.receive_native_many``: every kind of body (not JSON, not an event, an
    empty batch, a lone rejected event, a batch with a rejection and a repeat, a reused
    id) gets from a group the answer it gets alone, and the events make the same calls."""

    def bodies(prefix: str) -> list[bytes]:
        first = {**received(f"{prefix}-1", T0), "event_id": f"{prefix}-e1"}
        reused = {**received(f"{prefix}-2", T0), "event_id": f"{prefix}-e1"}
        bad = {**received(f"{prefix}-3", T0), "event_id": f"{prefix}-e3", "occurred_at": "-"}
        fourth = {**received(f"{prefix}-4", T0), "event_id": f"{prefix}-e4"}
        cleared = {
            **event(f"{prefix}-1", "call.cleared", T0 + timedelta(minutes=30)),
            "event_id": f"{prefix}-e5",
        }
        return [
            json.dumps(first).encode(),
            b"{not json",
            b"[1, 2]",
            b'{"events": []}',
            json.dumps(bad).encode(),
            json.dumps({"events": [dict(first), bad, fourth]}).encode(),
            json.dumps(reused).encode(),
            json.dumps(cleared).encode(),
        ]

    envelopes = Envelopes(app.intake, max_batch=100)
    alone = [envelopes.receive(raw, "native:test", "native") for raw in bodies("A")]
    together = envelopes.receive_native_many(bodies("B"), "native:test")

    def renamed(answer: Any, prefix: str) -> Any:
        return json.loads(json.dumps(answer).replace(f"{prefix}-", "X-"))

    assert [renamed(answer_of(d), "B") for d in together] == [
        renamed(answer_of(d), "A") for d in alone
    ]
    assert outcome(app, "B") == outcome(app, "A")


def test_a_group_whose_fold_fails_fails_only_the_bodies_it_was_folding(
    app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure of the fold itself is the answer of the bodies whose events it folded;
    a body refused before (not JSON) keeps its own refusal and dead letter."""

    def broken(*_: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("the server went away"))

    monkeypatch.setattr(app.intake, "submit_requests", broken)
    envelopes = Envelopes(app.intake, max_batch=100)
    first, refused, second = envelopes.receive_native_many(
        [json.dumps(received("I-1", T0)).encode(), b"{not json", b'{"events": [{}]}'],
        "native:test",
    )
    assert isinstance(first, OperationalError) and isinstance(second, OperationalError)
    assert isinstance(refused, Delivery) and refused.refusal is not None
    assert refused.refusal.kind == "malformed" and refused.refusal.dead_letter_id is not None
