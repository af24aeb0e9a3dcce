"""The ``callerconnect`` command (contract section 8)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callerconnect import __version__
from callerconnect.cli_errors import explain
from callerconnect.cli_operations import add_operations_commands
from callerconnect.cli_support import (
    CommandError,
    NotFound,
    add_log_format_option,
    add_yes_option,
    confirm,
)
from callerconnect.config import (
    ConfigError,
    Settings,
    load_settings,
)
from callerconnect.logs import configure_logging, escape_controls, mask_secrets
from callerconnect.startup import ensure_port_free, startup_line

if TYPE_CHECKING:
    from callerconnect.bootstrap import Application


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    args.loaded_settings = settings  # for main's error messages (which database, ...)
    return settings


def _agency_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings as ``--agency`` sees them (its id, time zone, names, policy); an
    agency that is not configured is an error naming the configured ones."""
    try:
        return settings.for_agency(getattr(args, "agency", None))
    except ConfigError as error:
        raise CommandError(str(error), 2) from None


@contextmanager
def _application(
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


def _show(text: str) -> None:
    print(terminal_safe(text))


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from callerconnect.web.app import create_app
    from callerconnect.web.server import (
        collapse_repeated_log_records,
        connection_cap,
        guarded_protocol,
        raise_open_file_limit,
    )

    settings = _settings(args)
    settings.require_intake_keys()
    open_files = raise_open_file_limit()
    limits = settings.serve
    max_connections = connection_cap(limits.max_connections, open_files)
    ensure_port_free(args.host, args.port)
    with _application(settings, settings.log_level, args.log_format) as application:
        collapse_repeated_log_records()
        print(
            startup_line("serve", settings, address=f"http://{args.host}:{args.port}"),
            flush=True,
        )
        uvicorn.run(
            create_app(application),
            host=args.host,
            port=args.port,
            log_config=None,
            access_log=False,
            server_header=False,
            # The survey's per-client limits need the real client address: trust the
            # X-Forwarded-For of these proxies only (uvicorn's default: 127.0.0.1, or the
            # FORWARDED_ALLOW_IPS variable), so nobody else can pose as many clients.
            proxy_headers=True,
            forwarded_allow_ips=args.forwarded_allow_ips,
            # Idle and slow connections must not take the server offline (web/server.py).
            http=guarded_protocol(
                header_timeout=limits.header_timeout.total_seconds(),
                max_connections=max_connections,
            ),
            timeout_keep_alive=int(max(1, limits.keep_alive_timeout.total_seconds())),
        )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _application(settings, settings.log_level, args.log_format) as application:
        if not args.once:
            print(startup_line("worker", settings), flush=True)
        if args.once:
            handled = application.dispatcher.run_due()
            print(f"handled {handled} due text(s)")
            return 0
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        if settings.opendata.schedule == "monthly":
            _start_publication_schedule(application, stop)
        application.dispatcher.run_forever(
            stop, poll_interval=settings.worker.poll_interval.total_seconds()
        )
    return 0


def _start_publication_schedule(application: Application, stop: threading.Event) -> None:
    from callerconnect.service.publish_schedule import run_schedule
    from callerconnect.service.survey import load_definition

    threading.Thread(
        target=run_schedule,
        args=(stop, application.db, application.settings, load_definition(), application.clock),
        name="opendata-schedule",
        daemon=True,
    ).start()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from callerconnect.adapters.db.engine import Database
    from callerconnect.service.schema import ensure_schema

    settings = _settings(args)
    db = Database.from_url(settings.database_url)
    try:
        revision = ensure_schema(db)
    finally:
        db.dispose()
    print(f"database is at revision {revision}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from callerconnect.service.ingest_file import ingest_lines
    from callerconnect.service.restamp import latest_time, restamp_lines

    settings = _settings(args)
    agency = _agency_settings(args, settings)
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
    with _application(settings) as application, Progress(transient=False) as progress:
        task = progress.add_task(f"ingesting {path.name}", total=len(lines))
        intake = application.intakes[agency.agency_id]
        counts = ingest_lines(intake, lines, on_line=lambda: progress.advance(task))
    print(
        f"{counts['accepted']} accepted, {counts['duplicate']} duplicate, "
        f"{counts['rejected']} rejected (see: callerconnect deadletters list)"
    )
    return 0 if counts["rejected"] == 0 else 1


def cmd_deadletters(args: argparse.Namespace) -> int:
    from callerconnect.service import deadletters

    settings = _settings(args)
    agency_id = _agency_settings(args, settings).agency_id
    with _application(settings) as application:
        if args.action == "list":
            letters = deadletters.list_letters(application.db, status=args.status, ids=args.ids)
            if args.ids and (missing := sorted(set(args.ids) - {row.id for row in letters})):
                raise NotFound("dead letter", missing)
            if not letters:
                print("no dead letters")
            for letter in letters:
                _show(
                    f"{letter.id:>6}  {letter.received_at:%Y-%m-%d %H:%M:%S}  {letter.source:<15} "
                    f"{letter.status:<9} {deadletters.problem_text(letter)}"
                )
            return 0
        if args.action == "show":
            shown = deadletters.show_letter(application.db, application.vault, args.id)
            if shown is None:
                raise NotFound("dead letter", [args.id])
            _show(shown)
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
        outcome = deadletters.replay(
            application.db,
            application.vault,
            application.intakes[agency_id],
            args.ids,
            replay_all=args.all,
            statuses=statuses,
        )
        for letter_id, result in outcome.items():
            _show(f"{letter_id}: {result}")
        if missing := sorted(i for i, result in outcome.items() if result == "not found"):
            raise NotFound("dead letter", missing)
        return 0 if all(r.startswith("replayed") for r in outcome.values()) else 1


def cmd_calltypes(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from callerconnect.queries.queues import unknown_call_types

    settings = _settings(args)
    agency_id = _agency_settings(args, settings).agency_id
    with _application(settings) as application:
        rows = unknown_call_types(application.db, agency_id)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], default=str, indent=2))
        return 0
    if not rows:
        print("no unknown call types")
    for row in rows:
        _show(f"{row.code:<16} {row.calls:>5} call(s)  last seen {row.last_seen:%Y-%m-%d %H:%M}")
    return 0


def cmd_calls(args: argparse.Namespace) -> int:
    from callerconnect.text_reports import show_call

    settings = _settings(args)
    local = _agency_settings(args, settings)
    agency = local.agency_id
    with _application(settings) as application:
        shown = show_call(
            application.db,
            application.vault,
            agency,
            args.incident,
            local.tz,
            application.clock.now(),
        )
    if shown is None:
        _show_error(f"no call {args.incident!r} in agency {agency!r}")
        return 1
    _show(shown)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from callerconnect.text_reports import daily_report

    settings = _settings(args)
    local = _agency_settings(args, settings)
    with _application(settings) as application:
        yesterday = application.clock.now().astimezone(local.tz).date() - timedelta(days=1)
        report = daily_report(
            application.db,
            application.vault,
            local.agency_id,
            args.date or yesterday,
            local.tz,
        )
    _show(report)
    return 0


def _show_error(text: str) -> None:
    print(f"error: {terminal_safe(text)}", file=sys.stderr)


def _local_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


def cmd_inbound(args: argparse.Namespace) -> int:
    from callerconnect.service.inbound import flagged_texts, mark_reviewed

    settings = _settings(args)
    wanted = getattr(args, "agency", None)
    agency_id = _agency_settings(args, settings).agency_id if wanted else None
    # (``inbound flagged`` without --agency lists every agency's texts, for the operator)
    with _application(settings) as application:
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
        flagged = flagged_texts(
            application.db, application.vault, include_reviewed=args.all, agency_id=agency_id
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
            _show(f"        | {line}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Rotation works with the keys alone (no lookup key): it must also report data that
    no configured key can read, which is exactly when a normal start-up refuses."""
    from callerconnect.adapters.crypto import Vault
    from callerconnect.adapters.db.engine import Database
    from callerconnect.service.keys import KeysReport, check_keys, rotate_keys
    from callerconnect.service.schema import ensure_schema

    settings = _settings(args)
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


def cmd_publish(args: argparse.Namespace) -> int:
    from callerconnect.adapters.db.engine import Database
    from callerconnect.clock import SystemClock
    from callerconnect.service.schema import ensure_schema

    settings = _agency_settings(args, _settings(args))
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


def cmd_demo(args: argparse.Namespace) -> int:
    from callerconnect.service.demo import run_demo

    if not args.once:
        ensure_port_free(args.host, args.port)  # before the simulated day, not after it
    return run_demo(
        port=args.port, host=args.host, once=args.once, calls=args.calls, seed=args.seed
    )


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

    demo = commands.add_parser(
        "demo", help="the whole flow on a simulated day (SQLite, console SMS)"
    )
    demo.add_argument("--once", action="store_true", help="exit after the summary")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--calls", type=int, default=60, help="incidents in the simulated day")
    demo.add_argument("--seed", type=int, default=2024, help="seed of the simulated feed")
    demo.set_defaults(handler=cmd_demo)

    serve = commands.add_parser("serve", help="the API, webhooks and pages")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default=None,
        help="comma-separated addresses of reverse proxies whose X-Forwarded-For is "
        "trusted for the client address (default: $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )
    add_log_format_option(serve)
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="the dispatcher and timers (run any number)")
    worker.add_argument("--once", action="store_true", help="send what is due now, then exit")
    add_log_format_option(worker)
    worker.set_defaults(handler=cmd_worker)

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

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="apply all migrations")
    upgrade.set_defaults(handler=cmd_db_upgrade)

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
        type=_local_date,
        metavar="YYYY-MM-DD",
        help="the local day whose calls to report (default: yesterday)",
    )
    daily.add_argument("--agency", metavar="AGENCY", help="agency to report on")
    daily.set_defaults(handler=cmd_report)

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
            type=_positive_int,
            default=500,
            help="rows per transaction (default 500)",
        )
    keys.set_defaults(handler=cmd_keys)

    add_operations_commands(commands)
    return parser


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
