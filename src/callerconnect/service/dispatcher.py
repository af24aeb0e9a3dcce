"""The dispatcher: claims due texts, re-checks the policy, respects the rate limit, sends.

One pass (:meth:`Dispatcher.run_due`) handles every text due at the clock's "now"; a
worker process repeats passes (:meth:`Dispatcher.run_forever`). Several workers may run
against PostgreSQL: claiming uses ``FOR UPDATE SKIP LOCKED`` and a lease, so each text
has one sender at a time, and a worker that dies mid-send leaves a lease that expires
and lets another worker retry.

The remaining duplicate window: a worker killed after the provider accepted a text but
before it recorded ``sent`` leaves a ``sending`` row; after the lease expires it is sent
again. The window is the few milliseconds between the provider's answer and our commit;
``OutgoingSms.reference`` (the outbox key) lets a provider that supports idempotency
drop the second copy, and the attempt count on the row shows every such resend.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy import text as sql
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from callerconnect import texts
from callerconnect.adapters.crypto import Vault, token_hash
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories import (
    CallRepository,
    Outbox,
    defer_send_slots,
    is_opted_out,
    is_protected,
    record_decision,
    reserve_send_slot,
    set_opt_out,
    take_late_send,
)
from callerconnect.adapters.db.tables import OutboxRow, SurveyInvitationRow
from callerconnect.adapters.sms.base import (
    OutgoingSms,
    PushProvider,
    SendError,
    SendResult,
)
from callerconnect.adapters.sms.phone import mask_phone
from callerconnect.clock import Clock
from callerconnect.domain.messages import COUNTS_AS_SENT, TextKind, TextStatus
from callerconnect.domain.policy import PhoneContext, check_before_send
from callerconnect.domain.retry import Failure, RetryRule, next_try, provider_pause
from callerconnect.logs import log_event
from callerconnect.service.agencies import Agencies, Agency, UnknownAgency
from callerconnect.service.inbound import reply_kind_of
from callerconnect.service.receipts import lock_receipts, record_sent
from callerconnect.service.retention import purge_phones

log = logging.getLogger("callerconnect.dispatcher")

#: Slot spacing over the exact 1/rate: 95% of sms.max_per_second is used with a backlog.
RATE_HEADROOM = 1.05
#: The name of the shared rate-limit row for outgoing texts.
SMS_RATE = "sms"
#: How long before its rate slot a text is re-checked (a re-check takes milliseconds).
CHECK_AHEAD = timedelta(milliseconds=50)
#: How many later rate slots a text may take when its re-check ran past its own slot.
_LATE_SLOT_RETRIES = 2
#: Bounds of an SMS validity period that networks honour (Twilio: 1 s to 10 h).
_MIN_VALIDITY = timedelta(minutes=1)
_MAX_VALIDITY = timedelta(hours=10)
#: How often a worker looks for phone numbers to purge (cheap: one indexed query).
_PURGE_EVERY = timedelta(minutes=10)
#: Longest wait for a rate slot while holding a text (also at most a quarter lease). A
#: slot further away (a long Retry-After, a rate row set ahead by a wrong clock) is not
#: slept through: the text goes back to the queue until then, the worker moves on.
MAX_SLOT_WAIT = timedelta(seconds=5)
#: A text sent back to the queue by a far slot is looked at again after this at most.
PAUSE_RECHECK = timedelta(seconds=60)
#: Between two tries to record a text the provider took while the database is away.
RECORD_RETRY_PAUSE = timedelta(seconds=1)


@dataclass(frozen=True)
class DispatchOptions:
    """The worker's own settings; what a text says and where it goes from are its
    agency's (service/agencies.py)."""

    public_base_url: str
    max_per_second: float
    lease: timedelta = timedelta(seconds=60)
    batch_size: int = 20
    max_attempts: int = 8
    retry_base: timedelta = RetryRule.first
    retry_max: timedelta = RetryRule.cap
    phone_retention: timedelta = timedelta(days=2)
    owner: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")

    @property
    def send_interval(self) -> timedelta:
        """Slots a little wider than 1/rate: a send starts at its slot, but network
        jitter of a few milliseconds must not put rate + 1 requests into one second
        at the provider."""
        return timedelta(seconds=RATE_HEADROOM / self.max_per_second)

    @property
    def retry_rule(self) -> RetryRule:
        return RetryRule(first=self.retry_base, cap=self.retry_max, max_attempts=self.max_attempts)

    @property
    def slot_horizon(self) -> timedelta:
        """How far ahead a rate slot may be for a worker to wait for it holding a text."""
        return min(MAX_SLOT_WAIT, self.lease / 4)

    @property
    def claim_size(self) -> int:
        """Claim no more than can be sent within half a lease at the rate limit, so a
        claimed text is never still waiting when its lease runs out."""
        per_half_lease = int(self.max_per_second * self.lease.total_seconds() / 2)
        return max(1, min(self.batch_size, per_half_lease))


@dataclass(frozen=True)
class Prepared:
    """A text that passed the last re-check: where it goes and what it says."""

    outbox_id: int
    agency: Agency
    phone: str
    body: str
    reference: str
    validity: timedelta


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
        self.agencies = agencies
        self.options = options
        # Our own numbers (every agency's sender): never texted, or a CAD typo could
        # start a loop through our inbound webhook.
        self._sender_hashes = frozenset(vault.phone_hash(n) for n in agencies.senders())
        #: Spreads retries (domain/retry.py): workers that failed together retry apart.
        self.jitter = jitter
        # Texts claimed by a pass that failed before handling them (the database went
        # away): given back at the next pass rather than left to wait out the lease.
        self._unfinished: list[int] = []

    # --- loops -------------------------------------------------------------------------

    def run_due(self, stop: threading.Event | None = None) -> int:
        """Handle every text due now; return how many rows were handled. When ``stop``
        is set (SIGTERM), return after the text in hand and give the rest of the claim
        back at once, so a long backlog never holds up a shutdown (an orchestrator would
        kill the worker mid-send) and another worker takes over without waiting out the
        leases."""
        handled = 0
        if self._unfinished:
            self._release(self._unfinished)
            self._unfinished = []
        while stop is None or not stop.is_set():
            claimed = self._claim()
            if not claimed:
                return handled
            self._unfinished = list(claimed)
            for outbox_id in claimed:
                if stop is not None and stop.is_set():
                    break
                self._handle(outbox_id)
                self._unfinished.remove(outbox_id)
                handled += 1
        if self._unfinished:
            self._release(self._unfinished)
            self._unfinished = []
        return handled

    def run_forever(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        default = self.agencies.default.provider
        log_event(log, "worker_started", owner=self.options.owner, provider=default.name)
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
                self.run_due(stop)
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

    def _claim(self) -> list[int]:
        now = self.clock.now()
        with self.db.transaction() as session:
            outbox = Outbox(session)
            rows = outbox.claim_due(
                now,
                self.options.owner,
                self.options.lease,
                self.options.claim_size,
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
        prepared = self._checked_in_slot(outbox_id)
        if prepared is None:
            return
        try:
            result = prepared.agency.provider.send(
                OutgoingSms(
                    to=prepared.phone,
                    body=prepared.body,
                    reference=prepared.reference,
                    validity_seconds=int(prepared.validity.total_seconds()),
                )
            )
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

    def _checked_in_slot(self, outbox_id: int) -> Prepared | None:
        """Take a rate slot, re-check just before it, and wait for it: the text as it may
        go out now, or None.

        The re-check starts :data:`CHECK_AHEAD` before the slot, so it is the last thing
        before the provider call (a long wait for a slot cannot make it stale) and its
        own duration does not shift the send. A re-check that still ran past the slot by
        more than half an interval (a cold start, a busy machine) sends late only if no
        other sender holds the next slot (the slots then move on behind it); otherwise it
        takes a later slot and checks again rather than go out bunched up with the next
        sender. Across worker processes that keeps any second within ``max_per_second``
        (+1 at its edge)."""
        interval = self.options.send_interval
        for retry in range(_LATE_SLOT_RETRIES + 1):
            slot = self._reserve_slot()
            if slot - self.clock.now() > self.options.slot_horizon:
                self._wait_in_queue(outbox_id, slot)  # the slot was not taken
                return None
            self._sleep_until(slot - CHECK_AHEAD)
            prepared = self._recheck_and_render(outbox_id)
            if prepared is None:
                return None  # not sent: its slot simply goes unused
            now = self.clock.now()
            if now - slot <= interval / 2 or retry == _LATE_SLOT_RETRIES:
                self._sleep_until(slot)
                return prepared
            with self.db.transaction() as session:
                if take_late_send(session, SMS_RATE, slot, interval, now):
                    return prepared
            log_event(
                log,
                "sms_slot_missed",
                level=logging.DEBUG,
                outbox_id=outbox_id,
                late_ms=int((now - slot).total_seconds() * 1000),
            )
        raise AssertionError("unreachable")

    def _reserve_slot(self) -> datetime:
        with self.db.transaction() as session:
            return reserve_send_slot(
                session,
                SMS_RATE,
                self.options.send_interval,
                self.clock.now(),
                horizon=self.options.slot_horizon,
            )

    def _wait_in_queue(self, outbox_id: int, slot: datetime) -> None:
        """Back to ``scheduled`` until ``slot`` (at most :data:`PAUSE_RECHECK` away): a
        worker does not sleep for minutes holding texts whose lease runs out."""
        now = self.clock.now()
        until = min(slot, now + PAUSE_RECHECK)
        with self.db.transaction() as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            if row is None or not self._holds(row):
                return
            Outbox(session).defer(row, max(row.not_before, until), now, reason="retry:paused")
        log_event(log, "sms_paused", outbox_id=outbox_id, until=until.isoformat())

    def _holds(self, row: OutboxRow) -> bool:
        """This worker still has the text: no other took it over after our lease ran
        out (and nothing else moved it on)."""
        return row.status == TextStatus.SENDING.value and row.lease_owner == self.options.owner

    def _sleep_until(self, moment: datetime) -> None:
        wait = (moment - self.clock.now()).total_seconds()
        if wait > 0:
            self.clock.sleep(wait)

    def _recheck_and_render(self, outbox_id: int) -> Prepared | None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            if (
                row is None
                or row.status != TextStatus.SENDING.value
                or row.lease_owner != self.options.owner
            ):
                return None  # another worker took it over after our lease ran out
            # The lease runs from this last check, not from the claim: waiting for a rate
            # slot can use up most of it, and a send still in flight when it ran out would
            # let another worker claim the text and send it a second time.
            row.lease_expires_at = now + self.options.lease
            outbox = Outbox(session)
            try:
                agency = self.agencies.get(row.agency_id)
            except UnknownAgency:
                # Queued for an agency no longer configured: who would it be from?
                outbox.transition(row, TextStatus.SUPPRESSED, now, reason="suppressed:no_agency")
                return None
            kind = TextKind(row.kind)
            if kind is TextKind.REPLY:
                return self._prepare_reply(session, agency, outbox, row, now)
            assert row.call_id is not None
            stored = CallRepository(session, self.vault).get_by_id(
                row.call_id, for_share=self.db.is_postgresql
            )
            if stored is None:
                outbox.transition(row, TextStatus.SUPPRESSED, now, reason="suppressed:no_phone")
                return None
            if stored.call.phone is None or stored.row.phone_hash is None:
                self._not_now(outbox, row, "suppressed:no_phone", None, now)
                return None
            call = stored.call
            phone, phone_hash = stored.call.phone, stored.row.phone_hash
            check = check_before_send(
                call,
                kind,
                expires_at=row.expires_at,
                phone=self._phone_context(session, row, phone_hash, now),
                policy=agency.policy,
                now=now,
            )
            if not check.ok:
                self._not_now(outbox, row, check.reason, check.retry_at, now)
                return None
            survey_url = self._new_survey_link(session, agency, row, call.language, now)
            try:
                text = texts.render_text(
                    kind.value,
                    call.language,
                    agency_name=dict(agency.name),
                    case_number=call.case_number,
                    survey_url=survey_url,
                    non_emergency_number=agency.non_emergency_number,
                    case_number_pattern=agency.policy.case_number_pattern,
                )
            except texts.UnquotableCaseNumber:
                # A case number the intake now refuses, stored before it did: this text
                # cannot be written safely. It is suppressed, not retried for ever.
                self._not_now(outbox, row, "suppressed:unquotable_case_number", None, now)
                return None
            row.phone_hash = phone_hash
            row.language = call.language
            row.body = _without_token(text.body, survey_url)
            row.encoding = text.encoding
            row.segments = text.segments
            row.provider = agency.provider.name
            return Prepared(
                outbox_id=row.id,
                agency=agency,
                phone=phone,
                body=text.body,
                reference=row.dedupe_key,
                validity=_validity(row.expires_at - now),
            )

    def _prepare_reply(
        self, session: Session, agency: Agency, outbox: Outbox, row: OutboxRow, now: datetime
    ) -> Prepared | None:
        """A reply answers the caller's own text; its age or an opt-out can stop it.

        An opted-out number gets no reply but the opt-out confirmation itself (the
        number may have opted out again since the reply was queued)."""
        if now > row.expires_at:
            outbox.transition(row, TextStatus.SUPPRESSED, now, reason="suppressed:stale")
            return None
        if (
            row.phone_hash is not None
            and reply_kind_of(row.dedupe_key) != "opt_out"
            and is_opted_out(session, agency.id, row.phone_hash)
        ):
            outbox.transition(row, TextStatus.SUPPRESSED, now, reason="suppressed:opted_out")
            return None
        assert row.phone_encrypted is not None and row.body is not None
        row.provider = agency.provider.name
        return Prepared(
            outbox_id=row.id,
            agency=agency,
            phone=self.vault.decrypt(row.phone_encrypted),
            body=row.body,
            reference=row.dedupe_key,
            validity=_validity(row.expires_at - now),
        )

    def _phone_context(
        self, session: Session, row: OutboxRow, phone_hash: str, now: datetime
    ) -> PhoneContext:
        if self.db.is_postgresql:
            # Workers checking texts to the same phone take turns (until commit), so two
            # of them cannot both count the texts below the daily cap and both send.
            session.execute(
                sql("SELECT pg_advisory_xact_lock(:key)"), {"key": int(phone_hash[:15], 16)}
            )
        return PhoneContext(
            opted_out=is_opted_out(session, row.agency_id, phone_hash),
            texts_last_24h=Outbox(session).texts_to_phone_since(
                phone_hash, now - timedelta(days=1), excluding=row.id
            ),
            protected=is_protected(session, phone_hash, now),
            ours=phone_hash in self._sender_hashes,
        )

    def _not_now(
        self,
        outbox: Outbox,
        row: OutboxRow,
        reason: str,
        retry_at: datetime | None,
        now: datetime,
    ) -> None:
        if retry_at is not None:
            # The text's moment moves to ``retry_at`` and its time to go out with it, as
            # when the lifecycle schedules a text at the end of the quiet hours; else a
            # delay notice that reached the worker at 21:05 would be stale at 08:00.
            row.expires_at = max(row.expires_at, retry_at + (row.expires_at - row.not_before))
            outbox.defer(row, retry_at, now, reason=reason)
        else:
            outbox.transition(row, TextStatus.SUPPRESSED, now, reason=reason)
            if row.call_id is not None:
                # The call's decision log says why it got no such text, beside why it
                # was eligible: a daily cap or a protection reached through another
                # call on the same number is otherwise visible only on the outbox row.
                record_decision(outbox.session, row.call_id, reason, decided_at=now, kind=row.kind)
        log_event(log, "sms_not_sent", outbox_id=row.id, kind=row.kind, reason=reason)

    def _new_survey_link(
        self, session: Session, agency: Agency, row: OutboxRow, language: str | None, now: datetime
    ) -> str | None:
        if row.kind != TextKind.SURVEY_INVITATION.value:
            return None
        assert row.call_id is not None
        # One live link per invitation: a retry replaces the token of the failed attempt.
        session.execute(delete(SurveyInvitationRow).where(SurveyInvitationRow.outbox_id == row.id))
        token = secrets.token_urlsafe(16)  # 128 random bits, 22 URL-safe characters
        session.add(
            SurveyInvitationRow(
                token_hash=token_hash(token),
                outbox_id=row.id,
                call_id=row.call_id,
                language=language,
                created_at=now,
                expires_at=now + agency.policy.survey_expires,
            )
        )
        return f"{self.options.public_base_url}/s/{token}"

    def _record_failure(self, outbox_id: int, error: SendError, provider: str) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            assert row is not None
            outbox = Outbox(session)
            held = self._holds(row)
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


def _validity(remaining: timedelta) -> timedelta:
    return max(_MIN_VALIDITY, min(_MAX_VALIDITY, remaining))


def _without_token(body: str, survey_url: str | None) -> str:
    """The body as we keep it: a survey token lives only as a hash."""
    if not survey_url:
        return body
    base = survey_url.rsplit("/", 1)[0]
    return body.replace(survey_url, f"{base}/<token>")
