"""``callerconnect simulate``: the feed written to a file, posted to the real intake API
(retrying what the API asks to be retried) and published to NATS JetStream."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import nats
import pytest
from sqlalchemy import func, select

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CadEventRow
from callerconnect.bootstrap import Application
from callerconnect.entrypoints.simulate import bundled_call_types, post_batches
from callerconnect.service.cad_feed import FeedPlan, generate
from tests.conftest import TEST_INTAKE_KEY
from tests.integration.test_cli import Cli
from tests.support.in_process import InProcessServer
from tests.support.nats_feed import PrivateFeed, private_feed

START = "2026-03-06T00:00:00-05:00"


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    args = ["simulate", "--calls-per-day", "80", "--days", "2", "--start", START]
    one, two, other = cli.together(
        [*args, "--seed", "5", "--out", "one.jsonl"],
        [*args, "--seed", "5", "--out", "two.jsonl"],
        [*args, "--seed", "6", "--out", "other.jsonl"],
    )
    assert one.returncode == two.returncode == other.returncode == 0, one.stderr
    written = (tmp_path / "one.jsonl").read_bytes()
    assert written == (tmp_path / "two.jsonl").read_bytes()
    assert written != (tmp_path / "other.jsonl").read_bytes()
    lines = written.decode().splitlines()
    assert f"{len(lines)} events sent" in one.stdout
    assert all(json.loads(line)["event_id"] for line in lines)


def test_bad_options_are_clear_errors(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    no_key, bad_speed, bad_start = cli.together(
        ["simulate", "--post", "http://127.0.0.1:9/api/v1/cad/events"],
        ["simulate", "--out", "x.jsonl", "--speed", "-1"],
        ["simulate", "--out", "x.jsonl", "--start", "2026-03-06T00:00:00"],
    )
    assert no_key.returncode == 2 and "--key" in no_key.stderr
    assert bad_speed.returncode == 2 and "at least 0" in bad_speed.stderr
    assert bad_start.returncode == 2 and "offset" in bad_start.stderr
    for run in (no_key, bad_speed, bad_start):
        assert "Traceback" not in run.stderr


def test_a_future_start_is_refused_unless_the_feed_goes_to_a_file(tmp_path: Path) -> None:
    future = "2999-01-01T00:00:00+00:00"
    unreachable = "http://127.0.0.1:9/api/v1/cad/events"
    cli = Cli(tmp_path)
    posted, published, written = cli.together(
        ["simulate", "--post", unreachable, "--key", "k", "--start", future],
        ["simulate", "--nats", "nats://127.0.0.1:9", "--start", future],
        ["simulate", "--out", "future.jsonl", "--calls-per-day", "20", "--start", future],
    )
    for refused in (posted, published):
        # Refused before anything is sent (nothing listens on port 9 anyway).
        assert refused.returncode == 2, refused.stderr
        assert "--start" in refused.stderr and "future" in refused.stderr
        assert "--out" in refused.stderr and "Traceback" not in refused.stderr
        assert "events sent" not in refused.stdout
    assert written.returncode == 0, written.stderr
    first = json.loads((tmp_path / "future.jsonl").read_text().splitlines()[0])
    assert first["occurred_at"].startswith("2999-01-01")


def test_posting_to_the_intake_stores_every_event(app: Application, database_url: str) -> None:
    from callerconnect.web.app import create_app

    plan = FeedPlan(_start(), calls_per_day=60, seed=11)
    events = list(generate(plan, bundled_call_types()))
    with InProcessServer(create_app(app)) as server:
        sent = post_batches(events, f"{server.url}/api/v1/cad/events", TEST_INTAKE_KEY, 0)
    assert sent == len(events)
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            stored = session.scalar(select(func.count()).select_from(CadEventRow))
    finally:
        db.dispose()
    assert stored == len({e.payload["event_id"] for e in events})


class _Busy(BaseHTTPRequestHandler):
    """An intake that is overloaded twice (429 with Retry-After, then 503) and then
    accepts: what the simulator must ride out."""

    answers: ClassVar[list[int]] = []
    bodies: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.answers.pop(0) if self.answers else 202
        if status == 202:
            self.bodies.append(json.loads(body))
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def busy_server() -> Iterator[str]:
    _Busy.answers = [429, 503]
    _Busy.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/cad/events"
    finally:
        server.shutdown()
        server.server_close()


def test_posting_retries_429_and_5xx_and_sends_each_batch_once(busy_server: str) -> None:
    events = list(generate(FeedPlan(_start(), calls_per_day=40, seed=3), bundled_call_types()))
    waits: list[float] = []
    sent = post_batches(events, busy_server, "key", 0, sleep=waits.append)
    assert sent == len(events)
    assert waits == [1.0, 1.0]  # Retry-After first, then the backoff's first step
    delivered = [e for body in _Busy.bodies for e in body["events"]]
    assert delivered == [e.payload for e in events]


@pytest.fixture
def nats_feed() -> Iterator[PrivateFeed]:
    yield from private_feed()


def test_publishing_to_nats_puts_each_event_in_the_stream_once(
    tmp_path: Path, nats_feed: PrivateFeed
) -> None:
    env = {k: v for k, v in nats_feed.env().items() if k != "CALLERCONNECT_NATS__URL"}
    done = Cli(tmp_path, **env)(
        "simulate",
        "--nats",
        nats_feed.url,
        "--calls-per-day",
        "40",
        "--seed",
        "4",
        "--start",
        START,
    )
    assert done.returncode == 0, done.stderr
    sent = int(done.stdout.split()[0])
    written = Cli(tmp_path)(
        "simulate",
        "--out",
        "feed.jsonl",
        "--calls-per-day",
        "40",
        "--seed",
        "4",
        "--start",
        START,
    )
    assert written.returncode == 0
    lines = (tmp_path / "feed.jsonl").read_text().splitlines()
    assert sent == len(lines)

    async def stored() -> int:
        connection = await nats.connect(nats_feed.url)
        try:
            info = await connection.jetstream().stream_info(nats_feed.stream)
            return int(info.state.messages)
        finally:
            await connection.close()

    assert asyncio.run(stored()) == len({json.loads(line)["event_id"] for line in lines})


def _start() -> Any:
    """Two days ago: every event of a one-day feed has happened by now."""
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(days=2)
