"""The demo's dashboard account: made after the simulated day, printed with its password,
so that whoever runs ``callerconnect demo`` can sign in and see the figures filled."""

from __future__ import annotations

import secrets
from typing import TextIO

from callerconnect.bootstrap import Application
from callerconnect.service.accounts import Accounts

DEMO_EMAIL = "demo@example.org"


def create_demo_account(application: Application) -> tuple[str, str]:
    """An admin of the demo's agency with a fresh random password: (e-mail, password)."""
    settings = application.settings
    accounts = Accounts(
        application.db,
        application.clock,
        default_agency=settings.agency_id,
        idle=settings.dashboard.session_idle,
        max_age=settings.dashboard.session_max,
    )
    password = secrets.token_urlsafe(12)
    accounts.add(DEMO_EMAIL, "admin", password)
    return DEMO_EMAIL, password


def print_demo_account(out: TextIO, base_url: str, email: str, password: str) -> None:
    out.write(
        f"Dashboard: {base_url}/login  e-mail {email}  password {password}\n"
        "  (an admin account of this demo only; it goes away with the demo's data)\n"
    )
    out.flush()
