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
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from callerconnect import texts
from callerconnect.adapters.crypto import Vault, token_hash
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories import (
    CallRepository,
    Outbox,
    is_opted_out,
    reserve_send_slot,
)
from callerconnect.adapters.db.tables import OutboxRow, SurveyInvitationRow
from callerconnect.adapters.sms.base import OutgoingSms, SendError, SmsProvider
from callerconnect.adapters.sms.phone import mask_phone
from callerconnect.clock import Clock
from callerconnect.domain.messages import TextKind, TextStatus
from callerconnect.domain.policy import PhoneContext, Policy, check_before_send
from callerconnect.logs import log_event
from callerconnect.service.retention import purge_phones

log = logging.getLogger("callerconnect.dispatcher")

#: The name of the shared rate-limit row for outgoing texts.
SMS_RATE = "sms"
#: Bounds of an SMS validity period that networks honour (Twilio: 1 s to 10 h).
_MIN_VALIDITY = timedelta(minutes=1)
_MAX_VALIDITY = timedelta(hours=10)
#: How often a worker looks for phone numbers to purge (cheap: one indexed query).
_PURGE_EVERY = timedelta(minutes=10)


@dataclass(frozen=True)
class DispatchOptions:
    agency_name: dict[str, str]
    public_base_url: str
    non_emergency_number: str
    survey_expires: timedelta
    max_per_second: float
    lease: timedelta = timedelta(seconds=60)
    batch_size: int = 20
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=30)
    retry_max: timedelta = timedelta(minutes=30)
    phone_retention: timedelta = timedelta(days=2)
    owner: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:12]}")

    @property
    def send_interval(self) -> timedelta:
        return timedelta(seconds=1 / self.max_per_second)

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
    phone: str
    body: str
    reference: str
    validity: timedelta


class Dispatcher:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        policy: Policy,
        clock: Clock,
        provider: SmsProvider,
        options: DispatchOptions,
    ) -> None:
        self.db = db
        self.vault = vault
        self.policy = policy
        self.clock = clock
        self.provider = provider
        self.options = options

    # --- loops -------------------------------------------------------------------------

    def run_due(self) -> int:
        """Handle every text due now; return how many rows were handled."""
        handled = 0
        while True:
            claimed = self._claim()
            if not claimed:
                return handled
            for outbox_id in claimed:
                self._handle(outbox_id)
                handled += 1

    def run_forever(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        log_event(log, "worker_started", owner=self.options.owner, provider=self.provider.name)
        next_purge = self.clock.now()
        while not stop.is_set():
            try:
                if self.clock.now() >= next_purge:
                    purge_phones(
                        self.db, self.vault, self.clock.now(), self.options.phone_retention
                    )
                    next_purge = self.clock.now() + _PURGE_EVERY
                self.run_due()
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
            rows = Outbox(session).claim_due(
                now,
                self.options.owner,
                self.options.lease,
                self.options.claim_size,
                skip_locked=self.db.is_postgresql,
            )
            return [row.id for row in rows]

    def _handle(self, outbox_id: int) -> None:
        # The rate slot comes first, so the re-check below is the last thing before the
        # provider call, not something a long wait for a slot could make stale.
        self._wait_for_slot()
        prepared = self._recheck_and_render(outbox_id)
        if prepared is None:
            return
        try:
            result = self.provider.send(
                OutgoingSms(
                    to=prepared.phone,
                    body=prepared.body,
                    reference=prepared.reference,
                    validity_seconds=int(prepared.validity.total_seconds()),
                )
            )
        except SendError as error:
            self._record_failure(outbox_id, error)
            return
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            assert row is not None
            row.provider_message_id = result.provider_message_id
            row.error_code = None
            if row.status == TextStatus.SENDING.value:
                Outbox(session).transition(row, TextStatus.SENT, now)
            # else a receipt already moved it forward (it can arrive before we get here)
        log_event(
            log,
            "sms_sent",
            outbox_id=outbox_id,
            kind=row.kind,
            message_id=result.provider_message_id,
            to=mask_phone(prepared.phone),
            provider=self.provider.name,
        )

    def _wait_for_slot(self) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            slot = reserve_send_slot(session, SMS_RATE, self.options.send_interval, now)
        wait = (slot - now).total_seconds()
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
            outbox = Outbox(session)
            kind = TextKind(row.kind)
            if kind is TextKind.REPLY:
                return self._prepare_reply(session, outbox, row, now)
            assert row.call_id is not None
            stored = CallRepository(session, self.vault).get_by_id(
                row.call_id, for_share=self.db.is_postgresql
            )
            if stored is None or stored.call.phone is None or stored.row.phone_hash is None:
                outbox.transition(row, TextStatus.SUPPRESSED, now, reason="suppressed:no_phone")
                return None
            call = stored.call
            phone, phone_hash = stored.call.phone, stored.row.phone_hash
            check = check_before_send(
                call,
                kind,
                expires_at=row.expires_at,
                phone=self._phone_context(session, phone_hash, now),
                policy=self.policy,
                now=now,
            )
            if not check.ok:
                self._not_now(outbox, row, check.reason, check.retry_at, now)
                return None
            survey_url = self._new_survey_link(session, row, call.language, now)
            text = texts.render_text(
                kind.value,
                call.language,
                agency_name=self.options.agency_name,
                case_number=call.case_number,
                survey_url=survey_url,
                non_emergency_number=self.options.non_emergency_number,
            )
            row.phone_hash = phone_hash
            row.language = call.language
            row.body = _without_token(text.body, survey_url)
            row.encoding = text.encoding
            row.segments = text.segments
            row.provider = self.provider.name
            return Prepared(
                outbox_id=row.id,
                phone=phone,
                body=text.body,
                reference=row.dedupe_key,
                validity=_validity(row.expires_at - now),
            )

    def _prepare_reply(
        self, session: Session, outbox: Outbox, row: OutboxRow, now: datetime
    ) -> Prepared | None:
        """A reply answers the caller's own text; only its age can stop it."""
        if now > row.expires_at:
            outbox.transition(row, TextStatus.SUPPRESSED, now, reason="suppressed:stale")
            return None
        assert row.phone_encrypted is not None and row.body is not None
        row.provider = self.provider.name
        return Prepared(
            outbox_id=row.id,
            phone=self.vault.decrypt(row.phone_encrypted),
            body=row.body,
            reference=row.dedupe_key,
            validity=_validity(row.expires_at - now),
        )

    def _phone_context(self, session: Session, phone_hash: str, now: datetime) -> PhoneContext:
        return PhoneContext(
            opted_out=is_opted_out(session, phone_hash),
            texts_last_24h=Outbox(session).texts_to_phone_since(
                phone_hash, now - timedelta(days=1)
            ),
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
            outbox.transition(row, TextStatus.SCHEDULED, now, reason=reason)
            row.not_before = retry_at
            row.attempts -= 1  # waiting out the quiet hours is not a failed attempt
        else:
            outbox.transition(row, TextStatus.SUPPRESSED, now, reason=reason)
        log_event(log, "sms_not_sent", outbox_id=row.id, kind=row.kind, reason=reason)

    def _new_survey_link(
        self, session: Session, row: OutboxRow, language: str | None, now: datetime
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
                expires_at=now + self.options.survey_expires,
            )
        )
        return f"{self.options.public_base_url}/s/{token}"

    def _record_failure(self, outbox_id: int, error: SendError) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            assert row is not None
            outbox = Outbox(session)
            row.error_code = error.code
            if error.retryable and row.attempts < self.options.max_attempts:
                delay = min(
                    self.options.retry_max,
                    self.options.retry_base * (2 ** max(0, row.attempts - 1)),
                )
                outbox.transition(row, TextStatus.SCHEDULED, now, reason=f"retry:{error.code}")
                row.not_before = now + delay
                retry = True
            else:
                outbox.transition(row, TextStatus.FAILED, now, reason=f"failed:{error.code}")
                retry = False
        log_event(
            log,
            "sms_send_failed",
            level=logging.WARNING,
            outbox_id=outbox_id,
            code=error.code,
            provider_code=error.provider_code or "",
            retry=retry,
        )


def _validity(remaining: timedelta) -> timedelta:
    return max(_MIN_VALIDITY, min(_MAX_VALIDITY, remaining))


def _without_token(body: str, survey_url: str | None) -> str:
    """The body as we keep it: a survey token lives only as a hash."""
    if not survey_url:
        return body
    base = survey_url.rsplit("/", 1)[0]
    return body.replace(survey_url, f"{base}/<token>")
