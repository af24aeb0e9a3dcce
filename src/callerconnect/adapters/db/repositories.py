"""Repositories: the only code that turns rows into domain objects and back."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.tables import (
    CadEventRow,
    CallRow,
    DeadLetterRow,
    DecisionRow,
    OptOutRow,
    OutboxRow,
    ProtectedPhoneRow,
    RateLimitRow,
    TextStatusChangeRow,
)
from callerconnect.domain.calls import Call
from callerconnect.domain.lifecycle import CancelPending, ScheduleText
from callerconnect.domain.messages import CALL_TEXT_KINDS, COUNTS_AS_SENT, TextKind, TextStatus

# Domain fields stored one-to-one in the calls table: every field of ``Call`` that has a
# column of the same name, derived from the two declarations (domain/calls.py,
# tables.py) rather than listed a third time. The identity is set on its own; the text
# kinds and the field versions have a representation of their own in the row.
_STORED_APART = frozenset({"agency_id", "incident_id", "texts_scheduled", "field_times"})
_PLAIN_FIELDS = tuple(
    field.name
    for field in fields(Call)
    if field.name in CallRow.__table__.columns and field.name not in _STORED_APART
)


class IllegalTransition(Exception):
    def __init__(self, current: str, new: str) -> None:
        super().__init__(f"a text cannot go from {current} to {new}")
        self.current = current
        self.new = new


# --- CAD events and dead letters ------------------------------------------------------


def event_exists(session: Session, agency_id: str, event_id: str) -> bool:
    found = session.scalar(
        select(CadEventRow.id).where(
            CadEventRow.agency_id == agency_id, CadEventRow.event_id == event_id
        )
    )
    return found is not None


@dataclass(frozen=True)
class StoredEvent:
    """What an event id was first stored for: its incident, and its payload (encrypted)
    to compare a repeat with."""

    incident_id: str
    payload_encrypted: str


def stored_event(session: Session, agency_id: str, event_id: str) -> StoredEvent | None:
    """The event first stored under this id, if any."""
    found = session.execute(
        select(CadEventRow.incident_id, CadEventRow.payload_encrypted).where(
            CadEventRow.agency_id == agency_id, CadEventRow.event_id == event_id
        )
    ).first()
    return None if found is None else StoredEvent(found[0], found[1])


def stored_events(
    session: Session, agency_id: str, event_ids: Sequence[str]
) -> dict[str, StoredEvent]:
    """The events already stored under any of these ids: one query for a whole batch."""
    if not event_ids:
        return {}
    events = CadEventRow.__table__.c
    # Core on the session's connection: plain columns need none of the ORM's work,
    # which costs more than the query itself for a single event.
    found = session.connection().execute(
        select(events.event_id, events.incident_id, events.payload_encrypted).where(
            events.agency_id == agency_id, events.event_id.in_(set(event_ids))
        )
    )
    return {event_id: StoredEvent(incident, payload) for event_id, incident, payload in found}


def add_events(session: Session, rows: Sequence[CadEventRow]) -> None:
    """Store a batch's new events in one multi-row insert. A concurrent insert of one
    of the ids fails the whole transaction (IntegrityError): the caller folds the
    events one by one then (service/intake.py)."""
    if rows:
        # Core, not the unit of work: no ids are needed back, so one executemany.
        columns = [column.key for column in CadEventRow.__table__.columns if column.key != "id"]
        session.connection().execute(
            insert(CadEventRow),
            [{key: getattr(row, key) for key in columns} for row in rows],
        )


def add_event(session: Session, row: CadEventRow) -> bool:
    """Store an accepted event; False if another transaction stored the same id first."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def add_dead_letter(session: Session, row: DeadLetterRow) -> int:
    session.add(row)
    session.flush()
    return row.id


# --- calls ----------------------------------------------------------------------------


@dataclass
class StoredCall:
    row: CallRow
    call: Call


class CallRepository:
    def __init__(self, session: Session, vault: Vault) -> None:
        self.session = session
        self.vault = vault

    def get(
        self, agency_id: str, incident_id: str, *, for_update: bool = False
    ) -> StoredCall | None:
        query = select(CallRow).where(
            CallRow.agency_id == agency_id, CallRow.incident_id == incident_id
        )
        if for_update:
            query = query.with_for_update()
        row = self.session.scalar(query)
        return None if row is None else StoredCall(row, self._to_domain(row))

    def get_many(
        self, agency_id: str, incident_ids: Collection[str], *, for_update: bool = False
    ) -> dict[str, StoredCall | None]:
        """Each incident's call (None when there is none yet), read in one query and,
        ``for_update``, locked in incident order so that two transactions locking
        overlapping sets never wait on each other crosswise."""
        known: dict[str, StoredCall | None] = dict.fromkeys(sorted(incident_ids))
        if not known:
            return known
        query = (
            select(CallRow)
            .where(CallRow.agency_id == agency_id, CallRow.incident_id.in_(list(known)))
            .order_by(CallRow.incident_id)
        )
        if for_update:
            query = query.with_for_update()
        for row in self.session.scalars(query):
            known[row.incident_id] = StoredCall(row, self._to_domain(row))
        return known

    def get_by_id(self, call_id: int, *, for_share: bool = False) -> StoredCall | None:
        query = select(CallRow).where(CallRow.id == call_id)
        if for_share:
            query = query.with_for_update(read=True)
        row = self.session.scalar(query)
        return None if row is None else StoredCall(row, self._to_domain(row))

    def save(self, call: Call, row: CallRow | None, now: datetime, category: str | None) -> CallRow:
        """Write the call into its row (a new one added to the session). Not flushed:
        what refers to a new row does so through the row itself, and the session writes
        every call of a batch together (or when a query needs them)."""
        new = row is None
        if row is None:
            row = CallRow(agency_id=call.agency_id, incident_id=call.incident_id, created_at=now)
            self.session.add(row)
        # Only what changed is set: an event changes a field or two, and each set
        # attribute costs the session's bookkeeping and a column in the UPDATE.
        for name in _PLAIN_FIELDS:
            value = getattr(call, name)
            if new or getattr(row, name) != value:
                setattr(row, name, value)
        if new or row.call_category != category:
            row.call_category = category
        if call.phone is not None:
            phone_hash = self.vault.phone_hash(call.phone)
            if row.phone_hash != phone_hash or row.phone_encrypted is None:
                row.phone_encrypted = self.vault.encrypt(call.phone)
                row.phone_hash = phone_hash
        texts = ",".join(sorted(call.texts_scheduled))
        if new or row.texts_scheduled != texts:
            row.texts_scheduled = texts
        versions = {
            name: [
                at.isoformat(),
                call.field_events.get(name, ""),
                call.first_seen[name].isoformat(),
            ]
            for name, at in call.field_times.items()
        }
        if new or row.field_times != versions:
            row.field_times = versions
        row.updated_at = now
        return row

    def _to_domain(self, row: CallRow) -> Call:
        values: dict[str, Any] = {name: getattr(row, name) for name in _PLAIN_FIELDS}
        phone = self.vault.decrypt(row.phone_encrypted) if row.phone_encrypted else None
        versions = row.field_times or {}
        times = {name: datetime.fromisoformat(v[0]) for name, v in versions.items()}
        events = {name: v[1] for name, v in versions.items()}
        seen = {name: datetime.fromisoformat(v[2]) for name, v in versions.items()}
        kinds = frozenset(k for k in row.texts_scheduled.split(",") if k)
        return Call(
            agency_id=row.agency_id,
            incident_id=row.incident_id,
            phone=phone,
            texts_scheduled=kinds,
            field_times=MappingProxyType(times),
            field_events=MappingProxyType(events),
            first_seen=MappingProxyType(seen),
            **values,
        )


def record_decision(
    session: Session,
    call: int | CallRow,
    code: str,
    *,
    decided_at: datetime,
    event_id: str | None = None,
    event_at: datetime | None = None,
    kind: str | None = None,
) -> None:
    # A row not yet flushed gets its id when the decision is written with it.
    link: dict[str, Any] = {"call": call} if isinstance(call, CallRow) else {"call_id": call}
    session.add(
        DecisionRow(
            **link,
            code=code,
            decided_at=decided_at,
            event_id=event_id,
            event_at=event_at,
            kind=kind,
        )
    )


# --- the outbox -----------------------------------------------------------------------


def dedupe_key(agency_id: str, incident_id: str, kind: TextKind, sequence: int = 0) -> str:
    return f"{agency_id}:{incident_id}:{kind.value}:{sequence}"


class Outbox:
    def __init__(self, session: Session) -> None:
        self.session = session
        #: Texts the last :meth:`claim_due` failed as ``failed:worker_lost``.
        self.lost: list[int] = []
        # The call texts of the incidents :meth:`preload` read, by dedupe key, kept up
        # to date by :meth:`schedule`: a batch reads them once, not once per action.
        self._texts: dict[str, OutboxRow] = {}
        self._loaded: set[tuple[str, str]] = set()

    def preload(
        self, agency_id: str, incident_ids: Collection[str], *, without_call: Collection[str] = ()
    ) -> None:
        """Read the call texts of these incidents in one query (their calls locked
        already, so no other transaction adds one meanwhile). Those ``without_call``
        have none to read: a text is made with its call, and calls are never deleted."""
        self._loaded |= {(agency_id, incident) for incident in without_call}
        wanted = {(agency_id, incident) for incident in incident_ids} - self._loaded
        if not wanted:
            return
        keys = [
            dedupe_key(agency, incident, kind)
            for agency, incident in wanted
            for kind in CALL_TEXT_KINDS
        ]
        for row in self.session.scalars(select(OutboxRow).where(OutboxRow.dedupe_key.in_(keys))):
            self._texts[row.dedupe_key] = row
        self._loaded |= wanted

    def _text(self, call_row: CallRow, kind: TextKind) -> OutboxRow | None:
        key = dedupe_key(call_row.agency_id, call_row.incident_id, kind)
        if (call_row.agency_id, call_row.incident_id) in self._loaded:
            return self._texts.get(key)
        return self.session.scalar(select(OutboxRow).where(OutboxRow.dedupe_key == key))

    def schedule(self, call_row: CallRow, action: ScheduleText, now: datetime) -> OutboxRow | None:
        """Create the text once; a reschedule only moves a text that is still waiting."""
        key = dedupe_key(call_row.agency_id, call_row.incident_id, action.kind)
        existing = self._text(call_row, action.kind)
        if existing is not None:
            if action.reschedule and existing.status == TextStatus.SCHEDULED:
                existing.not_before = action.not_before
                existing.expires_at = action.expires_at
                existing.updated_at = now
            return None
        status = TextStatus.SUPPRESSED if action.suppressed_reason else TextStatus.SCHEDULED
        row = OutboxRow(
            agency_id=call_row.agency_id,
            dedupe_key=key,
            call=call_row,  # its id once flushed, with the call's if that is new too
            kind=action.kind.value,
            sequence=0,
            status=status.value,
            reason=action.suppressed_reason,
            send_rank=action.kind.send_rank,
            not_before=action.not_before,
            expires_at=action.expires_at,
            attempts=0,
            created_at=now,
            updated_at=now,
            finished_at=now if action.suppressed_reason else None,
        )
        self.session.add(row)
        if (call_row.agency_id, call_row.incident_id) in self._loaded:
            self._texts[key] = row
        self._history(row, now)
        return row

    def add_reply(
        self,
        *,
        agency_id: str,
        key: str,
        phone_encrypted: str,
        phone_hash: str,
        language: str | None,
        body: str,
        encoding: str,
        segments: int,
        now: datetime,
        expires_after: timedelta,
    ) -> OutboxRow | None:
        """A text that answers a phone's own message; ``key`` makes it once-only."""
        if self.session.scalar(select(OutboxRow.id).where(OutboxRow.dedupe_key == key)):
            return None
        row = OutboxRow(
            agency_id=agency_id,
            dedupe_key=key,
            call_id=None,
            kind=TextKind.REPLY.value,
            sequence=0,
            status=TextStatus.SCHEDULED.value,
            send_rank=TextKind.REPLY.send_rank,
            not_before=now,
            expires_at=now + expires_after,
            attempts=0,
            phone_encrypted=phone_encrypted,
            phone_hash=phone_hash,
            language=language,
            body=body,
            encoding=encoding,
            segments=segments,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self.session.flush()
        self._history(row, now)
        return row

    def cancel_pending(self, call_row: CallRow, action: CancelPending, now: datetime) -> int:
        if (call_row.agency_id, call_row.incident_id) in self._loaded:
            rows: Sequence[OutboxRow] = [
                row
                for kind in sorted(action.kinds)
                if (
                    row := self._texts.get(
                        dedupe_key(call_row.agency_id, call_row.incident_id, kind)
                    )
                )
                is not None
                and row.status == TextStatus.SCHEDULED.value
            ]
        else:
            if call_row.id is None:  # a call new in this transaction: give it its id
                self.session.flush()
            rows = self.session.scalars(
                select(OutboxRow).where(
                    OutboxRow.call_id == call_row.id,
                    OutboxRow.status == TextStatus.SCHEDULED.value,
                    OutboxRow.kind.in_([k.value for k in action.kinds]),
                )
            ).all()
        for row in rows:
            self._move(row, TextStatus.CANCELLED, now, reason=action.reason)
        return len(rows)

    def transition(
        self,
        row: OutboxRow,
        new: TextStatus,
        now: datetime,
        *,
        reason: str | None = None,
    ) -> None:
        self._move(row, new, now, reason=reason)
        self.session.flush()

    def _move(
        self, row: OutboxRow, new: TextStatus, now: datetime, *, reason: str | None = None
    ) -> None:
        """The status change and its history, left for the session to write (a batch of
        the intake writes them all at its commit)."""
        current = TextStatus(row.status)
        if not current.can_become(new):
            raise IllegalTransition(current.value, new.value)
        row.status = new.value
        if reason is not None:
            row.reason = reason
        row.updated_at = now
        if new.is_final:
            row.finished_at = now
        if new is TextStatus.SENT:
            row.sent_at = now
        self._history(row, now)

    def defer(self, row: OutboxRow, until: datetime, now: datetime, *, reason: str) -> None:
        """Back to ``scheduled`` until ``until``, the attempt given back: waiting (the
        quiet hours, the provider's pause, a far rate slot) is not a failed attempt."""
        self.transition(row, TextStatus.SCHEDULED, now, reason=reason)
        row.not_before = until
        row.attempts -= 1

    def _history(self, row: OutboxRow, now: datetime) -> None:
        self.session.add(
            TextStatusChangeRow(outbox=row, status=row.status, reason=row.reason, at=now)
        )

    # --- claiming -------------------------------------------------------------------

    def claim_due(
        self,
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int,
        *,
        skip_locked: bool,
        max_attempts: int | None = None,
    ) -> list[OutboxRow]:
        """Due texts in sending order, leased to ``owner``. On PostgreSQL rows locked by
        other workers are skipped.

        A text whose sender's lease expired (the worker died or hung) is taken back
        first and alone, so a text that kills its worker does not take a batch of others
        down with it each time. Every claim counts as an attempt: one taken back with
        ``max_attempts`` used is failed as ``failed:worker_lost`` (its id in
        :attr:`lost`) rather than retried for ever."""
        self.lost = []
        expired = (OutboxRow.status == TextStatus.SENDING.value) & (
            OutboxRow.lease_expires_at < now
        )
        while rows := self._lock_due(expired, 1, skip_locked):
            if max_attempts is None or rows[0].attempts < max_attempts:
                break
            self.transition(rows[0], TextStatus.FAILED, now, reason="failed:worker_lost")
            self.lost.append(rows[0].id)
        if not rows:
            due = (OutboxRow.status == TextStatus.SCHEDULED.value) & (OutboxRow.not_before <= now)
            rows = self._lock_due(due, limit, skip_locked)
        for row in rows:
            if row.status == TextStatus.SCHEDULED.value:
                self.transition(row, TextStatus.SENDING, now)
            row.lease_owner = owner
            row.lease_expires_at = now + lease
            row.attempts += 1
        self.session.flush()
        return rows

    def _lock_due(self, condition: Any, limit: int, skip_locked: bool) -> list[OutboxRow]:
        query = (
            select(OutboxRow)
            .where(condition)
            .order_by(OutboxRow.send_rank, OutboxRow.not_before, OutboxRow.id)
            .limit(limit)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        return list(self.session.scalars(query).all())

    def next_due_at(self) -> datetime | None:
        return self.session.scalar(
            select(func.min(OutboxRow.not_before)).where(
                OutboxRow.status == TextStatus.SCHEDULED.value
            )
        )

    def texts_to_phone_since(
        self, phone_hash: str, since: datetime, *, excluding: int | None = None
    ) -> int:
        """Texts to the phone sent since ``since``, plus those in flight (``sending``
        after passing their last check, possibly at another worker), other than the
        text ``excluding`` that is being checked."""
        query = select(func.count(OutboxRow.id)).where(
            OutboxRow.phone_hash == phone_hash,
            OutboxRow.status.in_([s.value for s in COUNTS_AS_SENT]),
            or_(OutboxRow.sent_at >= since, OutboxRow.status == TextStatus.SENDING.value),
        )
        if excluding is not None:
            query = query.where(OutboxRow.id != excluding)
        return self.session.scalar(query) or 0

    def by_provider_id(self, provider_message_id: str) -> OutboxRow | None:
        return self.session.scalar(
            select(OutboxRow).where(OutboxRow.provider_message_id == provider_message_id)
        )


# --- opt-outs and the shared rate limit -------------------------------------------------


OPT_OUT_EVERY_AGENCY = "*"
"""The agency of an opt-out recorded before agencies were told apart (migration 0016)."""


def is_opted_out(session: Session, agency_id: str, phone_hash: str) -> bool:
    """Whether the phone said STOP to this agency (its own choice about this agency
    wins over one recorded for every agency)."""
    row = session.get(OptOutRow, (agency_id, phone_hash))
    if row is None:
        row = session.get(OptOutRow, (OPT_OUT_EVERY_AGENCY, phone_hash))
    return bool(row and row.opted_out)


def set_opt_out(
    session: Session,
    agency_id: str,
    phone_hash: str,
    opted_out: bool,
    now: datetime,
    source: str,
) -> bool:
    """Record the phone's choice about this agency; True if it changed."""
    was = is_opted_out(session, agency_id, phone_hash)
    row = session.get(OptOutRow, (agency_id, phone_hash), with_for_update=True)
    if row is None:
        session.add(
            OptOutRow(
                agency_id=agency_id,
                phone_hash=phone_hash,
                opted_out=opted_out,
                changed_at=now,
                source=source,
            )
        )
        return was != opted_out
    if row.opted_out == opted_out:
        return False
    row.opted_out = opted_out
    row.changed_at = now
    row.source = source
    return True


def protect_phone(
    session: Session, phone_hash: str, until: datetime, reason: str, now: datetime
) -> None:
    """Keep texts about other calls away from this phone until ``until`` (a later
    protection extends an earlier one, never shortens it)."""
    row = session.get(ProtectedPhoneRow, phone_hash, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    ProtectedPhoneRow(
                        phone_hash=phone_hash, protected_until=until, reason=reason, changed_at=now
                    )
                )
            return
        except IntegrityError:  # another transaction protected it first: extend theirs
            row = session.get(ProtectedPhoneRow, phone_hash, with_for_update=True)
            assert row is not None
    if row.protected_until < until:
        row.protected_until, row.reason, row.changed_at = until, reason, now


def protect_phones(
    session: Session, wanted: Mapping[str, tuple[datetime, str]], now: datetime
) -> None:
    """:func:`protect_phone` for many phones (hash → until, reason) in two statements: one
    locking read of those already protected, one insert of the others. A concurrent
    first protection of one of them fails the transaction (IntegrityError), and the
    caller folds its events one by one (service/intake.py)."""
    if not wanted:
        return
    rows = session.scalars(
        select(ProtectedPhoneRow)
        .where(ProtectedPhoneRow.phone_hash.in_(sorted(wanted)))
        .order_by(ProtectedPhoneRow.phone_hash)
        .with_for_update()
    )
    found = set()
    for row in rows:
        found.add(row.phone_hash)
        until, reason = wanted[row.phone_hash]
        if row.protected_until < until:
            row.protected_until, row.reason, row.changed_at = until, reason, now
    session.add_all(
        ProtectedPhoneRow(phone_hash=phone, protected_until=until, reason=reason, changed_at=now)
        for phone, (until, reason) in sorted(wanted.items())
        if phone not in found
    )


def is_protected(session: Session, phone_hash: str, now: datetime) -> bool:
    until = session.scalar(
        select(ProtectedPhoneRow.protected_until).where(ProtectedPhoneRow.phone_hash == phone_hash)
    )
    return until is not None and until > now


def reserve_send_slot(
    session: Session,
    name: str,
    interval: timedelta,
    now: datetime,
    *,
    horizon: timedelta | None = None,
) -> datetime:
    """The moment this sender may send: slots are ``interval`` apart across all
    processes, because every reservation takes the same row lock. A slot more than
    ``horizon`` after ``now`` is not taken, only returned: the sender comes back then."""
    row = session.get(RateLimitRow, name, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                session.add(RateLimitRow(name=name, next_slot_at=now))
                session.flush()
        except IntegrityError:
            pass  # another process created it first; lock theirs below
        row = session.get(RateLimitRow, name, with_for_update=True, populate_existing=True)
        assert row is not None
    slot = max(now, row.next_slot_at)
    if horizon is not None and slot - now > horizon:
        return slot
    row.next_slot_at = slot + interval
    session.flush()
    return slot


def take_late_send(
    session: Session, name: str, slot: datetime, interval: timedelta, now: datetime
) -> bool:
    """A sender whose ``slot`` has passed asks to send ``now`` all the same: yes if no
    other sender reserved the slot after it (nor a pause moved the slots on), and the
    next slot then starts a full ``interval`` after this late send; no otherwise, so it
    does not go out bunched up with the next sender's slot."""
    row = session.get(RateLimitRow, name, with_for_update=True)
    if row is None or row.next_slot_at > slot + interval:
        return False
    row.next_slot_at = max(row.next_slot_at, now + interval)
    session.flush()
    return True


def defer_send_slots(session: Session, name: str, until: datetime) -> None:
    """No sender may start before ``until``: the provider asked us to slow down, so every
    worker process pauses (slots already handed out are kept; the next one waits)."""
    row = session.get(RateLimitRow, name, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                session.add(RateLimitRow(name=name, next_slot_at=until))
                session.flush()
            return
        except IntegrityError:
            row = session.get(RateLimitRow, name, with_for_update=True, populate_existing=True)
            assert row is not None
    if row.next_slot_at < until:
        row.next_slot_at = until
        session.flush()
