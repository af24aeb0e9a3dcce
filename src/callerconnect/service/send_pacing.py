"""Pacing: the rate slots that keep every worker together within ``sms.max_per_second``.

Each send takes the next slot of one shared rate-limit row (a row lock, so slots are one
:attr:`~callerconnect.service.dispatch_options.DispatchOptions.send_interval` apart
across all processes and all their sending threads), is re-checked just before it, and
starts at it. A slot too far ahead (the provider asked us to pause) is not waited for:
the text goes back to the queue until then.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.repositories.send_slots import reserve_send_slot, take_late_send
from callerconnect.adapters.db.tables import OutboxRow
from callerconnect.clock import Clock
from callerconnect.logs import log_event
from callerconnect.service.dispatch_options import RATE_HEADROOM, DispatchOptions
from callerconnect.service.send_recheck import Prepared, holds

log = logging.getLogger("callerconnect.dispatcher")

#: The name of the shared rate-limit row for outgoing texts.
SMS_RATE = "sms"
#: How long before its rate slot a text is re-checked, at least: a re-check takes
#: milliseconds on a quiet machine. On a busy one the margin follows the slowest recent
#: re-check (up to :data:`MAX_CHECK_AHEAD`), since one that runs past its slot costs the
#: slot, and the cap goes unused.
CHECK_AHEAD = timedelta(milliseconds=50)
MAX_CHECK_AHEAD = timedelta(seconds=1)
#: How many recent re-check durations the margin looks at.
_RECENT_CHECKS = 20
#: How many later rate slots a text may take when its re-check ran past its own slot.
_LATE_SLOT_RETRIES = 2
#: How late after its slot a send may still start: half the spare 5% of a second that
#: ``RATE_HEADROOM`` leaves between a slot and the one ``max_per_second`` later; the
#: other half is for the request's way to the provider.
LATE_TOLERANCE = timedelta(seconds=(RATE_HEADROOM - 1) / 2)
#: How late after its slot a text's bytes may still be written, checked by the provider
#: at that moment (``OutgoingSms.in_time``): what is left of the spare 5% but 10 ms for
#: the way to the provider. A starved machine can hold a send between its start and the
#: write longer than that; it then goes back to the queue instead of crowding the next
#: second.
WRITE_TOLERANCE = timedelta(seconds=RATE_HEADROOM - 1) - timedelta(milliseconds=10)
#: A text sent back to the queue by a far slot is looked at again after this at most.
PAUSE_RECHECK = timedelta(seconds=60)


class SendPacing:
    """The rate slots of one worker (any number of its sending threads may use it)."""

    def __init__(self, db: Database, clock: Clock, options: DispatchOptions) -> None:
        self.db = db
        self.clock = clock
        self.options = options
        # Appended by every sending thread (a deque's append is atomic).
        self._check_durations: deque[timedelta] = deque(maxlen=_RECENT_CHECKS)

    @property
    def check_ahead(self) -> timedelta:
        """How long before its slot the next re-check starts: half as long again as the
        slowest of the recent ones, within :data:`CHECK_AHEAD` and :data:`MAX_CHECK_AHEAD`."""
        slowest = max(list(self._check_durations), default=timedelta(0))
        return min(MAX_CHECK_AHEAD, max(CHECK_AHEAD, slowest * 1.5))

    def checked_in_slot(
        self, outbox_id: int, recheck: Callable[[int], Prepared | None]
    ) -> Prepared | None:
        """Take a rate slot, re-check just before it, and wait for it: the text as it may
        go out now, or None.

        The re-check starts :attr:`check_ahead` before the slot, so it is the last thing
        before the provider call (a long wait for a slot cannot make it stale) and its
        own duration does not shift the send. A send starts at most
        :data:`LATE_TOLERANCE` after its slot. A re-check that ran past that (a cold
        start, a busy machine) sends late only if no other sender holds the next slot (the
        slots then move on behind it); a thread that wakes too late for its slot does not
        send. Either takes a later slot and checks again, and after
        :data:`_LATE_SLOT_RETRIES` the text goes back to the queue. Slots are
        ``RATE_HEADROOM / max_per_second`` apart, so ``max_per_second`` slots span 1.05 s:
        with every send within 25 ms of its slot, no second holds more than
        ``max_per_second`` sends across all worker processes."""
        interval = self.options.send_interval
        for _ in range(_LATE_SLOT_RETRIES + 1):
            slot = self.reserve()
            if slot - self.clock.now() > self.options.slot_horizon:
                self.wait_in_queue(outbox_id, slot)  # the slot was not taken
                return None
            # Timed from when it was meant to start: a thread that wakes late on a busy
            # machine uses up the margin as surely as a slow re-check.
            meant = max(slot - self.check_ahead, self.clock.now())
            self.sleep_until(meant)
            prepared = recheck(outbox_id)
            self._check_durations.append(self.clock.now() - meant)
            if prepared is None:
                return None  # not sent: its slot simply goes unused
            if self.clock.now() - slot > LATE_TOLERANCE:
                # The re-check ran past the slot: send now only if the slots can move on
                # behind this send.
                with self.db.transaction() as session:
                    now = self.clock.now()
                    if take_late_send(session, SMS_RATE, slot, interval, now):
                        return replace(prepared, slot=now)
            else:
                self.sleep_until(slot)
                if self.clock.now() - slot <= LATE_TOLERANCE:
                    return replace(prepared, slot=slot)
                # Woken too late (a busy machine): going now could put one send more than
                # the cap into a second with the next slots' sends.
            log_event(
                log,
                "sms_slot_missed",
                level=logging.DEBUG,
                outbox_id=outbox_id,
                late_ms=int((self.clock.now() - slot).total_seconds() * 1000),
            )
        # Every slot tried was missed: back to the queue, to be claimed again at once.
        self.wait_in_queue(outbox_id, self.clock.now())
        return None

    def in_time(self, slot: datetime) -> bool:
        """Whether a text of ``slot`` may still be written to the provider now."""
        return self.clock.now() - slot <= WRITE_TOLERANCE

    def missed(self, outbox_id: int, slot: datetime | None) -> None:
        """A text that reached the provider's edge too late for ``slot``: back to the
        queue at once, to take a later slot (it was not sent; no attempt counted)."""
        log_event(
            log,
            "sms_slot_missed",
            level=logging.DEBUG,
            outbox_id=outbox_id,
            late_ms=int((self.clock.now() - slot).total_seconds() * 1000) if slot else 0,
            at="provider",
        )
        self.wait_in_queue(outbox_id, self.clock.now())

    def reserve(self) -> datetime:
        """The next slot, taken unless it is beyond the horizon (then only returned)."""
        with self.db.transaction() as session:
            return reserve_send_slot(
                session,
                SMS_RATE,
                self.options.send_interval,
                self.clock.now(),
                horizon=self.options.slot_horizon,
            )

    def wait_in_queue(self, outbox_id: int, slot: datetime) -> None:
        """Back to ``scheduled`` until ``slot`` (at most :data:`PAUSE_RECHECK` away): a
        worker does not sleep for minutes holding texts whose lease runs out."""
        now = self.clock.now()
        until = min(slot, now + PAUSE_RECHECK)
        with self.db.transaction() as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            if row is None or not holds(row, self.options.owner):
                return
            Outbox(session).defer(row, max(row.not_before, until), now, reason="retry:paused")
        log_event(log, "sms_paused", outbox_id=outbox_id, until=until.isoformat())

    def sleep_until(self, moment: datetime) -> None:
        wait = (moment - self.clock.now()).total_seconds()
        if wait > 0:
            self.clock.sleep(wait)
