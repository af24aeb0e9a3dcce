"""``callerconnect serve``: the API, webhooks and pages; and the one way any command
starts the web server (the demo too), so every server has the same defences."""

from __future__ import annotations

import argparse
import gc
import socket
from typing import TYPE_CHECKING, Any

from callerconnect.entrypoints.startup import ensure_port_free, startup_line
from callerconnect.entrypoints.support import (
    add_log_format_option,
    command_settings,
    positive_int,
    running_application,
)

if TYPE_CHECKING:
    from callerconnect.bootstrap import Application
    from callerconnect.config import Settings


def run_server(
    application: Application,
    *,
    host: str,
    port: int,
    forwarded_allow_ips: str | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``application`` on ``host:port`` (or on ``sock``, already listening, when
    several processes share it) until interrupted."""
    import uvicorn

    from callerconnect.web.app import create_app
    from callerconnect.web.server import (
        collapse_repeated_log_records,
        connection_cap,
        guarded_protocol,
        raise_open_file_limit,
    )

    limits = application.settings.serve
    max_connections = connection_cap(limits.max_connections, raise_open_file_limit())
    collapse_repeated_log_records()
    config = uvicorn.Config(
        create_app(application),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        # The survey's per-client limits need the real client address: trust the
        # X-Forwarded-For of these proxies only (uvicorn's default: 127.0.0.1, or the
        # FORWARDED_ALLOW_IPS variable), so nobody else can pose as many clients.
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        # Idle and slow connections must not take the server offline (web/server.py).
        http=guarded_protocol(
            header_timeout=limits.header_timeout.total_seconds(),
            max_connections=max_connections,
        ),
        timeout_keep_alive=int(max(1, limits.keep_alive_timeout.total_seconds())),
    )
    # Everything built so far (the modules, the application, the routes: some 150,000
    # objects) lives as long as the process: left to the collector, each full collection
    # walked them all, a pause of 150-300 ms for every page in flight on a slow machine
    # (1% of the survey pages at 50 clients). Frozen, collections walk what requests
    # leave behind.
    gc.freeze()
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    settings.require_intake_keys()
    ensure_port_free(args.host, args.port)
    address = f"http://{args.host}:{args.port}"
    if args.workers == 1:
        with running_application(settings, settings.log_level, args.log_format) as application:
            print(startup_line("serve", settings, address=address), flush=True)
            run_server(
                application,
                host=args.host,
                port=args.port,
                forwarded_allow_ips=args.forwarded_allow_ips,
            )
        return 0
    return _serve_in_processes(args, settings, address)


def _serve_in_processes(args: argparse.Namespace, settings: Settings, address: str) -> int:
    """``--workers N``: the application is built in each forked child, never here, so no
    connection or thread crosses a fork (entrypoints/serve_processes.py)."""
    from callerconnect.entrypoints.serve_processes import (
        bound_socket,
        supervise,
    )
    from callerconnect.logs import configure_logging

    configure_logging(settings.log_level, log_format=args.log_format)
    reserved = bound_socket(args.host, args.port)

    def serve_child() -> int:
        reserved.close()  # the child's copy; the supervisor keeps the address
        with running_application(settings, settings.log_level, args.log_format) as application:
            # Bound only once the application is built, listening only once the server
            # accepts: until then the kernel gives every new connection to the processes
            # already answering (serve_processes.bound_socket).
            sock = bound_socket(args.host, args.port)
            run_server(
                application,
                host=args.host,
                port=args.port,
                forwarded_allow_ips=args.forwarded_allow_ips,
                sock=sock,
            )
        return 0

    line = startup_line("serve", settings, address=address)
    print(f"{line}, {args.workers} processes", flush=True)
    try:
        return supervise(args.workers, serve_child)
    finally:
        reserved.close()


def add_serve_command(commands: Any) -> None:
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
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="server processes answering on the one address (default 1; one core each: "
        "use up to the machine's cores)",
    )
    add_log_format_option(serve)
    serve.set_defaults(handler=cmd_serve)
