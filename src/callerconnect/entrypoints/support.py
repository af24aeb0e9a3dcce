"""Helpers every command uses to keep its word: the settings and the wired application,
output that is safe on a terminal, a clear refusal, a question before a bulk or
destructive action, and the list of every (sub)command for the help test."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, TextIO

from callerconnect.config import ConfigError, Settings, load_settings
from callerconnect.logs import configure_logging, escape_controls

if TYPE_CHECKING:
    from callerconnect.bootstrap import Application


def command_settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    args.loaded_settings = settings  # for main's error messages (which database, ...)
    return settings


def agency_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings as ``--agency`` sees them (its id, time zone, names, policy); an
    agency that is not configured is an error naming the configured ones."""
    try:
        return settings.for_agency(getattr(args, "agency", None))
    except ConfigError as error:
        raise CommandError(str(error), 2) from None


@contextmanager
def running_application(
    settings: Settings, log_level: str = "WARNING", log_format: str = "text"
) -> Iterator[Application]:
    """The wired application on a migrated database; closed on the way out."""
    from callerconnect.bootstrap import build_application

    configure_logging(log_level, log_format=log_format)
    application = build_application(settings)
    try:
        yield application
    finally:
        application.close()


def terminal_safe(text: str) -> str:
    """``text`` with every control and formatting character written as an escape.

    What the CLI prints comes partly from outsiders: a caller's text (``inbound
    flagged``), a CAD's call-type codes and rejected payloads. A raw ESC could clear the
    operator's screen, retitle the window or write the clipboard; a carriage return or a
    right-to-left override could make one line look like another. Line breaks and tabs
    are kept; nothing else invisible is."""
    return escape_controls(text, keep="\n\t")


def show(text: str) -> None:
    print(terminal_safe(text))


def show_error(text: str) -> None:
    print(f"error: {terminal_safe(text)}", file=sys.stderr)


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def local_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


class CommandError(Exception):
    """An expected failure of a command: printed as ``error: <message>`` (no traceback),
    exit ``exit_code``. ``message`` says what went wrong and what to do."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotFound(CommandError):
    """An id given on the command line names nothing."""

    def __init__(self, what: str, ids: list[int] | list[str]) -> None:
        shown = ", ".join(str(i) for i in ids)
        plural = "s" if len(ids) > 1 else ""
        super().__init__(f"no {what}{plural} with id{plural} {shown}", exit_code=1)
        self.ids = ids


def confirm(
    plan: str,
    *,
    yes: bool,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
) -> None:
    """Say what a bulk or destructive action will do, and go on only on a "y".

    ``--yes`` answers for the operator (scripts, cron). Without a terminal and without
    ``--yes`` nothing is done: a script must say it means it. Raises CommandError on a no.
    """
    stdin = stdin or sys.stdin
    out = out or sys.stderr
    print(plan, file=out)
    if yes:
        return
    if not stdin.isatty():
        raise CommandError("not confirmed (no terminal to ask); add --yes to go ahead", 1)
    print("Go ahead? [y/N] ", end="", file=out, flush=True)
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes", "o", "oui"):
        raise CommandError("nothing done", 1)


def add_yes_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes", "-y", action="store_true", help="do it without asking (for scripts)"
    )


def add_log_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text: key=value lines (default); json: one JSON object a line",
    )


def walk_commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command path with its parser, the top one first (``()``, ``("db",)``,
    ``("db", "upgrade")``, ...), read from the parser itself so that a command added
    later is found without a list to keep up."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from walk_commands(subparser, (*prefix, name))
