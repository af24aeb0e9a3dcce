"""Delivery receipts and status callbacks: forward-only, whatever order they come in.

A receipt names a provider message id. The dispatcher records those ids when the
provider accepts a text (:func:`record_sent`: one ``sms_parts`` row per id — one for a
Twilio message, one per part of a long SMPP text). :meth:`Receipts.apply` finds the part,
moves it forward and moves the text (the outbox row) forward with it:

* ``sent`` never changes anything after a part is ``sent``; a final status
  (``delivered``, ``undelivered``, ``failed``) is never replaced — so a late or replayed
  callback changes nothing;
* a text of several parts is ``delivered`` when every part is, and ``failed`` /
  ``undelivered`` as soon as one part is (the caller cannot read the whole text);
* the error code is kept on the part and the text, with ``retryable`` on the part: the
  provider's judgement of whether the same text could get through later.

A receipt can come before the id is recorded (SMPP sends ``deliver_sm`` as soon as it
likes; Twilio's first callback can beat our commit). Such a receipt waits in
``sms_pending_receipts`` and :func:`record_sent` applies it; one never matched is
forgotten after :data:`PENDING_TTL`. Both paths take one short lock
(``pg_advisory_xact_lock`` on PostgreSQL; SQLite has a single writer anyway), so a
receipt cannot slip between "not recorded yet" and "recorded, nothing pending".

SMSCs do not agree on how a receipt quotes the id that ``submit_sm_resp`` gave: some use
hexadecimal in one and decimal in the other. ``id_mode`` says how to match (see
``sms.smpp.message_id_format``); every id is compared in a normalised form (lower case,
no leading zeros).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from callerconnect.adapters.db.engine import Database
from callerconnect.adapters.db.repositories.outbox import Outbox
from callerconnect.adapters.db.repositories.phones import set_opt_out
from callerconnect.adapters.db.tables import OutboxRow, PendingReceiptRow, SmsPartRow
from callerconnect.adapters.sms.base import StatusReport
from callerconnect.clock import Clock
from callerconnect.domain.messages import TextStatus
from callerconnect.logs import log_event

log = logging.getLogger("callerconnect.receipts")

IdMode = Literal["same", "auto", "receipt_decimal", "receipt_hex"]

#: How long a receipt for an id nobody recorded is kept in case the id turns up.
PENDING_TTL = timedelta(days=1)
_FINAL = ("delivered", "undelivered", "failed")
_STATUSES = ("sent", *_FINAL)
_MAX_ID = 64
# Names "callerconnect receipts" among PostgreSQL advisory locks.
_RECEIPT_LOCK_SPACE, _RECEIPT_LOCK = 0x6363, 0x7263

Outcome = Literal["applied", "unchanged", "pending", "adopted", "ignored"]


def normalize_id(raw: str) -> str:
    """One spelling per id: trimmed, lower case, leading zeros dropped from hex digits."""
    value = raw.strip().lower()[:_MAX_ID]
    if value and all(ch in "0123456789abcdef" for ch in value):
        value = value.lstrip("0") or "0"
    return value


def _is_decimal(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _is_hex(value: str) -> bool:
    return bool(value) and all(ch in "0123456789abcdef" for ch in value)


def _as_hex(decimal: str) -> str | None:
    return format(int(decimal), "x") if _is_decimal(decimal) else None


def _as_decimal(hexadecimal: str) -> str | None:
    return str(int(hexadecimal, 16)) if _is_hex(hexadecimal) else None


def receipt_candidates(receipt_id: str, mode: IdMode) -> list[str]:
    """The recorded ids a receipt's id may stand for, best first."""
    value = normalize_id(receipt_id)
    if mode == "receipt_decimal":
        candidates = [_as_hex(value)]
    elif mode == "receipt_hex":
        candidates = [_as_decimal(value)]
    elif mode == "auto":
        candidates = [value, _as_hex(value), _as_decimal(value)]
    else:
        candidates = [value]
    return _unique(candidates)


def part_candidates(part_id: str, mode: IdMode) -> list[str]:
    """The receipt ids that may stand for a recorded id (the inverse of the above)."""
    value = normalize_id(part_id)
    if mode == "receipt_decimal":
        candidates = [_as_decimal(value)]
    elif mode == "receipt_hex":
        candidates = [_as_hex(value)]
    elif mode == "auto":
        candidates = [value, _as_decimal(value), _as_hex(value)]
    else:
        candidates = [value]
    return _unique(candidates)


def _unique(values: Iterable[str | None]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value and len(value) <= _MAX_ID and value not in seen:
            seen.append(value)
    return seen


def lock_receipts(session: Session) -> None:
    """Serialise "record an id" against "keep a receipt for an unknown id" (PostgreSQL;
    SQLite has one writer anyway). Taken *before* any outbox row lock: every transaction
    that needs both takes them in this order, so none can wait on another in a circle.
    The two-key form keeps it apart from the single-key locks used elsewhere."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, :key)"),
            {"space": _RECEIPT_LOCK_SPACE, "key": _RECEIPT_LOCK},
        )


# --- recording what was sent ------------------------------------------------------------


def record_sent(
    session: Session,
    row: OutboxRow,
    provider: str,
    ids: Sequence[str],
    now: datetime,
    *,
    id_mode: IdMode = "same",
) -> None:
    """Record the provider's id(s) of a text just accepted, inside the caller's
    transaction, and apply any receipt that came before them."""
    lock_receipts(session)
    known = set(
        session.scalars(
            select(SmsPartRow.message_id).where(
                SmsPartRow.outbox_id == row.id, SmsPartRow.provider == provider
            )
        ).all()
    )
    parts = [
        SmsPartRow(
            outbox_id=row.id,
            provider=provider,
            message_id=normalize_id(message_id),
            part_number=number,
            parts=len(ids),
            status="sent",
            created_at=now,
            updated_at=now,
        )
        for number, message_id in enumerate(ids, start=1)
        if normalize_id(message_id) not in known  # recorded already (adopted)
    ]
    session.add_all(parts)
    session.flush()
    for part in parts:
        candidates = part_candidates(part.message_id, id_mode)
        waiting = session.scalars(
            select(PendingReceiptRow)
            .where(
                PendingReceiptRow.provider == provider,
                PendingReceiptRow.message_id.in_(candidates),
            )
            .order_by(PendingReceiptRow.id)
        ).all()
        for receipt in waiting:
            _apply_to_part(
                session,
                part,
                StatusReport(
                    provider_message_id=receipt.message_id,
                    status=receipt.status,
                    error_code=receipt.error_code,
                    retryable=receipt.error_retryable,
                ),
                now,
                row=row,
            )
            session.delete(receipt)
            log_event(log, "sms_receipt_applied_late", outbox_id=row.id, message_id=part.message_id)


# --- applying what comes back -------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptResult:
    outcome: Outcome
    outbox_id: int | None = None
    status: str | None = None


class Receipts:
    """Applies receipts from one provider (the sink for webhooks and SMPP receipts)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        provider: str,
        *,
        id_mode: IdMode = "same",
        opt_out_codes: frozenset[str] = frozenset(),
    ) -> None:
        self.db = db
        self.clock = clock
        self.provider = provider
        self.id_mode = id_mode
        # Error codes that mean the phone opted out at the carrier (Twilio 21610).
        self.opt_out_codes = opt_out_codes

    def apply(self, report: StatusReport, *, reference: str | None = None) -> ReceiptResult:
        """Apply one receipt. ``reference`` is our outbox key when the provider echoes it
        (Twilio's callback URL): a callback for a text whose answer we never recorded
        then adopts the message id instead of waiting for a resend."""
        if report.status not in _STATUSES:
            log_event(log, "sms_receipt_ignored", level=logging.WARNING, status=report.status)
            return ReceiptResult("ignored")
        now = self.clock.now()
        with self.db.transaction() as session:
            lock_receipts(session)
            part = self._find_part(session, report.provider_message_id)
            if part is None and reference:
                adopted = self._adopt(session, report, reference, now)
                if adopted is not None:
                    return adopted
            if part is None:
                self._keep_pending(session, report, now)
                log_event(
                    log,
                    "sms_receipt_pending",
                    provider=self.provider,
                    message_id=normalize_id(report.provider_message_id),
                    status=report.status,
                )
                return ReceiptResult("pending")
            changed = _apply_to_part(session, part, report, now, opt_out_codes=self.opt_out_codes)
            row = session.get(OutboxRow, part.outbox_id)
            assert row is not None
            return ReceiptResult("applied" if changed else "unchanged", row.id, row.status)

    def _find_part(self, session: Session, message_id: str) -> SmsPartRow | None:
        candidates = receipt_candidates(message_id, self.id_mode)
        if not candidates:
            return None
        found = session.scalars(
            select(SmsPartRow)
            .where(SmsPartRow.provider == self.provider, SmsPartRow.message_id.in_(candidates))
            .order_by(SmsPartRow.id.desc())
        ).all()
        # Best candidate first (the id as given beats a converted one); among equal ids
        # the newest part, since SMSC ids eventually wrap around.
        for candidate in candidates:
            for part in found:
                if part.message_id == candidate:
                    return part
        return None

    def _keep_pending(self, session: Session, report: StatusReport, now: datetime) -> None:
        session.execute(
            delete(PendingReceiptRow).where(PendingReceiptRow.received_at < now - PENDING_TTL)
        )
        session.add(
            PendingReceiptRow(
                provider=self.provider,
                message_id=normalize_id(report.provider_message_id),
                status=report.status,
                error_code=report.error_code,
                error_retryable=report.retryable,
                received_at=now,
            )
        )

    def _adopt(
        self, session: Session, report: StatusReport, reference: str, now: datetime
    ) -> ReceiptResult | None:
        row = session.scalar(
            select(OutboxRow).where(OutboxRow.dedupe_key == reference).with_for_update()
        )
        if row is None:
            return None
        if row.provider_message_id is not None:
            # We recorded another id for this text: it was sent twice (a resend after an
            # answer we never saw). Keep the record straight; nothing to adopt.
            log_event(
                log,
                "sms_sent_twice",
                level=logging.WARNING,
                outbox_id=row.id,
                message_id=normalize_id(report.provider_message_id),
            )
            return None
        current = TextStatus(row.status)
        if current is TextStatus.SENDING and (
            row.lease_expires_at is None or row.lease_expires_at > now
        ):
            # A worker is sending it right now: its own answer will record the id (and
            # apply this receipt, kept pending meanwhile).
            return None
        if current not in (TextStatus.SCHEDULED, TextStatus.SENDING):
            return None  # cancelled or suppressed before we knew it had gone
        outbox = Outbox(session)
        if current is TextStatus.SCHEDULED:
            outbox.transition(row, TextStatus.SENDING, now, reason="adopted")
        outbox.transition(row, TextStatus.SENT, now, reason="adopted")
        row.provider = self.provider
        row.provider_message_id = report.provider_message_id[:_MAX_ID]
        row.error_code = None
        record_sent(session, row, self.provider, [report.provider_message_id], now)
        part = self._find_part(session, report.provider_message_id)
        assert part is not None
        _apply_to_part(session, part, report, now, opt_out_codes=self.opt_out_codes, row=row)
        log_event(
            log,
            "sms_sent_adopted",
            outbox_id=row.id,
            message_id=row.provider_message_id,
            status=row.status,
        )
        return ReceiptResult("adopted", row.id, row.status)


def _apply_to_part(
    session: Session,
    part: SmsPartRow,
    report: StatusReport,
    now: datetime,
    *,
    opt_out_codes: frozenset[str] = frozenset(),
    row: OutboxRow | None = None,
) -> bool:
    """Move one part forward and its text with it; False when nothing changed."""
    if part.status in _FINAL or report.status == "sent":
        return False
    part.status = report.status
    part.error_code = report.error_code
    part.error_retryable = report.retryable
    part.updated_at = now
    session.flush()
    if row is None:
        row = session.get(OutboxRow, part.outbox_id, with_for_update=True)
        assert row is not None
    siblings = session.scalars(select(SmsPartRow).where(SmsPartRow.outbox_id == row.id)).all()
    statuses = {sibling.status for sibling in siblings}
    if "failed" in statuses:
        target = TextStatus.FAILED
    elif "undelivered" in statuses:
        target = TextStatus.UNDELIVERED
    elif statuses == {"delivered"}:
        target = TextStatus.DELIVERED
    else:
        target = None  # parts still on their way
    if target is not None and TextStatus(row.status).can_become(target):
        reason = f"{target.value}:{report.error_code}" if report.error_code else target.value
        if report.error_code:
            row.error_code = report.error_code[:_MAX_ID]
        Outbox(session).transition(row, target, now, reason=reason[:64])
    if report.error_code in opt_out_codes and row.phone_hash is not None:
        set_opt_out(session, row.agency_id, row.phone_hash, True, now, f"carrier:{part.provider}")
    log_event(
        log,
        "sms_status",
        outbox_id=row.id,
        message_id=part.message_id,
        part=f"{part.part_number}/{part.parts}",
        status=report.status,
        text_status=row.status,
        error_code=report.error_code or "",
        retryable="" if report.retryable is None else report.retryable,
    )
    return True
