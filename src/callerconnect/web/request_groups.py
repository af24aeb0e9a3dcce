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

from collections.abc import Hashable, Sequence

from callerconnect.loop_groups import LoopGroups
from callerconnect.service.envelopes import Delivery, Envelopes
from callerconnect.web.threads import Threads

#: Most requests, and most bytes of their bodies, one group takes (the first request
#: always goes): a group's events are folded in transactions of at most 250 anyway
#: (``FOLD_CHUNK``), and a bounded group answers its first request sooner.
MAX_REQUESTS = 250
MAX_BYTES = 1 << 20

#: How long (seconds) a group waits for a client it just answered to post again
#: (loop_groups.py): a feed posting one event a request is back in a millisecond or two;
#: waiting for it halves the transactions of a few such feeds, and costs an event of a
#: feed that does not come back at most this long.
LINGER = 0.005


class RequestGroups:
    """Native CAD bodies of each (intake, source), folded a group at a time in
    ``threads`` (the gathering itself: loop_groups.py)."""

    def __init__(self, threads: Threads) -> None:
        self._threads = threads
        self._groups: LoopGroups[bytes, Delivery] = LoopGroups(_fitting, LINGER)

    async def receive(
        self, envelopes: Envelopes, raw: bytes, source: str, client: Hashable | None = None
    ) -> Delivery:
        """``raw`` folded with the requests waiting beside it; its delivery, or the
        exception it would have raised alone. ``client`` names the connection it came
        on (the group waits a moment for a client it just answered)."""

        async def fold(bodies: list[bytes]) -> list[Delivery | Exception]:
            answers: list[Delivery | Exception] = await self._threads.run(
                envelopes.receive_native_many, bodies, source
            )
            return answers

        return await self._groups.submit((id(envelopes.intake), source), raw, fold, client)


def _fitting(bodies: Sequence[bytes]) -> int:
    """How many of the first waiting bodies fit in a group."""
    size, count = len(bodies[0]), 1
    while count < min(len(bodies), MAX_REQUESTS):
        size += len(bodies[count])
        if size > MAX_BYTES:
            break
        count += 1
    return count
