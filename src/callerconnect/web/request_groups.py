"""Group commit for the HTTP intake, gathered on the event loop.

The CAD requests of one intake key that arrive while a group of them is folding wait
here, on the event loop, as futures; when the group ends, everything waiting goes to a
thread in one hand-off and is folded as the next group
(``Envelopes.receive_native_many``, then ``Intake.submit_requests``). Each request gets
exactly the answer it would have had alone.

``service/intake_groups.py`` does the same for every entrance, with a thread per
request waiting its turn. Over HTTP that cost each request a hand-off to a thread and
back, a wake-up of its waiting thread, and those threads' fight for the interpreter
lock with the event loop: together more than the share of the transaction a single
event saves by being folded with others. Gathered here, a group of n requests costs one
hand-off, and one thread runs while the loop reads the next requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from callerconnect.service.envelopes import Delivery, Envelopes
from callerconnect.web.threads import Threads

#: Most requests, and most bytes of their bodies, one group takes (the first request
#: always goes): a group's events are folded in transactions of at most 250 anyway
#: (``FOLD_CHUNK``), and a bounded group answers its first request sooner.
MAX_REQUESTS = 250
MAX_BYTES = 1 << 20


@dataclass
class _Waiting:
    """The requests of one (intake, source) while a task folds them: it exists exactly
    as long as that task runs."""

    envelopes: Envelopes
    source: str
    requests: list[tuple[bytes, asyncio.Future[Delivery]]] = field(default_factory=list)


class RequestGroups:
    """Native CAD bodies of each (intake, source), folded a group at a time in
    ``threads``."""

    def __init__(self, threads: Threads) -> None:
        self._threads = threads
        self._waiting: dict[tuple[int, str], _Waiting] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # kept: the loop holds tasks weakly

    async def receive(self, envelopes: Envelopes, raw: bytes, source: str) -> Delivery:
        """``raw`` folded with the requests waiting beside it; its delivery, or the
        exception it would have raised alone."""
        key = (id(envelopes.intake), source)
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(key)
        if waiting is None:  # nothing folding: a task starts, with this request first
            waiting = self._waiting[key] = _Waiting(envelopes, source)
            task = asyncio.create_task(self._fold_while_waiting(key, waiting))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        waiting.requests.append((raw, future))
        return await future

    async def _fold_while_waiting(self, key: tuple[int, str], waiting: _Waiting) -> None:
        """Fold groups until nothing waits any more (no await between the last check
        and the end, so a request that comes after finds no entry and starts a task)."""
        group: list[tuple[bytes, asyncio.Future[Delivery]]] = []
        try:
            while waiting.requests:
                group = _take_group(waiting.requests)
                try:
                    answers: list[Delivery | Exception] = await self._threads.run(
                        waiting.envelopes.receive_native_many,
                        [raw for raw, _ in group],
                        waiting.source,
                    )
                except Exception as error:  # never leave a request waiting for ever
                    answers = [error] * len(group)
                for (_, future), answer in zip(group, answers, strict=True):
                    if future.done():  # its client went away
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
                group = []
        except BaseException:  # cancelled: the server is stopping
            for _, future in [*group, *waiting.requests]:
                future.cancel()
            raise
        finally:
            del self._waiting[key]


def _take_group(
    requests: list[tuple[bytes, asyncio.Future[Delivery]]],
) -> list[tuple[bytes, asyncio.Future[Delivery]]]:
    """The first waiting requests that fit in a group, taken out of ``requests``."""
    size, count = len(requests[0][0]), 1
    while count < min(len(requests), MAX_REQUESTS):
        size += len(requests[count][0])
        if size > MAX_BYTES:
            break
        count += 1
    group = requests[:count]
    del requests[:count]
    return group
