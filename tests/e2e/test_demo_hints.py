"""What the demo prints works: every hint of a running demo answers, and `--once`, whose
data is gone when it exits, prints no link at all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.smsc import free_port

CLI = [sys.executable, "-m", "callerconnect.entrypoints.cli", "demo", "--calls", "12"]


def environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CALLERCONNECT_")}


def test_demo_once_prints_no_link_that_dies_with_it(tmp_path: Path) -> None:
    run = subprocess.run(
        [*CLI, "--once"], env=environ(), cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # The texts themselves quote survey links (that is the show); the hints after the
    # summary must not point at anything.
    summary = run.stdout.split("=== Summary ===")[1]
    assert "http://" not in summary and "event.json" not in summary
    assert "without --once" in summary


def test_every_hint_of_the_running_demo_works(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [*CLI, "--port", str(port)],
        env=environ(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Serving on"):
                break
        printed = "".join(lines)
        assert "Serving on" in printed, printed[-2000:]
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):  # uvicorn binds just after the line
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        survey = re.search(rf"{re.escape(base)}/s/\S+", printed)
        assert survey is not None
        assert httpx.get(survey.group(0)).status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(f"{base}{path}").status_code == 200, path
        # Every other page the demo names (dashboard login, open data, its files and
        # catalog) answers too.
        named = set(re.findall(rf"{re.escape(base)}/[^\s;)…]*", printed))
        assert f"{base}/login" in named and f"{base}/open-data" in named, printed[-1500:]
        for url in sorted(named):
            if "/s/" not in url and "/api/v1/cad/" not in url:  # the curl hint: posted above
                assert httpx.get(url).status_code == 200, url
        curl = re.search(r"-H 'Authorization: Bearer (\S+)'.*-d @(\S+)", printed)
        assert curl is not None, printed[-1500:]
        key, event_file = curl.group(1), Path(curl.group(2))
        posted = httpx.post(
            f"{base}/api/v1/cad/events",
            content=event_file.read_bytes(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert posted.status_code == 202
        assert posted.json()["results"][0]["status"] == "accepted"
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()
