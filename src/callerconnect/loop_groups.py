"""Work gathered on the event loop into groups: what arrives while a group of the same
key is being handled waits as a future, and when that group is done everything waiting
(as much as ``take`` allows) goes to ``handle`` in one call, each item getting exactly
its own answer.

Used where one call for many items costs far less than one each: the CAD requests of an
intake key folded in one transaction (web/request_groups.py), the survey pages' link
look-ups read in one statement (adapters/db/survey_store.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")

#: One group handled: each item's answer, or the exception its waiter is to raise.
Handle = Callable[[list[Item]], Awaitable[Sequence[Answer | Exception]]]


class LoopGroups(Generic[Item, Answer]):
    """Items of each key handled a group at a time; ``take`` says how many of those
    waiting (at least one is always taken) go in the next group."""

    def __init__(self, take: Callable[[Sequence[Item]], int]) -> None:
        self._take = take
        # A key's waiting items: the entry exists exactly as long as its task runs.
        self._waiting: dict[Hashable, list[tuple[Item, asyncio.Future[Answer]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # kept: the loop holds tasks weakly

    async def submit(self, key: Hashable, item: Item, handle: Handle[Item, Answer]) -> Answer:
        """``item``'s answer, handled with the items waiting beside it (by ``handle``,
        that of the first item of the key's groups); or the exception it raised."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(key)
        if waiting is None:  # nothing being handled: a task starts, with this item first
            waiting = self._waiting[key] = []
            task = asyncio.create_task(self._handle_while_waiting(key, waiting, handle))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        waiting.append((item, future))
        return await future

    async def _handle_while_waiting(
        self,
        key: Hashable,
        waiting: list[tuple[Item, asyncio.Future[Answer]]],
        handle: Handle[Item, Answer],
    ) -> None:
        """Handle groups until nothing waits any more (no await between the last check
        and the end, so an item that comes after finds no entry and starts a task)."""
        group: list[tuple[Item, asyncio.Future[Answer]]] = []
        try:
            while waiting:
                count = max(1, self._take([item for item, _ in waiting]))
                group = waiting[:count]
                del waiting[:count]
                try:
                    answers = await handle([item for item, _ in group])
                except Exception as error:  # never leave a waiter waiting for ever
                    answers = [error] * len(group)
                for (_, future), answer in zip(group, answers, strict=True):
                    if future.done():  # its waiter went away
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
                group = []
        except BaseException:  # cancelled: the loop is stopping
            for _, future in [*group, *waiting]:
                future.cancel()
            raise
        finally:
            del self._waiting[key]
