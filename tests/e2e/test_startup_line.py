"""`serve` and `worker` say what they are when they start, in one line without secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_INTAKE_KEY, TEST_SECRET
from tests.support.smsc import free_port


def first_line(args: list[str], env: dict[str, str], cwd: Path) -> str:
    process = subprocess.Popen(
        [sys.executable, "-m", "callerconnect.entrypoints.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        return process.stdout.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.postgres
def test_serve_and_worker_print_one_line_naming_address_database_and_provider(
    postgres_url: str, tmp_path: Path
) -> None:
    # The database URL with a password in it, which must not show.
    url = postgres_url.replace("://postgres@", "://postgres:not-shown-pw@")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}
    env |= {
        "CALLERCONNECT_DATABASE_URL": url,
        "CALLERCONNECT_SECRET_KEY": TEST_SECRET,
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{TEST_INTAKE_KEY}"]',
    }
    port = free_port()
    serve = first_line(["serve", "--port", str(port)], env, tmp_path)
    assert serve.startswith("callerconnect serve started:"), serve
    assert f"listening on http://127.0.0.1:{port}" in serve
    assert "sms provider console" in serve and "agencies default" in serve
    assert f"http://127.0.0.1:{port}/openapi.json" in serve
    worker = first_line(["worker"], env, tmp_path)
    assert worker.startswith("callerconnect worker started:"), worker
    for line in (serve, worker):
        assert "not-shown-pw" not in line and TEST_SECRET not in line
        assert "postgresql+psycopg://postgres:***@" in line
