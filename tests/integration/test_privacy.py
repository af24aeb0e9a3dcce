"""Personal data never reaches the logs: a full run's output, scanned for phone numbers.

The demo replays a simulated day (every caller on a 613-555-01xx number) through intake,
policy, outbox, dispatcher and the console provider, at DEBUG level; nothing it prints
or logs may contain a phone number in any common form.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

# Any North American number, with or without country code and separators, and E.164.
PHONE_PATTERNS = [
    re.compile(r"(?<![\d*])\+?1?[\s.(-]*613[\s.)-]*555[\s.-]*01\d\d(?!\d)"),
    re.compile(r"(?<![\d*])\+1\d{10}(?!\d)"),
    re.compile(r"(?<![\d*])555[\s.-]?01\d\d(?!\d)"),
]


def find_phones(text: str) -> list[str]:
    return [m.group(0) for pattern in PHONE_PATTERNS for m in pattern.finditer(text)]


def test_the_scan_finds_phone_numbers_in_every_form() -> None:
    for sample in ("+16135550142", "613-555-0142", "(613) 555-0142", "6135550142", "555-0142"):
        assert find_phones(f"x {sample} y"), sample
    assert find_phones("to=+1613***0142 case 26-10011 at 2026-01-16T09:02:11") == []


def test_a_full_demo_run_at_debug_level_logs_no_phone_number() -> None:
    environ = {**os.environ, "CALLERCONNECT_LOG_LEVEL": "DEBUG"}
    run = subprocess.run(
        [sys.executable, "-m", "callerconnect.entrypoints.cli", "demo", "--once", "--calls", "40"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    output = run.stdout + run.stderr
    assert "action=event_accepted" in output  # the logs were really on
    assert "[sms]" in output and "+1613***01" in output  # texts were sent, masked
    assert find_phones(output) == []
