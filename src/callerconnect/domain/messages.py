"""Outgoing texts as the outbox sees them: their kinds and the status graph.

Status graph (forward only; the table below is the single source of truth)::

    scheduled ──▶ sending ──▶ sent ──▶ delivered
        │  ▲         │          ├────▶ undelivered
        │  └─retry───┤          └────▶ failed
        │            ├──▶ failed        (permanent provider error, attempts exhausted)
        │            └──▶ suppressed    (policy re-check right before the send said no)
        ├──▶ cancelled   (the call changed: reclassified, risk flag, cancelled, merged...)
        └──▶ suppressed  (stale, opted out, daily cap...)

``sending → scheduled`` is the one step back, taken only for a retryable provider error
(a new attempt at a later ``not_before``); a row already ``sent`` never goes back.
"""

from __future__ import annotations

from enum import StrEnum


class TextKind(StrEnum):
    CONFIRMATION = "confirmation"
    DELAY_NOTICE = "delay_notice"
    SURVEY_INVITATION = "survey_invitation"
    REPLY = "reply"

    @property
    def send_rank(self) -> int:
        """Lower goes first when several texts are due: a caller's own reply and
        confirmations before delay notices, delay notices before surveys."""
        return _SEND_RANK[self]


_SEND_RANK = {
    TextKind.REPLY: 0,
    TextKind.CONFIRMATION: 0,
    TextKind.DELAY_NOTICE: 1,
    TextKind.SURVEY_INVITATION: 2,
}

#: Texts about an incident; replies answer a phone, not a call.
CALL_TEXT_KINDS = (TextKind.CONFIRMATION, TextKind.DELAY_NOTICE, TextKind.SURVEY_INVITATION)

#: Kinds that wait for the end of the quiet hours (the contract exempts confirmations).
QUIET_HOURS_KINDS = frozenset({TextKind.DELAY_NOTICE, TextKind.SURVEY_INVITATION})


class TextStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"

    @property
    def is_final(self) -> bool:
        return not TRANSITIONS[self]

    def can_become(self, new: TextStatus) -> bool:
        return new in TRANSITIONS[self]


TRANSITIONS: dict[TextStatus, frozenset[TextStatus]] = {
    TextStatus.SCHEDULED: frozenset(
        {TextStatus.SENDING, TextStatus.CANCELLED, TextStatus.SUPPRESSED}
    ),
    TextStatus.SENDING: frozenset(
        {TextStatus.SENT, TextStatus.SCHEDULED, TextStatus.FAILED, TextStatus.SUPPRESSED}
    ),
    TextStatus.SENT: frozenset({TextStatus.DELIVERED, TextStatus.UNDELIVERED, TextStatus.FAILED}),
    TextStatus.DELIVERED: frozenset(),
    TextStatus.UNDELIVERED: frozenset(),
    TextStatus.FAILED: frozenset(),
    TextStatus.CANCELLED: frozenset(),
    TextStatus.SUPPRESSED: frozenset(),
}

#: Statuses that mean a text left (or may have left) for the caller's phone; they count
#: against the per-phone daily cap.
COUNTS_AS_SENT = frozenset(
    {TextStatus.SENDING, TextStatus.SENT, TextStatus.DELIVERED, TextStatus.UNDELIVERED}
)
