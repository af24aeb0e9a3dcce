"""``callerconnect consume`` and ``simulate``: the CAD feed from NATS JetStream, and a
realistic feed to a file, the intake API or NATS (contract section 12)."""

from __future__ import annotations

import argparse
from typing import Any

from callerconnect.entrypoints.support import CommandError, command_settings, running_application


def cmd_consume(args: argparse.Namespace) -> int:
    from nats.errors import NoServersError

    from callerconnect.entrypoints.consume import run_consumer

    settings = command_settings(args)
    with running_application(settings, settings.log_level) as application:
        try:
            run_consumer(application, args.nats)
        except (NoServersError, OSError) as error:
            raise CommandError(
                f"cannot reach the NATS server (--nats or nats.url): {type(error).__name__}"
            ) from None
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from callerconnect.entrypoints.simulate import run_simulate

    return run_simulate(args)


def add_feed_commands(commands: Any) -> None:
    from callerconnect.entrypoints.simulate import add_simulate_arguments

    consume = commands.add_parser(
        "consume", help="read CAD events from NATS JetStream (run any number)"
    )
    consume.add_argument("--nats", metavar="URL", help="NATS server (default: nats.url)")
    consume.set_defaults(handler=cmd_consume)

    simulate = commands.add_parser("simulate", help="a realistic CAD feed: to a file, HTTP or NATS")
    add_simulate_arguments(simulate)
    simulate.set_defaults(handler=cmd_simulate)
