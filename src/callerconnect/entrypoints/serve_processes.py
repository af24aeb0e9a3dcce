"""``serve --workers N``: N server processes answering on one listening socket.

One ``serve`` process answers with one core: Python runs one thread of it at a time.
Under a surge (a CAD posting its history, fifty people opening their survey links at
once) the second core would sit idle. With ``--workers N`` this process reserves the
address, then forks N children before anything else is built (no database connection,
thread or event loop exists yet, so none is shared across the fork); each child builds
its own application and listens on the address with ``SO_REUSEPORT``, and the kernel
hands each new connection to one of them, evenly. A child that dies takes the
connections waiting in its own queue with it (they are reset; a client tries again).

This process only supervises: it forwards SIGTERM/SIGINT to the children and waits for
them to finish their requests; a child that dies on its own is started again (logged,
with its exit status), unless children keep dying right after their start — a database
that cannot be reached, say — when it stops them all and exits 1 rather than loop.

Everything a process must agree on with the others lives in the database already (the
survey's per-client limits, the send slots, the metrics computed at scrape time), so N
processes behave as one, only faster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

from callerconnect.logs import log_event

log = logging.getLogger("callerconnect.serve")

#: A child that dies sooner than this after its start counts as failing to start.
QUICK_DEATH_SECONDS = 10.0
#: Quick deaths in a row after which the supervisor gives up instead of looping.
QUICK_DEATHS_TO_GIVE_UP = 3


def bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to the shared address with ``SO_REUSEPORT``, not listening.

    The supervisor holds one between children, so the address stays theirs; the kernel
    hands a socket no connection until it listens (a listening socket nobody accepts on
    would swallow them). Each child gets its own, and the server listens on it only when
    it starts accepting (asyncio's ``create_server``): a child that listened as soon as
    its application was built was given connections while its server was still starting,
    and on a slow machine they waited over a second. Once listening, the kernel spreads
    new connections evenly over the children's sockets; one socket shared by all of them
    let whichever process was awake take most of them (44 of 50 kept-alive connections
    went to one of two processes)."""
    sock = _reuse_port_socket(host)
    sock.bind((host, port))
    return sock


def _reuse_port_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle off (TCP_NODELAY) only on
    # connections whose socket says it is TCP. Without it uvicorn's header and body,
    # written separately, waited for the client's delayed ACK: every page 40 ms late,
    # with both ends idle.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def supervise(count: int, serve_child: Callable[[], int]) -> int:
    """Run ``serve_child`` in ``count`` forked processes until told to stop; the exit
    status: 0 after a requested stop, 1 when the children could not keep running."""
    children: dict[int, float] = {}  # pid → when it started
    stopping = False

    def start_one() -> None:
        pid = os.fork()
        if pid == 0:  # the child: default signal handling, then serve until told to stop
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = 1
            try:
                status = serve_child()
            except SystemExit as ended:
                status = ended.code if isinstance(ended.code, int) else 1
            except BaseException:
                log.exception("serve process failed")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        children[pid] = time.monotonic()

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(count):
        start_one()

    quick_deaths = 0
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # a signal arrived; its handler ran
            continue
        started = children.pop(pid, None)
        if started is None or stopping:
            continue
        lived = time.monotonic() - started
        quick_deaths = quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        log_event(
            log,
            "serve_process_ended",
            logging.WARNING,
            pid=pid,
            ended_by=_describe(status),
            seconds=round(lived),
            restarting=quick_deaths < QUICK_DEATHS_TO_GIVE_UP,
        )
        if quick_deaths >= QUICK_DEATHS_TO_GIVE_UP:
            log_event(
                log,
                "serve_stopped",
                logging.ERROR,
                reason="serve processes keep ending right after their start (see above)",
            )
            failed = stopping = True
            for other in list(children):
                _signal(other, signal.SIGTERM)
            continue
        start_one()
    return 1 if failed else 0


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has just ended
        os.kill(pid, signum)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
