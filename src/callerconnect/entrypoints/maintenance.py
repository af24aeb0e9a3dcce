"""The commands that look after the stored data: ``db upgrade`` (the schema) and
``keys rotate`` / ``keys check`` (re-encryption under a new secret key)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from callerconnect.entrypoints.support import command_settings, positive_int
from callerconnect.logs import configure_logging


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from callerconnect.adapters.db.engine import Database
    from callerconnect.service.schema import ensure_schema

    settings = command_settings(args)
    db = Database.from_url(settings.database_url)
    try:
        revision = ensure_schema(db)
    finally:
        db.dispose()
    print(f"database is at revision {revision}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Rotation works with the keys alone (no lookup key): it must also report data that
    no configured key can read, which is exactly when a normal start-up refuses."""
    from callerconnect.adapters.crypto import Vault
    from callerconnect.adapters.db.engine import Database
    from callerconnect.service.keys import KeysReport, check_keys, rotate_keys
    from callerconnect.service.schema import ensure_schema

    settings = command_settings(args)
    configure_logging(settings.log_level)
    vault = Vault(
        settings.require_secret_key().get_secret_value(),
        [k.get_secret_value() for k in settings.old_secret_keys],
    )
    db = Database.from_url(settings.database_url)
    try:
        ensure_schema(db)
        report: KeysReport = (
            rotate_keys(db, vault, batch_size=args.batch_size)
            if args.action == "rotate"
            else check_keys(db, vault, batch_size=args.batch_size)
        )
    finally:
        db.dispose()
    print(f"{'column':<34} {'newest key':>10} {'rotated':>8} {'old key':>8} {'unreadable':>10}")
    for column in report.columns:
        print(
            f"{column.column:<34} {column.current:>10} {column.rotated:>8} "
            f"{column.old:>8} {column.unreadable:>10}"
        )
    if report.unreadable:
        print(
            f"{report.unreadable} value(s) cannot be read with the configured keys: add the "
            "secret key they were written with to old_secret_keys and run `keys rotate`",
            file=sys.stderr,
        )
        return 2
    if report.old:
        print(
            f"{report.old} value(s) are still under an old key"
            + (
                " (written while rotating: a process still runs with the old secret_key; "
                "restart it with the new key and rotate again)"
                if args.action == "rotate"
                else ": run `callerconnect keys rotate` before removing old_secret_keys"
            ),
            file=sys.stderr,
        )
        return 1
    print(
        f"all {report.total} stored value(s) are under the newest key"
        + ("; old_secret_keys can be removed" if settings.old_secret_keys else "")
    )
    return 0


def add_db_command(commands: Any) -> None:
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="apply all migrations")
    upgrade.set_defaults(handler=cmd_db_upgrade)


def add_keys_command(commands: Any) -> None:
    keys = commands.add_parser(
        "keys", help="encryption keys: re-encrypt stored data under a new secret_key"
    )
    key_commands = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("rotate", "re-encrypt every stored value under secret_key (safe while running)"),
        ("check", "count values still under old_secret_keys (exit 0 when none)"),
    ):
        key_command = key_commands.add_parser(name, help=text)
        key_command.add_argument(
            "--batch-size",
            type=positive_int,
            default=500,
            help="rows per transaction (default 500)",
        )
    keys.set_defaults(handler=cmd_keys)
