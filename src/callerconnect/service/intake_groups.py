"""Group commit: the intake requests that arrive while one is being folded are folded
together, in the next transaction.

A CAD posting one event per request pays a whole transaction for each: a connection
checked out, ``BEGIN``, the statements, ``COMMIT``, on SQLite a turn at the one writer.
Folded in a batch the same event costs a quarter of that (``bench/intake_cost.py``).
So while one request of an intake is folding, the requests that come meanwhile wait;
when it ends, the first of them folds all those waiting (up to ``max_events``) in one
go, and each gets its own answer. With one client nothing waits and nothing changes.

What a request gets back is exactly what it would have got alone: its own results, or
its own failure. The fold (``Intake._fold_requests``) keeps the requests apart: a
request whose events cannot be checked folds nothing, an event that fails fails only its
own request. Requests of different keys (another source, a replay) are never folded
together; they take their turn in the order they came.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")


@dataclass(eq=False)
class _Request(Generic[P, R]):
    key: Hashable
    payloads: Sequence[P]
    answer: R | BaseException | None = None
    answered: bool = False
    #: Woken once: answered, or told to lead (fold the next group itself).
    wake: threading.Event = field(default_factory=threading.Event)


#: ``fold(key, requests)``: one answer per request, in order (its result, or the
#: exception it is to raise).
Fold = Callable[[Hashable, list[Sequence[P]]], list[R | BaseException]]


class FoldGroups(Generic[P, R]):
    """Runs ``fold`` for concurrent :meth:`submit` calls, several requests at a time, one
    group at a time: on two cores two groups at once were each half as big, and cost a
    third more CPU an event (ADR 0012). ``max_events``: the most events a group gathers;
    a request larger than that folds alone."""

    def __init__(self, fold: Fold[P, R], *, max_events: int) -> None:
        self._fold = fold
        self._max_events = max_events
        self._lock = threading.Lock()
        self._waiting: list[_Request[P, R]] = []  # neither leading nor in a group yet
        self._folding = False

    def submit(self, key: Hashable, payloads: Sequence[P]) -> R:
        """``payloads`` folded, alone or with the requests waiting beside them; the
        request's answer, or its exception raised."""
        request: _Request[P, R] = _Request(key, payloads)
        with self._lock:
            lead = not self._folding
            if lead:
                self._folding = True
            else:
                self._waiting.append(request)
        if not lead:
            request.wake.wait()
        if not request.answered:
            self._lead(request)
        if isinstance(request.answer, BaseException):
            raise request.answer
        return request.answer  # type: ignore[return-value]

    def _lead(self, leader: _Request[P, R]) -> None:
        """Fold ``leader`` with the requests waiting for the same key, answer them all,
        then hand the turn to the first request still waiting."""
        with self._lock:
            group = self._gather(leader)
        try:
            answers = self._fold(leader.key, [request.payloads for request in group])
        except BaseException as error:  # never leave the others waiting for ever
            answers = [error] * len(group)
        for request, answer in zip(group, answers, strict=True):
            request.answer, request.answered = answer, True
        with self._lock:
            successor = self._waiting.pop(0) if self._waiting else None
            if successor is None:
                self._folding = False
        for request in group:
            if request is not leader:
                request.wake.set()
        if successor is not None:
            successor.wake.set()  # not answered: it leads the next group

    def _gather(self, leader: _Request[P, R]) -> list[_Request[P, R]]:
        """``leader`` and, in the order they came, the waiting requests of its key that
        fit in ``max_events`` beside it (taken out of the waiting list)."""
        group, size, left = [leader], len(leader.payloads), []
        for request in self._waiting:
            if request.key == leader.key and size + len(request.payloads) <= self._max_events:
                group.append(request)
                size += len(request.payloads)
            else:
                left.append(request)
        self._waiting = left
        return group
