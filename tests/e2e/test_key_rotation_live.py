"""Rotating ``secret_key`` on a running deployment (PostgreSQL), as the runbook in
docs/security.md says: ``serve`` and ``worker`` restarted with the new key and the old one
in ``old_secret_keys``, ``callerconnect keys rotate`` while a CAD keeps posting, then the
old key removed. Every posted event is stored once and readable, every caller is texted,
and nothing is left under the old key.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.tables import CadEventRow, CallRow
from tests.e2e.test_serve_and_worker import CLI, Deployment, _healthy, at, wait_until
from tests.support.fake_twilio import FakeTwilio

NEW_SECRET = "e2e-rotated-secret-key-0123456789abcdef"


def call(n: int) -> dict[str, object]:
    return {
        "event_id": f"rot-{n}",
        "incident_id": f"ROT-{n}",
        "occurred_at": at(),
        "type": "call.received",
        "priority": 4,
        "case_number": f"26-8{n:04d}",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": f"613-555-{n:04d}", "language": "en"},
    }


def restart(deployment: Deployment, **env: str) -> None:
    deployment.stop()
    deployment.processes.clear()
    deployment.env.update(env)
    deployment.start("serve", "--port", str(deployment.port))
    deployment.start("worker")
    wait_until(lambda: _healthy(deployment.url), 20, "serve to answer /healthz")


@pytest.mark.postgres
def test_rotation_while_a_cad_posts_loses_nothing_and_leaves_nothing_under_the_old_key(
    postgres_url: str, tmp_path: Path
) -> None:
    with FakeTwilio() as twilio:
        deployment = Deployment(postgres_url, twilio, tmp_path)
        deployment.env["CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4"] = "1h"
        old_secret = deployment.env["CALLERCONNECT_SECRET_KEY"]
        try:
            restart(deployment)
            assert deployment.post(*(call(n) for n in range(1, 21))) == ["accepted"] * 20

            restart(
                deployment,
                CALLERCONNECT_SECRET_KEY=NEW_SECRET,
                CALLERCONNECT_OLD_SECRET_KEYS=json.dumps([old_secret]),
            )
            posted: list[str] = []
            stop = threading.Event()

            def cad() -> None:
                n = 21
                while not stop.is_set() or n < 41:
                    posted.extend(deployment.post(call(n)))
                    n += 1

            feeder = threading.Thread(target=cad)
            feeder.start()
            rotation = subprocess.run(
                [*CLI, "keys", "rotate", "--batch-size", "5"],
                env=deployment.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            stop.set()
            feeder.join(timeout=60)
            assert rotation.returncode == 0, rotation.stdout + rotation.stderr
            assert posted and set(posted) == {"accepted"}
            total = 20 + len(posted)

            restart(deployment, CALLERCONNECT_OLD_SECRET_KEYS="[]")
            check = subprocess.run(
                [*CLI, "keys", "check"], env=deployment.env, capture_output=True, text=True
            )
            assert check.returncode == 0, check.stdout + check.stderr
            assert deployment.post(call(total + 1)) == ["accepted"]
            total += 1
            wait_until(
                lambda: len({m.to for m in twilio.messages}) >= total, 60, "every confirmation"
            )
        finally:
            deployment.stop()

    db = Database.from_url(postgres_url)
    try:
        vault = Vault(NEW_SECRET)
        with db.transaction() as session:
            assert session.scalar(select(func.count()).select_from(CadEventRow)) == total
            payloads = session.scalars(select(CadEventRow.payload_encrypted)).all()
            phones = session.scalars(select(CallRow.phone_encrypted)).all()
        assert {json.loads(vault.decrypt(p))["event_id"] for p in payloads} == {
            f"rot-{n}" for n in range(1, total + 1)
        }
        assert len({vault.decrypt(p) for p in phones}) == total
    finally:
        db.dispose()
    confirmations = [m.to for m in twilio.messages]
    assert sorted(confirmations) == sorted({f"+1613555{n:04d}" for n in range(1, total + 1)})
