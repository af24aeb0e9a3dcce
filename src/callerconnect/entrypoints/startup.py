"""What ``serve`` and ``worker`` say when they start, and the checks made before binding.

One line an operator can read at a glance (and grep in a journal): which process, where
it listens, which database (password hidden), which SMS provider, which agencies, and
where the API is described. Nothing in it is a secret or a phone number.
"""

from __future__ import annotations

import errno
import socket

from callerconnect.config import Settings
from callerconnect.entrypoints.errors import safe_database_url
from callerconnect.entrypoints.support import CommandError


def agency_ids(settings: Settings) -> list[str]:
    return [settings.agency_id, *sorted(settings.agencies)]


def startup_line(process: str, settings: Settings, address: str | None = None) -> str:
    parts = [f"callerconnect {process} started:"]
    if address is not None:
        parts.append(f"listening on {address},")
    parts.append(f"database {safe_database_url(settings.database_url)},")
    parts.append(f"sms provider {settings.sms.provider},")
    parts.append(f"agencies {', '.join(agency_ids(settings))}")
    if address is not None:
        parts[-1] += ","
        parts.append(f"API description at {address}/openapi.json")
    return " ".join(parts)


def ensure_port_free(host: str, port: int) -> None:
    """Refuse early, in one line, when the address is taken or cannot be used (uvicorn
    would log an error and exit later, after the database work)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The same option uvicorn sets, so a port in TIME_WAIT is not taken for busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} on {host} is already in use (--port); stop the other "
                    "process or choose another port",
                    1,
                ) from None
            raise CommandError(
                f"cannot listen on {host}:{port} (--host, --port): {error.strerror}", 1
            ) from None
