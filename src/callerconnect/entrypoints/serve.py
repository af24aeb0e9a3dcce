"""``callerconnect serve``: the API, webhooks and pages; and the one way any command
starts the web server (the demo too), so every server has the same defences."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from callerconnect.entrypoints.startup import ensure_port_free, startup_line
from callerconnect.entrypoints.support import (
    add_log_format_option,
    command_settings,
    running_application,
)

if TYPE_CHECKING:
    from callerconnect.bootstrap import Application


def run_server(
    application: Application, *, host: str, port: int, forwarded_allow_ips: str | None = None
) -> None:
    """Serve ``application`` on ``host:port`` until interrupted."""
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
    uvicorn.run(
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


def cmd_serve(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    settings.require_intake_keys()
    ensure_port_free(args.host, args.port)
    with running_application(settings, settings.log_level, args.log_format) as application:
        print(
            startup_line("serve", settings, address=f"http://{args.host}:{args.port}"),
            flush=True,
        )
        run_server(
            application,
            host=args.host,
            port=args.port,
            forwarded_allow_ips=args.forwarded_allow_ips,
        )
    return 0


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
    add_log_format_option(serve)
    serve.set_defaults(handler=cmd_serve)
