"""The one small interface every SMS provider implements.

Providers translate their own errors into :class:`SendError` at this edge, so the
dispatcher branches on ``retryable`` and ``code`` and never on a library's exception
type or message text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


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
    #: Asked by the provider at the last moment before the text's bytes leave (the HTTP
    #: request, the ``submit_sm``): False means the text missed its rate slot on the way
    #: (a starved machine held it) and must not leave now; the provider then raises
    #: :class:`SlotMissed` instead of sending. None: no slot to keep.
    in_time: Callable[[], bool] | None = field(default=None, compare=False)

    def check_in_time(self) -> None:
        """Raise :class:`SlotMissed` if the text may no longer leave now."""
        if self.in_time is not None and not self.in_time():
            raise SlotMissed


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the text; ``provider_message_id`` finds its receipts later.

    ``part_ids`` holds one id per part when the provider sent a long text as several
    messages with ids of their own (SMPP concatenation): receipts come per part. Empty
    means one id for the whole text (Twilio, console).
    """

    provider_message_id: str
    status: str = "sent"
    part_ids: tuple[str, ...] = ()

    @property
    def all_ids(self) -> tuple[str, ...]:
        return self.part_ids or (self.provider_message_id,)


class SlotMissed(Exception):
    """The text was not sent: it reached the provider's edge too late for its rate slot.
    Not a failure of the text; the dispatcher puts it back in the queue."""


class SendError(Exception):
    """A text the provider did not accept.

    ``retryable`` says whether the same text may be tried again later (outage, timeout,
    throttling); ``code`` is a short stable code such as ``throttled``, ``timeout``,
    ``unavailable``, ``invalid_number``, ``opted_out``, ``rejected``, ``auth``;
    ``provider_code`` keeps the provider's own code for the record.

    ``code == "throttled"`` means the provider wants us to slow down (Twilio 429/20429,
    SMPP ESME_RTHROTTLED/ESME_RMSGQFUL): the dispatcher pauses every worker (the shared
    rate-limit row) for ``retry_after`` seconds, or a default pause when the provider did
    not say, and tries the text again without counting an attempt.
    """

    def __init__(
        self,
        code: str,
        *,
        retryable: bool,
        provider_code: str | None = None,
        detail: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code} (retryable={retryable}) {detail}".strip())
        self.code = code
        self.retryable = retryable
        self.provider_code = provider_code
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class StatusReport:
    """A delivery receipt or status callback, normalised."""

    provider_message_id: str
    status: str  # one of: sent, delivered, undelivered, failed
    error_code: str | None = None
    at: datetime | None = None
    #: Whether sending the same text again could succeed, judged from ``error_code``
    #: (``None``: no error, or the provider's code says nothing either way).
    retryable: bool | None = None


@dataclass(frozen=True)
class InboundSms:
    """A text a caller sent to our number."""

    from_phone: str
    to: str
    body: str
    provider_message_id: str
    extra: dict[str, str] = field(default_factory=dict)


class SmsProvider(Protocol):
    """Send one text; raise :class:`SendError` when it was not accepted.

    What comes back from a provider (delivery receipts, the caller's own texts) reaches
    callerconnect in one normalised form, :class:`StatusReport` and :class:`InboundSms`,
    through one :class:`ProviderEvents` sink, whichever way it travels:

    * over HTTP (Twilio): the web layer verifies the signature and parses the form with
      the provider module's ``parse_status``/``parse_inbound`` (:class:`WebhookParser`);
    * over the provider's own link (SMPP ``deliver_sm``): the provider parses the PDU and
      calls the sink itself (:class:`PushProvider`), in the worker process holding the bind.
    """

    name: str

    def send(self, message: OutgoingSms) -> SendResult: ...


class ProviderEvents(Protocol):
    """Where receipts and inbound texts go: the service layer (receipts, inbound handler)."""

    def status(self, report: StatusReport) -> None: ...

    def inbound(self, message: InboundSms) -> None: ...


class WebhookParser(Protocol):
    """A provider whose receipts and inbound texts arrive as HTTP form posts."""

    def parse_status(self, form: Mapping[str, str]) -> StatusReport: ...

    def parse_inbound(self, form: Mapping[str, str]) -> InboundSms: ...


@runtime_checkable
class PushProvider(Protocol):
    """A provider that receives receipts and inbound texts on a link it holds (SMPP).

    ``attach`` is called once at start-up with the sink; ``start`` opens the link (the
    worker calls it; ``serve`` and the other commands never do, so they hold no bind).
    """

    def attach(self, events: ProviderEvents) -> None: ...

    def start(self) -> None: ...
