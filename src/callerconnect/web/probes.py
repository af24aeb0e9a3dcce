"""Probes for a load balancer or systemd: ``/healthz`` (alive, database reachable) and
``/readyz`` (ready for traffic: database reachable and at the code's schema, provider
configured)."""

from __future__ import annotations

from typing import Any

from alembic.script import ScriptDirectory

from callerconnect.adapters.db import migrate
from callerconnect.bootstrap import Application
from callerconnect.web.openapi import json_answer, ref

#: The bodies of the probes' answers, named in the OpenAPI document.
PROBE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Health": {
        "type": "object",
        "required": ["status", "database"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "database": {"enum": ["ok", "unreachable"]},
            "version": {"type": "string"},
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "database", "provider"],
        "properties": {
            "status": {"enum": ["ready", "not ready"]},
            "database": {
                "type": "string",
                "description": "ok, unreachable, or not migrated (at R)",
            },
            "provider": {"type": "string"},
        },
    },
}

HEALTH_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: json_answer("The database is reachable", ref("Health")),
    503: json_answer("The database is not reachable", ref("Health")),
}
READINESS_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: json_answer(
        "Ready: the database is reachable and at this version's schema, the SMS provider "
        "configured",
        ref("Readiness"),
    ),
    503: json_answer("Not ready: the database is unreachable or not migrated", ref("Readiness")),
}


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
