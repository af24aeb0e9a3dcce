"""CAD intake: every payload kept, each event folded into its call in one transaction.

``submit`` is the handler behind the HTTP API, ``callerconnect ingest`` and dead-letter
replay alike: validate → (duplicate?) → store the event → load the call (locked) →
``decide`` → save the call, the outbox rows and the decisions → commit. What is refused,
kept as a dead letter or held is in service/intake_refusals.py; the answer for each
event is service/intake_result.py's ``IntakeResult``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.call_batch import CallBatch, HeldCall
from callerconnect.adapters.db.repositories.events import (
    add_new_events,
    stored_events,
    take_back_events,
)
from callerconnect.adapters.db.repositories.phones import opt_out_phones, protect_phones
from callerconnect.clock import Clock
from callerconnect.domain.facts import CallFact, FactType
from callerconnect.domain.lifecycle import (
    Action,
    CancelPending,
    HoldIncident,
    OptOutNumber,
    ProtectNumber,
    RecordDecision,
    ScheduleText,
    decide,
)
from callerconnect.domain.policy import Policy
from callerconnect.logs import log_event
from callerconnect.service.intake_groups import FoldGroups
from callerconnect.service.intake_refusals import IntakeRefusals
from callerconnect.service.intake_result import IntakeResult

log = logging.getLogger("callerconnect.intake")

#: Most events folded in one transaction. Larger saves little (the per-event work
#: dominates by then) and holds the calls' row locks, or SQLite's one writer, longer.
FOLD_CHUNK = 250


@dataclass(frozen=True)
class _Valid:
    """An event that passed validation: its place in the request, its fact, its JSON."""

    index: tuple[int, int]  # the request's place in its group, the event's in its request
    fact: CallFact
    payload: dict[str, Any]


@dataclass
class _Fold:
    """What the facts folded in one transaction share: their calls, texts and
    decisions, the numbers to protect and those opted out, each written once at the
    end."""

    connection: Connection
    calls: CallBatch
    protections: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    opt_outs: set[str] = field(default_factory=set)


class Intake(IntakeRefusals):
    """The fold: valid events stored and folded into their calls, in chunks (the
    refusals, dead letters and holds are :class:`IntakeRefusals`')."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        policy: Policy,
        clock: Clock,
        agency_id: str,
        **limits: Any,  # IntakeRefusals' (the most bytes an event, the clock skew allowed)
    ) -> None:
        super().__init__(db, vault, policy, clock, agency_id, **limits)
        self._groups: FoldGroups[Any, list[IntakeResult]] = FoldGroups(
            self._fold_requests,
            max_events=FOLD_CHUNK,
        )

    def submit(self, payload: Any, source: str, *, keep_rejected: bool = True) -> IntakeResult:
        """Validate and fold one native event; a rejected one goes to the dead letters
        (unless it already is one, being replayed)."""
        [result] = self.submit_many([payload], source, keep_rejected=keep_rejected)
        return result

    def submit_many(
        self, payloads: Sequence[Any], source: str, *, keep_rejected: bool = True
    ) -> list[IntakeResult]:
        """Validate every event, then fold the valid ones in as few transactions as
        correctness allows: one per :data:`FOLD_CHUNK` events, in request order (so the
        events of one incident fold in the order sent). Answers come in request order.

        Requests that come while another is folding are folded together with the other
        requests waiting (service/intake_groups.py), each still answered on its own.

        Rejected events are answered (and their incidents held) before anything of the
        batch is folded, so a danger in an unreadable event is never behind a text its
        neighbours scheduled. A transaction that fails is rolled back whole and each of
        its events is folded again on its own (:meth:`_fold_alone`): one bad event
        never takes the others down. If an event fails even alone, the others are still
        folded, then the error is raised (a 5xx: the CAD sends the batch again and the
        folded events come back ``duplicate``)."""
        return self._groups.submit((source, keep_rejected), list(payloads))

    def submit_requests(
        self, requests: Sequence[Sequence[Any]], source: str
    ) -> list[list[IntakeResult] | BaseException]:
        """Several requests' events, already gathered by the caller (the HTTP intake
        groups the requests that arrive while one group folds: web/request_groups.py),
        folded as one group: each request's results, or the exception it is to raise,
        exactly as :meth:`submit_many` would have answered it alone. The caller keeps
        to one group at a time for its source; a group of another source may fold
        beside it, as two processes' groups do (their row locks, or SQLite's writer
        gate, keep them apart)."""
        if not requests:
            return []
        return self._fold_requests((source, True), [list(events) for events in requests])

    def _fold_requests(
        self, key: Hashable, requests: list[Sequence[Any]]
    ) -> list[list[IntakeResult] | BaseException]:
        """Several requests' events folded as one batch, in the order they came; each
        request's answer: its results, or its first failure. A request an event of
        which could not even be checked (its dead letter or hold not written) folds
        nothing, as if it had come alone: an unwritten hold must not let a text out."""
        source, keep_rejected = cast(tuple[str, bool], key)
        answers: list[list[IntakeResult | BaseException | None] | BaseException] = []
        valid: list[_Valid] = []
        for number, payloads in enumerate(requests):
            try:
                checked = [self._check(payload, source, keep_rejected) for payload in payloads]
            except Exception as error:
                answers.append(error)
                continue
            results: list[IntakeResult | BaseException | None] = []
            for index, outcome in enumerate(checked):
                if isinstance(outcome, IntakeResult):
                    results.append(outcome)
                else:
                    results.append(None)
                    valid.append(_Valid((number, index), outcome, payloads[index]))
            answers.append(results)
        for start in range(0, len(valid), FOLD_CHUNK):
            chunk = valid[start : start + FOLD_CHUNK]
            for item, result in self._fold_chunk(chunk, source, keep_rejected):
                number, index = item.index
                request = answers[number]
                assert isinstance(request, list)
                request[index] = result
        return [_answer_of(request) for request in answers]

    def _fold_chunk(
        self, chunk: Sequence[_Valid], source: str, keep_rejected: bool
    ) -> list[tuple[_Valid, IntakeResult | Exception]]:
        answers: list[tuple[_Valid, IntakeResult | Exception]] = []
        alone: list[_Valid] = []
        pending = list(chunk)
        while pending:
            try:
                fresh, duplicates, rest = self._fold_together(pending, source)
            except Exception as error:  # rolled back whole: each event again, on its own
                log_event(
                    log,
                    "batch_folded_one_by_one",
                    logging.INFO
                    if isinstance(error, IntegrityError | OperationalError)
                    else logging.WARNING,
                    events=len(pending),
                    error=type(error).__name__,
                )
                fresh, duplicates, alone, rest = [], [], pending, []
            else:
                # A repeat that is not the same event stops the run: it is kept (and may
                # hold its incident) before the events after it fold, as it would be
                # were they sent one by one.
                alone, rest = rest[:1], rest[1:]
            answers += [(v, IntakeResult(v.fact.event_id, "duplicate")) for v in duplicates]
            for item in fresh:
                self._log_accepted(item.fact, source)
                answers.append((item, IntakeResult(item.fact.event_id, "accepted")))
            for item in alone:
                try:
                    answers.append((item, self._fold_alone(item, source, keep_rejected)))
                except Exception as error:
                    answers.append((item, error))
            pending = rest
        return answers

    def _fold_together(
        self, chunk: Sequence[_Valid], source: str
    ) -> tuple[list[_Valid], list[_Valid], list[_Valid]]:
        """Fold the chunk's new events in one transaction (:meth:`_store_new`, then
        :meth:`_fold_facts`). Returns the events folded, the plain duplicates (the same
        event again), and the rest of the chunk from the first other repeat of an id (a
        changed payload, another incident) on: that one goes to :meth:`_fold_alone`,
        which keeps it and holds its incident as for a single event, before the events
        after it fold."""
        now = self.clock.now()
        first, end = _first_of_each_id(chunk)
        # Encrypted before the transaction: SQLite's one writer is held that much less.
        rows = [self._event_row(item, source, now) for item in first.values()]
        with self.db.writing() as connection:
            fresh, duplicates, rest = self._store_new(connection, chunk, first, end, rows)
            self._fold_facts(connection, [item.fact for item in fresh], now)
        return fresh, duplicates, rest

    def _store_new(
        self,
        connection: Connection,
        chunk: Sequence[_Valid],
        first: dict[str, _Valid],
        end: int,
        rows: Sequence[dict[str, Any]],
    ) -> tuple[list[_Valid], list[_Valid], list[_Valid]]:
        """Store the events of ``rows`` (those of ``first``) whose ids are new in one
        statement, and sort the chunk as :meth:`_fold_together` returns it. The ids
        stored before are read back only when there are any, to compare the repeats
        with what they first were."""
        added = add_new_events(connection, rows)
        stored = stored_events(connection, self.agency_id, first.keys() - added)
        fresh: list[_Valid] = []
        duplicates: list[_Valid] = []
        for position, item in enumerate(chunk[:end]):
            before = stored.get(item.fact.event_id)
            if before is None:
                (fresh if first[item.fact.event_id] is item else duplicates).append(item)
            elif before.incident_id == item.fact.incident_id and self._same_payload(
                before.payload_encrypted, item.payload
            ):
                duplicates.append(item)
            else:
                end = position
                break
        # Events stored above behind that repeat fold after it, in a later transaction,
        # as if the events had come one by one: taken back (a rare case).
        take_back_events(connection, self.agency_id, added - {v.fact.event_id for v in fresh})
        return fresh, duplicates, list(chunk[end:])

    def _event_row(self, item: _Valid, source: str, now: datetime) -> dict[str, Any]:
        """The ``cad_events`` row of an accepted event."""
        fact = item.fact
        return {
            "agency_id": self.agency_id,
            "event_id": fact.event_id,
            "incident_id": fact.incident_id,
            "type": fact.type.value,
            "occurred_at": fact.occurred_at,
            "received_at": now,
            "source": source,
            "payload_encrypted": self.vault.encrypt(json.dumps(item.payload)),
        }

    def _log_accepted(self, fact: CallFact, source: str) -> None:
        log_event(
            log,
            "event_accepted",
            event_id=fact.event_id,
            incident=fact.incident_id,
            type=fact.type.value,
            source=source,
        )

    def _fold_alone(self, item: _Valid, source: str, keep_rejected: bool) -> IntakeResult:
        """One event in its own transaction, tried again when a concurrent insert of
        the same call won the race (it then finds the row)."""
        for attempt in range(self._RETRIES):
            try:
                return self._fold(item, source, keep_rejected)
            except (IntegrityError, OperationalError):
                if attempt < self._RETRIES - 1:
                    continue
                self._keep_after_failure(item.payload, source, keep_rejected)
                raise
            except Exception:
                self._keep_after_failure(item.payload, source, keep_rejected)
                raise
        raise AssertionError("unreachable")

    def _fold(self, item: _Valid, source: str, keep_rejected: bool) -> IntakeResult:
        fact, payload = item.fact, item.payload
        now = self.clock.now()
        row = self._event_row(item, source, now)
        with self.db.writing() as connection:
            # Stored only if its id is new, in one statement: an id stored by another
            # process meanwhile is found and compared like any other repeat.
            if add_new_events(connection, [row]):
                stored = None
                self._fold_facts(connection, [fact], now)
            else:
                found = stored_events(connection, self.agency_id, [fact.event_id])
                stored = found[fact.event_id]
        if stored is not None:
            if stored.incident_id != fact.incident_id:
                return self._conflicting_id(fact, payload, source, keep_rejected)
            if not self._same_payload(stored.payload_encrypted, payload):
                self._changed_duplicate(fact, payload, source)
            return IntakeResult(fact.event_id, "duplicate")
        self._log_accepted(fact, source)
        return IntakeResult(fact.event_id, "accepted")

    def _fold_facts(self, connection: Connection, facts: Sequence[CallFact], now: datetime) -> None:
        """Fold the facts in order into their calls: the calls read (locked) with their
        texts in one query, each fact folded against them in memory, then every table
        written in one statement (call_batch.py), the numbers to protect and those the
        caller opted out in one more each. (Nothing in the fold reads the opt-outs: the
        call remembers its caller's choice, and the worker checks the table before each
        text.)"""
        fold = _Fold(connection, CallBatch(connection, self.vault, self.agency_id))
        fold.calls.load(fact.incident_id for fact in facts)
        for fact in facts:
            self._apply(fold, fact, now)
        fold.calls.write(now)
        protect_phones(connection, fold.protections, now)
        opt_out_phones(connection, self.agency_id, fold.opt_outs, now, "cad")

    def _apply(
        self, fold: _Fold, fact: CallFact, now: datetime, seen: frozenset[str] = frozenset()
    ) -> None:
        """Fold one fact into its call and carry out what ``decide`` returned: the
        number's protection and opt-out, the call's texts and decisions, then the hold
        of the call it was merged into (and so on along a chain of merges; ``seen``
        stops a loop)."""
        calls = fold.calls
        held = calls.held(fact.incident_id)
        decision = decide(held.call, fact, self.policy, now)
        call_type = self.policy.call_type(decision.call.call_type_code)
        calls.save(held, decision.call, call_type.category if call_type else None)
        phone_hash = calls.phone_hash(held)
        for beyond in decision.beyond_the_call:
            match beyond:
                case ProtectNumber() if phone_hash:
                    # The first protection of the transaction's moment stands (the same
                    # ``until`` for all of them), as when they are written one by one.
                    fold.protections.setdefault(phone_hash, (beyond.until, beyond.reason))
                case OptOutNumber() if phone_hash is not None:
                    fold.opt_outs.add(phone_hash)
        self._carry_out(calls, held, fact, decision.actions, now)
        for beyond in decision.beyond_the_call:
            if isinstance(beyond, HoldIncident) and beyond.incident_id not in seen:
                hold = CallFact(
                    event_id=fact.event_id,  # the event that revealed it: the log says so
                    incident_id=beyond.incident_id,
                    occurred_at=now,
                    type=FactType.UPDATED,
                    hold=beyond.reason,
                )
                self._apply(fold, hold, now, seen | {fact.incident_id})
                log_event(
                    log,
                    "incident_held",
                    logging.WARNING,
                    incident=beyond.incident_id,
                    reason=beyond.reason,
                )

    def _carry_out(
        self,
        calls: CallBatch,
        held: HeldCall,
        fact: CallFact,
        actions: Sequence[Action],
        now: datetime,
    ) -> None:
        """The call's own actions: texts scheduled or cancelled, decisions recorded."""
        for action in actions:
            match action:
                case ScheduleText():
                    if calls.schedule(held, action, now):
                        log_event(
                            log,
                            "text_scheduled",
                            incident=fact.incident_id,
                            kind=action.kind.value,
                            not_before=action.not_before.isoformat(),
                            suppressed=action.suppressed_reason or "",
                        )
                case CancelPending():
                    cancelled = calls.cancel_pending(held, action, now)
                    if cancelled:
                        log_event(
                            log,
                            "texts_cancelled",
                            incident=fact.incident_id,
                            count=cancelled,
                            reason=action.reason,
                        )
                case RecordDecision():
                    calls.record_decision(
                        held,
                        action.code,
                        decided_at=now,
                        event_id=fact.event_id,
                        event_at=fact.occurred_at,
                        kind=action.kind.value if action.kind else None,
                    )


def _answer_of(
    request: list[IntakeResult | BaseException | None] | BaseException,
) -> list[IntakeResult] | BaseException:
    """A request's answer: its first failure, or else its results."""
    if isinstance(request, BaseException):
        return request
    for result in request:
        if isinstance(result, BaseException):
            return result
    assert all(result is not None for result in request)
    return [result for result in request if isinstance(result, IntakeResult)]


def _first_of_each_id(chunk: Sequence[_Valid]) -> tuple[dict[str, _Valid], int]:
    """The first event of each id, up to the first repeat within the chunk that is
    another event (a changed payload, another incident), and that repeat's position
    (the chunk's length if none): what comes from there on is not stored with the
    events before it."""
    first: dict[str, _Valid] = {}
    for position, item in enumerate(chunk):
        earlier = first.setdefault(item.fact.event_id, item)
        if earlier is not item and (earlier.fact.incident_id, earlier.payload) != (
            item.fact.incident_id,
            item.payload,
        ):
            return first, position
    return first, len(chunk)
