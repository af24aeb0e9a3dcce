"""``callerconnect serve --workers 2``: two processes on one address, as an operator runs it.

Promises: both processes answer (the kernel spreads connections over them); a process
that dies is replaced and the address keeps answering meanwhile; events posted through
both at once are each stored once, with their call; SIGTERM stops every process and the
command exits 0. Run on PostgreSQL (the deployment that uses several processes) and on
SQLite (the demo's database, one writer at a time).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import TEST_INTAKE_KEY, TEST_SECRET
from tests.support.crashes import children_of, free_port, healthy, pid_of_client, wait_until
from tests.support.dispatch import received

CLI = [sys.executable, "-m", "callerconnect.entrypoints.cli"]


def owner_of_connection(port: int, candidates: set[int], timeout: float = 5) -> int | None:
    """Which process answers a new kept-alive connection (the server end of it); a
    ``TimeoutError`` when no answer comes within ``timeout`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        connection.sendall(request)
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        client_port = connection.getsockname()[1]
        # The server's end: local port ``port``, remote port ``client_port``.
        return pid_of_client(port, client_port, candidates)


#: The calls posted: 200 confirmations, built once so that posting them again repeats them.
CALLS = [
    received(f"W-{n}", datetime(2026, 1, 5, 15, tzinfo=UTC), phone=f"613-555-{n:04d}")
    for n in range(200)
]


@pytest.mark.slow
def test_two_serve_processes_share_the_address_survive_a_death_and_stop_together(
    database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}
    env |= {
        "CALLERCONNECT_DATABASE_URL": database_url,
        "CALLERCONNECT_SECRET_KEY": TEST_SECRET,
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{TEST_INTAKE_KEY}"]',
        "CALLERCONNECT_LOG_LEVEL": "WARNING",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "2"], env=env, stdout=log, stderr=log
    )
    try:
        wait_until(lambda: healthy(url), 60, "serve --workers 2 answering")
        children = set(children_of(serve.pid))
        assert len(children) == 2, children

        # Both answer. The first to answer /healthz may be alone for a moment: the other
        # is handed connections only once its server accepts, which on a loaded machine
        # comes a while later.
        owners: set[int | None] = set()

        def both_answered() -> bool:
            owners.add(owner_of_connection(port, children))
            return owners == children

        wait_until(both_answered, 60, f"both of {children} answering")

        # Events posted from eight connections at once, spread over both processes.
        headers = {"Authorization": f"Bearer {TEST_INTAKE_KEY}"}

        def post(numbers: range) -> list[str]:
            body = {"events": [CALLS[n] for n in numbers]}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                answer = http.post("/api/v1/cad/events", json=body)
            assert answer.status_code == 202, answer.text
            return [result["status"] for result in answer.json()["results"]]

        with ThreadPoolExecutor(8) as pool:
            statuses = [
                s
                for batch in pool.map(post, [range(n, n + 25) for n in range(0, 200, 25)])
                for s in batch
            ]
        assert statuses == ["accepted"] * 200

        # One process dies: another takes its place; the address answers throughout.
        killed = sorted(children)[0]
        os.kill(killed, signal.SIGKILL)
        wait_until(
            lambda: len(set(children_of(serve.pid)) - {killed}) == 2, 30, "a replacement process"
        )
        serving = set(children_of(serve.pid))
        (replacement,) = serving - children
        # While the replacement starts, and once it answers, no connection waits: the
        # kernel hands one only to a process whose server accepts already.
        answered_by: set[int | None] = set()
        deadline = time.monotonic() + 60
        while replacement not in answered_by:
            assert time.monotonic() < deadline, "the replacement never answered"
            try:
                answered_by.add(owner_of_connection(port, serving, timeout=1))
            except TimeoutError:
                pytest.fail("a connection waited over a second for a process still starting")
        assert "action=serve_process_ended" in (tmp_path / "serve.log").read_text()
        # The events again: each stored once, answered duplicate by either process.
        with ThreadPoolExecutor(8) as pool:
            again = [
                s
                for batch in pool.map(post, [range(n, n + 25) for n in range(0, 200, 25)])
                for s in batch
            ]
        assert again == ["duplicate"] * 200
        engine = create_engine(database_url, poolclass=NullPool)
        with engine.connect() as connection:
            events = connection.execute(text("SELECT count(*) FROM cad_events")).scalar_one()
            calls = connection.execute(text("SELECT count(*) FROM calls")).scalar_one()
        engine.dispose()
        assert (events, calls) == (200, 200)

        survivors = children_of(serve.pid)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in survivors):
            assert time.monotonic() < deadline, "a serve process outlived the stop"
            time.sleep(0.1)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        log.close()
