"""``callerconnect consume`` against the machine's NATS JetStream server: real processes,
a real stream (private to each test), SQLite and PostgreSQL.

Each event must be stored exactly once whatever happens to the consumers: duplicates
published under the same ``Nats-Msg-Id``, the same event sent twice under different
ids, a consumer killed outright while messages flow, several consumers at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CadEventRow, DeadLetterRow, OutboxRow
from tests.conftest import TEST_SECRET
from tests.integration.test_cli import CLI, Cli
from tests.support.nats_feed import PrivateFeed, event_message, private_feed

EIDO = Path(__file__).resolve().parents[1] / "fixtures" / "eido"


def event(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"nats-{number}",
        "incident_id": f"I-N{number}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "type": "call.received",
        "priority": 4,
        "case_number": f"26-{50000 + number}",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": f"613-555-01{number % 100:02d}", "language": "en"},
        **fields,
    }


def scalar(database_url: str, query: Any) -> Any:
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            return session.scalar(query)
    finally:
        db.dispose()


def count(database_url: str, table: type) -> int:
    return int(scalar(database_url, select(func.count()).select_from(table)) or 0)


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 60,
    detail: Callable[[], object] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while not _holds(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {detail()}")
        time.sleep(0.2)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except OperationalError:  # SQLite busy with the consumers' writes: look again
        return False


def drained(feed: PrivateFeed) -> bool:
    return feed.consumer_state() == (0, 0)


class Consumers:
    """``callerconnect consume`` processes. Their logs go to files, not pipes: a pipe
    nobody reads fills up and blocks the process in the middle of a transaction."""

    def __init__(self, cli: Cli, logs: Path) -> None:
        self.cli = cli
        self.logs = logs
        self.started: list[subprocess.Popen[str]] = []

    def start(self) -> subprocess.Popen[str]:
        log = self.logs / f"consume-{len(self.started)}.log"
        with log.open("w") as err:  # the child keeps its own copy of the file
            process = subprocess.Popen(
                [*CLI, "consume"],
                env=self.cli.env,
                cwd=self.cli.cwd,
                stdout=subprocess.DEVNULL,
                stderr=err,
                text=True,
            )
        process.log = log  # type: ignore[attr-defined]
        self.started.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, as an operator's service manager stops it; the exit code and its log."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("consume did not stop on SIGTERM") from None
    log: Path = process.log  # type: ignore[attr-defined]
    return process.returncode, log.read_text()


@pytest.fixture
def nats_feed() -> Iterator[PrivateFeed]:
    yield from private_feed()


@pytest.fixture
def consumers(database_url: str, tmp_path: Path, nats_feed: PrivateFeed) -> Iterator[Consumers]:
    cli = Cli(
        tmp_path,
        CALLERCONNECT_DATABASE_URL=database_url,
        CALLERCONNECT_SECRET_KEY=TEST_SECRET,
        CALLERCONNECT_LOG_LEVEL="INFO",
        **nats_feed.env(),
    )
    started = Consumers(cli, tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def test_events_eido_duplicates_and_refusals_are_each_kept_once_and_acknowledged(
    consumers: Consumers, database_url: str, nats_feed: PrivateFeed
) -> None:
    events = [event(n) for n in range(1, 21)]
    messages = [event_message(nats_feed, e) for e in events]
    # JetStream drops a second publish under the same message id within its window...
    messages += [event_message(nats_feed, e) for e in events[:5]]
    # ...and the intake's event-id check catches one it let through under another id.
    messages += [
        (nats_feed.subject(), json.dumps(e).encode(), f"again-{e['event_id']}") for e in events[5:8]
    ]
    eido = (EIDO / "theft-2001-1-received.json").read_bytes()
    messages.append((nats_feed.subject("eido"), eido, "eido-2001-1"))
    messages.append(
        (
            nats_feed.subject(),
            b'{"event_id": "broken", "caller": {"phone": "613-555-0142"',
            "broken",
        )
    )
    messages.append(
        (nats_feed.subject(agency="elsewhere"), json.dumps(event(99)).encode(), "other-agency")
    )
    nats_feed.publish(messages)

    consumer = consumers.start()
    try:
        wait_for(
            lambda: drained(nats_feed) and count(database_url, DeadLetterRow) >= 2,
            "every message acknowledged",
        )
    finally:
        code, err = stop(consumer)
    assert code == 0, err

    stored = scalar(database_url, select(func.count(func.distinct(CadEventRow.event_id))))
    assert count(database_url, CadEventRow) == stored  # no event stored twice
    native_ids = set(scalar_list(database_url, select(CadEventRow.event_id)))
    assert {e["event_id"] for e in events} <= native_ids
    assert "nats-99" not in native_ids  # another agency's event is not ours to text
    assert len(native_ids) > len(events)  # the EIDO snapshot's events too
    # Texts were scheduled for the eligible calls.
    assert count(database_url, OutboxRow) >= len(events)
    letters = scalar_list(database_url, select(DeadLetterRow.error_code))
    assert sorted(letters) == ["agency", "json"]
    assert "555-0142" not in err and "5550142" not in err
    assert "feed_message_refused" in err


def scalar_list(database_url: str, query: Any) -> list[Any]:
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            return list(session.scalars(query))
    finally:
        db.dispose()


def _publish_in_background(
    feed: PrivateFeed, events: list[dict[str, Any]]
) -> subprocess.Popen[str]:
    """Another process publishes while consumers run, so messages are flowing."""
    import sys

    lines = "\n".join(json.dumps(e) for e in events)
    script = (
        "import asyncio, json, sys, nats\n"
        "async def main():\n"
        f"    c = await nats.connect({feed.url!r})\n"
        "    js = c.jetstream()\n"
        "    for line in sys.stdin.read().splitlines():\n"
        "        e = json.loads(line)\n"
        f"        await js.publish({feed.subject()!r}, line.encode(), stream={feed.stream!r},"
        " headers={'Nats-Msg-Id': e['event_id']})\n"
        "        await asyncio.sleep(0.005)\n"
        "    await c.drain()\n"
        "asyncio.run(main())\n"
    )
    publisher = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, text=True)
    assert publisher.stdin is not None
    publisher.stdin.write(lines)
    publisher.stdin.close()
    return publisher


def test_a_consumer_killed_mid_stream_loses_nothing_and_stores_nothing_twice(
    consumers: Consumers, database_url: str, nats_feed: PrivateFeed
) -> None:
    total = 400
    nats_feed.publish([event_message(nats_feed, event(0))])  # the stream exists first
    first = consumers.start()
    publisher = _publish_in_background(nats_feed, [event(n) for n in range(1, total)])
    try:
        wait_for(lambda: count(database_url, CadEventRow) >= 60, "the first consumer to work")
        first.send_signal(signal.SIGKILL)  # no chance to finish or hand anything back
        first.wait(timeout=30)
        at_kill = count(database_url, CadEventRow)
        second = consumers.start()
        try:
            assert publisher.wait(timeout=120) == 0
            wait_for(
                lambda: count(database_url, CadEventRow) >= total and drained(nats_feed),
                "the second consumer to take over",
                timeout=120,
                detail=lambda: (
                    count(database_url, CadEventRow),
                    count(database_url, DeadLetterRow),
                    nats_feed.consumer_state(),
                ),
            )
        finally:
            code, err = stop(second)
        assert code == 0, err
    finally:
        publisher.kill()
    assert at_kill < total  # it really was killed mid-stream
    ids = scalar_list(database_url, select(CadEventRow.event_id))
    assert len(ids) == total
    assert set(ids) == {f"nats-{n}" for n in range(total)}
    assert count(database_url, DeadLetterRow) == 0


def test_two_consumers_share_the_stream_and_each_event_is_stored_once(
    consumers: Consumers, database_url: str, nats_feed: PrivateFeed
) -> None:
    total = 300
    nats_feed.publish([event_message(nats_feed, event(0))])
    consumers = [consumers.start(), consumers.start()]
    publisher = _publish_in_background(nats_feed, [event(n) for n in range(1, total)])
    try:
        assert publisher.wait(timeout=120) == 0
        wait_for(
            lambda: count(database_url, CadEventRow) >= total and drained(nats_feed),
            "both consumers to finish",
            timeout=120,
        )
    finally:
        outcomes = [stop(consumer) for consumer in consumers]
    acknowledged = []
    for code, err in outcomes:
        assert code == 0, err
        stopped = [line for line in err.splitlines() if "feed_stopped" in line]
        assert stopped, err
        acknowledged.append(int(stopped[-1].split("acknowledged=")[1].split()[0]))
    assert all(n > 0 for n in acknowledged), acknowledged  # both took a share
    assert sum(acknowledged) == total
    ids = scalar_list(database_url, select(CadEventRow.event_id))
    assert sorted(ids) == sorted(f"nats-{n}" for n in range(total))
