"""The commands for what the CAD sends: ``ingest`` a file of events, and
``deadletters`` (the payloads that were not accepted: list, show, replay)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callerconnect.entrypoints.support import (
    CommandError,
    NotFound,
    add_yes_option,
    agency_settings,
    command_settings,
    confirm,
    running_application,
    show,
)


def cmd_ingest(args: argparse.Namespace) -> int:
    from callerconnect.service.envelopes import Envelopes
    from callerconnect.service.ingest_file import ingest_lines
    from callerconnect.service.restamp import latest_time, restamp_lines
    from callerconnect.terminal_progress import progress_bar

    settings = command_settings(args)
    agency = agency_settings(args, settings)
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"{path} is not a readable file (FILE.jsonl)", 2)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text; save it as UTF-8 JSON lines", 2) from None
    now = datetime.now(UTC)
    latest = latest_time(lines)
    if args.restamp:
        lines = restamp_lines(lines, now=now)
    elif latest is not None and now - latest > agency.policy.confirmation_expires:
        print(
            f"note: the latest event in {path.name} happened {(now - latest).days} day(s) ago; "
            "texts whose moment has passed are kept as suppressed:stale, not sent late. "
            "Add --restamp to replay the file as if it had just happened.",
            file=sys.stderr,
        )
    with (
        running_application(settings) as application,
        progress_bar(f"ingesting {path.name}") as on_progress,
    ):
        envelopes = Envelopes(
            application.intakes[agency.agency_id], max_batch=settings.intake.max_batch
        )
        counts = ingest_lines(envelopes, lines, on_progress=on_progress)
    print(
        f"{counts['accepted']} accepted, {counts['duplicate']} duplicate, "
        f"{counts['rejected']} rejected (see: callerconnect deadletters list)"
    )
    return 0 if counts["rejected"] == 0 else 1


def cmd_deadletters(args: argparse.Namespace) -> int:
    from callerconnect.service import deadletters
    from callerconnect.terminal_progress import progress_bar

    settings = command_settings(args)
    agency_id = agency_settings(args, settings).agency_id
    with running_application(settings) as application:
        if args.action == "list":
            letters = deadletters.list_letters(application.db, status=args.status, ids=args.ids)
            if args.ids and (missing := sorted(set(args.ids) - {row.id for row in letters})):
                raise NotFound("dead letter", missing)
            if not letters:
                print("no dead letters")
            for letter in letters:
                show(
                    f"{letter.id:>6}  {letter.received_at:%Y-%m-%d %H:%M:%S}  {letter.source:<15} "
                    f"{letter.status:<9} {deadletters.problem_text(letter)}"
                )
            return 0
        if args.action == "show":
            shown = deadletters.show_letter(application.db, application.vault, args.id)
            if shown is None:
                raise NotFound("dead letter", [args.id])
            show(shown)
            return 0
        statuses = ["new", "failed"] if args.include_failed else ["new"]
        if args.all:
            waiting = deadletters.list_letters(application.db, statuses=statuses)
            if not waiting:
                print(f"no dead letters with status {' or '.join(statuses)}")
                return 0
            confirm(
                f"This replays {len(waiting)} dead letter(s) with status "
                f"{' or '.join(statuses)} through the intake"
                + (
                    ""
                    if args.include_failed
                    else " (those that failed a replay stay: add --include-failed for them)"
                )
                + ".",
                yes=args.yes,
            )
        with progress_bar("replaying dead letters") as on_progress:
            outcome = deadletters.replay(
                application.db,
                application.vault,
                application.intakes[agency_id],
                args.ids,
                replay_all=args.all,
                statuses=statuses,
                on_progress=on_progress,
            )
        for letter_id, result in outcome.items():
            show(f"{letter_id}: {result}")
        if missing := sorted(i for i, result in outcome.items() if result == "not found"):
            raise NotFound("dead letter", missing)
        return 0 if all(r.startswith("replayed") for r in outcome.values()) else 1


def add_intake_commands(commands: Any) -> None:
    ingest = commands.add_parser("ingest", help="feed a file of CAD events (one JSON a line)")
    ingest.add_argument("file", metavar="FILE.jsonl")
    ingest.add_argument("--agency", metavar="AGENCY", help="file the events under this agency")
    ingest.add_argument(
        "--restamp",
        action="store_true",
        help="shift every occurred_at so the file's last event happens now, keeping the "
        "gaps (to replay an example and see it texted instead of suppressed as stale)",
    )
    ingest.set_defaults(handler=cmd_ingest)

    letters = commands.add_parser("deadletters", help="payloads that were not accepted")
    letter_commands = letters.add_subparsers(dest="action", required=True, metavar="ACTION")
    letters_list = letter_commands.add_parser(
        "list", help="list dead letters (all, or the given ids)"
    )
    letters_list.add_argument("ids", nargs="*", type=int, metavar="ID", help="only these")
    letters_list.add_argument(
        "--status", choices=["new", "replayed", "failed"], default=None, help="only this status"
    )
    letters_show = letter_commands.add_parser(
        "show", help="one dead letter's error and payload (phone numbers masked)"
    )
    letters_show.add_argument("id", type=int, metavar="ID")
    letters_replay = letter_commands.add_parser(
        "replay", help="submit dead letters again through the intake"
    )
    letters_replay.add_argument("ids", nargs="*", type=int, metavar="ID")
    letters_replay.add_argument(
        "--agency", metavar="AGENCY", help="replay through this agency's intake"
    )
    letters_replay.add_argument(
        "--all", action="store_true", help="every dead letter not yet replayed (status new)"
    )
    letters_replay.add_argument(
        "--include-failed",
        action="store_true",
        help="with --all: also those whose earlier replay failed",
    )
    add_yes_option(letters_replay)
    letters.set_defaults(handler=cmd_deadletters)
