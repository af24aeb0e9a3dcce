"""The intake's refusal side: what it refuses and keeps, and the incidents it holds.

An event that fails validation, a time ahead of its receipt, an id already used for
another incident, a repeat that changes something dangerous: each is answered, kept in
the dead letters (so nothing a CAD sent is lost) and, where it may carry a danger, its
incident is held (fail closed). :class:`~callerconnect.service.intake.Intake` adds the
fold on top; a hold is folded like any fact, through its ``_fold_facts``.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from callerconnect.adapters.cad.native import (
    DEFAULT_MAX_EVENT_BYTES,
    EventRejected,
    parse_event,
    parse_occurred_at,
    refuse_oversized_event,
)
from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.events import add_dead_letter
from callerconnect.adapters.db.tables import DeadLetterRow
from callerconnect.clock import Clock
from callerconnect.domain.event_time import DEFAULT_MAX_CLOCK_SKEW, time_ahead
from callerconnect.domain.facts import CallFact, FactType
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
from callerconnect.service.intake_result import IntakeResult
from callerconnect.service.kept_payload import KeptPayload

log = logging.getLogger("callerconnect.intake")


class IntakeRefusals(ABC):
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
                    with self.db.writing() as connection:
                        self._fold_facts(connection, [fact], now)
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

    @abstractmethod
    def _fold_facts(self, connection: Connection, facts: Sequence[CallFact], now: datetime) -> None:
        """Fold the facts into their calls (the fold's, in service/intake.py)."""
