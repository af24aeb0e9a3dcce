"""The ``callerconnect`` command (contract section 8): the parser and ``main``.

Each command group's handlers and options are in a module of their own; this one puts
them together and turns failures into clear messages and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from callerconnect import __version__
from callerconnect.config import ConfigError
from callerconnect.entrypoints.demo import add_demo_command
from callerconnect.entrypoints.errors import explain
from callerconnect.entrypoints.feed_commands import add_feed_commands
from callerconnect.entrypoints.intake_commands import add_intake_commands
from callerconnect.entrypoints.maintenance import add_db_command, add_keys_command
from callerconnect.entrypoints.operations import add_operations_commands
from callerconnect.entrypoints.publish import add_publish_command
from callerconnect.entrypoints.review_commands import add_review_commands
from callerconnect.entrypoints.serve import add_serve_command
from callerconnect.entrypoints.support import CommandError, command_settings
from callerconnect.entrypoints.user_commands import add_user_parser, run_user_command
from callerconnect.entrypoints.worker import add_worker_command
from callerconnect.logs import mask_secrets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callerconnect",
        description="Texts people who call the police about less urgent matters.",
    )
    parser.add_argument("--version", action="version", version=f"callerconnect {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the full traceback of a failure"
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML configuration file (default: ./callerconnect.toml if present); "
        "CALLERCONNECT_* environment variables win",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In the order ``--help`` lists them.
    add_demo_command(commands)
    add_serve_command(commands)
    add_worker_command(commands)
    add_publish_command(commands)
    add_db_command(commands)
    add_intake_commands(commands)
    add_review_commands(commands)
    add_keys_command(commands)
    add_operations_commands(commands)
    add_user_parser(commands).set_defaults(handler=cmd_user)
    add_feed_commands(commands)
    return parser


def cmd_user(args: argparse.Namespace) -> int:
    return run_user_command(command_settings(args), args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "deadletters" and args.action == "replay":
        if not (args.ids or args.all):
            parser.error("deadletters replay takes IDs or --all")
        if args.ids and args.all:
            parser.error("deadletters replay takes IDs or --all, not both")
    handler: Any = args.handler
    try:
        code: int = handler(args)
        return code
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.debug:
            raise
        settings = getattr(args, "loaded_settings", None)
        lines = explain(error, settings.database_url if settings is not None else None)
        if lines is None:
            lines = [
                f"unexpected {type(error).__name__}: {mask_secrets(str(error))[:300]}",
                "run again with --debug for the traceback",
            ]
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
