"""``callerconnect user add|list|disable|passwd`` (contract section 9): dashboard accounts.

A password is asked twice on a terminal and read as one line from standard input
otherwise (for scripts). Every change is written to the audit log, as done by ``cli``.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from callerconnect.adapters.db.engine import Database
from callerconnect.clock import SystemClock
from callerconnect.config import Settings
from callerconnect.service import audit
from callerconnect.service.accounts import AccountError, Accounts
from callerconnect.service.schema import ensure_schema


def read_password(prompt: str = "Password: ") -> str | None:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        second = getpass.getpass("Again: ")
        if first != second:
            print("error: the two passwords differ; nothing was changed", file=sys.stderr)
            return None
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def run_user_command(settings: Settings, args: argparse.Namespace) -> int:
    db = Database.from_url(settings.database_url)
    clock = SystemClock()
    try:
        ensure_schema(db)
        accounts = Accounts(
            db,
            clock,
            default_agency=settings.agency_id,
            idle=settings.dashboard.session_idle,
            max_age=settings.dashboard.session_max,
        )
        if args.action == "list":
            listed = accounts.list()
            if not listed:
                print("no accounts")
            for account in listed:
                state = "disabled" if account.disabled else "active"
                role = account.role.value
                print(f"{account.email:<40} {role:<10} {account.agency_id:<16} {state}")
            return 0
        if not args.email:
            print(f"error: user {args.action} takes an e-mail address", file=sys.stderr)
            return 2
        if args.action == "add":
            if not args.role:
                print(
                    "error: user add needs --role admin|supervisor|analyst|viewer",
                    file=sys.stderr,
                )
                return 2
            password = read_password()
            if password is None:
                return 2
            account = accounts.add(args.email, args.role, password, args.agency)
            done = f"added {account.email} ({account.role.value}, agency {account.agency_id})"
        elif args.action == "disable":
            account = accounts.disable(args.email)
            done = f"disabled {account.email}; its sessions are ended"
        else:
            password = read_password("New password: ")
            if password is None:
                return 2
            account = accounts.set_password(args.email, password)
            done = f"password changed for {account.email}; its sessions are ended"
        audit.record(
            db,
            clock,
            who="cli",
            agency_id=account.agency_id,
            action=f"user.{args.action}",
            target=account.email,
        )
        print(done)
        return 0
    except AccountError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        db.dispose()


def add_user_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    user: argparse.ArgumentParser = commands.add_parser("user", help="dashboard accounts")
    user.add_argument(
        "action",
        choices=["add", "list", "disable", "passwd"],
        help="add EMAIL --role R [--agency ID]; list; disable EMAIL; passwd EMAIL",
    )
    user.add_argument("email", nargs="?", metavar="EMAIL")
    user.add_argument("--role", choices=["admin", "supervisor", "analyst", "viewer"])
    user.add_argument(
        "--agency",
        metavar="ID",
        default=None,
        help="the account's agency (default: the configured agency_id); '*' for an admin "
        "who sees every agency",
    )
    return user
