"""Helpers every command uses to keep its word: a clear refusal, a question before a bulk
or destructive action, and the list of every (sub)command for the help test."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import TextIO


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
