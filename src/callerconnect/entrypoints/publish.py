"""``callerconnect publish``: open data, the survey results aggregated and de-identified."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from callerconnect.config import Settings
from callerconnect.entrypoints.support import agency_settings, command_settings
from callerconnect.logs import configure_logging


def cmd_publish(args: argparse.Namespace) -> int:
    from callerconnect.adapters.db.engine import Database
    from callerconnect.clock import SystemClock
    from callerconnect.service.schema import ensure_schema

    settings = agency_settings(args, command_settings(args))
    configure_logging("WARNING")
    # Only aggregates are read: no secret key needed, nothing personal is decrypted.
    db = Database.from_url(settings.database_url)
    try:
        ensure_schema(db)
        return _publish(args, settings, db, SystemClock().now())
    finally:
        db.dispose()


def _publish(args: argparse.Namespace, settings: Settings, db: Any, now: Any) -> int:
    from rich.progress import Progress

    from callerconnect.service.publishing import (
        PublishError,
        make_publication,
        store,
        write_folder,
    )
    from callerconnect.service.survey import load_definition

    with Progress(transient=True) as progress:
        tasks: dict[str, Any] = {}

        def advance(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        try:
            publication = make_publication(
                db,
                settings,
                load_definition(),
                now,
                agency_id=settings.agency_id,
                through=args.through,
                progress=advance,
            )
        except PublishError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        written = write_folder(publication, Path(args.out))
        store(db, publication)
    state = " (as it stands so far)" if publication.partial else ""
    print(f"published {publication.agency_id} through {publication.period}{state}:")
    for path in written:
        print(f"  {path}")
    return 0


def add_publish_command(commands: Any) -> None:
    publish = commands.add_parser(
        "publish", help="open data: the survey results, aggregated and de-identified"
    )
    publish.add_argument("--out", required=True, metavar="DIR", help="folder to write to")
    publish.add_argument("--agency", metavar="AGENCY", help="the agency (default: the default one)")
    publish.add_argument(
        "--through",
        metavar="YYYY-MM",
        help="last month (default: the last complete one; the current one as it stands)",
    )
    publish.set_defaults(handler=cmd_publish)
