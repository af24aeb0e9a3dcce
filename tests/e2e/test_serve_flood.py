"""``callerconnect serve`` stays up through a flood of idle and slow connections
(second probe, finding 4).

A real ``serve`` process on a random loopback port, started with a low open-file limit
(RLIMIT_NOFILE) so that a few hundred sockets are enough to go past it. Before the
fix, connections that sent nothing or trickled their headers were never closed: once
the process ran out of descriptors ``/healthz`` stopped answering for good and every
failed ``accept`` was logged, in a tight loop.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve_and_worker import CLI, free_port, wait_until

OPEN_FILES = 256  # the child's limit, soft and hard: raising it at start cannot help
IDLE = 300  # connections that send nothing
SLOW = 100  # connections that send a header line every half second, never the end
HEADER_TIMEOUT = 3  # seconds, set through the environment below
HEALTH_BOUND = 5.0  # seconds /healthz may take while flooded (a bound, not a speed)
LOG_BOUND = 20_000  # bytes of log for the whole run


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


class Serve:
    def __init__(self, database_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {
            "PATH": "/usr/bin:/bin",
            "CALLERCONNECT_DATABASE_URL": database_url,
            "CALLERCONNECT_SECRET_KEY": "flood-secret-key-0123456789abcdef",
            "CALLERCONNECT_INTAKE__API_KEYS": '["flood-intake-key-0123456789"]',
            "CALLERCONNECT_SERVE__HEADER_TIMEOUT": f"{HEADER_TIMEOUT}s",
        }
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*CLI, "serve", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=log,
                preexec_fn=_limit_open_files,
            )

    def healthz(self, timeout: float) -> int:
        return httpx.get(f"{self.url}/healthz", timeout=timeout).status_code

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def serve(sqlite_url: str, tmp_path: Path) -> Iterator[Serve]:
    server = Serve(sqlite_url, tmp_path / "serve.log")
    try:
        wait_until(lambda: _answers(server), 30, "serve to answer /healthz")
        yield server
    finally:
        server.stop()


def _answers(server: Serve) -> bool:
    try:
        return server.healthz(timeout=1) == 200
    except httpx.HTTPError:
        return False


def _connect(port: int) -> socket.socket:
    connection = socket.socket()
    connection.settimeout(5)
    connection.connect(("127.0.0.1", port))
    return connection


def _closed_by_peer(connection: socket.socket) -> bool:
    try:
        connection.settimeout(0.05)
        return connection.recv(4096) == b""
    except TimeoutError:
        return False
    except OSError:  # reset: closed too
        return True


def test_serve_answers_through_a_flood_of_idle_and_slow_connections(serve: Serve) -> None:
    idle = [_connect(serve.port) for _ in range(IDLE)]
    slow = [_connect(serve.port) for _ in range(SLOW)]
    stop_trickling = threading.Event()

    def trickle() -> None:
        for connection in slow:
            with contextlib.suppress(OSError):
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        while not stop_trickling.wait(0.5):
            for connection in slow:
                with contextlib.suppress(OSError):
                    connection.sendall(b"X-Slow: 1\r\n")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    flood = idle + slow
    try:
        time.sleep(1)  # the flood is in: more sockets than the child has descriptors

        started = time.monotonic()
        during = serve.healthz(timeout=HEALTH_BOUND)
        took = time.monotonic() - started
        print(f"/healthz answered {during} in {took:.3f} s during the flood")

        # The flood stops by itself: the server closes every idle and slow connection.
        wait_until(
            lambda: all(_closed_by_peer(c) for c in flood),
            HEADER_TIMEOUT * 4 + 10,
            "the server to close every flooding connection",
        )
        after = serve.healthz(timeout=HEALTH_BOUND)
    finally:
        stop_trickling.set()
        trickler.join(timeout=5)
        for connection in flood:
            connection.close()

    assert during == 200
    assert after == 200
    assert serve.process.poll() is None  # still running
    log_size = serve.log_path.stat().st_size
    print(f"log: {log_size} bytes")
    assert log_size < LOG_BOUND, serve.log_path.read_text()[-2000:]
