"""Probes for a load balancer or systemd: ``/healthz`` (alive, database reachable) and
``/readyz`` (ready for traffic: database reachable and at the code's schema, provider
configured)."""

from __future__ import annotations

from typing import Any

from alembic.script import ScriptDirectory

from callerconnect.adapters.db import migrate
from callerconnect.bootstrap import Application


def expected_revision(application: Application) -> str | None:
    script = ScriptDirectory.from_config(migrate.alembic_config(application.db.engine))
    return script.get_current_head()


def readiness(application: Application, head: str | None) -> tuple[bool, dict[str, Any]]:
    """(ready, body): each check's verdict, never a secret or an internal error text."""
    checks: dict[str, str] = {}
    try:
        current = migrate.current_revision(application.db.engine)
    except Exception:  # any driver error means "not reachable" to a probe
        checks["database"] = "unreachable"
    else:
        checks["database"] = "ok" if current == head else f"not migrated (at {current})"
    # The provider's settings were checked at start-up (credentials present); whether
    # Twilio accepts them is `callerconnect sms check`'s question, not every probe's
    # (a probe each few seconds must not call the provider's API). SMPP binds live in
    # the workers, not here.
    checks["provider"] = "ok"
    ready = all(value == "ok" for value in checks.values())
    return ready, {"status": "ready" if ready else "not ready", **checks}
