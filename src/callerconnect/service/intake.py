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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from callerconnect.adapters.db.repositories.calls import CallRepository, StoredCall, record_decision
from callerconnect.adapters.db.repositories.events import (
    add_event,
    add_events,
    stored_event,
    stored_events,
)
from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.repositories.phones import protect_phone, protect_phones, set_opt_out
from callerconnect.adapters.db.tables import CadEventRow, CallRow
from callerconnect.domain.calls import Call
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
    new_call,
)
from callerconnect.logs import log_event
from callerconnect.service.intake_refusals import IntakeRefusals
from callerconnect.service.intake_result import IntakeResult

log = logging.getLogger("callerconnect.intake")

#: Most events folded in one transaction. Larger saves little (the per-event work
#: dominates by then) and holds the calls' row locks, or SQLite's one writer, longer.
FOLD_CHUNK = 250


@dataclass(frozen=True)
class _Valid:
    """An event that passed validation: its place in the request, its fact, its JSON."""

    index: int
    fact: CallFact
    payload: dict[str, Any]


@dataclass
class _Batch:
    """What the events of one chunk share in its transaction: the texts of its
    incidents, read once, and the numbers to protect, written once at the end."""

    outbox: Outbox
    protections: dict[str, tuple[datetime, str]] = field(default_factory=dict)


class Intake(IntakeRefusals):
    """The fold: valid events stored and folded into their calls, in chunks (the
    refusals, dead letters and holds are :class:`IntakeRefusals`')."""

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

        Rejected events are answered (and their incidents held) before anything of the
        batch is folded, so a danger in an unreadable event is never behind a text its
        neighbours scheduled. A transaction that fails is rolled back whole and each of
        its events is folded again on its own (:meth:`_fold_alone`): one bad event
        never takes the others down. If an event fails even alone, the others are still
        folded, then the error is raised (a 5xx: the CAD sends the batch again and the
        folded events come back ``duplicate``)."""
        results: list[IntakeResult | None] = [None] * len(payloads)
        valid: list[_Valid] = []
        for index, payload in enumerate(payloads):
            checked = self._check(payload, source, keep_rejected)
            if isinstance(checked, IntakeResult):
                results[index] = checked
            else:
                valid.append(_Valid(index, checked, payload))
        failure: Exception | None = None
        for start in range(0, len(valid), FOLD_CHUNK):
            chunk = valid[start : start + FOLD_CHUNK]
            for item, result in self._fold_chunk(chunk, source, keep_rejected):
                if isinstance(result, Exception):
                    failure = failure or result
                else:
                    results[item.index] = result
        if failure is not None:
            raise failure
        assert all(result is not None for result in results)
        return [result for result in results if result is not None]

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
        """Fold the chunk's new events in one transaction: one query for the ids already
        stored, one insert of the events, one locking read of their calls (in incident
        order, so two batches never wait on each other crosswise), then each event
        folded in request order against the calls in memory. Returns the events folded,
        the plain duplicates (the same event again), and the rest of the chunk from the
        first other repeat of an id (a changed payload, another incident) on: that one
        goes to :meth:`_fold_alone`, which keeps it and holds its incident as for a
        single event, before the events after it fold."""
        now = self.clock.now()
        with self.db.transaction() as session:
            stored = stored_events(session, self.agency_id, [v.fact.event_id for v in chunk])
            first: dict[str, _Valid] = {}
            fresh: list[_Valid] = []
            duplicates: list[_Valid] = []
            rest: list[_Valid] = []
            for position, item in enumerate(chunk):
                event_id = item.fact.event_id
                if event_id in stored:
                    before = stored[event_id]
                    same = before.incident_id == item.fact.incident_id and self._same_payload(
                        before.payload_encrypted, item.payload
                    )
                elif event_id in first:
                    earlier = first[event_id]
                    same = (earlier.fact.incident_id, earlier.payload) == (
                        item.fact.incident_id,
                        item.payload,
                    )
                else:
                    first[event_id] = item
                    fresh.append(item)
                    continue
                if not same:
                    rest = list(chunk[position:])
                    break
                duplicates.append(item)
            add_events(session, [self._event_row(v.fact, v.payload, source, now) for v in fresh])
            incidents = {v.fact.incident_id for v in fresh}
            known = CallRepository(session, self.vault).get_many(
                self.agency_id, incidents, for_update=True
            )
            batch = _Batch(Outbox(session))
            batch.outbox.preload(
                self.agency_id,
                incidents,
                without_call=[incident for incident, call in known.items() if call is None],
            )
            # Everything read is in memory now: the session writes the calls, texts and
            # decisions of the whole chunk at the commit, each table in one statement.
            with session.no_autoflush:
                for item in fresh:
                    self._apply(session, item.fact, now, known, batch=batch)
            protect_phones(session, batch.protections, now)
        return fresh, duplicates, rest

    def _event_row(
        self, fact: CallFact, payload: dict[str, Any], source: str, now: datetime
    ) -> CadEventRow:
        return CadEventRow(
            agency_id=self.agency_id,
            event_id=fact.event_id,
            incident_id=fact.incident_id,
            type=fact.type.value,
            occurred_at=fact.occurred_at,
            received_at=now,
            source=source,
            payload_encrypted=self.vault.encrypt(json.dumps(payload)),
        )

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
        the same id or call won the race (it then finds the row)."""
        fact, payload = item.fact, item.payload
        for attempt in range(self._RETRIES):
            try:
                return self._fold(fact, payload, source, keep_rejected)
            except (IntegrityError, OperationalError):
                if attempt < self._RETRIES - 1:
                    continue
                self._keep_after_failure(payload, source, keep_rejected)
                raise
            except Exception:
                self._keep_after_failure(payload, source, keep_rejected)
                raise
        raise AssertionError("unreachable")

    def _fold(
        self, fact: CallFact, payload: dict[str, Any], source: str, keep_rejected: bool
    ) -> IntakeResult:
        now = self.clock.now()
        with self.db.transaction() as session:
            # Checked and inserted in one transaction: an id stored by another process
            # in between is found by the insert and compared like any other repeat.
            stored = stored_event(session, self.agency_id, fact.event_id)
            if stored is None:
                if add_event(session, self._event_row(fact, payload, source, now)):
                    self._apply(session, fact, now)
                else:
                    stored = stored_event(session, self.agency_id, fact.event_id)
        if stored is not None:
            if stored.incident_id != fact.incident_id:
                return self._conflicting_id(fact, payload, source, keep_rejected)
            if not self._same_payload(stored.payload_encrypted, payload):
                self._changed_duplicate(fact, payload, source)
            return IntakeResult(fact.event_id, "duplicate")
        self._log_accepted(fact, source)
        return IntakeResult(fact.event_id, "accepted")

    def _apply(
        self,
        session: Session,
        fact: CallFact,
        now: Any,
        known: dict[str, StoredCall | None] | None = None,
        seen: frozenset[str] = frozenset(),
        *,
        batch: _Batch | None = None,
    ) -> Call:
        """Fold one fact into its call and carry out what ``decide`` returned: the
        number's protection and opt-out, the call's texts and decisions, then the hold
        of the call it was merged into (and so on along a chain of merges; ``seen``
        stops a loop). ``known`` holds the calls this transaction has
        locked and folded so far (None: not yet existing), kept up to date here, so the
        events of a batch do not read their call again."""
        calls = CallRepository(session, self.vault)
        if known is not None and fact.incident_id in known:
            stored = known[fact.incident_id]
        else:
            stored = calls.get(self.agency_id, fact.incident_id, for_update=True)
        call = stored.call if stored else new_call(self.agency_id, fact.incident_id)
        decision = decide(call, fact, self.policy, now)
        call_type = self.policy.call_type(decision.call.call_type_code)
        row = calls.save(
            decision.call,
            stored.row if stored else None,
            now,
            call_type.category if call_type else None,
        )
        if known is not None:
            known[fact.incident_id] = StoredCall(row, decision.call)
        for beyond in decision.beyond_the_call:
            match beyond:
                case ProtectNumber() if row.phone_hash and batch is not None:
                    # The first protection of the batch's moment stands (the same
                    # ``until`` for all of them), as when they are written one by one.
                    batch.protections.setdefault(row.phone_hash, (beyond.until, beyond.reason))
                case ProtectNumber() if row.phone_hash:
                    protect_phone(session, row.phone_hash, beyond.until, beyond.reason, now)
                case OptOutNumber() if row.phone_hash is not None:
                    # A batch does not flush as it goes; the opt-out an earlier event of
                    # it added must be in the database for this one to find it.
                    session.flush()
                    set_opt_out(session, self.agency_id, row.phone_hash, True, now, "cad")
        outbox = batch.outbox if batch is not None else Outbox(session)
        self._carry_out(session, outbox, row, fact, decision.actions, now)
        for beyond in decision.beyond_the_call:
            if isinstance(beyond, HoldIncident) and beyond.incident_id not in seen:
                hold = CallFact(
                    event_id=fact.event_id,  # the event that revealed it: the log says so
                    incident_id=beyond.incident_id,
                    occurred_at=now,
                    type=FactType.UPDATED,
                    hold=beyond.reason,
                )
                self._apply(session, hold, now, known, seen | {fact.incident_id}, batch=batch)
                log_event(
                    log,
                    "incident_held",
                    logging.WARNING,
                    incident=beyond.incident_id,
                    reason=beyond.reason,
                )
        return decision.call

    def _carry_out(
        self,
        session: Session,
        outbox: Outbox,
        row: CallRow,
        fact: CallFact,
        actions: Sequence[Action],
        now: datetime,
    ) -> None:
        """The call's own actions: texts scheduled or cancelled, decisions recorded."""
        for action in actions:
            match action:
                case ScheduleText():
                    if outbox.schedule(row, action, now) is not None:
                        log_event(
                            log,
                            "text_scheduled",
                            incident=fact.incident_id,
                            kind=action.kind.value,
                            not_before=action.not_before.isoformat(),
                            suppressed=action.suppressed_reason or "",
                        )
                case CancelPending():
                    cancelled = outbox.cancel_pending(row, action, now)
                    if cancelled:
                        log_event(
                            log,
                            "texts_cancelled",
                            incident=fact.incident_id,
                            count=cancelled,
                            reason=action.reason,
                        )
                case RecordDecision():
                    record_decision(
                        session,
                        row,
                        action.code,
                        decided_at=now,
                        event_id=fact.event_id,
                        event_at=fact.occurred_at,
                        kind=action.kind.value if action.kind else None,
                    )
