"""Where the survey page's CPU goes: the whole application (middleware, router, link
look-up, rendering) called in process, without a socket, by 50 clients at once, with
cProfile in the event loop and in the look-up threads, timing each thread's own CPU
(not the wall clock, which would count a thread's wait for the GIL as its work).

    .venv/bin/python bench/survey_profile.py --database sqlite
    .venv/bin/python bench/survey_profile.py --database postgresql --pages 20000 --top 40

Prints the CPU per page of the application alone (process CPU time, so the machine's
load barely moves it) and, with ``--top``, the functions that took it. What it leaves
out is the server's share (uvicorn and httptools, the socket): ``bench/run.py --only
survey`` measures the whole of ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from bench.run import KEY, database, invitations, phone, received

from callerconnect.config import load_settings
from callerconnect.entrypoints.support import running_application
from callerconnect.service.survey import SurveyService
from callerconnect.web.app import create_app

CLIENTS = 50


def settings_environment(url: str) -> None:
    os.environ.update(
        {
            "CALLERCONNECT_DATABASE_URL": url,
            "CALLERCONNECT_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "CALLERCONNECT_INTAKE__API_KEYS": f'["{KEY}"]',
            "CALLERCONNECT_LOG_LEVEL": "WARNING",
            "CALLERCONNECT_POLICY__QUIET_HOURS": "off",
            "CALLERCONNECT_PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        }
    )


class ThreadProfiles:
    """cProfile in each thread that does a look-up (cProfile sees one thread only)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.profiles: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def wrap(self, work: Callable[..., Any]) -> Callable[..., Any]:
        def profiled(*args: Any) -> Any:
            profile = getattr(self.local, "profile", None)
            if profile is None:
                profile = self.local.profile = cProfile.Profile(time.thread_time)
                with self.lock:
                    self.profiles.append(profile)
            profile.enable()
            try:
                return work(*args)
            finally:
                profile.disable()

        return profiled


async def load(app: Any, tokens: list[str], pages: int) -> tuple[int, float]:
    """``pages`` pages over ``len(tokens)`` concurrent clients; pages answered 200 and
    the process CPU seconds they took."""
    remaining = pages
    answered = 0

    async def client(token: str, number: int) -> None:
        nonlocal remaining, answered
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/s/{token}",
            "raw_path": f"/s/{token}".encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000")],
            "client": ("127.0.0.1", 40000 + number),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        while remaining > 0:
            remaining -= 1
            await app(dict(scope), receive, send)
            answered += status == 200

    began = time.process_time()
    await asyncio.gather(*(client(token, n) for n, token in enumerate(tokens)))
    return answered, time.process_time() - began


async def seed(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        events = [received(f"SUR-{n}", phone(n)) for n in range(CLIENTS)]
        answer = await http.post(
            "/api/v1/cad/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        answer.raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pages", type=int, default=10000)
    parser.add_argument("--top", type=int, default=0, help="print the N costliest functions")
    parser.add_argument("--sort", default="tottime", help="pstats order: tottime, cumulative")
    args = parser.parse_args(argv)
    with database(args.database) as url:
        settings_environment(url)
        with running_application(load_settings(None), "WARNING") as application:
            app = create_app(application)
            asyncio.run(seed(app))
            tokens = invitations(url, CLIENTS)
            asyncio.run(load(app, tokens, 500))  # warm: first openings, pools, caches
            profiles = ThreadProfiles()
            if args.top:  # the look-up runs in threads: each gets its own profile
                SurveyService.open = profiles.wrap(SurveyService.open)  # type: ignore[method-assign]
            main_profile = cProfile.Profile(time.thread_time)
            if args.top:
                main_profile.enable()
            answered, cpu = asyncio.run(load(app, tokens, args.pages))
            main_profile.disable()
    print(
        f"{args.database}: {answered} pages answered 200 of {args.pages}; "
        f"application CPU {cpu / args.pages * 1000:.3f} ms/page"
        + (" (under cProfile: slower than without)" if args.top else "")
    )
    if args.top:
        stats = pstats.Stats(main_profile)
        for profile in profiles.profiles:
            stats.add(profile)
        stats.sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
