"""The dispatcher's loop: claims due texts and sends them, several at once, each in its
own rate slot after its last re-check.

One pass (:meth:`Dispatcher.run_due`) handles every text due at the clock's "now"; a
worker process repeats passes (:meth:`Dispatcher.run_forever`), keeping
:attr:`~callerconnect.service.dispatch_options.DispatchOptions.sends_in_flight` sends
in flight so that a provider's answer time does not leave rate slots unused. Pacing (the
shared rate slots) is service/send_pacing.py; the re-check and the body,
service/send_recheck.py; when a refused text goes again, domain/retry.py.

Several workers may run against PostgreSQL: claiming uses ``FOR UPDATE SKIP LOCKED`` and
a lease, so each text has one sender at a time, and a worker that dies mid-send leaves a
lease that expires and lets another worker retry.

The remaining duplicate window: a worker killed after the provider accepted a text but
before it recorded ``sent`` leaves a ``sending`` row; after the lease expires it is sent
again. The window is the few milliseconds between the provider's answer and our commit;
``OutgoingSms.reference`` (the outbox key) lets a provider that supports idempotency
drop the second copy, and the attempt count on the row shows every such resend.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.repositories.phones import set_opt_out
from callerconnect.adapters.db.repositories.send_slots import defer_send_slots
from callerconnect.adapters.db.tables import OutboxRow
from callerconnect.adapters.sms.base import (
    OutgoingSms,
    PushProvider,
    SendError,
    SendResult,
    SlotMissed,
)
from callerconnect.adapters.sms.phone import mask_phone
from callerconnect.clock import Clock
from callerconnect.domain.messages import COUNTS_AS_SENT, TextStatus
from callerconnect.domain.retry import Failure, next_try, provider_pause
from callerconnect.logs import log_event
from callerconnect.service.agencies import Agencies
from callerconnect.service.dispatch_options import RATE_HEADROOM, DispatchOptions
from callerconnect.service.receipts import lock_receipts, record_sent
from callerconnect.service.retention import purge_phones
from callerconnect.service.send_pacing import SMS_RATE, SendPacing
from callerconnect.service.send_recheck import Prepared, Recheck, holds

__all__ = ["RATE_HEADROOM", "SMS_RATE", "DispatchOptions", "Dispatcher", "failure_of"]

log = logging.getLogger("callerconnect.dispatcher")

#: How often a worker looks for phone numbers to purge (cheap: one indexed query).
_PURGE_EVERY = timedelta(minutes=10)
#: Between two tries to record a text the provider took while the database is away.
RECORD_RETRY_PAUSE = timedelta(seconds=1)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        clock: Clock,
        agencies: Agencies,
        options: DispatchOptions,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.db = db
        self.vault = vault
        self.clock = clock
        self.options = options
        self.pacing = SendPacing(db, clock, options)
        self.recheck = Recheck(
            db,
            vault,
            clock,
            agencies,
            owner=options.owner,
            lease=options.lease,
            public_base_url=options.public_base_url,
        )
        #: Spreads retries (domain/retry.py): workers that failed together retry apart.
        self.jitter = jitter
        # Texts claimed by a pass that failed before handling them (the database went
        # away): given back at the next pass rather than left to wait out the lease.
        self._unfinished: set[int] = set()
        self._unfinished_lock = threading.Lock()

    @property
    def agencies(self) -> Agencies:
        return self.recheck.agencies

    @agencies.setter
    def agencies(self, agencies: Agencies) -> None:
        """Swapping the agencies (a provider in tests) reaches the re-check, which picks
        each text's agency and so its provider."""
        self.recheck.agencies = agencies

    # --- loops -------------------------------------------------------------------------

    def run_due(self, stop: threading.Event | None = None, *, in_flight: int = 1) -> int:
        """Handle every text due now, ``in_flight`` at a time; return how many rows were
        handled. When ``stop`` is set (SIGTERM), return after the texts in hand and give
        the rest of the claim back at once, so a long backlog never holds up a shutdown
        (an orchestrator would kill the worker mid-send) and another worker takes over
        without waiting out the leases. One at a time (the default) a pass is
        deterministic on a virtual clock: replays, the demo and most tests use that."""
        if self._unfinished:
            self._release(sorted(self._unfinished))
            self._unfinished.clear()
        if in_flight > 1:
            handled = self._send_concurrently(stop, in_flight)
        else:
            handled = self._send_one_by_one(stop)
        if self._unfinished:
            self._release(sorted(self._unfinished))
            self._unfinished.clear()
        return handled

    def _send_one_by_one(self, stop: threading.Event | None) -> int:
        handled = 0
        while stop is None or not stop.is_set():
            claimed = self._claim()
            if not claimed:
                break
            self._unfinished.update(claimed)
            for outbox_id in claimed:
                if stop is not None and stop.is_set():
                    break
                self._handle(outbox_id)
                self._unfinished.discard(outbox_id)
                handled += 1
        return handled

    def _send_concurrently(self, stop: threading.Event | None, in_flight: int) -> int:
        """Keep up to ``in_flight`` sends going, each in its own rate slot, and claim more
        as they finish (a text that falls due meanwhile joins without waiting for the
        batch). A send that fails (the database went away) ends the pass as one by one:
        texts not yet started stay in :attr:`_unfinished`, given back at the next pass."""
        abort = threading.Event()

        def send(outbox_id: int) -> int:
            if abort.is_set() or (stop is not None and stop.is_set()):
                return 0
            try:
                self._handle(outbox_id)
            except BaseException:
                abort.set()
                raise
            with self._unfinished_lock:
                self._unfinished.discard(outbox_id)
            return 1

        handled = 0
        error: BaseException | None = None
        pending: set[Future[int]] = set()
        with ThreadPoolExecutor(in_flight, thread_name_prefix="callerconnect-send") as pool:
            while True:
                stopping = abort.is_set() or (stop is not None and stop.is_set())
                # A few claimed texts wait in the pool, so the next send never waits for
                # a claim; only a few, so a confirmation that falls due meanwhile is not
                # queued behind a long claim of survey invitations (claims go by rank).
                room = in_flight + in_flight // 2 - len(pending)
                if not stopping and room >= max(1, in_flight // 2):
                    claimed = self._claim(min(room, self.options.claim_size))
                    with self._unfinished_lock:
                        self._unfinished.update(claimed)
                    pending.update(pool.submit(send, outbox_id) for outbox_id in claimed)
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    failed = future.exception()
                    if failed is None:
                        handled += future.result()
                    elif error is None:
                        error = failed
        if error is not None:
            raise error
        return handled

    def run_forever(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        default = self.agencies.default.provider
        log_event(
            log,
            "worker_started",
            owner=self.options.owner,
            provider=default.name,
            in_flight=self.options.sends_in_flight,
        )
        for provider in self.agencies.providers():
            if isinstance(provider, PushProvider):
                # SMPP: the worker holds the binds, and receives receipts and texts on them.
                provider.start()
        next_purge = self.clock.now()
        while not stop.is_set():
            if self.clock.now() >= next_purge:
                # On its own: a purge that fails must never keep texts from going out.
                next_purge = self.clock.now() + _PURGE_EVERY
                try:
                    purge_phones(
                        self.db, self.vault, self.clock.now(), self.options.phone_retention
                    )
                except Exception:
                    log.exception("action=purge_failed owner=%s", self.options.owner)
            try:
                self.run_due(stop, in_flight=self.options.sends_in_flight)
            except Exception:  # keep the worker alive through a database restart
                log.exception("action=worker_pass_failed owner=%s", self.options.owner)
                stop.wait(min(30.0, poll_interval * 5))
                continue
            stop.wait(poll_interval)
        log_event(log, "worker_stopped", owner=self.options.owner)

    def next_due_at(self) -> datetime | None:
        with self.db.transaction() as session:
            return Outbox(session).next_due_at()

    # --- one text ----------------------------------------------------------------------

    def _claim(self, limit: int | None = None) -> list[int]:
        now = self.clock.now()
        with self.db.transaction() as session:
            outbox = Outbox(session)
            rows = outbox.claim_due(
                now,
                self.options.owner,
                self.options.lease,
                self.options.claim_size if limit is None else limit,
                skip_locked=self.db.is_postgresql,
                max_attempts=self.options.max_attempts,
            )
            claimed, lost = [row.id for row in rows], outbox.lost
        for outbox_id in lost:
            # Taken by a worker that died (or hung) holding it, every attempt: a text
            # that crashes the worker is not retried for ever.
            log_event(log, "sms_worker_lost", level=logging.ERROR, outbox_id=outbox_id)
        return claimed

    def _handle(self, outbox_id: int) -> None:
        prepared = self.pacing.checked_in_slot(outbox_id, self.recheck.prepare)
        if prepared is None:
            return
        slot = prepared.slot
        try:
            result = prepared.agency.provider.send(
                OutgoingSms(
                    to=prepared.phone,
                    body=prepared.body,
                    reference=prepared.reference,
                    validity_seconds=int(prepared.validity.total_seconds()),
                    in_time=None if slot is None else partial(self.pacing.in_time, slot),
                )
            )
        except SlotMissed:
            self.pacing.missed(outbox_id, slot)
            return
        except SendError as error:
            self._record_failure(outbox_id, error, prepared.agency.provider.name)
            return
        self._until_recorded(lambda: self._record_sent(outbox_id, prepared, result))

    def _until_recorded(self, record: Callable[[], None]) -> None:
        """Write what the provider answered, through a database outage (a restart takes
        seconds): the answer exists only in this process, and a text whose ``sent`` is
        never written goes out again once its lease runs out. Tries for half a lease."""
        deadline = self.clock.now() + self.options.lease / 2
        while True:
            try:
                return record()
            except OperationalError:
                if self.clock.now() >= deadline:
                    raise
                log_event(log, "sms_record_retry", level=logging.WARNING)
                self.clock.sleep(RECORD_RETRY_PAUSE.total_seconds())

    def _release(self, outbox_ids: list[int]) -> None:
        """Give back texts a failed pass left leased to this worker: they expire now, to
        be claimed again at once (by any worker) as after a crash."""
        now = self.clock.now()
        with self.db.transaction() as session:
            session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id.in_(outbox_ids),
                    OutboxRow.status == TextStatus.SENDING.value,
                    OutboxRow.lease_owner == self.options.owner,
                )
                .values(lease_expires_at=now - timedelta(seconds=1))
            )
        log_event(log, "sms_leases_released", count=len(outbox_ids))

    def _record_sent(self, outbox_id: int, prepared: Prepared, result: SendResult) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            lock_receipts(session)  # before the row lock: see service/receipts.py
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            assert row is not None
            if row.provider_message_id is None:
                row.provider_message_id = result.provider_message_id
            elif row.provider_message_id != result.provider_message_id:
                # A status callback adopted the id of an earlier attempt whose answer we
                # never saw (service/receipts.py): this text went out twice.
                log_event(log, "sms_sent_twice", level=logging.WARNING, outbox_id=outbox_id)
            outbox = Outbox(session)
            if row.status == TextStatus.SCHEDULED.value:
                # Our lease ran out while the provider answered; the worker that took the
                # text over failed and rescheduled it. It went out (ours): not again.
                outbox.transition(row, TextStatus.SENDING, now, reason="sent:late_answer")
            if row.status == TextStatus.SENDING.value:
                row.error_code = None
                outbox.transition(row, TextStatus.SENT, now)
            elif TextStatus(row.status) not in COUNTS_AS_SENT:  # failed, cancelled...
                log_event(log, "sms_sent_late", level=logging.WARNING, outbox_id=outbox_id)
            # Receipts that came before this commit are applied here (record_sent).
            provider = prepared.agency.provider
            record_sent(
                session,
                row,
                provider.name,
                result.all_ids,
                now,
                id_mode=getattr(provider, "message_id_mode", "same"),
            )
        log_event(
            log,
            "sms_sent",
            outbox_id=outbox_id,
            kind=row.kind,
            message_id=result.provider_message_id,
            to=mask_phone(prepared.phone),
            provider=prepared.agency.provider.name,
        )

    def _record_failure(self, outbox_id: int, error: SendError, provider: str) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            assert row is not None
            outbox = Outbox(session)
            held = holds(row, self.options.owner)
            if held:
                row.error_code = error.code
            failure = failure_of(error)
            pause = provider_pause(failure, error.retry_after)
            if pause is not None:
                # Every worker waits (the shared rate-limit row), not just this text.
                defer_send_slots(session, SMS_RATE, now + pause)
            again = next_try(
                self.options.retry_rule,
                row.attempts,
                failure,
                jitter=self.jitter(),
                retry_after=error.retry_after,
            )
            retry: bool | None
            if not held:
                # Our lease ran out while the provider answered and another worker took
                # the text over (it may have sent it): its outcome stands, not ours.
                retry = None
            elif again is not None and not again.counts:
                # Slow down, never fail: the text goes again once the pause is over and
                # the attempt does not count (a text that waits too long goes stale).
                outbox.defer(row, now + again.delay, now, reason=f"retry:{error.code}")
                retry = True
            elif again is not None:
                outbox.transition(row, TextStatus.SCHEDULED, now, reason=f"retry:{error.code}")
                row.not_before = now + again.delay
                retry = True
            else:
                outbox.transition(row, TextStatus.FAILED, now, reason=f"failed:{error.code}")
                retry = False
            if error.code == "opted_out" and row.phone_hash is not None:
                # The provider knows the phone replied STOP (Twilio 21610): every later
                # text to it is suppressed here rather than refused there.
                set_opt_out(
                    session, row.agency_id, row.phone_hash, True, now, f"provider:{provider}"
                )
        log_event(
            log,
            "sms_send_failed",
            level=logging.WARNING,
            outbox_id=outbox_id,
            code=error.code,
            provider_code=error.provider_code or "",
            retry="taken_over" if retry is None else retry,
        )


def failure_of(error: SendError) -> Failure:
    """The provider's refusal in the retry rule's terms (domain/retry.py)."""
    if error.code == "throttled":
        return Failure.THROTTLED
    if error.code == "unavailable":
        return Failure.UNAVAILABLE
    if error.code == "timeout":
        return Failure.UNANSWERED
    return Failure.TRANSIENT if error.retryable else Failure.PERMANENT
