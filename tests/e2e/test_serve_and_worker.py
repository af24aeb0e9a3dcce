"""As an integrator runs it: ``callerconnect serve`` and ``callerconnect worker`` as real
processes, configured only through the contract's environment variables, sending
through a Twilio-compatible HTTP endpoint; CAD events posted over HTTP.

Event times are "now", as a live CAD sends them; the delay thresholds and the survey
wait are set to seconds so the whole life of a call fits in a test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio

INTAKE_KEY = "e2e-intake-key-0123456789"
CLI = [sys.executable, "-m", "callerconnect.entrypoints.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Deployment:
    def __init__(self, database_url: str, twilio: FakeTwilio, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.twilio = twilio
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "CALLERCONNECT_DATABASE_URL": database_url,
            "CALLERCONNECT_SECRET_KEY": "e2e-secret-key-0123456789abcdef",
            "CALLERCONNECT_PUBLIC_BASE_URL": self.url,
            "CALLERCONNECT_INTAKE__API_KEYS": f'["{INTAKE_KEY}"]',
            "CALLERCONNECT_SMS__PROVIDER": "twilio",
            "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "CALLERCONNECT_SMS__TWILIO__API_BASE": twilio.api_base,
            "CALLERCONNECT_SMS__MAX_PER_SECOND": "20",
            "CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "3s",
            "CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4": "3s",
            "CALLERCONNECT_POLICY__SURVEY_AFTER_CLEAR": "1s",
            "CALLERCONNECT_POLICY__QUIET_HOURS": "off",
            "CALLERCONNECT_WORKER__POLL_INTERVAL": "1s",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        path = self.log_dir / f"{args[0]}-{len(self.processes)}.log"
        with path.open("wb") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen([*CLI, *args], env=self.env, stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def post(self, *events: dict[str, Any]) -> list[str]:
        response = httpx.post(
            f"{self.url}/api/v1/cad/events",
            json={"events": list(events)},
            headers={"Authorization": f"Bearer {INTAKE_KEY}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        return [r["status"] for r in response.json()["results"]]

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("*.log")))


@pytest.fixture
def deployment(database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    with FakeTwilio() as twilio:
        deployment = Deployment(database_url, twilio, tmp_path)
        upgrade = subprocess.run([*CLI, "db", "upgrade"], env=deployment.env, capture_output=True)
        assert upgrade.returncode == 0, upgrade.stderr
        deployment.start("serve", "--port", str(deployment.port))
        deployment.start("worker")
        wait_until(lambda: _healthy(deployment.url), 20, "serve to answer /healthz")
        try:
            yield deployment
        finally:
            deployment.stop()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def at(offset_seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_seconds)).isoformat()


def texts_to(twilio: FakeTwilio, phone: str) -> list[str]:
    return [m.body for m in twilio.messages if m.to == phone]


def test_a_call_gets_confirmation_delay_notice_and_survey_and_nothing_else(
    deployment: Deployment,
) -> None:
    twilio = deployment.twilio
    received = {
        "event_id": "live-1",
        "incident_id": "LIVE-1",
        "occurred_at": at(),
        "type": "call.received",
        "priority": 4,
        "case_number": "26-70001",
        "call_type": {"code": "THEFT", "description": "Theft under $5000"},
        "caller": {"phone": "(613) 555-0142", "language": "fr"},
    }
    excluded = {
        "event_id": "live-2",
        "incident_id": "LIVE-2",
        "occurred_at": at(),
        "type": "call.received",
        "priority": 3,
        "case_number": "26-70002",
        "call_type": {"code": "IPV"},
        "caller": {"phone": "613-555-0199", "language": "en"},
    }
    assert deployment.post(received, excluded) == ["accepted", "accepted"]
    wait_until(lambda: len(texts_to(twilio, "+16135550142")) >= 1, 15, "the confirmation")
    confirmation = texts_to(twilio, "+16135550142")[0]
    assert "26-70001" in confirmation and "Police d'Ottawa" in confirmation
    assert "http" not in confirmation

    wait_until(lambda: len(texts_to(twilio, "+16135550142")) >= 2, 15, "the delay notice")
    assert (
        deployment.post(
            {
                "event_id": "live-3",
                "incident_id": "LIVE-1",
                "occurred_at": at(),
                "type": "unit.dispatched",
            },
            {
                "event_id": "live-4",
                "incident_id": "LIVE-1",
                "occurred_at": at(),
                "type": "call.cleared",
            },
            {
                "event_id": "live-5",
                "incident_id": "LIVE-2",
                "occurred_at": at(),
                "type": "call.cleared",
            },
        )
        == ["accepted"] * 3
    )
    wait_until(lambda: len(texts_to(twilio, "+16135550142")) >= 3, 15, "the survey invitation")
    survey = texts_to(twilio, "+16135550142")[2]
    assert f"{deployment.url}/s/" in survey

    time.sleep(3)  # nothing more may arrive
    assert len(texts_to(twilio, "+16135550142")) == 3
    assert texts_to(twilio, "+16135550199") == []
    assert {m.from_ for m in twilio.messages} == {"+13438036032"}
    logs = deployment.logs()
    assert "5550142" not in logs and "5550199" not in logs
    assert "action=sms_sent" in logs


def test_reclassification_after_the_confirmation_stops_every_later_text(
    deployment: Deployment,
) -> None:
    twilio = deployment.twilio
    deployment.post(
        {
            "event_id": "r-1",
            "incident_id": "LIVE-R",
            "occurred_at": at(),
            "type": "call.received",
            "priority": 3,
            "case_number": "26-70003",
            "call_type": {"code": "MISCHIEF"},
            "caller": {"phone": "6135550177"},
        }
    )
    wait_until(lambda: len(texts_to(twilio, "+16135550177")) == 1, 15, "the confirmation")
    assert "Ottawa Police" in texts_to(twilio, "+16135550177")[0]  # bilingual: no language
    assert "Police d'Ottawa" in texts_to(twilio, "+16135550177")[0]
    deployment.post(
        {
            "event_id": "r-2",
            "incident_id": "LIVE-R",
            "occurred_at": at(),
            "type": "call.updated",
            "call_type": {"code": "SEXASSLT"},
        },
        {"event_id": "r-3", "incident_id": "LIVE-R", "occurred_at": at(1), "type": "call.cleared"},
    )
    time.sleep(6)  # past the delay threshold and the survey wait
    assert len(texts_to(twilio, "+16135550177")) == 1


def _guess_until_limited(url: str, forwarded_for: Callable[[int], str]) -> list[int]:
    """Unknown survey tokens, each from the client ``forwarded_for(n)`` claims to be.

    The limit counts per fixed minute of the real clock: start well inside one, or a
    burst straddling the minute starts counting again half-way."""
    while datetime.now(UTC).second >= 45:
        time.sleep(0.5)
    statuses = []
    for n in range(21):  # one more than the survey's 20 unknown tokens a minute
        response = httpx.get(
            f"{url}/s/{n:022d}", headers={"X-Forwarded-For": forwarded_for(n)}, timeout=10
        )
        statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_behind_a_trusted_proxy_each_client_has_its_own_guess_limit(
    deployment: Deployment,
) -> None:
    """serve trusts X-Forwarded-For from 127.0.0.1 (here: the test, as the proxy)."""
    first = _guess_until_limited(deployment.url, lambda n: "203.0.113.7")
    other = httpx.get(
        f"{deployment.url}/s/{'C' * 22}", headers={"X-Forwarded-For": "198.51.100.9"}, timeout=10
    )
    assert first == [404] * 20 + [429]
    assert other.status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_client_that_is_not_a_trusted_proxy_cannot_dodge_the_limit_with_forwarded_for(
    database_url: str, tmp_path: Path
) -> None:
    with FakeTwilio() as twilio:
        deployment = Deployment(database_url, twilio, tmp_path)
        deployment.start(
            "serve", "--port", str(deployment.port), "--forwarded-allow-ips", "192.0.2.1"
        )
        try:
            wait_until(lambda: _healthy(deployment.url), 20, "serve to answer /healthz")
            spoofed = _guess_until_limited(deployment.url, lambda n: f"203.0.113.{n + 1}")
        finally:
            deployment.stop()
    assert spoofed == [404] * 20 + [429]
