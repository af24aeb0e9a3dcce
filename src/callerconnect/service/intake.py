"""CAD intake: every payload kept, each event folded into its call in one transaction.

``submit`` is the handler behind the HTTP API, ``callerconnect ingest`` and dead-letter
replay alike: validate → (duplicate?) → store the event → load the call (locked) →
``decide`` → save the call, the outbox rows and the decisions → commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from callerconnect.adapters.cad.native import (
    DEFAULT_MAX_EVENT_BYTES,
    EventRejected,
    parse_event,
    parse_occurred_at,
    refuse_oversized_event,
)
from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.calls import CallRepository, StoredCall, record_decision
from callerconnect.adapters.db.repositories.events import (
    add_dead_letter,
    add_event,
    add_events,
    stored_event,
    stored_events,
)
from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.repositories.phones import protect_phone, protect_phones, set_opt_out
from callerconnect.adapters.db.tables import CadEventRow, CallRow, DeadLetterRow
from callerconnect.clock import Clock
from callerconnect.domain.calls import Call
from callerconnect.domain.event_time import DEFAULT_MAX_CLOCK_SKEW, time_ahead
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
from callerconnect.domain.policy import Policy
from callerconnect.logs import log_event
from callerconnect.service.holds import (
    HELD_CHANGED_EVENT,
    HELD_CONFLICTING_EVENT_ID,
    HELD_TIME_AHEAD,
    HELD_UNREADABLE,
    TIME_AHEAD_RULE,
    adds_sticky_danger,
    incident_of,
    may_change_safety,
)
from callerconnect.service.kept_payload import KeptPayload

log = logging.getLogger("callerconnect.intake")

Status = Literal["accepted", "duplicate", "rejected"]

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


@dataclass(frozen=True)
class IntakeResult:
    event_id: str | None
    status: Status
    error: str | None = None
    field: str | None = None
    rule: str | None = None
    dead_letter_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"event_id": self.event_id, "status": self.status}
        if self.error is not None:
            answer["error"] = self.error
            answer["field"] = self.field
            answer["rule"] = self.rule
        return answer


class Intake:
    # A concurrent insert of the same new incident makes one transaction lose the
    # unique-key race; it simply runs again and then finds the row.
    _RETRIES = 3

    def __init__(
        self,
        db: Database,
        vault: Vault,
        policy: Policy,
        clock: Clock,
        agency_id: str,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW,
    ) -> None:
        self.db = db
        self.vault = vault
        self.policy = policy
        self.clock = clock
        self.agency_id = agency_id
        self.max_event_bytes = max_event_bytes
        self.max_clock_skew = max_clock_skew

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

    def _check(self, payload: Any, source: str, keep_rejected: bool) -> CallFact | IntakeResult:
        """The event as a fact, or the answer that refuses it (kept, its incident held
        when it may carry a danger)."""
        event_id = payload.get("event_id") if isinstance(payload, dict) else None
        event_id = event_id if isinstance(event_id, str) else None
        try:
            refuse_oversized_event(payload, self.max_event_bytes)
            fact = parse_event(payload, case_number_pattern=self.policy.case_number_pattern)
            self.check_time(fact.occurred_at, "occurred_at")
        except EventRejected as rejected:
            letter = (
                self.dead_letter(json.dumps(payload), source, rejected) if keep_rejected else None
            )
            incident = incident_of(payload)
            if incident is not None and may_change_safety(payload, self.policy):
                reason = HELD_TIME_AHEAD if rejected.rule == TIME_AHEAD_RULE else HELD_UNREADABLE
                self.hold([incident], reason, source)
            log_event(
                log,
                "event_rejected",
                source=source,
                field=rejected.field,
                rule=rejected.rule,
                dead_letter=letter,
            )
            return IntakeResult(
                event_id,
                "rejected",
                rejected.message,
                rejected.field,
                rejected.rule,
                letter,
            )
        return fact

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

    def check_time(self, occurred_at: datetime, field: str) -> None:
        """Refuse a time ahead of its receipt beyond the tolerated drift
        (domain/event_time.py): it would make a genuine later change look older."""
        ahead = time_ahead(occurred_at, self.clock.now(), self.max_clock_skew)
        if ahead is not None:
            raise EventRejected(
                field,
                TIME_AHEAD_RULE,
                f"{field}: is {ahead.total_seconds():.0f} s ahead of the moment it was "
                f"received (at most {self.max_clock_skew.total_seconds():.0f} s of clock "
                "drift, intake.max_clock_skew, is accepted); set the CAD's clock right and "
                "replay the event",
            )

    def check_snapshot_times(self, events: Sequence[dict[str, Any]]) -> None:
        """The events derived from one EIDO snapshot, checked like native ones; the
        time named is the snapshot's (``lastUpdateTimeStamp``, or a component's)."""
        for event in events:
            self.check_time(parse_occurred_at(event["occurred_at"]), "lastUpdateTimeStamp")

    def _keep_after_failure(self, payload: Any, source: str, keep: bool) -> None:
        """An event we failed to process is not lost: it waits in the dead letters for
        a replay. If the database itself is down this fails too, and the CAD, seeing a
        5xx, sends the event again."""
        if not keep:
            return
        try:
            self.dead_letter(
                json.dumps(payload),
                source,
                EventRejected("(event)", "internal", "processing failed; replay it"),
            )
        except Exception:
            log.exception("action=dead_letter_failed source=%s", source)

    def dead_letter(
        self,
        raw: str | bytes,
        source: str,
        rejected: EventRejected,
        *,
        size: int | None = None,
        whole: bool = True,
    ) -> int:
        """Keep what was refused: at most its first 64 KiB, with its length and hash
        (service/kept_payload.py). ``whole`` is False for a body not read to its end,
        whose declared ``size`` is all that is known of the rest."""
        kept = KeptPayload.of(raw, size=size, whole=whole)
        with self.db.transaction() as session:
            return add_dead_letter(
                session,
                DeadLetterRow(
                    agency_id=self.agency_id,
                    received_at=self.clock.now(),
                    source=source,
                    payload_encrypted=self.vault.encrypt(kept.text),
                    payload_bytes=kept.size,
                    payload_sha256=kept.sha256,
                    payload_truncated=kept.truncated,
                    error_code=rejected.rule,
                    error=rejected.message,
                    field=rejected.field,
                    status="new",
                ),
            )

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

    def _conflicting_id(
        self, fact: CallFact, payload: dict[str, Any], source: str, keep_rejected: bool
    ) -> IntakeResult:
        """The id was first stored for another incident. Answering ``duplicate`` would
        drop this event silently, and it may be the upgrade or risk flag of its own
        incident: it is refused as a conflict, kept, and its incident held (fail
        closed), with the reason in the decision log and the dead letter."""
        rejected = EventRejected(
            "event_id",
            "conflict",
            "event_id: already used for an event of another incident; send this event "
            f"under an id of its own (its incident is held: {HELD_CONFLICTING_EVENT_ID})",
        )
        letter = self.dead_letter(json.dumps(payload), source, rejected) if keep_rejected else None
        log_event(
            log,
            "event_id_conflict",
            logging.WARNING,
            event_id=fact.event_id,
            incident=fact.incident_id,
            source=source,
            dead_letter=letter,
        )
        self.hold([fact.incident_id], HELD_CONFLICTING_EVENT_ID, source)
        return IntakeResult(
            fact.event_id, "rejected", rejected.message, rejected.field, rejected.rule, letter
        )

    def _same_payload(self, stored_encrypted: str, payload: dict[str, Any]) -> bool:
        try:
            return bool(json.loads(self.vault.decrypt(stored_encrypted)) == payload)
        except ValueError:  # VaultError included: cannot compare, so not the same
            return False

    def _changed_duplicate(self, fact: CallFact, payload: dict[str, Any], source: str) -> None:
        """The id was used before, for this incident, with other content. By contract
        only the first is folded; but if the second says something that would stop the
        texts for good, the incident is held (fail closed). An EIDO snapshot re-sends its
        facts under the same ids with the latest fields, so anything milder is only
        logged."""
        dangerous = adds_sticky_danger(payload, self.policy)
        log_event(
            log,
            "event_id_reused",
            logging.WARNING if dangerous else logging.INFO,
            event_id=fact.event_id,
            incident=fact.incident_id,
            source=source,
            held=dangerous,
        )
        if dangerous:
            self.hold([fact.incident_id], HELD_CHANGED_EVENT, source)

    def hold(self, incidents: Sequence[str], reason: str, source: str) -> None:
        """Stop texting these incidents for good (service/holds.py): a hold fact folded
        into each, creating the call if nothing else is known of it yet, and carried to
        the calls it was merged into."""
        now = self.clock.now()
        for incident in incidents:
            fact = CallFact(
                event_id=f"{reason}:{now.isoformat()}",
                incident_id=incident,
                occurred_at=now,
                type=FactType.UPDATED,
                hold=reason,
            )
            for attempt in range(self._RETRIES):
                try:
                    with self.db.transaction() as session:
                        self._apply(session, fact, now)
                    break
                # A concurrent first insert of the call, a lock timeout, a deadlock
                # with another transaction on the same calls: try again.
                except (IntegrityError, OperationalError):
                    if attempt == self._RETRIES - 1:
                        raise
            log_event(
                log,
                "incident_held",
                logging.WARNING,
                incident=incident,
                reason=reason,
                source=source,
            )

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
