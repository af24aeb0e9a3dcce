"""The last re-check before a text goes out, and its body as it goes.

Between the lifecycle's decision and the send, the call may have been cleared, the phone
may have opted out or become protected, the quiet hours may have begun: the worker runs
the domain's :func:`~callerconnect.domain.policy.check_before_send` on the row as it is
now, moves the text on (deferred or suppressed) when it may not go, and otherwise
renders its body (a fresh survey link for an invitation) for the provider.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from callerconnect import texts
from callerconnect.adapters.crypto import Vault, token_hash
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.calls import CallRepository, record_decision
from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.repositories.phones import is_opted_out, is_protected
from callerconnect.adapters.db.tables import OutboxRow, SurveyInvitationRow
from callerconnect.clock import Clock
from callerconnect.domain.messages import TextKind, TextStatus
from callerconnect.domain.policy import PhoneContext, check_before_send
from callerconnect.logs import log_event
from callerconnect.service.agencies import Agencies, Agency, UnknownAgency
from callerconnect.service.inbound import reply_kind_of

log = logging.getLogger("callerconnect.dispatcher")

#: Bounds of an SMS validity period that networks honour (Twilio: 1 s to 10 h).
_MIN_VALIDITY = timedelta(minutes=1)
_MAX_VALIDITY = timedelta(hours=10)


@dataclass(frozen=True)
class Prepared:
    """A text that passed the last re-check: where it goes and what it says."""

    outbox_id: int
    agency: Agency
    phone: str
    body: str
    reference: str
    validity: timedelta
    #: The rate slot it goes out in (set by send_pacing.py once it has one).
    slot: datetime | None = None


def holds(row: OutboxRow, owner: str) -> bool:
    """Worker ``owner`` still has the text: no other took it over after its lease ran
    out (and nothing else moved it on)."""
    return row.status == TextStatus.SENDING.value and row.lease_owner == owner


class Recheck:
    """Re-checks one claimed text for the worker ``owner`` and renders it."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        clock: Clock,
        agencies: Agencies,
        *,
        owner: str,
        lease: timedelta,
        public_base_url: str,
    ) -> None:
        self.db = db
        self.vault = vault
        self.clock = clock
        self.agencies = agencies
        self.owner = owner
        self.lease = lease
        self.public_base_url = public_base_url
        # Our own numbers (every agency's sender): never texted, or a CAD typo could
        # start a loop through our inbound webhook.
        self._sender_hashes = frozenset(vault.phone_hash(n) for n in agencies.senders())

    def prepare(self, outbox_id: int) -> Prepared | None:
        """The text as it may go out now, or None (moved on, or not ours)."""
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(OutboxRow, outbox_id, with_for_update=True)
            if row is None or not holds(row, self.owner):
                return None  # another worker took it over after our lease ran out
            # The lease runs from this last check, not from the claim: waiting for a rate
            # slot can use up most of it, and a send still in flight when it ran out would
            # let another worker claim the text and send it a second time.
            row.lease_expires_at = now + self.lease
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
            return self._prepare_call_text(session, agency, outbox, row, kind, now)

    def _prepare_call_text(
        self,
        session: Session,
        agency: Agency,
        outbox: Outbox,
        row: OutboxRow,
        kind: TextKind,
        now: datetime,
    ) -> Prepared | None:
        assert row.call_id is not None
        stored = CallRepository(session, self.vault).get_by_id(
            row.call_id, for_share=self.db.is_postgresql
        )
        if stored is None:
            outbox.transition(row, TextStatus.SUPPRESSED, now, reason="suppressed:no_phone")
            return None
        if stored.call.phone is None or stored.row.phone_hash is None:
            _not_now(outbox, row, "suppressed:no_phone", None, now)
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
            _not_now(outbox, row, check.reason, check.retry_at, now)
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
            _not_now(outbox, row, "suppressed:unquotable_case_number", None, now)
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
            # Senders checking texts to the same phone take turns (until commit), so two
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
        return f"{self.public_base_url}/s/{token}"


def _not_now(
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


def _validity(remaining: timedelta) -> timedelta:
    return max(_MIN_VALIDITY, min(_MAX_VALIDITY, remaining))


def _without_token(body: str, survey_url: str | None) -> str:
    """The body as we keep it: a survey token lives only as a hash."""
    if not survey_url:
        return body
    base = survey_url.rsplit("/", 1)[0]
    return body.replace(survey_url, f"{base}/<token>")
