"""A few threads of its own for a route group's blocking work (database, fold).

On asyncio's executor hand-off rather than ``starlette.concurrency.run_in_threadpool``
(anyio's ``to_thread`` with a capacity limiter and a cancel scope around each call): the
same hand-off at a third of the CPU, a tenth of a millisecond less per request, which
on a survey page or a single CAD event is a good part of the whole. The server runs on
asyncio. Work beyond the threads waits in the executor's queue, which costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Threads:
    """``count`` threads named ``name``; :meth:`run` hands work to them."""

    def __init__(self, count: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(count, thread_name_prefix=name)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in one of the threads, awaited from the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
