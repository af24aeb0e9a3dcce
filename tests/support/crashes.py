"""Crash and fault runs with real processes: supervised ``callerconnect worker`` /
``serve`` processes that can be SIGKILLed and come back, and a Twilio-compatible server
that knows which worker process sent each request and can kill it right after it
accepted the text (before its answer leaves, so before the worker can record it).

Used by ``tests/integration/test_crashes_postgres.py``, ``tests/e2e/test_serve_crash.py``,
``tests/integration/test_faults_postgres.py`` (bounded) and ``bench/crash_faults.py``
(any size). Nothing here needs test-only code in ``src``: the worker is found from the
TCP connection it sent the request on (``/proc/net/tcp`` and ``/proc/<pid>/fd``).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from callerconnect.bootstrap import build_application
from callerconnect.clock import SystemClock
from callerconnect.service.dispatch_options import MAX_IN_FLIGHT
from tests.conftest import TEST_INTAKE_KEY, TEST_SECRET, make_settings
from tests.support.dispatch import TimedFakeTwilio, received, twilio_env
from tests.support.twilio_webhooks import CallbackTwilio

CLI = [sys.executable, "-m", "callerconnect.entrypoints.cli"]

#: Only confirmations: each call gets exactly one text in these runs.
ONLY_CONFIRMATIONS = {
    "CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "off",
    "CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4": "off",
    "CALLERCONNECT_POLICY__QUIET_HOURS": "off",
}


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- which process is on the other end of a connection ----------------------------------


def children_of(pid: int) -> list[int]:
    """The processes ``pid`` forked and has not reaped (``serve --workers N``'s server
    processes), in pid order; none once ``pid`` is gone."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return sorted(found)


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the TCP socket whose local port is ``local_port`` and remote port
    ``remote_port`` (both on this machine's loopback)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (
                int(local.rsplit(":", 1)[1], 16) == local_port
                and int(remote.rsplit(":", 1)[1], 16) == remote_port
                and inode != "0"
            ):
                return inode
    return None


def pid_of_client(client_port: int, server_port: int, candidates: Iterable[int]) -> int | None:
    """Which of ``candidates`` holds the client end of a connection to ``server_port``."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


# --- processes kept running, killed on purpose ---------------------------------------------


@dataclass(frozen=True)
class Kill:
    at: float  # time.monotonic() just before SIGKILL
    pid: int
    why: str


class Supervised:
    """``count`` copies of a command kept running as a service manager would
    (``Restart=always``): one that dies is started again at once. :meth:`kill` sends
    SIGKILL and records it. Every process is reaped; :meth:`stop` sends SIGTERM, and
    dying of it counts as clean (a process restarted just before the stop may not have
    installed its handler yet; uvicorn re-raises it after a clean shutdown)."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str],
        log_dir: Path,
        count: int = 1,
        *,
        clean_exits: Iterable[int] = (0, -signal.SIGTERM),
    ) -> None:
        self.name = name
        self.clean_exits = frozenset(clean_exits)
        self.args = list(args)
        self.env = env
        self.log_dir = log_dir
        self.count = count
        self.slots: list[subprocess.Popen[bytes] | None] = [None] * count
        self.all: list[subprocess.Popen[bytes]] = []
        self.kills: list[Kill] = []
        self._killed: set[int] = set()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def _spawn(self, slot: int) -> None:
        path = self.log_dir / f"{self.name}-{slot}-{len(self.all)}.log"
        with path.open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log)
        self.slots[slot] = process
        self.all.append(process)

    def start(self) -> Supervised:
        with self._lock:
            for slot in range(self.count):
                self._spawn(slot)
        self._supervisor = threading.Thread(target=self._supervise, name=f"{self.name}-sup")
        self._supervisor.start()
        return self

    def _supervise(self) -> None:
        while not self._stopping.wait(0.05):
            with self._lock:
                for slot, process in enumerate(self.slots):
                    if process is not None and process.poll() is not None:
                        self._spawn(slot)

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.slots if p is not None and p.returncode is None]

    def kill(self, pid: int, why: str) -> bool:
        """SIGKILL the live process ``pid`` and wait until it is gone."""
        with self._lock:
            found = [p for p in self.slots if p is not None and p.pid == pid]
            if not found or found[0].poll() is not None:
                return False
            process = found[0]
            self.kills.append(Kill(time.monotonic(), pid, why))
            self._killed.add(pid)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            return True

    def kill_random(self, rng: random.Random, why: str) -> int | None:
        live = self.pids()
        if not live:
            return None
        pid = rng.choice(live)
        return pid if self.kill(pid, why) else None

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        with self._lock:
            live = [p for p in self.all if p.poll() is None]
            for process in live:
                process.send_signal(signal.SIGTERM)
            for process in live:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def unclean_exits(self) -> list[int | None]:
        """Exit codes of processes not killed on purpose that did not exit cleanly."""
        return [
            p.returncode
            for p in self.all
            if p.pid not in self._killed and p.returncode not in self.clean_exits
        ]

    @property
    def restarts(self) -> int:
        return len(self.all) - self.count

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self.log_dir.glob(f"{self.name}-*.log"))
        )


# --- a Twilio that knows who asked, and can kill them -----------------------------------


@dataclass(frozen=True)
class Request:
    arrived: float  # time.monotonic()
    answered: float  # when the answer was decided (after acceptance, before it is sent)
    pid: int | None
    ref: str  # the outbox key, from the StatusCallback URL's ``ref``
    status: int
    killed: bool  # the sender was SIGKILLed before it could read the answer
    sid: str = ""  # the message id given, when accepted
    answered_wall: float = 0.0  # time.time() of ``answered``, to compare with log lines


def _ref(form: dict[str, str]) -> str:
    callback = form.get("StatusCallback", "")
    return parse_qs(urlsplit(callback).query).get("ref", [""])[0]


class KillingTwilio(CallbackTwilio):
    """A Twilio-compatible server that records, per request, the sending process and
    the outbox key, and can SIGKILL the sender right after accepting its text.

    Status callbacks (as :class:`CallbackTwilio`) only when ``callbacks`` is true; set
    ``candidates`` (live pids) and ``kill`` (pid, why → killed?) to allow kills."""

    def __init__(self, *args: Any, callbacks: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.send_callbacks = callbacks
        self.candidates: Callable[[], Iterable[int]] = list
        self.kill: Callable[[int, str], bool] = lambda pid, why: False
        self._armed = 0
        self._window_refs: set[str] = set()
        self._log: list[Request] = []
        self._log_lock = threading.Lock()

    def arm(self, kills: int = 1) -> None:
        """Kill the sender of each of the next ``kills`` accepted texts (one per text)."""
        with self._log_lock:
            self._armed += kills

    def disarm(self) -> int:
        with self._log_lock:
            left, self._armed = self._armed, 0
            return left

    @property
    def armed(self) -> int:
        with self._log_lock:
            return self._armed

    @property
    def log(self) -> list[Request]:
        with self._log_lock:
            return sorted(self._log, key=lambda r: r.arrived)

    def accepted_refs(self) -> set[str]:
        return {r.ref for r in self.log if r.status == 201}

    def _create(self, form: dict[str, str]) -> Any:
        if self.send_callbacks:
            return super()._create(form)
        return TimedFakeTwilio._create(self, form)

    def _respond_to(self, method: str, path: str, handler: Any, form: dict[str, str]) -> Any:
        arrived = time.monotonic()
        pid = getattr(handler, "_peer_pid", None)
        if pid is None:  # once per connection (keep-alive)
            pid = pid_of_client(handler.client_address[1], self.port, self.candidates())
            handler._peer_pid = pid
        status, payload, headers = super()._respond_to(method, path, handler, form)
        answered, answered_wall = time.monotonic(), time.time()
        sid = str(payload.get("sid", "")) if status == 201 and isinstance(payload, dict) else ""
        ref = _ref(form)
        killed = False
        if status == 201 and pid is not None:
            with self._log_lock:
                take = self._armed > 0 and ref not in self._window_refs
                if take:
                    self._armed -= 1
                    self._window_refs.add(ref)
            if take:
                killed = self.kill(pid, f"window {ref}")
                if not killed:
                    with self._log_lock:
                        self._armed += 1
                        self._window_refs.discard(ref)
        with self._log_lock:
            self._log.append(
                Request(arrived, answered, pid, ref, status, killed, sid, answered_wall)
            )
        return status, payload, headers


# --- databases, environments, calls -------------------------------------------------------


def worker_env(database_url: str, fake: CallbackTwilio, **overrides: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}
    return {
        **inherited,
        **twilio_env(fake),
        **ONLY_CONFIRMATIONS,
        "CALLERCONNECT_DATABASE_URL": database_url,
        "CALLERCONNECT_SECRET_KEY": TEST_SECRET,
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{TEST_INTAKE_KEY}"]',
        "CALLERCONNECT_WORKER__POLL_INTERVAL": "1s",
        **overrides,
    }


def ingest_calls(env: dict[str, str], count: int, prefix: str = "I") -> list[str]:
    """``count`` eligible calls received now, each from its own phone, through the
    intake (as ``serve`` would); returns their confirmations' outbox keys."""
    settings = make_settings(
        env["CALLERCONNECT_DATABASE_URL"],
        **{k: v for k, v in env.items() if k.startswith("CALLERCONNECT_")},
    )
    clock = SystemClock()
    app = build_application(settings, clock=clock)
    keys = []
    try:
        now = clock.now()
        for n in range(count):
            incident = f"{prefix}-{n}"
            payload = received(
                incident, now, phone=f"613-555-{n % 10000:04d}", case_number=f"26-{n:05d}"
            )
            assert app.intake.submit(payload, "test").status == "accepted"
            keys.append(f"default:{incident}:confirmation:0")
    finally:
        app.close()
    return keys


@dataclass(frozen=True)
class Row:
    status: str
    reason: str | None
    attempts: int


def outbox(database_url: str) -> dict[str, Row]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT dedupe_key, status, reason, attempts FROM outbox")
            ).all()
    finally:
        engine.dispose()
    return {key: Row(status, reason, attempts) for key, status, reason, attempts in rows}


def all_final(database_url: str, keys: Iterable[str], final: frozenset[str]) -> bool:
    try:
        rows = outbox(database_url)
    except Exception:  # the database restarting
        return False
    return all(key in rows and rows[key].status in final for key in keys)


# --- worker crashes -------------------------------------------------------------------


@dataclass
class CrashRun:
    calls: int
    workers: int
    random_kills: int = 0
    window_kills: int = 0
    kills_fired: list[Kill] = field(default_factory=list)
    restarts: int = 0
    texts: int = 0
    copies: Counter[str] = field(default_factory=Counter)
    duplicates: dict[str, int] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    not_sent: dict[str, Row] = field(default_factory=dict)
    attempts_short: list[str] = field(default_factory=list)
    window_without_duplicate: list[str] = field(default_factory=list)
    kills_explaining_twice: list[int] = field(default_factory=list)
    attempts: Counter[int] = field(default_factory=Counter)
    drain_seconds: float = 0.0
    windows_ms: list[float] = field(default_factory=list)
    problems_in_logs: list[str] = field(default_factory=list)
    unclean_exits: list[int | None] = field(default_factory=list)

    @property
    def window_kills_fired(self) -> int:
        return sum(1 for k in self.kills_fired if k.why.startswith("window"))

    def summary(self) -> str:
        random_fired = len(self.kills_fired) - self.window_kills_fired
        return (
            f"[worker crashes] {self.calls} calls, {self.workers} worker processes: "
            f"{len(self.kills_fired)} SIGKILLs ({self.window_kills_fired} between the "
            f"provider's acceptance and the status write, {random_fired} at random moments), "
            f"{self.restarts} restarts; {self.texts} texts accepted for "
            f"{len(self.copies)} outbox keys, {sum(self.duplicates.values())} duplicates on "
            f"{len(self.duplicates)} keys (all explained by a kill in the window: "
            f"{not self.unexplained}), lost {len(self.lost)}; attempts per text "
            f"{dict(sorted(self.attempts.items()))}; drained in {self.drain_seconds:.1f}s; "
            f"acceptance-to-commit window {window_figures(self.windows_ms)}"
        )

    def problems(self) -> list[str]:
        return labelled_problems(
            (
                ("lost (never accepted by the provider)", self.lost),
                ("outbox rows not sent", self.not_sent),
                ("duplicates not explained by a kill in the window", self.unexplained),
                ("rows whose attempts do not show their copies", self.attempts_short),
                ("window kills that left no duplicate", self.window_without_duplicate),
                (
                    "kills that explain more copies than sends in flight",
                    self.kills_explaining_twice,
                ),
                ("worker log problems", self.problems_in_logs),
                ("unclean exits", self.unclean_exits),
            )
        )


def run_worker_crashes(
    database_url: str,
    log_dir: Path,
    *,
    calls: int,
    workers: int = 3,
    random_kills: int = 4,
    window_kills: int = 4,
    rate: float = 20.0,
    lease_seconds: int = 2,
    seed: int = 5,
    drain_timeout: float = 120.0,
) -> CrashRun:
    """Ingest ``calls`` calls, start ``workers`` worker processes and SIGKILL them while
    the backlog drains: ``window_kills`` right after the provider accepted a text,
    ``random_kills`` at random moments (spread over the run by progress), restarting
    each at once. Returns the figures and every broken promise found."""
    rng = random.Random(seed)
    run = CrashRun(calls, workers, random_kills, window_kills)
    with KillingTwilio() as fake:
        env = worker_env(
            database_url,
            fake,
            CALLERCONNECT_SMS__MAX_PER_SECOND=str(rate),
            CALLERCONNECT_WORKER__LEASE=f"{lease_seconds}s",
            # The fake answers at once; the lease must outlast the provider timeout.
            CALLERCONNECT_SMS__TWILIO__TIMEOUT=f"{max(lease_seconds - 1, 1)}s",
            CALLERCONNECT_WORKER__BATCH_SIZE="5",
            CALLERCONNECT_WORKER__RETRY_BASE="1s",
        )
        keys = ingest_calls(env, calls)
        pool = Supervised("worker", [*CLI, "worker"], env, log_dir, workers)
        fake.candidates = pool.pids
        fake.kill = pool.kill
        plan = ["window"] * window_kills + ["random"] * random_kills
        rng.shuffle(plan)
        started = time.monotonic()
        pool.start()
        try:
            for n, kind in enumerate(plan, start=1):
                threshold = n * calls // (len(plan) + 1)
                wait_until(
                    lambda t=threshold: len(fake.accepted_refs()) >= t,  # type: ignore[misc]
                    drain_timeout,
                    f"{threshold} texts at the provider",
                )
                if kind == "window":
                    fake.arm(1)
                    try:
                        wait_until(lambda: fake.armed == 0, 15, "an accepted text to kill at")
                    except AssertionError:
                        fake.disarm()  # nothing left to send: not fired
                else:
                    time.sleep(rng.uniform(0.0, 0.3))
                    pool.kill_random(rng, "random")
            wait_until(
                lambda: (
                    all_final(database_url, keys, frozenset({"sent"}))
                    and set(keys) <= fake.accepted_refs()
                ),
                drain_timeout,
                "every confirmation to be sent",
                step=0.2,
            )
            run.drain_seconds = time.monotonic() - started
            time.sleep(1.5)  # a copy still in flight would arrive by now
        finally:
            pool.stop()
        requests = fake.log
        assert not fake.errors, fake.errors
    rows = outbox(database_url)
    _judge(run, keys, rows, requests, pool)
    return run


def _judge(
    run: CrashRun,
    keys: list[str],
    rows: dict[str, Row],
    requests: list[Request],
    pool: Supervised,
) -> None:
    run.kills_fired = list(pool.kills)
    run.restarts = pool.restarts
    run.unclean_exits = pool.unclean_exits()
    accepted = [r for r in requests if r.status == 201]
    run.texts = len(accepted)
    run.copies = Counter(r.ref for r in accepted)
    run.lost = sorted(set(keys) - set(run.copies))
    run.not_sent = {k: rows[k] for k in keys if k not in rows or rows[k].status != "sent"}
    run.duplicates = {ref: n - 1 for ref, n in run.copies.items() if n > 1}
    run.attempts = Counter(rows[k].attempts for k in keys if k in rows)
    run.attempts_short = sorted(k for k, n in run.copies.items() if rows[k].attempts < n)
    by_pid: dict[int | None, list[Request]] = defaultdict(list)
    for r in requests:
        by_pid[r.pid].append(r)
    kill_of = {k.pid: k for k in pool.kills}
    used: Counter[int] = Counter()
    for ref in run.duplicates:
        copies = sorted((r for r in accepted if r.ref == ref), key=lambda r: r.arrived)
        for copy in copies[:-1]:
            # The worker that sent an earlier copy must have died with it: SIGKILLed
            # after its request reached the provider, before it recorded it. Each of its
            # sending threads records a text before it takes the next one, so while the
            # copy waited to be recorded the worker's other threads, at most
            # MAX_IN_FLIGHT - 1 of them, could each send once more, not the thread itself.
            #
            # A copy that reached the fake only after its sender's kill was on its way
            # when the worker died (a dead process sends nothing), so it was never
            # recorded: on a loaded machine the fake's thread may read a request written
            # just before the kill a good while after it. A copy whose sender could not
            # be found had a sender that was gone by the time the fake looked at the
            # connection (live workers are all candidates, and only kills end one here:
            # unclean exits are a problem of their own): some kill before it explains it.
            if copy.pid is None:
                earlier_kills = [k for k in pool.kills if k.at <= copy.arrived]
                if not earlier_kills:
                    run.unexplained.append(ref)
                else:
                    used[max(earlier_kills, key=lambda k: k.at).pid] += 1
                continue
            kill = kill_of.get(copy.pid)
            later = [r for r in by_pid[copy.pid] if r.arrived > copy.arrived]
            if kill is None or (kill.at > copy.arrived and len(later) >= MAX_IN_FLIGHT):
                run.unexplained.append(ref)
            else:
                used[kill.pid] += 1
    # One kill can leave each of the worker's sends in flight unrecorded, no more.
    run.kills_explaining_twice = sorted(pid for pid, n in used.items() if n > MAX_IN_FLIGHT)
    run.window_without_duplicate = sorted(
        k.why.split(" ", 1)[1]
        for k in pool.kills
        if k.why.startswith("window") and run.copies[k.why.split(" ", 1)[1]] < 2
    )
    logs = pool.logs()
    run.problems_in_logs = log_problems(logs)
    run.windows_ms = acceptance_windows(accepted, logs)


_SENT_LINE = re.compile(r"^ts=(\S+ \S+) .*action=sms_sent .*message_id=(\w+)", re.MULTILINE)


def acceptance_windows(accepted: Iterable[Request], logs: str) -> list[float]:
    """Milliseconds from the provider's acceptance of each text to the worker's
    ``sms_sent`` line, logged right after the commit that records it: the window in
    which a crash leaves a text sent but not recorded. Log times have 1 ms resolution."""
    logged = {
        sid: datetime.strptime(ts, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for ts, sid in _SENT_LINE.findall(logs)
    }
    return sorted((logged[r.sid] - r.answered_wall) * 1000 for r in accepted if r.sid in logged)


def window_figures(windows_ms: Sequence[float]) -> str:
    if not windows_ms:
        return "not measured"
    ordered = sorted(windows_ms)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (
        f"median {at(0.5):.0f} ms, p90 {at(0.9):.0f} ms, max {ordered[-1]:.0f} ms "
        f"over {len(ordered)} texts"
    )


_UNMASKED_PHONE = re.compile(r"613\D{0,2}555\D?\d{4}")


def log_problems(logs: str, *, errors_expected: bool = False) -> list[str]:
    """Failed worker passes and tracebacks (unless ``errors_expected``: the database is
    being restarted), and phone numbers in clear (always)."""
    found = []
    markers = [] if errors_expected else ["action=worker_pass_failed", "Traceback"]
    for marker in markers:
        if marker in logs:
            found.append(f"{logs.count(marker)} x {marker}")
    if _UNMASKED_PHONE.search(logs):
        found.append("a phone number in clear")
    return found


# --- the web process killed during intake -----------------------------------------------


def serve_process(env: dict[str, str], port: int, log_dir: Path) -> Supervised:
    return Supervised("serve", [*CLI, "serve", "--port", str(port)], env, log_dir)


@dataclass
class IntakeRun:
    batches: int
    events: int
    kills: int = 0
    restarts: int = 0
    reposts: int = 0
    partial_batches: int = 0  # killed with part of the batch committed
    answers: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    restart_seconds: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stored_twice: list[str] = field(default_factory=list)
    bad_answers: list[str] = field(default_factory=list)
    without_effects: list[str] = field(default_factory=list)
    problems_in_logs: list[str] = field(default_factory=list)
    unclean_exits: list[int | None] = field(default_factory=list)

    def summary(self) -> str:
        restart = max(self.restart_seconds, default=0.0)
        return (
            f"[serve crashes] {self.events} events in {self.batches} batches: "
            f"{self.kills} SIGKILLs of serve ({self.partial_batches} with the batch part "
            f"committed), {self.reposts} batches re-posted; answers "
            f"{dict(sorted(self.answers.items()))}; every event stored once: "
            f"{not (self.missing or self.stored_twice)}; back up within {restart:.1f}s "
            f"of a kill; {self.seconds:.1f}s in all"
        )

    def problems(self) -> list[str]:
        return labelled_problems(
            (
                ("events not stored", self.missing),
                ("events stored twice", self.stored_twice),
                ("answers that break the promise", self.bad_answers),
                ("accepted events without their effects", self.without_effects),
                ("serve log problems", self.problems_in_logs),
                ("unclean exits", self.unclean_exits),
            )
        )


def intake_batches(batches: int, size: int, seed: int) -> list[list[dict[str, Any]]]:
    """Batches of CAD events: mostly new eligible calls, and for about one event in
    four a unit dispatched to a call of an earlier batch (an update to fold in)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out: list[list[dict[str, Any]]] = []
    incidents: list[str] = []
    for b in range(batches):
        batch = []
        for n in range(size):
            if incidents and rng.random() < 0.25:
                incident = incidents.pop(rng.randrange(len(incidents)))
                batch.append(
                    {
                        "event_id": f"disp-{incident}",
                        "incident_id": incident,
                        "occurred_at": now.isoformat(),
                        "type": "unit.dispatched",
                        "unit": {"id": f"U{b}{n}"},
                    }
                )
                continue
            incident = f"W-{b}-{n}"
            payload = received(
                incident, now, phone=f"613-555-{(b * size + n) % 10000:04d}", case_number="26-1"
            )
            payload["event_id"] = f"recv-{incident}"
            batch.append(payload)
        incidents.extend(e["incident_id"] for e in batch if e["type"] == "call.received")
        out.append(batch)
    return out


def run_intake_crashes(
    database_url: str,
    log_dir: Path,
    *,
    batches: int = 12,
    size: int = 25,
    kills: int = 3,
    seed: int = 7,
) -> IntakeRun:
    """Post ``batches`` batches to a real ``callerconnect serve`` and SIGKILL it during
    ``kills`` of them; re-post every batch not answered 202, as a CAD does."""
    rng = random.Random(seed)
    plan = intake_batches(batches, size, seed)
    run = IntakeRun(batches, sum(len(b) for b in plan))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")},
        **ONLY_CONFIRMATIONS,
        "CALLERCONNECT_DATABASE_URL": database_url,
        "CALLERCONNECT_SECRET_KEY": TEST_SECRET,
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{TEST_INTAKE_KEY}"]',
        "CALLERCONNECT_PUBLIC_BASE_URL": url,
    }
    serve = serve_process(env, port, log_dir).start()
    killed_in = set(rng.sample(range(batches), kills))
    answers: dict[str, list[str]] = defaultdict(list)
    reposted: set[int] = set()
    started = time.monotonic()
    try:
        wait_until(lambda: healthy(url), 30, "serve to answer /healthz")
        with httpx.Client(timeout=30) as client:
            for index, batch in enumerate(plan):
                attempt = 0
                while True:
                    killer = None
                    if index in killed_in and attempt == 0:
                        wait_until(lambda: bool(serve.pids()), 10, "serve to be restarted")
                        pid = serve.pids()[0]
                        delay = rng.uniform(0.02, 0.25)
                        killer = threading.Timer(delay, serve.kill, (pid, f"batch {index}"))
                        killer.start()
                    response = None
                    with contextlib.suppress(httpx.HTTPError):  # killed: no answer
                        response = client.post(
                            f"{url}/api/v1/cad/events",
                            json={"events": batch},
                            headers={"Authorization": f"Bearer {TEST_INTAKE_KEY}"},
                        )
                    if killer is not None:
                        killer.join()
                    if response is not None and response.status_code == 202:
                        for result in response.json()["results"]:
                            answers[result["event_id"]].append(result["status"])
                        break
                    attempt += 1
                    reposted.add(index)
                    down = time.monotonic()
                    wait_until(lambda: healthy(url), 30, "serve to come back", step=0.1)
                    run.restart_seconds.append(time.monotonic() - down)
        run.seconds = time.monotonic() - started
    finally:
        serve.stop()
    run.kills = len(serve.kills)
    run.restarts = serve.restarts
    run.reposts = len(reposted)
    run.unclean_exits = serve.unclean_exits()
    run.problems_in_logs = log_problems(serve.logs())
    _judge_intake(run, plan, answers, reposted, database_url)
    return run


def _judge_intake(
    run: IntakeRun,
    plan: list[list[dict[str, Any]]],
    answers: dict[str, list[str]],
    reposted: set[int],
    database_url: str,
) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            stored = Counter(
                event_id
                for (event_id,) in connection.execute(text("SELECT event_id FROM cad_events"))
            )
            calls = {
                incident: dispatched
                for incident, dispatched in connection.execute(
                    text("SELECT incident_id, dispatched_at FROM calls")
                )
            }
            confirmations = {
                key
                for (key,) in connection.execute(
                    text("SELECT dedupe_key FROM outbox WHERE kind = 'confirmation'")
                )
            }
    finally:
        engine.dispose()
    for index, batch in enumerate(plan):
        duplicates = 0
        for event in batch:
            event_id, incident = event["event_id"], event["incident_id"]
            got = answers.get(event_id, [])
            run.answers.update(got)
            if stored[event_id] == 0:
                run.missing.append(event_id)
            elif stored[event_id] > 1:
                run.stored_twice.append(event_id)
            # One answer per event (the batch that was answered); ``duplicate`` only
            # where an earlier, unanswered post of its batch had stored it.
            if len(got) != 1 or got[0] not in ("accepted", "duplicate"):
                run.bad_answers.append(f"{event_id}: {got}")
            elif got[0] == "duplicate":
                duplicates += 1
                if index not in reposted:
                    run.bad_answers.append(f"{event_id}: duplicate on its first post")
            if event["type"] == "call.received":
                if incident not in calls or f"default:{incident}:confirmation:0" not in (
                    confirmations
                ):
                    run.without_effects.append(event_id)
            elif calls.get(incident) is None:  # unit.dispatched: dispatched_at is set
                run.without_effects.append(event_id)
        if 0 < duplicates < len(batch):
            run.partial_batches += 1


# --- provider and database faults during a backlog ---------------------------------------


@dataclass
class BacklogRun:
    name: str
    calls: int
    workers: int
    statuses: Counter[int] = field(default_factory=Counter)
    copies: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    not_final: dict[str, Row] = field(default_factory=dict)
    attempts: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    fault_seconds: float = 0.0
    drain_seconds: float = 0.0  # from the workers' start
    after_fault_seconds: float = 0.0  # from the end of the fault to the last text
    adopted: int = 0  # ids recorded from a status callback instead of a resend
    pass_failures: int = 0
    problems_in_logs: list[str] = field(default_factory=list)
    unclean_exits: list[int | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> dict[str, int]:
        return {ref: n - 1 for ref, n in self.copies.items() if n > 1}

    def summary(self) -> str:
        statuses = ", ".join(f"{n} x {code}" for code, n in sorted(self.statuses.items()))
        notes = "; ".join(self.notes)
        return (
            f"[{self.name}] {self.calls} calls, {self.workers} workers: requests {statuses}; "
            f"{sum(self.copies.values())} texts accepted, "
            f"{sum(self.duplicates.values())} duplicates, lost {len(self.lost)}; attempts "
            f"{dict(sorted(self.attempts.items()))}; fault {self.fault_seconds:.1f}s, drained "
            f"{self.after_fault_seconds:.1f}s after it ({self.drain_seconds:.1f}s in all); "
            f"adopted from callbacks {self.adopted}; failed worker passes {self.pass_failures}"
            + (f"; {notes}" if notes else "")
        )

    def problems(self, *, duplicates_allowed: int = 0) -> list[str]:
        too_many = sum(self.duplicates.values()) > duplicates_allowed
        return labelled_problems(
            (
                ("duplicates", self.duplicates if too_many else None),
                ("lost", self.lost),
                ("not delivered to the provider's final state", self.not_final),
                ("log problems", self.problems_in_logs),
                ("unclean exits", self.unclean_exits),
            )
        )


def run_backlog(
    database_url: str,
    log_dir: Path,
    *,
    name: str,
    calls: int,
    fault: Callable[[KillingTwilio], float],
    workers: int = 2,
    rate: float = 20.0,
    callbacks: bool = False,
    start_fault_after: int = 0,
    env: dict[str, str] | None = None,
    drain_timeout: float = 90.0,
) -> BacklogRun:
    """A backlog of ``calls`` confirmations drained by ``workers`` worker processes
    while ``fault(fake)`` (called once ``start_fault_after`` texts were accepted; it
    returns how long the fault lasts, blocking as long as it likes) misbehaves. With
    ``callbacks`` a ``serve`` process receives the fake's signed status callbacks."""
    run = BacklogRun(name, calls, workers)
    final = frozenset({"delivered"} if callbacks else {"sent"})
    with KillingTwilio(callbacks=callbacks) as fake:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = {
            "CALLERCONNECT_SMS__MAX_PER_SECOND": str(rate),
            "CALLERCONNECT_WORKER__RETRY_BASE": "1s",
            "CALLERCONNECT_PUBLIC_BASE_URL": url,
            **(env or {}),
        }
        environment = worker_env(database_url, fake, **settings)
        keys = ingest_calls(environment, calls)
        pools = [Supervised("worker", [*CLI, "worker"], environment, log_dir, workers)]
        if callbacks:  # up before the first text, so no callback finds it down
            pools.insert(0, serve_process(environment, port, log_dir).start())
            wait_until(lambda: healthy(url), 30, "serve to answer /healthz")
        started = time.monotonic()
        pools[-1].start()
        try:
            wait_until(
                lambda: len(fake.accepted_refs()) >= start_fault_after,
                drain_timeout,
                f"{start_fault_after} texts before the fault",
            )
            fault_started = time.monotonic()
            run.fault_seconds = fault(fake)
            fault_ended = fault_started + run.fault_seconds
            wait_until(
                lambda: all_final(database_url, keys, final),
                drain_timeout,
                f"every confirmation {'/'.join(final)}",
                step=0.2,
            )
            last = max(r.answered for r in fake.log if r.status == 201)
            run.drain_seconds = last - started
            run.after_fault_seconds = max(0.0, last - fault_ended)
            time.sleep(1.0)  # a late copy would arrive by now
        finally:
            for pool in pools:
                pool.stop()
        requests = fake.log
        assert not fake.errors, fake.errors
    rows = outbox(database_url)
    accepted = [r for r in requests if r.status == 201]
    run.statuses = Counter(r.status for r in requests)
    run.copies = Counter(r.ref for r in accepted)
    run.lost = sorted(set(keys) - set(run.copies))
    run.not_final = {k: rows[k] for k in keys if k not in rows or rows[k].status not in final}
    run.attempts = Counter(rows[k].attempts for k in keys if k in rows)
    run.reasons = Counter(rows[k].reason or "" for k in keys if k in rows)
    logs = "\n".join(pool.logs() for pool in pools)
    run.adopted = logs.count("action=sms_sent_adopted")
    run.pass_failures = logs.count("action=worker_pass_failed")
    run.problems_in_logs = log_problems(logs)
    run.unclean_exits = [code for pool in pools for code in pool.unclean_exits()]
    return run


def post_until_accepted(
    client: httpx.Client, url: str, events: list[dict[str, Any]], timeout: float = 60.0
) -> int:
    """Post a batch as a CAD does: again until it is answered 202. Returns how many
    posts were refused (5xx, or no answer) first."""
    refused = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = client.post(
                f"{url}/api/v1/cad/events",
                json={"events": events},
                headers={"Authorization": f"Bearer {TEST_INTAKE_KEY}"},
            )
            if response.status_code == 202:
                return refused
            assert response.status_code >= 500, response.text
        except httpx.HTTPError:
            pass
        refused += 1
        assert time.monotonic() < deadline, "the batch was never accepted"
        time.sleep(0.5)


def run_database_restart(
    database_url: str,
    log_dir: Path,
    *,
    calls: int,
    restart: Callable[[], None],
    workers: int = 2,
    rate: float = 10.0,
    drain_timeout: float = 120.0,
) -> BacklogRun:
    """``serve`` and ``workers`` worker processes; a CAD posts half the calls, the
    database server is restarted while their texts drain, the CAD posts the other half
    (retrying until 202). Every text must still go out, with no one restarting
    anything but the database."""
    run = BacklogRun("PostgreSQL restarted", calls, workers)
    with KillingTwilio(callbacks=True) as fake:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = worker_env(
            database_url,
            fake,
            CALLERCONNECT_SMS__MAX_PER_SECOND=str(rate),
            CALLERCONNECT_WORKER__RETRY_BASE="1s",
            CALLERCONNECT_PUBLIC_BASE_URL=url,
        )
        serve = serve_process(env, port, log_dir).start()
        pool = Supervised("worker", [*CLI, "worker"], env, log_dir, workers)
        now = datetime.now(UTC)
        events = [
            received(f"R-{n}", now, phone=f"613-555-{n % 10000:04d}", case_number=f"26-{n:05d}")
            for n in range(calls)
        ]
        keys = [f"default:R-{n}:confirmation:0" for n in range(calls)]
        refused_after = 0
        try:
            wait_until(lambda: healthy(url), 30, "serve to answer /healthz")
            pool.start()
            started = time.monotonic()
            with httpx.Client(timeout=10) as client:
                half = calls // 2
                for first in range(0, half, 10):
                    post_until_accepted(client, url, events[first : min(first + 10, half)])
                wait_until(
                    lambda: len(fake.accepted_refs()) >= max(1, calls // 8),
                    60,
                    "the first texts",
                )
                before = time.monotonic()
                restarting = threading.Thread(target=restart, name="restart")
                restarting.start()  # the CAD goes on posting meanwhile
                for first in range(half, calls, 10):
                    refused_after += post_until_accepted(client, url, events[first : first + 10])
                restarting.join()
                run.fault_seconds = time.monotonic() - before
            wait_until(
                lambda: all_final(database_url, keys, frozenset({"sent", "delivered"})),
                drain_timeout,
                "every confirmation sent",
                step=0.5,
            )
            last = max(r.answered for r in fake.log if r.status == 201)
            run.drain_seconds = last - started
            run.after_fault_seconds = max(0.0, last - (before + run.fault_seconds))
            time.sleep(1.0)
        finally:
            pool.stop()
            serve.stop()
        requests = fake.log
        assert not fake.errors, fake.errors
    rows = outbox(database_url)
    accepted = [r for r in requests if r.status == 201]
    run.statuses = Counter(r.status for r in requests)
    run.copies = Counter(r.ref for r in accepted)
    run.lost = sorted(set(keys) - set(run.copies))
    run.not_final = {
        k: rows[k] for k in keys if k not in rows or rows[k].status not in ("sent", "delivered")
    }
    run.attempts = Counter(rows[k].attempts for k in keys if k in rows)
    logs = pool.logs() + serve.logs()
    run.adopted = logs.count("action=sms_sent_adopted")
    run.pass_failures = logs.count("action=worker_pass_failed")
    run.problems_in_logs = log_problems(logs, errors_expected=True)
    run.unclean_exits = pool.unclean_exits() + serve.unclean_exits()
    run.notes.append(f"CAD posts refused during the restart {refused_after}")
    run.notes.append(
        f"delivered {sum(1 for k in keys if rows[k].status == 'delivered')}, "
        f"sent (callback lost in the outage) {sum(1 for k in keys if rows[k].status == 'sent')}"
    )
    return run


def labelled_problems(checks: tuple[tuple[str, object], ...]) -> list[str]:
    """``label: value`` for every check whose value is not empty: what a run got wrong."""
    return [f"{label}: {value}" for label, value in checks if value]
