"""A caller's own text (contract section 5.4): store it, act on its keyword, answer once.

One handler for every provider — Twilio's inbound webhook and SMPP's mobile-originated
``deliver_sm`` both end in :meth:`InboundHandler.handle`, in one transaction:

1. store the text (number masked, body encrypted); a second delivery of the same provider
   message id (a webhook retry) is recognised here and changes nothing;
2. read the keyword (:mod:`callerconnect.domain.inbound`) and act on it:

   =========  =================================  =======================================
   keyword    effect                              reply (queued in the outbox)
   =========  =================================  =======================================
   opt_out    the number gets no more texts       one confirmation, when this changed it
   opt_in     texts resume                        one confirmation, when this changed it;
                                                  otherwise at most once a day
   help       —                                   the help text, at most once a day
   other      —                                   "not monitored, call 9-1-1", at most
                                                  once a day
   =========  =================================  =======================================

   An opted-out number gets nothing but the opt-out confirmation (and the dispatcher
   checks that again right before sending). When Twilio's own opt-out handling already
   answered the keyword (the webhook carries ``OptOutType``), we record the choice and
   send no reply of our own: Twilio would refuse it, or the caller would get two.

3. look for words of danger; a match flags the text for a person
   (``callerconnect inbound flagged``) and logs a warning — the number masked.

Replies go through the outbox rather than the webhook's answer, so they are rate
limited, re-checked against opt-outs right before sending, retried, and their delivery
is recorded like every other text. Their language is the caller's from their most
recent call with a known language, else bilingual.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callerconnect import texts
from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.repositories.phones import is_opted_out, set_opt_out
from callerconnect.adapters.db.tables import CallRow, InboundMessageRow, OutboxRow
from callerconnect.adapters.sms.base import InboundSms
from callerconnect.adapters.sms.phone import InvalidPhone, mask_phone, normalize_phone
from callerconnect.clock import Clock
from callerconnect.domain.inbound import DangerTerms, Keyword, classify
from callerconnect.domain.messages import TextKind
from callerconnect.logs import log_event
from callerconnect.service.agencies import Agencies, Agency

log = logging.getLogger("callerconnect.inbound")

#: A call this recent tells us the caller's language for a reply.
LANGUAGE_LOOKBACK = timedelta(days=90)
_MAX_ID = 64
_MAX_TERMS = 200

_REPLY_TEXT = {
    "opt_out": texts.TextKind.reply_opt_out,
    "opt_in": texts.TextKind.reply_opt_in,
    "help": texts.TextKind.reply_help,
    "unmonitored": texts.TextKind.reply_unmonitored,
}


def bundled_danger_terms() -> DangerTerms:
    data = resources.files("callerconnect.data").joinpath("danger-terms.txt")
    return DangerTerms.from_lines(data.read_text(encoding="utf-8").splitlines())


def reply_key(agency_id: str, reply: str, phone_hash: str, discriminator: str) -> str:
    """The outbox key of a reply: once per (kind, phone, discriminator)."""
    return f"{agency_id}:reply:{reply}:{phone_hash}:{discriminator[:_MAX_ID]}"


def reply_kind_of(dedupe_key: str) -> str | None:
    """``opt_out``, ``opt_in``, ``help`` or ``unmonitored`` for a reply's outbox key."""
    parts = dedupe_key.split(":")
    return parts[2] if len(parts) >= 4 and parts[1] == "reply" else None


@dataclass(frozen=True)
class InboundResult:
    status: str  # "stored" or "duplicate"
    inbound_id: int | None = None
    keyword: str | None = None
    flagged_terms: tuple[str, ...] = ()
    reply_outbox_id: int | None = None


class InboundHandler:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        clock: Clock,
        agencies: Agencies,
        *,
        danger_terms: DangerTerms | None = None,
    ) -> None:
        self.db = db
        self.vault = vault
        self.clock = clock
        self.agencies = agencies
        self.danger_terms = danger_terms if danger_terms is not None else bundled_danger_terms()

    # A unique key lost to a concurrent transaction (the same message delivered twice at
    # once, or two texts from one phone racing for today's reply): run again, and the
    # checks then see the winner's rows.
    _ATTEMPTS = 3

    def handle(self, message: InboundSms, provider: str) -> InboundResult:
        for attempt in range(1, self._ATTEMPTS + 1):
            try:
                result = self._handle(message, provider)
                break
            except IntegrityError:
                if attempt == self._ATTEMPTS:
                    raise
        if result.status == "duplicate":
            log_event(log, "sms_inbound_duplicate", provider=provider)
        return result

    def agency_of(self, message: InboundSms) -> Agency:
        """The agency whose number the caller texted (``To``). A text to a number that
        is none of ours (a provider's misrouting) is still kept, as the default
        agency's, and logged: it is never dropped."""
        agency = self.agencies.by_sender(message.to)
        if agency is None:
            if len(self.agencies) > 1:
                log_event(log, "sms_inbound_unknown_number", level=logging.WARNING)
            agency = self.agencies.default
        return agency

    def _handle(self, message: InboundSms, provider: str) -> InboundResult:
        now = self.clock.now()
        agency = self.agency_of(message)
        message_id = message.provider_message_id.strip()[:_MAX_ID]
        try:
            phone: str | None = normalize_phone(message.from_phone)
        except InvalidPhone:
            phone = None  # a short code or a name: stored, never answered
        phone_hash = self.vault.phone_hash(phone) if phone else None
        keyword = classify(message.body)
        terms = tuple(self.danger_terms.find(message.body))
        with self.db.transaction() as session:
            exists = session.scalar(
                select(InboundMessageRow.id).where(
                    InboundMessageRow.provider == provider,
                    InboundMessageRow.provider_message_id == message_id,
                )
            )
            if exists is not None:
                return InboundResult("duplicate", exists)
            row = InboundMessageRow(
                agency_id=agency.id,
                provider=provider,
                provider_message_id=message_id,
                phone_masked=mask_phone(phone) if phone else "***",
                phone_hash=phone_hash,
                body_encrypted=self.vault.encrypt(message.body),
                classification=keyword.value,
                flagged=bool(terms),
                flag_terms=",".join(terms)[:_MAX_TERMS] or None,
                received_at=now,
            )
            session.add(row)
            session.flush()
            reply = None
            if phone is not None and phone_hash is not None:
                carrier_answered = bool(message.extra.get("OptOutType"))
                reply = self._act(
                    session, agency, keyword, phone, phone_hash, message_id, now, carrier_answered
                )
            row.reply_outbox_id = reply.id if reply is not None else None
            inbound_id = row.id
        masked = mask_phone(phone) if phone else "***"
        log_event(
            log,
            "sms_inbound",
            inbound_id=inbound_id,
            provider=provider,
            sender=masked,
            keyword=keyword.value,
            reply=reply.kind if reply is not None else "none",
            flagged=bool(terms),
        )
        if terms:
            log_event(
                log,
                "inbound_flagged",
                level=logging.WARNING,
                inbound_id=inbound_id,
                sender=masked,
                terms=",".join(terms),
            )
        return InboundResult(
            "stored", inbound_id, keyword.value, terms, reply.id if reply is not None else None
        )

    def _act(
        self,
        session: Session,
        agency: Agency,
        keyword: Keyword,
        phone: str,
        phone_hash: str,
        message_id: str,
        now: datetime,
        carrier_answered: bool,
    ) -> OutboxRow | None:
        today = f"day-{now.astimezone(agency.tz).date().isoformat()}"
        # A STOP is the caller's wish about the number it was sent to: this agency's.
        opted_out = is_opted_out(session, agency.id, phone_hash)
        if keyword is Keyword.OPT_OUT:
            changed = set_opt_out(session, agency.id, phone_hash, True, now, "sms:stop")
            if not changed or carrier_answered:
                return None
            return self._reply(session, agency, "opt_out", phone, phone_hash, message_id, now)
        if keyword is Keyword.OPT_IN:
            changed = set_opt_out(session, agency.id, phone_hash, False, now, "sms:start")
            if carrier_answered:
                return None
            return self._reply(
                session, agency, "opt_in", phone, phone_hash, message_id if changed else today, now
            )
        if opted_out:
            return None  # only the opt-out confirmation may reach an opted-out number
        if keyword is Keyword.HELP:
            if carrier_answered:
                return None
            return self._reply(session, agency, "help", phone, phone_hash, today, now)
        return self._reply(session, agency, "unmonitored", phone, phone_hash, today, now)

    def _reply(
        self,
        session: Session,
        agency: Agency,
        reply: str,
        phone: str,
        phone_hash: str,
        discriminator: str,
        now: datetime,
    ) -> OutboxRow | None:
        language = self._language(session, agency.id, phone_hash, now)
        text = texts.render_text(
            _REPLY_TEXT[reply],
            language,
            agency_name=dict(agency.name),
            non_emergency_number=agency.non_emergency_number,
        )
        return Outbox(session).add_reply(
            agency_id=agency.id,
            key=reply_key(agency.id, reply, phone_hash, discriminator),
            phone_encrypted=self.vault.encrypt(phone),
            phone_hash=phone_hash,
            language=language,
            body=text.body,
            encoding=text.encoding,
            segments=text.segments,
            now=now,
            expires_after=agency.policy.expires_after[TextKind.REPLY],
        )

    def _language(
        self, session: Session, agency_id: str, phone_hash: str, now: datetime
    ) -> str | None:
        return session.scalar(
            select(CallRow.language)
            .where(
                CallRow.agency_id == agency_id,
                CallRow.phone_hash == phone_hash,
                CallRow.language.is_not(None),
                CallRow.created_at >= now - LANGUAGE_LOOKBACK,
            )
            .order_by(CallRow.created_at.desc(), CallRow.id.desc())
            .limit(1)
        )


# --- for a person: flagged texts ------------------------------------------------------------
# Reading them is the read side's (queries/queues.py, ``flagged_replies``); marking them
# read by a person is a write, and stays here.


def mark_reviewed(
    db: Database, ids: list[int], now: datetime, *, agency_id: str | None = None
) -> list[int]:
    """Mark flagged texts as read by a person; returns the ids that were waiting (of
    ``agency_id`` only, when given)."""
    done: list[int] = []
    query = select(InboundMessageRow).where(
        InboundMessageRow.id.in_(ids),
        InboundMessageRow.flagged.is_(True),
        InboundMessageRow.reviewed_at.is_(None),
    )
    if agency_id is not None:
        query = query.where(InboundMessageRow.agency_id == agency_id)
    with db.transaction() as session:
        for row in session.scalars(query):
            row.reviewed_at = now
            done.append(row.id)
    for inbound_id in done:
        log_event(log, "inbound_reviewed", inbound_id=inbound_id)
    return done
