"""The commands that read what happened, for a person to look at: unknown call types,
one call's story, the daily report, and the callers' texts flagged for review."""

from __future__ import annotations

import argparse
import json
from typing import Any

from callerconnect.entrypoints.support import (
    CommandError,
    agency_settings,
    command_settings,
    local_date,
    running_application,
    show,
    show_error,
)


def cmd_calltypes(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from callerconnect.queries.queues import unknown_call_types

    settings = command_settings(args)
    agency_id = agency_settings(args, settings).agency_id
    with running_application(settings) as application:
        rows = unknown_call_types(application.db, agency_id)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], default=str, indent=2))
        return 0
    if not rows:
        print("no unknown call types")
    for row in rows:
        show(f"{row.code:<16} {row.calls:>5} call(s)  last seen {row.last_seen:%Y-%m-%d %H:%M}")
    return 0


def cmd_calls(args: argparse.Namespace) -> int:
    from callerconnect.text_reports import show_call

    settings = command_settings(args)
    local = agency_settings(args, settings)
    agency = local.agency_id
    with running_application(settings) as application:
        shown = show_call(
            application.db,
            application.vault,
            agency,
            args.incident,
            local.tz,
            application.clock.now(),
        )
    if shown is None:
        show_error(f"no call {args.incident!r} in agency {agency!r}")
        return 1
    show(shown)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from callerconnect.terminal_progress import progress_bar
    from callerconnect.text_reports import daily_report

    settings = command_settings(args)
    local = agency_settings(args, settings)
    with running_application(settings) as application:
        yesterday = application.clock.now().astimezone(local.tz).date() - timedelta(days=1)
        with progress_bar("daily report", show_after=1.0) as on_progress:
            report = daily_report(
                application.db,
                application.vault,
                local.agency_id,
                args.date or yesterday,
                local.tz,
                on_progress=on_progress,
            )
    show(report)
    return 0


def cmd_inbound(args: argparse.Namespace) -> int:
    from callerconnect.queries.queues import flagged_replies
    from callerconnect.service.inbound import mark_reviewed

    settings = command_settings(args)
    wanted = getattr(args, "agency", None)
    agency_id = agency_settings(args, settings).agency_id if wanted else None
    # (``inbound flagged`` without --agency lists every agency's texts, for the operator)
    with running_application(settings) as application:
        if args.action == "reviewed":
            done = mark_reviewed(application.db, args.ids, application.clock.now())
            print(f"{len(done)} text(s) marked reviewed: {' '.join(map(str, done)) or '-'}")
            if missing := sorted(set(args.ids) - set(done)):
                raise CommandError(
                    "no flagged text waiting for review with id "
                    + ", ".join(map(str, missing))
                    + " (unknown, not flagged, or already reviewed: see `inbound flagged --all`)"
                )
            return 0
        flagged = flagged_replies(
            application.db, application.vault, agency_id, include_reviewed=args.all
        )
    if not flagged:
        print("no flagged texts")
    for text in flagged:
        reviewed = f"  reviewed {text.reviewed_at:%Y-%m-%d %H:%M}" if text.reviewed_at else ""
        print(
            f"{text.id:>6}  {text.received_at:%Y-%m-%d %H:%M:%S}  {text.phone_masked}  "
            f"[{text.terms}]{reviewed}"
        )
        for line in text.body.splitlines() or [""]:
            show(f"        | {line}")
    return 0


def add_review_commands(commands: Any) -> None:
    calltypes = commands.add_parser(
        "calltypes", help="call-type codes seen in calls but missing from the table"
    )
    calltype_commands = calltypes.add_subparsers(dest="action", required=True, metavar="ACTION")
    unknown = calltype_commands.add_parser(
        "unknown", help="codes seen in calls that the call-types table does not map"
    )
    unknown.add_argument("--json", action="store_true", help="print JSON instead of a table")
    unknown.add_argument("--agency", metavar="AGENCY", help="the agency (default: agency_id)")
    calltypes.set_defaults(handler=cmd_calltypes)

    inbound = commands.add_parser(
        "inbound", help="texts callers sent us: list the ones flagged for a person"
    )
    inbound_commands = inbound.add_subparsers(dest="action", required=True, metavar="ACTION")
    flagged = inbound_commands.add_parser("flagged", help="flagged texts not yet reviewed")
    flagged.add_argument("--all", action="store_true", help="include reviewed ones")
    flagged.add_argument("--agency", metavar="AGENCY", help="only this agency's texts")
    reviewed = inbound_commands.add_parser(
        "reviewed", help="mark flagged texts as read by a person"
    )
    reviewed.add_argument("ids", nargs="+", type=int, metavar="ID")
    inbound.set_defaults(handler=cmd_inbound)

    calls = commands.add_parser("calls", help="one call's story: events, decisions, texts, survey")
    calls_commands = calls.add_subparsers(dest="calls_command", required=True, metavar="ACTION")
    show = calls_commands.add_parser(
        "show",
        help="a call's events, each decision and text with its reason, and its survey "
        "(phone masked); exit 1 if there is no such call",
    )
    show.add_argument("incident", metavar="INCIDENT", help="the CAD's incident id")
    show.add_argument("--agency", metavar="AGENCY", help="agency of the call (default: agency_id)")
    show.set_defaults(handler=cmd_calls)

    report = commands.add_parser("report", help="plain-text reports")
    report_commands = report.add_subparsers(dest="report_command", required=True, metavar="KIND")
    daily = report_commands.add_parser(
        "daily",
        help="one local day: calls, texts by outcome, reasons not texted, opt-outs, surveys, "
        "and what needs a person",
    )
    daily.add_argument(
        "--date",
        type=local_date,
        metavar="YYYY-MM-DD",
        help="the local day whose calls to report (default: yesterday)",
    )
    daily.add_argument("--agency", metavar="AGENCY", help="agency to report on")
    daily.set_defaults(handler=cmd_report)
