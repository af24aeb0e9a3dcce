"""Groups on the event loop waiting a moment for the clients they just answered
(loop_groups.py's ``linger``): a client that posts again within the moment folds in the
same group as the others; nobody waits for a client that is not coming back, for a lone
client, or once the group is full."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from callerconnect.loop_groups import LoopGroups


class Recorder:
    """Handles each group by answering every item with itself, keeping the groups."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []

    async def handle(self, items: list[str]) -> Sequence[str]:
        self.groups.append(list(items))
        await asyncio.sleep(0.01)  # a fold takes a moment
        return items


def every_waiting(waiting: Sequence[str]) -> int:
    return len(waiting)


async def within(seconds: float, *calls: Awaitable[str]) -> list[str]:
    """The answers, which must come well before a long ``linger`` would end."""
    return await asyncio.wait_for(asyncio.gather(*calls), seconds)


def test_a_client_answered_a_moment_ago_is_waited_for_and_folds_in_the_same_group() -> None:
    recorder = Recorder()

    async def scenario(linger: float) -> list[list[str]]:
        recorder.groups.clear()
        groups: LoopGroups[str, str] = LoopGroups(every_waiting, linger)

        async def client(name: str, delay: float) -> None:
            for number in range(3):
                await groups.submit("key", f"{name}{number}", recorder.handle, origin=name)
                await asyncio.sleep(delay)  # the answer's way back, the next request's way in

        await asyncio.gather(client("a", 0), client("b", 0.003))
        return recorder.groups

    # Without waiting, b's requests always come after a's group has started.
    assert asyncio.run(scenario(0)) == [["a0", "b0"], ["a1"], ["b1"], ["a2"], ["b2"]]
    assert asyncio.run(scenario(1.0)) == [["a0", "b0"], ["a1", "b1"], ["a2", "b2"]]


def test_a_client_that_does_not_come_back_is_waited_for_no_longer_than_linger() -> None:
    recorder = Recorder()

    async def scenario() -> list[str]:
        groups: LoopGroups[str, str] = LoopGroups(every_waiting, 0.05)
        await asyncio.gather(
            groups.submit("key", "a0", recorder.handle, origin="a"),
            groups.submit("key", "b0", recorder.handle, origin="b"),
        )
        # b has gone: a's next request waits for it no longer than the 50 ms.
        return await within(5, groups.submit("key", "a1", recorder.handle, origin="a"))

    assert asyncio.run(scenario()) == ["a1"]
    assert recorder.groups == [["a0", "b0"], ["a1"]]


def test_a_lone_client_and_a_full_group_never_wait() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        # An hour's linger: any wait at all would fail the ``within``.
        lone: LoopGroups[str, str] = LoopGroups(every_waiting, 3600)
        for number in range(3):
            await within(5, lone.submit("lone", f"a{number}", recorder.handle, origin="a"))
        # Items without a client (origin None) are never waited for either.
        await within(5, lone.submit("anonymous", "x", recorder.handle))
        await within(5, lone.submit("anonymous", "y", recorder.handle))

        two_at_most: LoopGroups[str, str] = LoopGroups(lambda w: min(len(w), 2), 3600)
        await within(
            5,
            two_at_most.submit("key", "a0", recorder.handle, origin="a"),
            two_at_most.submit("key", "b0", recorder.handle, origin="b"),
        )
        # a and b were just answered, but two others fill the group: it goes at once.
        await within(
            5,
            two_at_most.submit("key", "c0", recorder.handle, origin="c"),
            two_at_most.submit("key", "d0", recorder.handle, origin="d"),
        )

    asyncio.run(scenario())
    assert recorder.groups == [["a0"], ["a1"], ["a2"], ["x"], ["y"], ["a0", "b0"], ["c0", "d0"]]


def test_clients_are_waited_for_only_within_their_own_key() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        groups: LoopGroups[str, str] = LoopGroups(every_waiting, 3600)
        await within(
            5,
            groups.submit("one", "a0", recorder.handle, origin="a"),
            groups.submit("one", "b0", recorder.handle, origin="b"),
        )
        # a and b were answered for key "one": a group of key "two" does not wait.
        await within(5, groups.submit("two", "c0", recorder.handle, origin="c"))

    asyncio.run(scenario())
    assert recorder.groups == [["a0", "b0"], ["c0"]]
