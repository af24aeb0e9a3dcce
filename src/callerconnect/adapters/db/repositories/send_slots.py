"""The rate slots shared by every worker process: each send reserves its moment so
that no second holds more than ``sms.max_per_second`` sends."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callerconnect.adapters.db.tables import RateLimitRow


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
