"""The outbox: each text a call is to receive, its status moves, and the claims of
the rows that are due. (The intake creates and cancels call texts with its calls, in
call_batch.py.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from callerconnect.adapters.db.tables import OutboxRow, TextStatusChangeRow
from callerconnect.domain.messages import COUNTS_AS_SENT, TextKind, TextStatus


class IllegalTransition(Exception):
    def __init__(self, current: str, new: str) -> None:
        super().__init__(f"a text cannot go from {current} to {new}")
        self.current = current
        self.new = new


def dedupe_key(agency_id: str, incident_id: str, kind: TextKind, sequence: int = 0) -> str:
    return f"{agency_id}:{incident_id}:{kind.value}:{sequence}"


class Outbox:
    def __init__(self, session: Session) -> None:
        self.session = session
        #: Texts the last :meth:`claim_due` failed as ``failed:worker_lost``.
        self.lost: list[int] = []

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
