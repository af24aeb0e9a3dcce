"""One log line per HTTP request: method, path, status, milliseconds.

So that a CAD posting with the wrong key leaves a trace (``status=401``), without the
log becoming a store of personal data: the query string is never logged, a survey token
in the path is cut (``/s/<token>``), and any phone-looking number is masked.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callerconnect.logs import log_event, mask_secrets

log = logging.getLogger("callerconnect.web.requests")


def loggable_path(path: str) -> str:
    """The path as it may be logged: tokens cut, phone-looking numbers masked."""
    return mask_secrets(path)


class RequestLogMiddleware:
    """Pure ASGI (no buffering of bodies): times the request until its last byte is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            level = logging.WARNING if status >= 500 else logging.INFO
            if log.isEnabledFor(level):  # the path is masked only for a line that is kept
                log_event(
                    log,
                    "http_request",
                    level,
                    method=scope.get("method", "-"),
                    path=loggable_path(scope.get("path", "")),
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
