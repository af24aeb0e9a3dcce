"""``callerconnect demo`` as a new user runs it: after the simulated day it prints a
dashboard account, keeps serving, and that account signs in to a filled dashboard."""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_demo_prints_an_account_that_signs_in_to_a_filled_dashboard() -> None:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callerconnect.entrypoints.cli",
            "demo",
            "--port",
            str(port),
            "--calls",
            "30",
        ],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = ""
        assert demo.stdout is not None
        deadline = time.monotonic() + 240
        while "Serving on" not in output and time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            output += line
        found = re.search(r"Dashboard: (\S+)/login  e-mail (\S+)  password (\S+)", output)
        assert found is not None, output[-2000:]
        base, email, password = found.groups()
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(50):  # uvicorn binds just after the line is printed
                try:
                    form = client.get("/login")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            signed_in = client.post(
                "/login",
                data={"email": email, "password": password, "csrf_token": token.group(1)},
            )
            assert signed_in.status_code == 303
            page = client.get("/dashboard")
            assert page.status_code == 200
            received = re.search(r'data-metric="calls_received">([^<]*)<', page.text)
            assert received is not None
            assert int(html.unescape(received.group(1)).replace(",", "")) > 0
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()
