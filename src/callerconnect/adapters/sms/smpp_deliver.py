"""Receiving on the SMPP bind: delivery receipts and the callers' texts (``deliver_sm``),
recorded through the provider's event sink and only then acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from callerconnect.adapters.sms.base import InboundSms, ProviderEvents, StatusReport
from callerconnect.adapters.sms.smpp_submit import TON_INTERNATIONAL
from callerconnect.adapters.sms.smpp_text import (
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    Concatenation,
    decode_short_message,
    is_mobile_originated,
    is_receipt,
    parse_receipt,
    strip_udh,
)
from callerconnect.logs import log_event

log = logging.getLogger("callerconnect.smpp")

ESME_ROK = 0x00
#: deliver_sm_resp statuses (SMPP 3.4 section 5.1.3): "ESME receiver temporary / permanent
#: app error" — the first asks the SMSC to deliver the message again later.
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
_MO_PARTS_TTL = 600.0  # seconds an incomplete concatenated MO text is waited for
_MO_RETRY_TTL = 3600.0  # seconds the id of a text the SMSC will deliver again is kept
_EVENT_ATTEMPTS = 3


@dataclass
class _MoParts:
    total: int
    data_coding: int
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)


class DeliverSmHandler:
    """Records what each ``deliver_sm`` carries and answers it once, through ``respond``
    (the relay's, on the link's loop thread): ESME_ROK only after the sink committed it,
    so a worker that dies before the commit never acknowledged it and the SMSC delivers
    it again."""

    def __init__(self, retry_status: int = ESME_RX_T_APPN) -> None:
        #: ``deliver_sm_resp`` status for a receipt or text that could not be recorded:
        #: one the SMSC retries. SMPP 3.4 defines ESME_RX_T_APPN for it; some SMSCs only
        #: retry on others (ESME_RSYSERR, ESME_RTHROTTLED), see docs/sms.md.
        self._retry_status = retry_status
        self.events: ProviderEvents | None = None
        self._event_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smpp-events")
        self._mo_parts: dict[tuple[str, int, int], _MoParts] = {}
        # A caller's text not yet acknowledged, or that the SMSC will deliver again
        # (refused, or our answer was lost although it may be committed) -> the message
        # id it was given, so a second delivery is recognised as the same text (the
        # inbound handler's unique id). SMPP has no id of its own for a mobile-originated
        # text. Loop thread only.
        self._mo_retry: dict[tuple[str, str, str], tuple[str, float]] = {}

    def close(self) -> None:
        self._event_thread.shutdown(wait=True)

    def on_deliver_sm(self, event: Any, respond: Callable[[int], bool]) -> None:
        try:
            job = self._read_deliver_sm(event)
        except Exception:  # one unreadable PDU must not take the link down
            log.exception("action=smpp_deliver_sm_unreadable")
            respond(ESME_RX_P_APPN)  # the same bytes again would fail the same way
            return
        if job is None:
            respond(ESME_ROK)  # nothing to record
            return
        self._deliver(job, respond)

    def _read_deliver_sm(self, event: Any) -> _Job | None:
        """What to record for one ``deliver_sm``; None when there is nothing to record."""
        tlvs = {tlv.tag: tlv for tlv in event.tlvs}
        if is_receipt(event.esm_class):
            receipted = tlvs.get(TLV_RECEIPTED_MESSAGE_ID)
            state = tlvs.get(TLV_MESSAGE_STATE)
            receipt = parse_receipt(
                bytes(event.short_message).decode("latin-1"),
                receipted_message_id=receipted.as_string() if receipted is not None else None,
                message_state=state.as_int() if state is not None else None,
            )
            if receipt is None:
                log_event(log, "smpp_receipt_unreadable", level=logging.WARNING)
                return None
            report = StatusReport(
                provider_message_id=receipt.message_id,
                status=receipt.status,
                error_code=receipt.error_code,
                retryable=receipt.retryable,
            )
            return _Job("receipt", lambda events: events.status(report))
        if not is_mobile_originated(event.esm_class):
            return None  # SME acknowledgements: nothing for us
        whole = self._mo_text(event, tlvs)
        if whole is None:
            # A part of a longer text; the rest is still to come. It is acknowledged now
            # (an SMSC may wait for that before sending the next part) and kept in memory
            # only: see docs/sms.md, "Open points".
            return None
        text, parts_key = whole
        ton = event.source_addr_ton
        source = event.source_addr
        from_phone = f"+{source}" if ton == TON_INTERNATIONAL and source.isdigit() else source
        now = time.monotonic()
        for key in [k for k, (_, t) in self._mo_retry.items() if now - t > _MO_RETRY_TTL]:
            del self._mo_retry[key]
        retry_key = (from_phone, event.destination_addr, text)
        kept = self._mo_retry.get(retry_key)
        message_id = kept[0] if kept is not None else f"smpp-mo-{uuid.uuid4().hex}"
        # Kept from now on, not only after a failure: the SMSC may deliver it again (on
        # another bind, after a link drop) while this copy is still being recorded.
        self._mo_retry[retry_key] = (message_id, now)
        inbound = InboundSms(
            from_phone=from_phone,
            to=event.destination_addr,
            body=text,
            provider_message_id=message_id,
        )

        def settled(recorded: bool, answered: bool) -> None:
            if recorded and parts_key is not None:
                self._mo_parts.pop(parts_key, None)
            if recorded and answered:
                self._mo_retry.pop(retry_key, None)
            else:  # the SMSC delivers it again: under the same id
                self._mo_retry[retry_key] = (message_id, time.monotonic())
            if not recorded and parts_key in self._mo_parts:  # wait for the last part again
                self._mo_parts[parts_key].first_seen = time.monotonic()

        return _Job("inbound", lambda events: events.inbound(inbound), settled)

    def _mo_text(self, event: Any, tlvs: dict[int, Any]) -> tuple[str, Any] | None:
        """The whole text and, for a concatenated one, the key of its parts (dropped once
        it is recorded: if recording fails the SMSC delivers the last part again, and the
        earlier ones, already acknowledged, must still be here)."""
        data = bytes(event.short_message)
        payload = tlvs.get(0x0424)  # message_payload
        if not data and payload is not None:
            data = bytes(payload.value)
        concat = None
        if event.esm_class & 0x40:
            data, concat = strip_udh(data)
        elif 0x020C in tlvs and 0x020E in tlvs and 0x020F in tlvs:  # sar_* TLVs
            ref, total, seq = (tlvs[tag].as_int() or 0 for tag in (0x020C, 0x020E, 0x020F))
            concat = Concatenation(ref, total, seq)
        if concat is None or concat.total <= 1:
            return decode_short_message(data, event.data_coding), None
        now = time.monotonic()
        for key in [k for k, v in self._mo_parts.items() if now - v.first_seen > _MO_PARTS_TTL]:
            del self._mo_parts[key]
        key = (event.source_addr, concat.reference, concat.total)
        waiting = self._mo_parts.setdefault(key, _MoParts(concat.total, event.data_coding, now))
        waiting.parts[concat.number] = data
        if len(waiting.parts) < waiting.total:
            return None
        text = "".join(
            decode_short_message(waiting.parts[n], waiting.data_coding)
            for n in sorted(waiting.parts)
        )
        return text, key

    def _deliver(self, job: _Job, respond: Callable[[int], bool]) -> None:
        """Record ``job`` on the event thread (a few tries on database errors), then
        answer the SMSC from this loop: ESME_ROK after the commit, ``retry_status`` when
        it failed. Called on the loop's thread."""
        events = self.events
        if events is None:  # no sink: another bind (another worker) may have one
            log_event(log, "smpp_event_refused", level=logging.WARNING, what=job.what)
            self._settle(job, respond, recorded=False)
            return
        loop = asyncio.get_running_loop()

        def run() -> None:
            recorded = False
            for attempt in range(1, _EVENT_ATTEMPTS + 1):
                try:
                    job.call(events)
                    recorded = True
                    break
                except Exception:
                    if attempt == _EVENT_ATTEMPTS:
                        log.exception("action=smpp_event_failed what=%s", job.what)
                        break
                    time.sleep(0.2 * attempt)
            # A closed loop (the provider is closing): no answer; the SMSC delivers the
            # PDU again after its response timer or on the next bind.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(partial(self._settle, job, respond, recorded=recorded))

        self._event_thread.submit(run)

    def _settle(self, job: _Job, respond: Callable[[int], bool], *, recorded: bool) -> None:
        status = ESME_ROK if recorded else self._retry_status
        answered = respond(status)
        if not answered:
            log_event(
                log,
                "smpp_deliver_sm_unanswered",
                level=logging.WARNING,
                what=job.what,
                recorded=recorded,
            )
        elif not recorded:
            log_event(
                log,
                "smpp_deliver_sm_deferred",
                level=logging.WARNING,
                what=job.what,
                command_status=f"0x{status:08X}",
            )
        if job.settled is not None:
            job.settled(recorded, answered)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every receipt and inbound text received so far is handled (tests).
        Its answer to the SMSC follows on the link's loop a moment later."""
        self._event_thread.submit(lambda: None).result(timeout=timeout)


@dataclass(frozen=True)
class _Job:
    """What one ``deliver_sm`` asks us to record, and what to do once it is settled:
    ``settled(recorded, answered)`` runs on the loop's thread after the answer."""

    what: str
    call: Callable[[ProviderEvents], None]
    settled: Callable[[bool, bool], None] | None = None


def answered_by_library(status: int) -> bool:
    return True
