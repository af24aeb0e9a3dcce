"""The HTTP intake's group commit on the event loop (web/request_groups.py): requests
that come while a group folds wait on the loop and fold together next, each answered
with exactly its own answer; sources and intakes never mixed; nobody left waiting when
a fold fails."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, cast

import pytest

from callerconnect.service.envelopes import Delivery, Envelopes
from callerconnect.service.intake_result import IntakeResult
from callerconnect.web import request_groups
from callerconnect.web.request_groups import RequestGroups
from callerconnect.web.threads import Threads


class FakeEnvelopes:
    """Answers each body with one result named after it; the first group waits until
    ``release`` is set, so the requests that come meanwhile queue behind it. A body
    ``b"fail"`` is answered with an exception, ``b"crash"`` makes the whole call fail."""

    def __init__(self, intake: object | None = None) -> None:
        self.intake = intake if intake is not None else object()
        self.groups: list[tuple[str, list[bytes]]] = []
        self.release = threading.Event()
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def receive_native_many(self, raws: Sequence[bytes], source: str) -> list[Any]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.groups.append((source, list(raws)))
        self.release.wait(5)
        with self.lock:
            self.running -= 1
        if b"crash" in raws:
            raise RuntimeError("the database went away")
        return [
            ValueError(f"{raw!r} failed")
            if raw == b"fail"
            else Delivery([IntakeResult(raw.decode(), "accepted")])
            for raw in raws
        ]


def posted(groups: RequestGroups, envelopes: FakeEnvelopes, raw: bytes, source: str) -> Any:
    return groups.receive(cast(Envelopes, envelopes), raw, source)


async def answers_of(*calls: Any) -> list[Any]:
    return await asyncio.gather(*calls, return_exceptions=True)


def test_requests_that_come_while_a_group_folds_fold_together_next() -> None:
    envelopes = FakeEnvelopes()
    groups = RequestGroups(Threads(4, "test"))

    async def scenario() -> list[Any]:
        first = asyncio.create_task(posted(groups, envelopes, b"a", "native:k"))
        await asyncio.sleep(0.05)  # the first group is folding (held by ``release``)
        later = [
            asyncio.create_task(posted(groups, envelopes, raw, "native:k"))
            for raw in (b"b", b"c", b"d")
        ]
        await asyncio.sleep(0.05)
        envelopes.release.set()
        return await answers_of(first, *later)

    answers = asyncio.run(scenario())
    assert [a.results[0].event_id for a in answers] == ["a", "b", "c", "d"]
    assert envelopes.groups == [("native:k", [b"a"]), ("native:k", [b"b", b"c", b"d"])]
    assert envelopes.most_at_once == 1


def test_each_request_gets_its_own_failure_and_the_others_their_results() -> None:
    envelopes = FakeEnvelopes()
    envelopes.release.set()
    groups = RequestGroups(Threads(4, "test"))

    async def scenario() -> list[Any]:
        return await answers_of(
            *(posted(groups, envelopes, raw, "native:k") for raw in (b"a", b"fail", b"c"))
        )

    first, failed, third = asyncio.run(scenario())
    assert first.results[0].event_id == "a" and third.results[0].event_id == "c"
    assert isinstance(failed, ValueError)


def test_a_group_that_fails_whole_fails_its_requests_and_the_next_group_still_folds() -> None:
    envelopes = FakeEnvelopes()
    groups = RequestGroups(Threads(4, "test"))

    async def scenario() -> list[Any]:
        first = asyncio.create_task(posted(groups, envelopes, b"crash", "native:k"))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(posted(groups, envelopes, b"b", "native:k"))
        await asyncio.sleep(0.05)
        envelopes.release.set()
        return await answers_of(first, second)

    crashed, folded = asyncio.run(scenario())
    assert isinstance(crashed, RuntimeError)
    assert folded.results[0].event_id == "b"


def test_sources_and_intakes_are_never_folded_together() -> None:
    shared = object()
    one, other = FakeEnvelopes(shared), FakeEnvelopes(object())
    same_intake = FakeEnvelopes(shared)
    groups = RequestGroups(Threads(4, "test"))

    async def scenario() -> None:
        for envelopes in (one, other, same_intake):
            envelopes.release.set()
        await answers_of(
            posted(groups, one, b"a", "native:k1"),
            posted(groups, same_intake, b"b", "native:k2"),  # same intake, another key
            posted(groups, other, b"c", "native:k1"),  # same key id, another intake
        )

    asyncio.run(scenario())
    every_group = one.groups + other.groups + same_intake.groups
    assert sorted(every_group) == [
        ("native:k1", [b"a"]),
        ("native:k1", [b"c"]),
        ("native:k2", [b"b"]),
    ]


def test_a_group_is_bounded_in_requests_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_groups, "MAX_REQUESTS", 3)
    monkeypatch.setattr(request_groups, "MAX_BYTES", 10)
    envelopes = FakeEnvelopes()
    groups = RequestGroups(Threads(4, "test"))

    async def scenario() -> None:
        first = asyncio.create_task(posted(groups, envelopes, b"0", "native:k"))
        await asyncio.sleep(0.05)
        bodies = [b"1", b"2", b"3", b"4", b"5" * 8, b"6" * 20, b"7"]
        later = [asyncio.create_task(posted(groups, envelopes, raw, "native:k")) for raw in bodies]
        await asyncio.sleep(0.05)
        envelopes.release.set()
        await answers_of(first, *later)

    asyncio.run(scenario())
    assert [raws for _, raws in envelopes.groups] == [
        [b"0"],
        [b"1", b"2", b"3"],  # three requests at most
        [b"4", b"5" * 8],  # ten bytes at most ...
        [b"6" * 20],  # ... but a request larger than that still goes, alone
        [b"7"],
    ]


def test_a_client_gone_away_does_not_stop_the_group_it_was_in() -> None:
    envelopes = FakeEnvelopes()
    groups = RequestGroups(Threads(4, "test"))

    async def scenario() -> Any:
        first = asyncio.create_task(posted(groups, envelopes, b"a", "native:k"))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(posted(groups, envelopes, b"b", "native:k"))
        stays = asyncio.create_task(posted(groups, envelopes, b"c", "native:k"))
        await asyncio.sleep(0.05)
        gone.cancel()
        envelopes.release.set()
        await first
        return await stays

    assert asyncio.run(scenario()).results[0].event_id == "c"
    assert envelopes.groups[1] == ("native:k", [b"b", b"c"])  # folded all the same
