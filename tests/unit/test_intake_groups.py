"""Group commit (service/intake_groups.py): requests that come while one folds are folded
together, each answered with exactly its own answer, keys never mixed, nobody left
waiting when a fold fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callerconnect.service.intake_groups import FoldGroups


class Recorder:
    """A fold that answers each request with its payloads doubled, after a pause long
    enough for others to queue; records every group and how many ran at once."""

    def __init__(self, pause: float = 0.01, fail_on: object = None) -> None:
        self.pause = pause
        self.fail_on = fail_on
        self.groups: list[tuple[Hashable, list[list[int]]]] = []
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(
        self, key: Hashable, requests: list[Sequence[int]]
    ) -> list[list[int] | BaseException]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.groups.append((key, [list(r) for r in requests]))
        time.sleep(self.pause)
        with self.lock:
            self.running -= 1
        return [
            ValueError(f"bad {list(r)}") if self.fail_on in r else [2 * p for p in r]
            for r in requests
        ]


def submit_all(
    groups: FoldGroups[int, list[int]], requests: list[tuple[str, list[int]]]
) -> list[list[int] | BaseException]:
    def one(request: tuple[str, list[int]]) -> list[int] | BaseException:
        try:
            return groups.submit(*request)
        except Exception as error:
            return error

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))


def test_requests_that_wait_are_folded_together_and_each_gets_its_own_answer() -> None:
    fold = Recorder()
    groups: FoldGroups[int, list[int]] = FoldGroups(fold, max_events=100)
    requests = [("native:a", [n, n + 1000]) for n in range(40)]
    answers = submit_all(groups, requests)
    assert answers == [[2 * n, 2 * (n + 1000)] for n in range(40)]
    folded = sorted(p for _, group in fold.groups for request in group for p in request)
    assert folded == sorted(p for _, request in requests for p in request)  # each once
    assert len(fold.groups) < len(requests)  # some were folded together
    assert fold.most_at_once == 1


def test_keys_are_never_mixed_and_groups_stay_within_max_events() -> None:
    fold = Recorder()
    groups: FoldGroups[int, list[int]] = FoldGroups(fold, max_events=5)
    requests = [(f"source-{n % 3}", list(range(n, n + 1 + n % 2))) for n in range(30)]
    requests.append(("source-0", list(range(100, 108))))  # larger than a group: alone
    answers = submit_all(groups, requests)
    assert answers == [[2 * p for p in payloads] for _, payloads in requests]
    for key, group in fold.groups:
        assert all(requests_key == key for requests_key, r in requests if r in group)
        assert len(group) == 1 or sum(map(len, group)) <= 5


def test_a_failing_request_fails_alone() -> None:
    fold = Recorder(fail_on=13)
    groups: FoldGroups[int, list[int]] = FoldGroups(fold, max_events=100)
    answers = submit_all(groups, [("k", [n]) for n in range(30)])
    assert isinstance(answers[13], ValueError)
    assert all(answers[n] == [2 * n] for n in range(30) if n != 13)


def test_a_fold_that_raises_answers_its_whole_group_and_the_next_ones_still_fold() -> None:
    calls = 0

    def fold(key: Hashable, requests: list[Sequence[int]]) -> list[list[int] | BaseException]:
        nonlocal calls
        calls += 1
        time.sleep(0.01)
        if calls == 1:
            raise RuntimeError("database down")
        return [[2 * p for p in r] for r in requests]

    groups: FoldGroups[int, list[int]] = FoldGroups(fold, max_events=100)
    answers = submit_all(groups, [("k", [n]) for n in range(20)])
    failed = [a for a in answers if isinstance(a, RuntimeError)]
    assert failed  # the first group's requests, each told
    assert all(a == [2 * n] for n, a in enumerate(answers) if not isinstance(a, RuntimeError))
    assert groups.submit("k", [7]) == [14]  # the turn was handed on


def test_one_group_folds_at_a_time() -> None:
    fold = Recorder(pause=0.02)
    groups: FoldGroups[int, list[int]] = FoldGroups(fold, max_events=3)
    answers = submit_all(groups, [("k", [n]) for n in range(30)])
    assert answers == [[2 * n] for n in range(30)]
    assert fold.most_at_once == 1
    assert len(fold.groups) < 30  # requests that waited were folded together


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.lists(st.integers(0, 50), max_size=4)),
        min_size=1,
        max_size=16,
    ),
    st.integers(1, 6),
)
def test_any_mix_of_requests_is_answered_exactly_as_alone(
    requests: list[tuple[str, list[int]]], max_events: int
) -> None:
    fold = Recorder(pause=0.001, fail_on=13)
    groups: FoldGroups[int, list[int]] = FoldGroups(fold, max_events=max_events)
    answers = submit_all(groups, requests)
    for (_, payloads), answer in zip(requests, answers, strict=True):
        if 13 in payloads:
            assert isinstance(answer, ValueError)
        else:
            assert answer == [2 * p for p in payloads]
    assert sum(len(group) for _, group in fold.groups) == len(requests)
    assert fold.most_at_once == 1


def test_one_request_alone_folds_at_once() -> None:
    fold = Recorder(pause=0)
    groups: FoldGroups[int, list[int]] = FoldGroups(fold, max_events=10)
    assert groups.submit("k", [1, 2]) == [2, 4]
    assert fold.groups == [("k", [[1, 2]])]
    with pytest.raises(ValueError):
        FoldGroups(Recorder(fail_on=1), max_events=10).submit("k", [1])
