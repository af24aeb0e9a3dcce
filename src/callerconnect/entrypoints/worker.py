"""``callerconnect worker``: the dispatcher and timers; and the one way any command runs
the worker loop (the demo too)."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import TYPE_CHECKING, Any

from callerconnect.entrypoints.startup import startup_line
from callerconnect.entrypoints.support import (
    add_log_format_option,
    command_settings,
    running_application,
)

if TYPE_CHECKING:
    from callerconnect.bootstrap import Application


def run_worker(application: Application, stop: threading.Event) -> None:
    """Send texts as they fall due (and publish open data monthly if so configured)
    until ``stop`` is set."""
    settings = application.settings
    if settings.opendata.schedule == "monthly":
        _start_publication_schedule(application, stop)
    application.dispatcher.run_forever(
        stop, poll_interval=settings.worker.poll_interval.total_seconds()
    )


def _start_publication_schedule(application: Application, stop: threading.Event) -> None:
    from callerconnect.service.publish_schedule import run_schedule
    from callerconnect.service.survey import load_definition

    threading.Thread(
        target=run_schedule,
        args=(stop, application.db, application.settings, load_definition(), application.clock),
        name="opendata-schedule",
        daemon=True,
    ).start()


def cmd_worker(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    with running_application(settings, settings.log_level, args.log_format) as application:
        if args.once:
            handled = application.dispatcher.run_due()
            print(f"handled {handled} due text(s)")
            return 0
        print(startup_line("worker", settings), flush=True)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        run_worker(application, stop)
    return 0


def add_worker_command(commands: Any) -> None:
    worker = commands.add_parser("worker", help="the dispatcher and timers (run any number)")
    worker.add_argument("--once", action="store_true", help="send what is due now, then exit")
    add_log_format_option(worker)
    worker.set_defaults(handler=cmd_worker)
