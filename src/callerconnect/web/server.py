"""``serve``'s defences against connections that hold the server without using it.

A connection costs an open file whether or not it ever sends a request. Left alone,
connections that send nothing, or trickle their headers a byte at a time, pile up until
the process has no file left: ``accept`` fails, ``/healthz`` stops answering, CAD
intake and the survey with it. So:

* **Header timeout.** A request's headers must be complete within ``header_timeout``
  of its first byte (of the connection, for the first request); otherwise the
  connection is closed. The timer is not restarted by more bytes, so trickling does
  not help. An idle keep-alive connection is closed after ``keep_alive_timeout``
  (uvicorn's own timer).
* **Connection cap.** At most ``max_connections`` are kept, never more than the open
  files allow (:func:`connection_cap`). A new connection over the cap closes the
  connection that has waited longest without a complete request (idle, trickling, or
  kept alive), so a flood of idle connections cannot lock out a real client; when
  every connection is busy with a request, the new one is dropped (the client can
  retry) instead of the process running out of files. uvicorn's ``limit_concurrency``
  is not used: it counts idle connections too, and would answer 503 to every real
  request during such a flood.
* **Open-file limit** raised to the hard limit at start (:func:`raise_open_file_limit`).
* **Repeated errors logged once** with a count (:class:`RepeatedRecords`): a failing
  ``accept`` or a stream of malformed requests must not write the disk full.

Slow request *bodies* are bounded by the body size limits (web/limits.py) and, in a
public deployment, by the reverse proxy (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: h11 it is
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from callerconnect.logs import log_event

log = logging.getLogger("callerconnect.web.server")

#: Open files kept free for everything but client connections: the listening socket,
#: the database pool, SQLite's files, the log, what libraries open on the way.
RESERVED_FILES = 64
MIN_CONNECTIONS = 8


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one where the system allows; return
    the soft limit now in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:  # a container may refuse: keep what we have
            log_event(log, "open_file_limit_kept", level=logging.WARNING, error=str(error))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(configured: int, open_files: int) -> int:
    """``configured``, lowered so that connections never take the files the rest of
    the process needs."""
    if open_files == resource.RLIM_INFINITY:
        return configured
    return max(MIN_CONNECTIONS, min(configured, open_files - RESERVED_FILES))


class ConnectionGuard:
    """The header timeout and the connection cap above, for either of uvicorn's HTTP/1.1
    protocols (mixed in before it: :class:`GuardedH11Protocol`,
    :class:`GuardedHttpToolsProtocol`). Both keep the request in progress in ``cycle``
    and call ``on_response_complete`` when its answer is out.

    Use :func:`guarded_protocol` to get a subclass with its own settings and its own
    list of waiting connections (uvicorn builds the protocol itself, from the class)."""

    header_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 1000
    # Connections without a complete request, oldest first (dicts keep insertion order).
    waiting: ClassVar[dict[ConnectionGuard, None]] = {}

    _header_timer: asyncio.TimerHandle | None = None
    # What the protocol it is mixed into provides.
    connections: set[Any]
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: Any) -> None:  # an asyncio.Transport
        super().connection_made(transport)  # type: ignore[misc]
        self._wait_for_request()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self._awaiting_request():
            self._wait_for_request()
        else:
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self._awaiting_request() and not self.transport.is_closing():
            # Kept alive: uvicorn's keep-alive timer closes it if nothing comes; until
            # a request comes it may also give way to a new connection.
            self.waiting[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)  # type: ignore[misc]

    # --- helpers ----------------------------------------------------------------------

    def _awaiting_request(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _wait_for_request(self) -> None:
        """Start the header clock, unless it already runs (more bytes do not reset it)."""
        self.waiting.setdefault(self, None)
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _stop_waiting(self) -> None:
        self.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_request():
            self._drop()

    def _drop(self) -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        for other in list(self.waiting):
            if other is not self and not other.transport.is_closing():
                other._drop()
                return
        self._drop()  # every other connection is busy with a request: this one waits


class GuardedH11Protocol(ConnectionGuard, H11Protocol):
    """uvicorn's pure-Python protocol (h11), guarded."""


class GuardedHttpToolsProtocol(ConnectionGuard, HttpToolsProtocol):
    """uvicorn's protocol on httptools (llhttp, Node.js's parser, in C), guarded: it
    parses a request in a small part of h11's time, the larger share of a small
    page's cost in ``serve``."""


def guarded_protocol(*, header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """A guarded protocol class with these settings, for uvicorn's ``http``: on
    httptools, or on h11 where httptools is not installed."""
    base: type[ConnectionGuard] = (
        GuardedHttpToolsProtocol if HttpToolsProtocol is not None else GuardedH11Protocol
    )
    return type(
        "ServeProtocol",
        (base,),
        {"header_timeout": header_timeout, "max_connections": max_connections, "waiting": {}},
    )


class RepeatedRecords(logging.Filter):
    """Let the first of a run of identical warnings or errors through, then count the
    rest: the next one let through, once ``interval`` has passed, says how many were
    held back. Identical: the same logger, level and message template."""

    def __init__(self, interval: float = 10.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        # key -> (when the last one went through, how many were held back since)
        self.runs: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self.runs.get(key)
        if last is not None and now - last[0] < self.interval:
            self.runs[key] = (last[0], last[1] + 1)
            return False
        held_back = last[1] if last is not None else 0
        if len(self.runs) > 1000:  # a bounded memory, whatever the messages
            self.runs.clear()
        self.runs[key] = (now, 0)
        if held_back:
            record.msg = f"{record.msg} [repeated {held_back} more times in the last run]"
            if record.exc_info and held_back:
                # One traceback per run is enough to diagnose it.
                record.exc_info = None
                record.exc_text = None
        return True


def collapse_repeated_log_records(interval: float = 10.0) -> None:
    """Add :class:`RepeatedRecords` to the root logger's handlers (configure_logging's
    handler included), so every library's repeated errors are collapsed."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatedRecords) for f in handler.filters):
            handler.addFilter(RepeatedRecords(interval))
