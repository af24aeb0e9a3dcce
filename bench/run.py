"""Every speed figure of one node, each beside its target and the machine's own limit.

    .venv/bin/python bench/run.py            # the full run (a few minutes)
    .venv/bin/python bench/run.py --quick    # a smoke run (seconds), smaller figures
    .venv/bin/python bench/run.py --json out.json --only intake

What runs, against real processes (``callerconnect serve`` and ``worker``, started here
on free ports) and real databases (SQLite in a temporary folder, a fresh PostgreSQL
database on 127.0.0.1:5432, dropped afterwards):

* intake over HTTP, batches of 500 and one event per request, on both databases, beside
  the raw rate of the same database measured in the same run: single-row commits, and
  rows inserted in one batched transaction (each ``serve`` warmed up first: a few
  batches and single events, untimed);
* the time from the 202 of a ``call.received`` to the provider's acceptance of its
  confirmation (p50/p99), two workers, a Twilio-compatible fake answering in 150 ms, at
  ten times Ottawa's peak hour and while a backlog of survey invitations drains;
* the dispatcher's use of ``sms.max_per_second`` by two workers: the share of the cap
  used on a backlog and the busiest one-second window, beside the cap;
* the survey page's p50/p99 with 50 concurrent clients, and the CPU the ``serve``
  process spends on a page (the figure the machine's load does not change much);
* the resident memory of each process after the surge.

The figures depend on the machine and its load: they are printed and written as JSON,
never asserted (the test suite makes no timed assertions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from tests.support.crashes import children_of  # noqa: E402
from tests.support.dispatch import TimedFakeTwilio, most_in_window  # noqa: E402
from tests.support.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN  # noqa: E402
from tests.support.smsc import FakeSmsc  # noqa: E402

from callerconnect.adapters.crypto import token_hash  # noqa: E402
from callerconnect.adapters.db.engine import make_engine  # noqa: E402
from callerconnect.service.simulation import simulated_day  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEY = "bench-intake-key-0123456789abcdef"
CLI = [str(ROOT / ".venv" / "bin" / "callerconnect")]
#: Ottawa: 274,075 priority 3-4 calls a year; the busiest hour of a normal day has about
#: 60 of them (a blizzard day far more). Ten times that is the surge measured here.
OTTAWA_PEAK_HOUR_CALLS = 60
TWILIO_LATENCY = 0.150  # seconds: a typical answer of Twilio's Messages API


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str
    limit: str = ""
    note: str = ""


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> None:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        print(f"  {figure.name}: {figure.value:,.1f} {figure.unit}", flush=True)


# --- databases and processes ----------------------------------------------------------


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="callerconnect-bench-")
        yield f"sqlite:///{folder}/bench.db"
        return
    name = f"callerconnect_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Node:
    """``serve`` processes and workers on one database, as deployed (environment only)."""

    def __init__(self, url: str, folder: Path, **env: str) -> None:
        self.folder = folder
        self.env = {
            **os.environ,
            "CALLERCONNECT_DATABASE_URL": url,
            "CALLERCONNECT_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "CALLERCONNECT_INTAKE__API_KEYS": f'["{KEY}"]',
            "CALLERCONNECT_LOG_LEVEL": "WARNING",
            "CALLERCONNECT_POLICY__QUIET_HOURS": "off",
            **env,
        }
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.urls: list[str] = []
        done = subprocess.run([*CLI, "db", "upgrade"], env=self.env, capture_output=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr.decode())

    def start(self, role: str, *args: str) -> None:
        log = (self.folder / f"{role}-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen([*CLI, role, *args], env=self.env, stdout=log, stderr=log)
        self.processes.append((role, process))

    def wait_for_workers(self, timeout: float = 120) -> None:
        """Until every worker printed its start-up line (a loaded machine takes seconds to
        start one): a text's wait measured from then on is not a process's start-up."""
        deadline = time.monotonic() + timeout
        logs = [
            self.folder / f"{role}-{n}.log"
            for n, (role, _) in enumerate(self.processes)
            if role == "worker"
        ]
        while not all("worker started" in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline:
                raise SystemExit(f"worker did not start: see {self.folder}")
            time.sleep(0.2)

    def serve(self, count: int, *, workers: int = 1) -> None:
        """``count`` serve commands, each on its own port with ``workers`` processes."""
        for _ in range(count):
            port = free_port()
            self.env["CALLERCONNECT_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
            self.start("serve", "--port", str(port), "--workers", str(workers))
            self.urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for url in self.urls:
            while not _healthy(url):
                if time.monotonic() > deadline:
                    raise SystemExit(f"serve did not start: see {self.folder}")
                time.sleep(0.1)

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of every process (a serve's forked processes each by name)."""
        sizes: dict[str, float] = {}
        for number, (role, process) in enumerate(self.processes):
            children = children_of(process.pid)
            for index, pid in enumerate(children or [process.pid]):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                kb = next(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line)
                name = f"{role}-{number}" + (f".{index}" if children else "")
                sizes[name] = kb / 1024
        return sizes

    def cpu_seconds(self, role: str) -> float:
        """CPU time (user + system) used so far by the processes of ``role`` (with the
        processes a ``serve --workers`` forked)."""
        return sum(
            cpu_seconds(pid)
            for name, process in self.processes
            if name == role
            for pid in [process.pid, *children_of(process.pid)]
        )

    def stop(self) -> None:
        for _, process in self.processes:
            process.send_signal(signal.SIGTERM)
        for _, process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def node(url: str, **env: str) -> Iterator[Node]:
    running = Node(url, Path(tempfile.mkdtemp(prefix="callerconnect-bench-logs-")), **env)
    try:
        yield running
    finally:
        running.stop()


# --- the database's own limits ----------------------------------------------------------


def raw_rates(url: str, seconds: float, rows: int) -> tuple[float, float, float]:
    """The database's own limit: rows a second with one row per committed transaction
    from one connection and from eight at once (as the single-event clients post), and
    rows of one batched insert."""
    engine = make_engine(url)
    body = "x" * 600  # about an encrypted event's size
    insert = text("INSERT INTO bench_raw VALUES (:k, :v)")

    def commit_rows(prefix: str) -> int:
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            with engine.begin() as connection:
                connection.execute(insert, {"k": f"{prefix}{count}", "v": body})
            count += 1
        return count

    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE bench_raw (k VARCHAR(64) PRIMARY KEY, v TEXT)"))
        began = time.perf_counter()
        commits = commit_rows("c") / (time.perf_counter() - began)
        began = time.perf_counter()
        with ThreadPoolExecutor(RAW_CONNECTIONS) as pool:
            counted = sum(pool.map(commit_rows, [f"p{n}-" for n in range(RAW_CONNECTIONS)]))
        parallel = counted / (time.perf_counter() - began)
        batch = [{"k": f"b{n}", "v": body} for n in range(rows)]
        began = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(insert, batch)
        batched = rows / (time.perf_counter() - began)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE bench_raw"))
        return commits, parallel, batched
    finally:
        engine.dispose()


#: Connections committing at once for the raw rate beside the single-event intake.
RAW_CONNECTIONS = 8


# --- intake -----------------------------------------------------------------------------


def feed(prefix: str, calls: int, seed: int) -> list[dict[str, Any]]:
    """A simulated day of ``calls`` incidents, in the past, under ids of its own."""
    start = datetime.now(UTC) - timedelta(hours=22)
    events = [e.payload for e in simulated_day(start, calls=calls, seed=seed)]
    for payload in events:
        payload["event_id"] = f"{prefix}-{payload['event_id']}"
        payload["incident_id"] = f"{prefix}-{payload['incident_id']}"
        if isinstance(payload.get("merged_into"), str):
            payload["merged_into"] = f"{prefix}-{payload['merged_into']}"
    return events


#: Events in each batch the batching clients post.
BATCH_SIZE = 500

#: Each client's requests, each request's events.
Bodies = list[list[list[dict[str, Any]]]]


def batch_load(prefix: str, calls: int, clients: int, seed: int = 0) -> Bodies:
    """``clients`` CAD feeds sharing twice ``calls`` incidents, each posted in batches of
    :data:`BATCH_SIZE` (the same load in ``bench/intake_rounds.py`` as here)."""
    feeds = [feed(f"{prefix}-{n}", calls * 2 // clients, seed=seed + n) for n in range(clients)]
    return [[f[i : i + BATCH_SIZE] for i in range(0, len(f), BATCH_SIZE)] for f in feeds]


def single_load(prefix: str, calls: int, clients: int, seed: int = 10) -> Bodies:
    """``clients`` CAD feeds sharing two thirds of ``calls`` incidents, each posted one
    event a request."""
    feeds = [
        feed(f"{prefix}-{n}", calls * 2 // (3 * clients), seed=seed + n) for n in range(clients)
    ]
    return [[[event] for event in f] for f in feeds]


def post_all(urls: list[str], feeds: Bodies) -> tuple[int, float]:
    """Each client posts its own bodies in order (so an incident's events stay in order),
    clients in parallel, spread over the ``urls``. Events and seconds.

    The bodies are encoded before the clock starts and sent by :class:`RawHttp` (plain
    HTTP/1.1 on asyncio, one kept-alive connection a client): the load must cost the two
    cores far less than the serve processes it measures (httpx in threads cost about a
    millisecond a request, as much as a folded event)."""
    bodies = [
        [
            json.dumps(events[0] if len(events) == 1 else {"events": events}).encode()
            for events in client_feed
        ]
        for client_feed in feeds
    ]
    failures: list[str] = []

    async def client(number: int) -> None:
        async with RawHttp(urls[number % len(urls)]) as http:
            for body in bodies[number]:
                status, answer = await http.request(
                    "POST",
                    "/api/v1/cad/events",
                    body,
                    {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                )
                if status not in (202, 409, 422):
                    failures.append(f"{status} {answer[:200]!r}")

    async def all_clients() -> None:
        await asyncio.gather(*(client(n) for n in range(len(feeds))))

    began = time.perf_counter()
    asyncio.run(all_clients())
    elapsed = time.perf_counter() - began
    if failures:
        print(f"  {len(failures)} requests failed, first: {failures[0]}")
    return sum(len(events) for client_feed in feeds for events in client_feed), elapsed


class RawHttp:
    """A plain HTTP/1.1 client on one kept-alive connection (asyncio streams): a load
    generator that costs a small fraction of the server it measures."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawHttp:
        await self._connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """The status and body of one request; reconnects after a ``Connection: close``."""
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        answer_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = answer_head.decode("latin-1").lower().split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        content = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection") == "close":
            self.writer.close()
            await self._connect()
        return int(lines[0].split(" ")[1]), content


def warm_up(urls: list[str]) -> None:
    """Each ``serve`` process folds a few batches and single events before anything is
    timed, as one that has run for a while: its pool's connections open, its statements
    compiled and (on PostgreSQL) prepared, which psycopg does at a statement's fifth run
    on each connection. A surge meets a running node; without this the first timed
    figure, a run of two seconds, carried the cold start alone."""
    post_all(urls, batch_load("WB", 120 * len(urls), 2 * len(urls), seed=200))
    post_all(urls, single_load("WS", 120 * len(urls), 8 * len(urls), seed=300))


def bench_intake(report: Report, kind: str, quick: bool) -> None:
    calls = 150 if quick else 1000
    with database(kind) as url, node(url) as running:
        commits, parallel, batched = raw_rates(url, 1 if quick else 3, 2000 if quick else 20000)
        limit = (
            f"raw {commits:,.0f} commits/s ({parallel:,.0f} from {RAW_CONNECTIONS} "
            f"connections), {batched:,.0f} rows/s batched"
        )
        running.serve(2)
        warm_up(running.urls)
        # Two CAD feeds posting batches, and four (more feeds, or a history loaded in
        # parallel): with two, each serve often waits for its database between batches.
        for clients in (2, 4):
            events, elapsed = post_all(running.urls, batch_load(f"B{clients}", calls, clients))
            report.add(
                f"intake {kind}, batches of {BATCH_SIZE}, 2 serve, {clients} clients",
                events / elapsed,
                "events/s",
                ">= 5,000",
                limit,
            )
        # A CAD on a few connections, and one on many (or several CADs) in a surge:
        # requests that come while others fold are folded with them (group commit).
        for clients in (8, 32):
            events, elapsed = post_all(running.urls, single_load(f"S{clients}", calls, clients))
            report.add(
                f"intake {kind}, one event a request, 2 serve, {clients} clients",
                events / elapsed,
                "events/s",
                ">= 1,000",
                limit,
            )
        for name, mb in running.rss_mb().items():
            report.add(f"RSS {kind} {name} after the surge", mb, "MB", "< 200 MB")


# --- texts ------------------------------------------------------------------------------


class SlowTwilio(TimedFakeTwilio):
    """The fake answering in about Twilio's time; records when each text was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: dict[str, float] = {}

    def _respond_to(self, method: str, path: str, handler: Any, form: dict[str, str]) -> Any:
        time.sleep(TWILIO_LATENCY)
        answer = super()._respond_to(method, path, handler, form)
        self.accepted.setdefault(form.get("To", ""), time.monotonic())
        return answer


def twilio_env(fake: SlowTwilio, rate: float) -> dict[str, str]:
    return {
        **provider_neutral_env(rate),
        "CALLERCONNECT_SMS__PROVIDER": "twilio",
        "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "CALLERCONNECT_SMS__TWILIO__API_BASE": fake.api_base,
    }


def provider_neutral_env(rate: float) -> dict[str, str]:
    """What every provider's run sets: the cap, and only confirmations."""
    return {
        "CALLERCONNECT_SMS__MAX_PER_SECOND": str(rate),
        "CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "off",
        "CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4": "off",
    }


def received(incident: str, phone: str) -> dict[str, Any]:
    return {
        "event_id": f"{incident}-r",
        "incident_id": incident,
        "occurred_at": datetime.now(UTC).isoformat(),
        "type": "call.received",
        "priority": 4,
        "case_number": f"26-{int(incident.rsplit('-', 1)[1]):06d}",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": phone, "language": "en"},
    }


def phone(number: int) -> str:
    return f"+1613555{number:04d}"


def survey_only(number: int) -> list[dict[str, Any]]:
    """A call received without a case number and cleared at once: its only text is the
    survey invitation, which ranks behind every confirmation."""
    incident = f"BACKLOG-{number}"
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": f"{incident}-r",
            "incident_id": incident,
            "occurred_at": now,
            "type": "call.received",
            "priority": 4,
            "call_type": {"code": "THEFT"},
            "caller": {"phone": phone(5000 + number), "language": "en"},
        },
        {
            "event_id": f"{incident}-c",
            "incident_id": incident,
            "occurred_at": now,
            "type": "call.cleared",
            "disposition": {"code": "RPT"},
        },
    ]


def bench_confirmation_latency(report: Report, kind: str, quick: bool) -> None:
    _confirmation_latency(report, kind, quick, backlog=False)
    _confirmation_latency(report, kind, quick, backlog=True)


def _confirmation_latency(report: Report, kind: str, quick: bool, *, backlog: bool) -> None:
    """From the 202 of a ``call.received`` with its case number to the provider's
    acceptance of its confirmation, two workers at ``sms.max_per_second`` = 20. Quiet:
    calls at ten times Ottawa's peak hour. Backlog: calls every half second (far above
    that) while the workers drain 30 seconds' worth of survey invitations."""
    rate = 20
    per_hour = 10 * OTTAWA_PEAK_HOUR_CALLS
    if backlog:
        queued = rate * (5 if quick else 30)
        calls, gap = (10, 0.3) if quick else (40, 0.5)
    else:
        queued = 0
        calls, gap = (10, 3600 / per_hour / 10) if quick else (20, 3600 / per_hour)
    env = {
        "CALLERCONNECT_WORKER__POLL_INTERVAL": "1s",
        "CALLERCONNECT_POLICY__SURVEY_AFTER_CLEAR": "1s",
    }
    with (
        database(kind) as url,
        SlowTwilio() as fake,
        node(url, **twilio_env(fake, rate), **env) as run,
    ):
        run.serve(1)
        run.start("worker")
        run.start("worker")
        run.wait_for_workers()  # a process's start-up is not part of a text's wait
        time.sleep(1)
        answered: dict[str, float] = {}
        with httpx.Client(base_url=run.urls[0], headers={"Authorization": f"Bearer {KEY}"}) as http:
            for start in range(0, queued, 250):
                events = [e for n in range(start, min(queued, start + 250)) for e in survey_only(n)]
                http.post("/api/v1/cad/events", json={"events": events}, timeout=60)
            if queued:
                time.sleep(2)  # the invitations are due: the backlog is draining
            for number in range(calls):
                began = time.monotonic()
                answer = http.post(
                    "/api/v1/cad/events", json=received(f"LAT-{number}", phone(number))
                )
                if answer.status_code == 202:
                    answered[phone(number)] = time.monotonic()
                time.sleep(max(0.0, gap - (time.monotonic() - began)))
        deadline = time.monotonic() + 30
        while len(fake.accepted) < len(answered) + queued and time.monotonic() < deadline:
            time.sleep(0.2)
        drained = sum(1 for p in fake.accepted if p not in answered)
    waits = sorted(fake.accepted[p] - at for p, at in answered.items() if p in fake.accepted)
    if len(waits) < 2:
        print(f"  only {len(waits)} confirmations accepted")
        return
    cuts = statistics.quantiles(waits, n=100, method="inclusive")
    if backlog:
        what = "while a backlog drains"
        note = (
            f"{len(waits)} of {len(answered)} calls, one every {gap:.1f} s, beside "
            f"{drained} of {queued} survey invitations"
        )
    else:
        what = "at 10x Ottawa's peak"
        note = f"{len(waits)} of {len(answered)} calls, one every {gap:.0f} s"
        if quick:
            note += " (quick: ten times faster)"
    limit = (
        f"provider answers in {TWILIO_LATENCY * 1000:.0f} ms; workers poll every 1 s; cap {rate}/s"
    )
    for name, cut in (("p50", cuts[49]), ("p99", cuts[98])):
        report.add(
            f"202 to confirmation accepted {kind} {what}, {name}", cut, "s", "< 2 s", limit, note
        )


def bench_sms_cap(report: Report, kind: str, quick: bool) -> None:
    """The share of ``sms.max_per_second`` two workers use while a backlog drains, and the
    busiest second, over Twilio's REST API and over an SMPP bind each."""
    for provider in ("twilio", "smpp"):
        _sms_cap(report, kind, quick, provider)


@contextmanager
def sms_link(
    provider: str, rate: float
) -> Iterator[tuple[dict[str, str], Callable[[], list[float]]]]:
    """The provider's fake, the settings that point the workers at it, and when it
    accepted each text so far."""
    if provider == "twilio":
        with SlowTwilio() as fake:
            yield twilio_env(fake, rate), lambda: [a.at for a in fake.arrivals]
        return
    with FakeSmsc() as smsc:
        env = {
            **provider_neutral_env(rate),
            "CALLERCONNECT_SMS__PROVIDER": "smpp",
            "CALLERCONNECT_SMS__SMPP__HOST": "127.0.0.1",
            "CALLERCONNECT_SMS__SMPP__PORT": str(smsc.port),
            "CALLERCONNECT_SMS__SMPP__SYSTEM_ID": "callerconnect",
            "CALLERCONNECT_SMS__SMPP__PASSWORD": "secret",
        }
        yield env, lambda: sorted(s.at for s in smsc.accepted)


def _sms_cap(report: Report, kind: str, quick: bool, provider: str) -> None:
    rate = 10 if quick else 20
    backlog = rate * (4 if quick else 15)
    with (
        database(kind) as url,
        sms_link(provider, rate) as (env, accepted),
        node(url, **env) as running,
    ):
        running.serve(1)
        with httpx.Client(
            base_url=running.urls[0], headers={"Authorization": f"Bearer {KEY}"}
        ) as http:
            events = [received(f"CAP-{n}", phone(n)) for n in range(backlog)]
            for start in range(0, backlog, 500):
                http.post(
                    "/api/v1/cad/events", json={"events": events[start : start + 500]}, timeout=120
                )
        running.start("worker")
        running.start("worker")
        deadline = time.monotonic() + backlog / rate * 2 + 30
        while len(accepted()) < backlog and time.monotonic() < deadline:
            time.sleep(0.2)
        worker_cpu = running.cpu_seconds("worker")
        moments = accepted()
    if len(moments) < 2:
        print("  no texts sent")
        return
    span = moments[-1] - moments[0]
    used = (len(moments) - 1) / span / rate
    limit = f"sms.max_per_second = {rate}"
    note = f"{len(moments)} texts, 2 workers"
    kind = f"{provider} {kind}"
    report.add(f"SMS cap used {kind}", used, "of the cap", ">= 0.95", limit, note)
    per_text = worker_cpu / len(moments)
    report.add(
        f"worker CPU per text {kind}",
        per_text * 1000,
        "ms",
        f"<= {1000 / rate:.0f} ms",
        f"one core sends at most {1 / per_text:.0f} texts/s",
        f"{worker_cpu:.1f} CPU s for {len(moments)} texts incl. start-up; load "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
    )
    report.add(
        f"SMS busiest 1-s window {kind}",
        most_in_window(moments),
        "texts",
        f"<= {rate}",
        limit,
        note,
    )


# --- the survey page --------------------------------------------------------------------


def bench_survey(report: Report, kind: str, quick: bool) -> None:
    clients = SURVEY_CLIENTS
    seconds = 5 if quick else 20
    with database(kind) as url, node(url) as running:
        running.serve(1, workers=SURVEY_SERVE_PROCESSES)
        with httpx.Client(
            base_url=running.urls[0], headers={"Authorization": f"Bearer {KEY}"}
        ) as http:
            events = [received(f"SUR-{n}", phone(n)) for n in range(clients)]
            http.post("/api/v1/cad/events", json={"events": events}, timeout=120)
        tokens = invitations(url, clients)
        cpu_before = running.cpu_seconds("serve")
        latencies, client_cpu = asyncio.run(survey_load(running.urls[0], tokens, seconds))
        serve_cpu = running.cpu_seconds("serve") - cpu_before
    if len(latencies) < 2:
        print("  no survey page answered")
        return
    cuts = statistics.quantiles(latencies, n=100)
    pages = len(latencies)
    note = f"{pages} pages in {seconds} s ({pages / seconds:,.0f}/s)"
    limit = f"{clients} clients, serve --workers {SURVEY_SERVE_PROCESSES}"
    report.add(f"survey page p50 {kind}", cuts[49] * 1000, "ms", "", limit, note)
    report.add(f"survey page p99 {kind}", cuts[98] * 1000, "ms", "< 50 ms", limit, note)
    report.add(
        f"survey page CPU of serve {kind}",
        serve_cpu / pages * 1000,
        "ms/page",
        "",
        "what bounds pages/s: 1,000 / this per core",
        f"the load's own client: {client_cpu / pages * 1000:.2f} ms/page",
    )


SURVEY_CLIENTS = 50
#: One serve process a core (the bench machine has two).
SURVEY_SERVE_PROCESSES = 2


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux; 0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def survey_load(
    base_url: str, tokens: list[str], seconds: float
) -> tuple[list[float], float]:
    """One client a token, each on its own kept-alive connection, asking for its page again
    as soon as the last one has arrived; seconds each page took (200s only), and the CPU
    the clients used (:class:`RawHttp`: fifty httpx clients in threads cost more than
    serve did, on the same two cores)."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client(token: str) -> None:
        async with RawHttp(base_url) as http:
            while time.monotonic() < stop:
                began = time.perf_counter()
                status, _ = await http.request("GET", f"/s/{token}")
                if status == 200:
                    latencies.append(time.perf_counter() - began)

    cpu = time.process_time()
    await asyncio.gather(*(client(token) for token in tokens))
    return latencies, time.process_time() - cpu


def invitations(url: str, count: int) -> list[str]:
    """Survey links for the calls just received (as the dispatcher makes them)."""
    engine = make_engine(url)
    tokens: list[str] = []
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            rows = connection.execute(
                text("SELECT id, call_id FROM outbox WHERE call_id IS NOT NULL LIMIT :n"),
                {"n": count},
            ).all()
            for outbox_id, call_id in rows:
                token = secrets.token_urlsafe(16)
                connection.execute(
                    text(
                        "INSERT INTO survey_invitations (token_hash, outbox_id, call_id, "
                        "language, created_at, expires_at) VALUES (:h, :o, :c, 'en', :n, :e)"
                    ),
                    {
                        "h": token_hash(token),
                        "o": outbox_id,
                        "c": call_id,
                        "n": now,
                        "e": now + timedelta(days=7),
                    },
                )
                tokens.append(token)
    finally:
        engine.dispose()
    return tokens


# --- the command ------------------------------------------------------------------------

BENCHES: dict[str, Callable[[Report, str, bool], None]] = {
    "intake": bench_intake,
    "latency": bench_confirmation_latency,
    "sms": bench_sms_cap,
    "survey": bench_survey,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and fast")
    parser.add_argument("--json", default="bench-results.json", help="where to write figures")
    parser.add_argument("--only", choices=list(BENCHES), action="append")
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql"
    )
    args = parser.parse_args(argv)
    report = Report()
    began = time.perf_counter()
    load = os.getloadavg()[0]
    for name in args.only or list(BENCHES):
        for kind in args.databases.split(","):
            if name in ("latency", "sms") and kind != args.databases.split(",")[0]:
                continue  # measured on the first database only: it is not the bottleneck
            print(f"{name} on {kind}", flush=True)
            BENCHES[name](report, kind, args.quick)
    elapsed = time.perf_counter() - began
    print()
    print(f"{'figure':<72} {'value':>12} {'unit':<12} {'target':<12} limit / note")
    for f in report.figures:
        print(
            f"{f.name:<72} {f.value:>12,.2f} {f.unit:<12} {f.target:<12} {f.limit}"
            + (f" ({f.note})" if f.note else "")
        )
    print(
        f"\n{os.cpu_count()} CPUs, load average {load:.1f} at the start (the machine is "
        f"shared); {elapsed:.0f} s in all{' (quick)' if args.quick else ''}"
    )
    Path(args.json).write_text(
        json.dumps(
            {
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "load_average": load,
                "seconds": elapsed,
                "figures": [f.__dict__ for f in report.figures],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
