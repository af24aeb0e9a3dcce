"""The pieces of ``serve``'s connection defences that need no socket (web/server.py);
tests/e2e/test_serve_flood.py runs them together against a real flood."""

from __future__ import annotations

import io
import logging
import resource

from callerconnect.web.server import (
    MIN_CONNECTIONS,
    RESERVED_FILES,
    RepeatedRecords,
    connection_cap,
)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _logger(clock: _Clock) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatedRecords(interval=10, clock=clock))
    logger = logging.getLogger(f"test.repeated.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    return logger, out


def test_a_run_of_the_same_error_is_logged_once_then_with_its_count() -> None:
    clock = _Clock()
    logger, out = _logger(clock)

    for _ in range(10_000):
        logger.error("socket.accept() out of system resource")
    first = out.getvalue().splitlines()
    clock.now = 11
    logger.error("socket.accept() out of system resource")
    lines = out.getvalue().splitlines()

    assert first == ["socket.accept() out of system resource"]
    assert len(lines) == 2
    assert "9999" in lines[1]


def test_different_errors_and_ordinary_records_are_not_held_back() -> None:
    clock = _Clock()
    logger, out = _logger(clock)
    logger.setLevel(logging.INFO)

    for n in range(3):
        logger.info("action=request n=%s", n)
    logger.error("one thing")
    logger.error("another thing")

    assert out.getvalue().splitlines() == [
        "action=request n=0",
        "action=request n=1",
        "action=request n=2",
        "one thing",
        "another thing",
    ]


def test_connections_never_take_the_files_the_process_needs() -> None:
    assert connection_cap(1000, 256) == 256 - RESERVED_FILES
    assert connection_cap(100, 65536) == 100
    assert connection_cap(1000, 40) == MIN_CONNECTIONS
    assert connection_cap(500, resource.RLIM_INFINITY) == 500


def test_the_open_file_limit_is_raised_to_the_hard_limit_at_start() -> None:
    """In a child process, so this test's own limit is left alone."""
    import subprocess
    import sys

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 512))

    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource; from callerconnect.web.server import raise_open_file_limit; "
            "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])",
        ],
        capture_output=True,
        text=True,
        preexec_fn=low_soft_limit,
        check=True,
    )

    assert child.stdout.split() == ["512", "512"]
