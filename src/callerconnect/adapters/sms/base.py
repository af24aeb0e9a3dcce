"""The one small interface every SMS provider implements.

Providers translate their own errors into :class:`SendError` at this edge, so the
dispatcher branches on ``retryable`` and ``code`` and never on a library's exception
type or message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OutgoingSms:
    """One text ready to leave: the phone in E.164, the body, and our own row id.

    ``reference`` is the outbox key; providers that support an idempotency or
    client reference pass it on, so a resend after a crash can be recognised.
    ``validity_seconds`` bounds how long the network may keep trying to deliver.
    """

    to: str
    body: str
    reference: str
    validity_seconds: int | None = None


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the text; ``provider_message_id`` finds its receipts later."""

    provider_message_id: str
    status: str = "sent"


class SendError(Exception):
    """A text the provider did not accept.

    ``retryable`` says whether the same text may be tried again later (outage, timeout,
    throttling); ``code`` is a short stable code such as ``throttled``, ``timeout``,
    ``unavailable``, ``invalid_number``, ``opted_out``, ``rejected``, ``auth``;
    ``provider_code`` keeps the provider's own code for the record.
    """

    def __init__(
        self,
        code: str,
        *,
        retryable: bool,
        provider_code: str | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(f"{code} (retryable={retryable}) {detail}".strip())
        self.code = code
        self.retryable = retryable
        self.provider_code = provider_code
        self.detail = detail


@dataclass(frozen=True)
class StatusReport:
    """A delivery receipt or status callback, normalised."""

    provider_message_id: str
    status: str  # one of: sent, delivered, undelivered, failed
    error_code: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class InboundSms:
    """A text a caller sent to our number."""

    from_phone: str
    to: str
    body: str
    provider_message_id: str
    extra: dict[str, str] = field(default_factory=dict)


class SmsProvider(Protocol):
    """Send one text; raise :class:`SendError` when it was not accepted."""

    name: str

    def send(self, message: OutgoingSms) -> SendResult: ...
