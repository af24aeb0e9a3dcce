"""The second probe's flood, at its own size: a real ``callerconnect serve`` with the
common limit of 1,024 open files, ~1,100 idle and a few hundred trickling connections,
and ``/healthz`` probed all along. Prints how fast it answered, how long the server took
to close the flood, and how much it logged (tests/e2e/test_serve_flood.py is the bounded
version).

    .venv/bin/python bench/serve_flood.py
    .venv/bin/python bench/serve_flood.py --open-files 1024 --idle 1100 --slow 300 \\
        --header-timeout 10
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from tests.e2e.test_serve_and_worker import CLI, free_port

from callerconnect.adapters.db.engine import Database
from callerconnect.service.schema import ensure_schema


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-files", type=int, default=1024)
    parser.add_argument("--idle", type=int, default=1100)
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--header-timeout", type=int, default=10)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this side needs many sockets

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/flood.db"
        db = Database.from_url(url)
        ensure_schema(db)
        db.dispose()
        port = free_port()
        log_path = Path(folder) / "serve.log"
        env = {
            "PATH": "/usr/bin:/bin",
            "CALLERCONNECT_DATABASE_URL": url,
            "CALLERCONNECT_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "CALLERCONNECT_INTAKE__API_KEYS": '["bench-intake-key-0123456789"]',
            "CALLERCONNECT_SERVE__HEADER_TIMEOUT": f"{args.header_timeout}s",
        }
        limit = args.open_files

        def limit_files() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [*CLI, "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=log,
                preexec_fn=limit_files,
            )
        try:
            return run(port, server, log_path, args)
        finally:
            server.terminate()
            server.wait(timeout=15)


def healthz(port: int) -> float | None:
    started = time.monotonic()
    try:
        ok = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return None
    return time.monotonic() - started if ok else None


def run(
    port: int, server: subprocess.Popen[bytes], log_path: Path, args: argparse.Namespace
) -> int:
    deadline = time.monotonic() + 30
    while healthz(port) is None:
        if time.monotonic() > deadline:
            print("serve did not start", file=sys.stderr)
            return 1
        time.sleep(0.2)

    flood: list[socket.socket] = []
    opened = time.monotonic()
    for n in range(args.idle + args.slow):
        connection = socket.socket()
        connection.settimeout(5)
        try:
            connection.connect(("127.0.0.1", port))
        except OSError:
            connection.close()
            continue
        if n >= args.idle:
            with contextlib.suppress(OSError):
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        flood.append(connection)
    slow = flood[args.idle :]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.5):
            for connection in slow:
                with contextlib.suppress(OSError):
                    connection.sendall(b"X-Slow: 1\r\n")

    threading.Thread(target=trickle, daemon=True).start()
    print(f"flood: {len(flood)} connections opened in {time.monotonic() - opened:.1f} s")

    timings: list[float | None] = []
    closed_after = None
    start = time.monotonic()
    while time.monotonic() - start < args.header_timeout * 4 + 10:
        timings.append(healthz(port))
        open_ones = 0
        for connection in flood:
            try:
                connection.settimeout(0)
                if connection.recv(1) != b"":
                    open_ones += 1
            except BlockingIOError:
                open_ones += 1
            except OSError:
                pass
        if open_ones == 0 and closed_after is None:
            closed_after = time.monotonic() - start
            break
        time.sleep(0.5)
    stop.set()
    for connection in flood:
        connection.close()

    print("timings (s):", " ".join("-" if t is None else f"{t:.2f}" for t in timings))
    answered = [t for t in timings if t is not None]
    print(f"/healthz during the flood: {len(answered)} of {len(timings)} answered 200")
    if answered:
        print(
            f"  median {statistics.median(answered) * 1000:.0f} ms, "
            f"max {max(answered) * 1000:.0f} ms"
        )
    print(
        "flood closed by the server after "
        + (f"{closed_after:.1f} s" if closed_after is not None else "(not within the run)")
    )
    print(f"serve still running: {server.poll() is None}; log: {log_path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
