"""The ``callerconnect`` command (contract section 8)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callerconnect import __version__
from callerconnect.config import (
    RECOMMENDED_SECRET_LENGTH,
    ConfigError,
    Settings,
    load_settings,
)
from callerconnect.logs import configure_logging, mask_phone_patterns

if TYPE_CHECKING:
    from callerconnect.bootstrap import Application


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


@contextmanager
def _application(settings: Settings, log_level: str = "WARNING") -> Iterator[Application]:
    """The wired application on a migrated database; closed on the way out."""
    from callerconnect.bootstrap import build_application

    configure_logging(log_level)
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
    return "".join(
        char
        if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp")
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _show(text: str) -> None:
    print(terminal_safe(text))


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def _warn_weak_secrets(settings: Settings) -> None:
    for key in settings.weak_secrets():
        print(
            f"warning: {key} is shorter than {RECOMMENDED_SECRET_LENGTH} characters; "
            "use a long random value in production",
            file=sys.stderr,
        )


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
    _warn_weak_secrets(settings)
    open_files = raise_open_file_limit()
    limits = settings.serve
    max_connections = connection_cap(limits.max_connections, open_files)
    with _application(settings, settings.log_level) as application:
        collapse_repeated_log_records()
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
    _warn_weak_secrets(settings)
    with _application(settings, settings.log_level) as application:
        if args.once:
            handled = application.dispatcher.run_due()
            print(f"handled {handled} due text(s)")
            return 0
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        application.dispatcher.run_forever(
            stop, poll_interval=settings.worker.poll_interval.total_seconds()
        )
    return 0


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

    from callerconnect.service.envelopes import Envelopes
    from callerconnect.service.ingest_file import ingest_lines

    settings = _settings(args)
    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a readable file", file=sys.stderr)
        return 2
    lines = path.read_text(encoding="utf-8").splitlines()
    with _application(settings) as application, Progress(transient=False) as progress:
        task = progress.add_task(f"ingesting {path.name}", total=len(lines))
        envelopes = Envelopes(application.intake, max_batch=settings.intake.max_batch)
        counts = ingest_lines(envelopes, lines, on_line=lambda: progress.advance(task))
    print(
        f"{counts['accepted']} accepted, {counts['duplicate']} duplicate, "
        f"{counts['rejected']} rejected (see: callerconnect deadletters list)"
    )
    return 0 if counts["rejected"] == 0 else 1


def cmd_deadletters(args: argparse.Namespace) -> int:
    from callerconnect.service import deadletters

    with _application(_settings(args)) as application:
        if args.action == "list":
            letters = deadletters.list_letters(application.db, status=args.status)
            if not letters:
                print("no dead letters")
            for letter in letters:
                _show(
                    f"{letter.id:>6}  {letter.received_at:%Y-%m-%d %H:%M:%S}  {letter.source:<15} "
                    f"{letter.status:<9} {letter.field or '-'}: {mask_phone_patterns(letter.error)}"
                )
            return 0
        if args.action == "show":
            _show(deadletters.show_letter(application.db, application.vault, args.ids[0]))
            return 0
        outcome = deadletters.replay(
            application.db, application.vault, application.intake, args.ids, replay_all=args.all
        )
        for letter_id, result in outcome.items():
            _show(f"{letter_id}: {result}")
        return 0 if all(r.startswith("replayed") for r in outcome.values()) else 1


def cmd_calltypes(args: argparse.Namespace) -> int:
    from callerconnect.service.reports import unknown_call_types

    with _application(_settings(args)) as application:
        rows = unknown_call_types(application.db)
    if args.json:
        print(json.dumps([row._asdict() for row in rows], default=str, indent=2))
        return 0
    if not rows:
        print("no unknown call types")
    for row in rows:
        _show(f"{row.code:<16} {row.calls:>5} call(s)  last seen {row.last_seen:%Y-%m-%d %H:%M}")
    return 0


def cmd_inbound(args: argparse.Namespace) -> int:
    from callerconnect.service.inbound import flagged_texts, mark_reviewed

    with _application(_settings(args)) as application:
        if args.action == "reviewed":
            if not args.ids:
                print("error: give the ids of the texts a person has read", file=sys.stderr)
                return 2
            done = mark_reviewed(application.db, args.ids, application.clock.now())
            print(f"{len(done)} text(s) marked reviewed: {' '.join(map(str, done)) or '-'}")
            return 0
        flagged = flagged_texts(application.db, application.vault, include_reviewed=args.all)
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


def cmd_demo(args: argparse.Namespace) -> int:
    from callerconnect.service.demo import run_demo

    return run_demo(
        port=args.port, host=args.host, once=args.once, calls=args.calls, seed=args.seed
    )


def cmd_consume(args: argparse.Namespace) -> int:
    from nats.errors import NoServersError

    from callerconnect.entrypoints.consume import run_consumer

    settings = _settings(args)
    with _application(settings, settings.log_level) as application:
        try:
            run_consumer(application, args.nats)
        except (NoServersError, OSError) as error:
            print(
                f"error: cannot reach the NATS server (--nats or nats.url): {type(error).__name__}",
                file=sys.stderr,
            )
            return 1
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from callerconnect.entrypoints.simulate import run_simulate

    return run_simulate(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callerconnect",
        description="Texts people who call the police about less urgent matters.",
    )
    parser.add_argument("--version", action="version", version=f"callerconnect {__version__}")
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
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="the dispatcher and timers (run any number)")
    worker.add_argument("--once", action="store_true", help="send what is due now, then exit")
    worker.set_defaults(handler=cmd_worker)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="apply all migrations")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    ingest = commands.add_parser("ingest", help="feed a file of CAD events (one JSON a line)")
    ingest.add_argument("file", metavar="FILE.jsonl")
    ingest.set_defaults(handler=cmd_ingest)

    letters = commands.add_parser("deadletters", help="payloads that were not accepted")
    letters.add_argument("action", choices=["list", "show", "replay"])
    letters.add_argument("ids", nargs="*", type=int, metavar="ID")
    letters.add_argument("--all", action="store_true", help="replay: every new dead letter")
    letters.add_argument("--status", choices=["new", "replayed", "failed"], default=None)
    letters.set_defaults(handler=cmd_deadletters)

    calltypes = commands.add_parser(
        "calltypes", help="call-type codes seen in calls but missing from the table"
    )
    calltypes.add_argument("action", choices=["unknown"])
    calltypes.add_argument("--json", action="store_true")
    calltypes.set_defaults(handler=cmd_calltypes)

    inbound = commands.add_parser(
        "inbound", help="texts callers sent us: list the ones flagged for a person"
    )
    inbound.add_argument(
        "action",
        choices=["flagged", "reviewed"],
        help="flagged: list flagged texts not yet reviewed; reviewed ID...: mark them read",
    )
    inbound.add_argument("ids", nargs="*", type=int, metavar="ID")
    inbound.add_argument("--all", action="store_true", help="flagged: include reviewed ones")
    inbound.set_defaults(handler=cmd_inbound)

    keys = commands.add_parser(
        "keys", help="encryption keys: re-encrypt stored data under a new secret_key"
    )
    keys.add_argument(
        "action",
        choices=["rotate", "check"],
        help="rotate: re-encrypt every stored value under secret_key (safe while running); "
        "check: count values still under old_secret_keys (exit 0 when none)",
    )
    keys.add_argument(
        "--batch-size", type=_positive_int, default=500, help="rows per transaction (default 500)"
    )
    keys.set_defaults(handler=cmd_keys)

    consume = commands.add_parser(
        "consume", help="read CAD events from NATS JetStream (run any number)"
    )
    consume.add_argument("--nats", metavar="URL", help="NATS server (default: nats.url)")
    consume.set_defaults(handler=cmd_consume)

    from callerconnect.entrypoints.simulate import add_simulate_arguments

    simulate = commands.add_parser("simulate", help="a realistic CAD feed: to a file, HTTP or NATS")
    add_simulate_arguments(simulate)
    simulate.set_defaults(handler=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "deadletters" and args.action in ("show",) and len(args.ids) != 1:
        parser.error("deadletters show takes exactly one ID")
    if args.command == "deadletters" and args.action == "replay" and not (args.ids or args.all):
        parser.error("deadletters replay takes IDs or --all")
    handler: Any = args.handler
    try:
        code: int = handler(args)
        return code
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
