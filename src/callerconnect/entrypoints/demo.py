"""``callerconnect demo``: the whole flow in one process, on a simulated day.

SQLite in a temporary folder, the console SMS provider, a simulated CAD feed replayed
on a virtual clock (the last 24 hours), then the web server and an in-process worker
until interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from callerconnect.adapters.sms.base import OutgoingSms, SendResult, SmsProvider
from callerconnect.adapters.sms.console import ConsoleProvider
from callerconnect.bootstrap import Application, build_application, demo_secret
from callerconnect.clock import VirtualClock
from callerconnect.config import load_settings
from callerconnect.entrypoints.demo_account import create_demo_account, print_demo_account
from callerconnect.entrypoints.serve import run_server
from callerconnect.entrypoints.startup import ensure_port_free
from callerconnect.entrypoints.worker import run_worker
from callerconnect.logs import configure_logging
from callerconnect.queries import outcomes, queues
from callerconnect.service import publishing
from callerconnect.service.simulation import replay, simulated_day
from callerconnect.service.survey import load_definition

_SURVEY_LINK = re.compile(r"https?://\S+/s/[A-Za-z0-9_-]{22,}")


class _TimestampedConsole:
    """The console provider, with each text headed by the (virtual) local time."""

    def __init__(
        self, inner: ConsoleProvider, clock: VirtualClock, settings_tz: object, out: TextIO
    ):
        self.inner = inner
        self.clock = clock
        self.tz = settings_tz
        self.out = out
        self.name = inner.name

    def send(self, message: OutgoingSms) -> SendResult:
        local = self.clock.now().astimezone(self.tz)  # type: ignore[arg-type]
        self.out.write(f"\n{local:%a %H:%M:%S}\n")
        return self.inner.send(message)


def run_demo(
    *, port: int, host: str, once: bool, calls: int, seed: int, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    workdir = tempfile.mkdtemp(prefix="callerconnect-demo-")
    base_url = f"http://{host}:{port}"
    intake_key = "demo-" + secrets.token_urlsafe(16)
    secret_key = demo_secret()
    environ = {
        # The demo's database is its own: keys meant for another one are not needed.
        **{k: v for k, v in os.environ.items() if k != "CALLERCONNECT_OLD_SECRET_KEYS"},
        "CALLERCONNECT_SECRET_KEY": secret_key,
        "CALLERCONNECT_DATABASE_URL": f"sqlite:///{workdir}/demo.db",
        "CALLERCONNECT_PUBLIC_BASE_URL": base_url,
        "CALLERCONNECT_SMS__PROVIDER": "console",
        "CALLERCONNECT_INTAKE__API_KEYS": f'["{intake_key}"]',
    }
    settings = load_settings(environ=environ)
    # Quiet by default (the texts are the show); CALLERCONNECT_LOG_LEVEL opens it up.
    configure_logging(settings.log_level if "CALLERCONNECT_LOG_LEVEL" in os.environ else "WARNING")
    end = datetime.now(UTC).replace(microsecond=0)
    # Calls come in over the 20 hours that start 36 hours ago; the rest of the window
    # lets their texts play out, quiet hours included.
    start = end - timedelta(hours=36)
    clock = VirtualClock(start)
    console = ConsoleProvider(out)
    provider: SmsProvider = _TimestampedConsole(console, clock, settings.tz, out)
    application = build_application(settings, clock=clock, provider=provider)
    try:
        feed = simulated_day(start, calls=calls, seed=seed)
        out.write(
            f"callerconnect demo — replaying {len(feed)} CAD events for {calls} calls "
            f"over 20 hours from {start.astimezone(settings.tz):%a %H:%M} "
            f"({settings.timezone}) on a virtual clock.\n"
            "Every text is printed as it is sent; phone numbers are masked.\n"
        )
        replay(
            feed,
            clock,
            submit=lambda payload: application.intake.submit(payload, "demo"),
            run_due=application.dispatcher.run_due,
            next_due_at=application.dispatcher.next_due_at,
            until=end,
        )
        links = [m.group(0) for _, sms in console.sent for m in _SURVEY_LINK.finditer(sms.body)]
        _print_summary(application, out, links, base_url, workdir, intake_key, once=once)
        _publish_open_data(application, out, base_url, once=once)
        if once:
            return 0
        print_demo_account(out, base_url, *create_demo_account(application))
        clock.go_live()
        return _serve(application, host, port, out)
    finally:
        application.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _print_summary(
    application: Application,
    out: TextIO,
    links: list[str],
    base_url: str,
    workdir: str,
    intake_key: str,
    *,
    once: bool,
) -> None:
    sent: Counter[str] = Counter()
    not_sent: Counter[str] = Counter()
    agency_id = application.settings.agency_id
    for outcome in outcomes.texts_by_outcome(application.db, agency_id):
        kind, status, reason = outcome.kind, outcome.status, outcome.reason
        if status in ("sent", "delivered"):
            sent[kind] += outcome.texts
        elif status == "scheduled":
            waiting = f"{kind} waiting for its time ({reason or 'quiet hours or delay'})"
            not_sent[waiting] += outcome.texts
        else:
            not_sent[f"{kind} {status} ({reason or '-'})"] += outcome.texts
    out.write("\n=== Summary ===\nTexts sent:\n")
    for kind, count in sorted(sent.items()):
        out.write(f"  {count:>4}  {kind}\n")
    out.write(f"  {sum(sent.values()):>4}  in all\n")
    out.write("Texts not sent, and why:\n")
    for label, count in sorted(not_sent.items()):
        out.write(f"  {count:>4}  {label}\n")
    out.write("Calls by eligibility (calls other than 'eligible' were never texted):\n")
    for with_reason in outcomes.calls_by_reason(application.db, agency_id):
        out.write(f"  {with_reason.calls:>4}  {with_reason.reason}\n")
    unknown = queues.unknown_call_types(application.db, agency_id)
    if unknown:
        out.write("Unknown call types waiting for an administrator to map them:\n")
        for row in unknown:
            out.write(f"  {row.calls:>4}  {row.code} ({row.description or 'no description'})\n")
    out.write("\n")
    if once:
        # Everything below would point at pages and files that are gone once we exit.
        out.write(
            "The demo's database was deleted on exit. Run `callerconnect demo` (without "
            "--once) to open a survey link, the health check and the API, and to send "
            "your own CAD events.\n"
        )
        out.flush()
        return
    event_file = Path(workdir) / "event.json"
    event_file.write_text(json.dumps(_try_event(), indent=2) + "\n", encoding="utf-8")
    if links:
        out.write(f"Open a survey link the simulated callers received:\n  {links[-1]}\n")
    out.write(
        f"Health: {base_url}/healthz   Ready: {base_url}/readyz   Metrics: {base_url}/metrics\n"
        f"Send your own CAD event (an eligible theft, stamped now):\n"
        f"  curl -X POST {base_url}/api/v1/cad/events "
        f"-H 'Authorization: Bearer {intake_key}' -H 'Content-Type: application/json' "
        f"-d @{event_file}\n"
        f"(data lives in {workdir} while the demo runs, and is deleted when it stops)\n"
    )
    out.flush()


def _publish_open_data(application: Application, out: TextIO, base_url: str, *, once: bool) -> None:
    """The simulated day's month is the current one: publish it as it stands so far.
    With ``once`` the pages end with the demo, so no link to them is printed."""
    settings = application.settings
    now = application.clock.now()
    publication = publishing.make_publication(
        application.db,
        settings,
        load_definition(),
        now,
        through=publishing.month_of(now, settings),
    )
    publishing.store(application.db, publication)
    if once:
        out.write(
            f"Open data, {publication.period} published as it stands so far "
            "(run without --once to see /open-data)\n"
        )
        out.flush()
        return
    out.write(
        f"Open data, {publication.period} published as it stands so far: {base_url}/open-data\n"
        f"  (files: {base_url}/open-data/monthly_by_district.csv …; "
        f"catalog: {base_url}/api/feed/dcat-us/1.1.json)\n"
    )
    out.flush()


def _try_event() -> dict[str, object]:
    """An event an operator can post to the running demo: it gets a confirmation."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "event_id": f"try-{now:%H%M%S}",
        "incident_id": f"TRY-{now:%H%M%S}",
        "occurred_at": now.isoformat(),
        "type": "call.received",
        "priority": 4,
        "case_number": f"26-9{now:%H%M%S}",
        "call_type": {"code": "THEFT", "description": "Theft under $5000"},
        "caller": {"phone": "+1 613 555 0100", "language": "en"},
    }


def _serve(application: Application, host: str, port: int, out: TextIO) -> int:
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(application, stop), daemon=True)
    worker.start()
    out.write(f"Serving on http://{host}:{port} with an in-process worker; Ctrl-C to stop.\n")
    out.flush()
    try:
        run_server(application, host=host, port=port)
    finally:
        stop.set()
        worker.join(timeout=5)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not args.once:
        ensure_port_free(args.host, args.port)  # before the simulated day, not after it
    return run_demo(
        port=args.port, host=args.host, once=args.once, calls=args.calls, seed=args.seed
    )


def add_demo_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="the whole flow on a simulated day (SQLite, console SMS)"
    )
    demo.add_argument("--once", action="store_true", help="exit after the summary")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--calls", type=int, default=60, help="incidents in the simulated day")
    demo.add_argument("--seed", type=int, default=2024, help="seed of the simulated feed")
    demo.set_defaults(handler=cmd_demo)
