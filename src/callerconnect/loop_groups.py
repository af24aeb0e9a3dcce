"""Work gathered on the event loop into groups: what arrives while a group of the same
key is being handled waits as a future, and when that group is done everything waiting
(as much as ``take`` allows) goes to ``handle`` in one call, each item getting exactly
its own answer.

Used where one call for many items costs far less than one each: the CAD requests of an
intake key folded in one transaction (web/request_groups.py), the survey pages' link
look-ups read in one statement (adapters/db/survey_store.py).

With ``linger``, a group waits a moment for the clients it just answered. A client that
posts one request at a time over its connection (a CAD feed) is answered with its group
and sends its next request a millisecond or two later: without waiting, the clients
split into groups that take turns, each folding while the other's answers travel, and a
transaction a group costs twice as many as it needs. So before taking the next group, the
leader waits while some client answered less than ``linger`` ago has nothing waiting
yet, at most until that client's ``linger`` has passed, and never once the group is full.
A lone client never waits (its own request is the one waiting), nor a client that has
not been answered within ``linger``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")

#: One group handled: each item's answer, or the exception its waiter is to raise.
Handle = Callable[[list[Item]], Awaitable[Sequence[Answer | Exception]]]


class _Waiting(Generic[Item, Answer]):
    """An item waiting for its group: who sent it (a client, or None), and its future."""

    __slots__ = ("future", "item", "origin")

    def __init__(self, item: Item, origin: Hashable | None, future: asyncio.Future[Answer]):
        self.item = item
        self.origin = origin
        self.future = future


class LoopGroups(Generic[Item, Answer]):
    """Items of each key handled a group at a time; ``take`` says how many of those
    waiting (at least one is always taken) go in the next group; ``linger`` (seconds),
    how long a group waits for a client it just answered (none by default)."""

    def __init__(self, take: Callable[[Sequence[Item]], int], linger: float = 0.0) -> None:
        self._take = take
        self._linger = linger
        # A key's waiting items: the entry exists exactly as long as its task runs.
        self._waiting: dict[Hashable, list[_Waiting[Item, Answer]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # kept: the loop holds tasks weakly
        # For each key, when each client was last answered (loop time), while it is
        # within ``linger``; and the future a lingering leader sleeps on.
        self._answered: dict[Hashable, dict[Hashable, float]] = {}
        self._arrival: dict[Hashable, asyncio.Future[None]] = {}

    async def submit(
        self,
        key: Hashable,
        item: Item,
        handle: Handle[Item, Answer],
        origin: Hashable | None = None,
    ) -> Answer:
        """``item``'s answer, handled with the items waiting beside it (by ``handle``,
        that of the first item of the key's groups); or the exception it raised.
        ``origin`` names the client that sent it (its connection), for ``linger``."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(key)
        if waiting is None:  # nothing being handled: a task starts, with this item first
            waiting = self._waiting[key] = []
            task = asyncio.create_task(self._handle_while_waiting(key, waiting, handle))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        waiting.append(_Waiting(item, origin, future))
        arrival = self._arrival.get(key)
        if arrival is not None and not arrival.done():
            arrival.set_result(None)
        return await future

    async def _handle_while_waiting(
        self,
        key: Hashable,
        waiting: list[_Waiting[Item, Answer]],
        handle: Handle[Item, Answer],
    ) -> None:
        """Handle groups until nothing waits any more (no await between the last check
        and the end, so an item that comes after finds no entry and starts a task)."""
        group: list[_Waiting[Item, Answer]] = []
        try:
            while waiting:
                if self._linger:
                    await self._wait_for_answered_clients(key, waiting)
                count = max(1, self._take([w.item for w in waiting]))
                group = waiting[:count]
                del waiting[:count]
                try:
                    answers = await handle([w.item for w in group])
                except Exception as error:  # never leave a waiter waiting for ever
                    answers = [error] * len(group)
                for member, answer in zip(group, answers, strict=True):
                    if member.future.done():  # its waiter went away
                        continue
                    if isinstance(answer, Exception):
                        member.future.set_exception(answer)
                    else:
                        member.future.set_result(answer)
                if self._linger:
                    self._remember_answered(key, group)
                group = []
        except BaseException:  # cancelled: the loop is stopping
            for member in [*group, *waiting]:
                member.future.cancel()
            raise
        finally:
            del self._waiting[key]

    def _remember_answered(self, key: Hashable, group: list[_Waiting[Item, Answer]]) -> None:
        now = asyncio.get_running_loop().time()
        answered = {
            origin: at
            for origin, at in self._answered.get(key, {}).items()
            if now - at < self._linger
        }
        for member in group:
            if member.origin is not None:
                answered[member.origin] = now
        self._answered[key] = answered

    async def _wait_for_answered_clients(
        self, key: Hashable, waiting: list[_Waiting[Item, Answer]]
    ) -> None:
        """Until every client answered within ``linger`` has an item waiting, its
        ``linger`` has passed, or the group is full."""
        loop = asyncio.get_running_loop()
        answered = self._answered.get(key)
        while answered:
            now = loop.time()
            here = {w.origin for w in waiting}
            expected = [at for origin, at in answered.items() if origin not in here]
            latest = max(expected, default=now - self._linger)
            if now - latest >= self._linger or self._full(waiting):
                return
            arrival = self._arrival[key] = loop.create_future()
            timer = loop.call_later(latest + self._linger - now, _wake, arrival)
            try:
                await arrival
            finally:
                timer.cancel()
                del self._arrival[key]

    def _full(self, waiting: list[_Waiting[Item, Answer]]) -> bool:
        """Whether the next group could take no more: one more item like the last
        would not join it."""
        items = [w.item for w in waiting]
        return self._take([*items, items[-1]]) <= len(items)


def _wake(arrival: asyncio.Future[None]) -> None:
    if not arrival.done():
        arrival.set_result(None)
