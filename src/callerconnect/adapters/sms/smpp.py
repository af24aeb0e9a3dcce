"""SMPP 3.4: a transceiver bind to the operator's SMSC, held by the worker process.

Client library: ``smpp34`` (Rust core, asyncio API). aiosmpplib was the first choice and
was tried against a real SMSC: its receipt parser raises on the 12-digit ``done date``
(``YYMMDDhhmmss``) that many SMSCs send, inside its read loop, which drops the bind
before the receipt is acknowledged — so the SMSC sends the same receipt again after the
rebind, for ever. It also keeps submits in an internal queue across disconnects, so a
text this provider had already reported as failed could leave later (a duplicate once
the dispatcher retries). ``smpp34`` hands each ``submit_sm`` its own awaitable
``submit_sm_resp`` and each ``deliver_sm`` to us as raw bytes, which is what one outbox
row per text needs. It sends ``enquire_link`` itself (every 30 s) and reports a dropped
link; this module rebinds with backoff.

How it runs:

* The dispatcher is synchronous (threads); the client runs on its own asyncio loop in a
  background thread, and :meth:`SmppProvider.send` blocks on it.
* :meth:`SmppProvider.start` binds (``callerconnect worker`` calls it; ``serve`` never
  binds). Receipts and the callers' texts arrive on the bind as ``deliver_sm``; they are
  parsed here and handed to the :class:`~callerconnect.adapters.sms.base.ProviderEvents`
  sink on one event thread, which writes them to the database — in the worker process
  that holds the bind. Several workers hold several binds; a receipt may come back on any
  of them, which is fine since they all share the database.
* A long text goes as several ``submit_sm`` (see :mod:`smpp_text`), each with its own
  message id; ``SendResult.part_ids`` carries them all and every part's receipt counts.
* ``validity_period`` is relative (``...R``) from the outbox row's expiry, so a delay
  notice the network cannot deliver in time is dropped by the SMSC, not delivered late.

Errors (``command_status`` of ``submit_sm_resp``):

=====================================================  ==================  =========
SMSC answer                                            ``code``            retryable
=====================================================  ==================  =========
ESME_RTHROTTLED (0x58), ESME_RMSGQFUL (0x14)           ``throttled``       yes
ESME_RINVDSTADR (0x0B), RINVDSTTON (0x50), NPI (0x51)  ``invalid_number``  no
invalid field or parameter, ESME_RX_P_APPN/RX_R_APPN   ``rejected``        no
no bind, link dropped, ESME_RSYSERR, anything else     ``unavailable``     yes
no submit_sm_resp in time                              ``timeout``         yes
=====================================================  ==================  =========

Throttling of a later part of a long text (the first parts already accepted) is waited
out here, a few times, so the caller gets one whole text rather than a retry of parts
already on their way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import smpp34

from callerconnect.adapters.sms.base import (
    InboundSms,
    OutgoingSms,
    ProviderEvents,
    SendError,
    SendResult,
    StatusReport,
)
from callerconnect.adapters.sms.phone import mask_phone
from callerconnect.adapters.sms.smpp_text import (
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    Concatenation,
    decode_short_message,
    is_mobile_originated,
    is_receipt,
    parse_receipt,
    relative_validity,
    split_udh,
    strip_udh,
)
from callerconnect.logs import log_event

__all__ = ["SmppProvider", "classify_status"]

log = logging.getLogger("callerconnect.smpp")

ESME_ROK = 0x00
_THROTTLED = frozenset({0x58, 0x14})
_INVALID_NUMBER = frozenset({0x0B, 0x50, 0x51})
_REJECTED = frozenset(
    {
        0x01,  # RINVMSGLEN
        0x02,  # RINVCMDLEN
        0x03,  # RINVCMDID
        0x06,  # RINVPRTFLG
        0x07,  # RINVREGDLVFLG
        0x0A,  # RINVSRCADR
        0x43,  # RINVESMCLASS
        0x48,  # RINVSRCTON
        0x49,  # RINVSRCNPI
        0x53,  # RINVSYSTYP
        0x61,  # RINVSCHED
        0x62,  # RINVEXPIRY
        0x65,  # RX_P_APPN
        0x66,  # RX_R_APPN
        0xC0,  # RINVOPTPARSTREAM
        0xC1,  # ROPTPARNOTALLWD
        0xC2,  # RINVPARLEN
        0xC3,  # RMISSINGOPTPARAM
        0xC4,  # RINVOPTPARAMVAL
    }
)
# SMPP TON/NPI: international E.164 numbers; a short code is "network specific".
_TON_INTERNATIONAL, _NPI_E164 = 1, 1
_TON_NETWORK_SPECIFIC, _NPI_UNKNOWN = 3, 0
_REGISTERED_DELIVERY_FINAL = 0x01  # a receipt on success or failure
_MO_PARTS_TTL = 600.0  # seconds an incomplete concatenated MO text is waited for
_EVENT_ATTEMPTS = 3


def classify_status(command_status: int) -> tuple[str, bool]:
    """``(code, retryable)`` for a non-zero ``submit_sm_resp`` command_status."""
    if command_status in _THROTTLED:
        return "throttled", True
    if command_status in _INVALID_NUMBER:
        return "invalid_number", False
    if command_status in _REJECTED:
        return "rejected", False
    return "unavailable", True


def _address(number: str) -> tuple[str, int, int]:
    """SMPP address, TON and NPI for an E.164 number or a short code."""
    if number.startswith("+"):
        return number[1:], _TON_INTERNATIONAL, _NPI_E164
    return number, _TON_NETWORK_SPECIFIC, _NPI_UNKNOWN


@dataclass
class _MoParts:
    total: int
    data_coding: int
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)


class SmppProvider:
    """Send through an SMPP 3.4 transceiver bind; see the module docstring."""

    name = "smpp"

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        sender: str,
        system_type: str = "",
        message_id_mode: str = "auto",
        liveness_interval: float = 30.0,
        reconnect_min: float = 1.0,
        reconnect_max: float = 60.0,
        submit_timeout: float = 35.0,
        bind_wait: float = 5.0,
        part_retries: int = 3,
        part_retry_pause: float = 0.5,
        connect_timeout: float = 10.0,
    ) -> None:
        for label, value in (("host", host), ("system_id", system_id), ("sender", sender)):
            if not value or not value.strip():
                raise ValueError(f"SMPP {label} is empty")
        self._host = host
        self._port = port
        self._system_id = system_id
        self._password = password
        self._system_type = system_type
        self._source, self._source_ton, self._source_npi = _address(sender)
        self.message_id_mode = message_id_mode
        self._liveness_interval = liveness_interval
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._submit_timeout = submit_timeout
        self._bind_wait = bind_wait
        self._part_retries = part_retries
        self._part_retry_pause = part_retry_pause
        self._connect_timeout_ms = int(connect_timeout * 1000)
        self._events: ProviderEvents | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._bound = threading.Event()
        self._smsc: Any = None
        self._event_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smpp-events")
        self._mo_parts: dict[tuple[str, int, int], _MoParts] = {}
        #: How many times a bind was established (1 + reconnects); for operators and tests.
        self.binds = 0

    def __repr__(self) -> str:
        return (
            f"SmppProvider(host={self._host!r}, port={self._port}, system_id={self._system_id!r})"
        )

    # --- lifecycle -------------------------------------------------------------------

    def attach(self, events: ProviderEvents) -> None:
        self._events = events

    def start(self) -> None:
        """Open the bind in the background (idempotent); sends wait for it to come up."""
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="smpp-link", daemon=True
            )
            self._thread.start()
            ready.wait()

    @property
    def is_bound(self) -> bool:
        return self._bound.is_set()

    def wait_bound(self, timeout: float) -> bool:
        return self._bound.wait(timeout)

    def close(self) -> None:
        with self._lock:
            thread, loop, stopping = self._thread, self._loop, self._stopping
            self._thread = None
        if thread is not None and loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
            thread.join(timeout=15)
        self._event_thread.shutdown(wait=True)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        ready.set()
        delay = self._reconnect_min
        while not self._stopping.is_set():
            client = smpp34.Client(
                self._host,
                self._port,
                self._system_id,
                self._password,
                bind_type="TRX",
                system_type=self._system_type,
                connect_timeout_ms=self._connect_timeout_ms,
            )
            try:
                smsc = await client.connect()
            except Exception as error:  # refused, timed out, bind rejected
                log_event(
                    log,
                    "smpp_bind_failed",
                    level=logging.WARNING,
                    host=self._host,
                    port=self._port,
                    error=type(error).__name__,
                    retry_in=f"{delay:g}s",
                )
                await self._stop_client(client)
                if await self._sleep(delay):
                    break
                delay = min(self._reconnect_max, delay * 2)
                continue
            delay = self._reconnect_min
            self.binds += 1
            self._smsc = smsc
            self._bound.set()
            log_event(log, "smpp_bound", host=self._host, port=self._port, binds=self.binds)
            try:
                await self._serve(client, smsc)
            finally:
                self._bound.clear()
                self._smsc = None
            if self._stopping.is_set():
                with contextlib.suppress(Exception):  # already gone
                    await asyncio.wait_for(smsc.unbind(), timeout=5)
            await self._stop_client(client)
            if not self._stopping.is_set():
                log_event(log, "smpp_link_lost", level=logging.WARNING, host=self._host)
                if await self._sleep(self._reconnect_min):
                    break

    async def _stop_client(self, client: Any) -> None:
        with contextlib.suppress(Exception):  # a client that never connected
            await asyncio.wait_for(client.stop(), timeout=5)

    async def _sleep(self, seconds: float) -> bool:
        """Wait, or return True at once when the provider is closing."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def _serve(self, client: Any, smsc: Any) -> None:
        """Read ``deliver_sm`` until the link drops or the provider closes."""
        assert self._stopping is not None
        stop = asyncio.ensure_future(self._stopping.wait())
        # One pending ``next()`` at a time, kept across liveness checks: cancelling it
        # could lose an event the library had already handed over.
        receive: asyncio.Future[Any] | None = None
        try:
            while True:
                if receive is None:
                    receive = asyncio.ensure_future(smsc.next())
                done, _ = await asyncio.wait(
                    {receive, stop},
                    timeout=self._liveness_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stop in done:
                    return
                if receive not in done:
                    if not await client.is_alive():
                        return
                    continue
                event = receive.result()
                receive = None
                if isinstance(event, smpp34.Disconnected):
                    return
                try:
                    self._on_deliver_sm(event)
                except Exception:  # one unreadable PDU must not take the link down
                    log.exception("action=smpp_deliver_sm_unreadable")
        finally:
            stop.cancel()
            if receive is not None:
                receive.cancel()

    # --- sending -------------------------------------------------------------------------

    def send(self, message: OutgoingSms) -> SendResult:
        self.start()
        if not self._bound.wait(self._bind_wait):
            raise SendError("unavailable", retryable=True, detail="no SMPP bind to the SMSC")
        destination, dest_ton, dest_npi = _address(message.to)
        if not destination.isdigit():
            raise SendError(
                "invalid_number", retryable=False, detail="destination is not in E.164 form"
            )
        try:
            text = split_udh(message.body, secrets.randbelow(256))
        except ValueError as error:
            raise SendError("rejected", retryable=False, detail=str(error)) from None
        validity = (
            relative_validity(message.validity_seconds)
            if message.validity_seconds is not None
            else ""
        )
        ids: list[str] = []
        total = len(text.parts)
        for number, short_message in enumerate(text.parts, start=1):
            submit = {
                "destination_addr": destination,
                "short_message": short_message,
                "source_addr": self._source,
                "source_addr_ton": self._source_ton,
                "source_addr_npi": self._source_npi,
                "dest_addr_ton": dest_ton,
                "dest_addr_npi": dest_npi,
                "esm_class": text.esm_class,
                "data_coding": text.data_coding,
                "validity_period": validity,
                "registered_delivery": _REGISTERED_DELIVERY_FINAL,
            }
            ids.append(self._submit_part(submit, number, total))
        log_event(
            log,
            "smpp_submitted",
            to=mask_phone(message.to),
            parts=total,
            data_coding=text.data_coding,
            message_id=ids[0],
        )
        return SendResult(provider_message_id=ids[0], part_ids=tuple(ids) if total > 1 else ())

    def _submit_part(self, submit: dict[str, Any], number: int, total: int) -> str:
        """Submit one part; later parts of a long text are retried here a few times."""
        attempts = 1 if number == 1 else 1 + self._part_retries
        for attempt in range(1, attempts + 1):
            try:
                return self._submit_once(submit, number, total)
            except SendError as error:
                if not error.retryable or attempt == attempts:
                    if number > 1:
                        error.detail = f"part {number} of {total}: {error.detail}".strip()
                    raise
                time.sleep(self._part_retry_pause * attempt)
                self._bound.wait(self._bind_wait)
        raise AssertionError("unreachable")

    def _submit_once(self, submit: dict[str, Any], number: int, total: int) -> str:
        loop = self._loop
        if loop is None or not self._bound.is_set():
            raise SendError("unavailable", retryable=True, detail="no SMPP bind to the SMSC")
        future = asyncio.run_coroutine_threadsafe(self._submit(submit), loop)
        try:
            status, message_id = future.result(timeout=self._submit_timeout)
        except FutureTimeout:
            future.cancel()
            raise SendError(
                "timeout", retryable=True, detail="no submit_sm_resp in time; may be sent"
            ) from None
        except smpp34.SmppError as error:
            # The library's own failure: link dropped, window full, its response timer.
            raise SendError(
                "unavailable", retryable=True, detail=f"SMPP link: {_first_word(error)}"
            ) from None
        except _NotBound:
            raise SendError(
                "unavailable", retryable=True, detail="no SMPP bind to the SMSC"
            ) from None
        if status == ESME_ROK:
            if not message_id:
                raise SendError(
                    "bad_response",
                    retryable=False,
                    detail="submit_sm_resp without a message id; the text may be sent",
                )
            return str(message_id)
        code, retryable = classify_status(status)
        raise SendError(
            code,
            retryable=retryable,
            provider_code=f"0x{status:08X}",
            detail=f"submit_sm_resp command_status 0x{status:08X}",
        )

    async def _submit(self, submit: dict[str, Any]) -> tuple[int, str | None]:
        smsc = self._smsc
        if smsc is None:
            raise _NotBound
        response = await smsc.submit_sm(**submit)
        return int(response.command_status), response.message_id

    # --- receiving -------------------------------------------------------------------------

    def _on_deliver_sm(self, event: Any) -> None:
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
                return
            report = StatusReport(
                provider_message_id=receipt.message_id,
                status=receipt.status,
                error_code=receipt.error_code,
                retryable=receipt.retryable,
            )
            self._deliver(lambda events: events.status(report), "receipt")
            return
        if not is_mobile_originated(event.esm_class):
            return  # SME acknowledgements: nothing for us
        text = self._mo_text(event, tlvs)
        if text is None:
            return  # a part of a longer text; the rest is still to come
        ton = event.source_addr_ton
        source = event.source_addr
        from_phone = f"+{source}" if ton == _TON_INTERNATIONAL and source.isdigit() else source
        inbound = InboundSms(
            from_phone=from_phone,
            to=event.destination_addr,
            body=text,
            provider_message_id=f"smpp-mo-{uuid.uuid4().hex}",
        )
        self._deliver(lambda events: events.inbound(inbound), "inbound")

    def _mo_text(self, event: Any, tlvs: dict[int, Any]) -> str | None:
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
            return decode_short_message(data, event.data_coding)
        now = time.monotonic()
        for key in [k for k, v in self._mo_parts.items() if now - v.first_seen > _MO_PARTS_TTL]:
            del self._mo_parts[key]
        key = (event.source_addr, concat.reference, concat.total)
        waiting = self._mo_parts.setdefault(key, _MoParts(concat.total, event.data_coding, now))
        waiting.parts[concat.number] = data
        if len(waiting.parts) < waiting.total:
            return None
        del self._mo_parts[key]
        return "".join(
            decode_short_message(waiting.parts[n], waiting.data_coding)
            for n in sorted(waiting.parts)
        )

    def _deliver(self, call: Callable[[ProviderEvents], None], what: str) -> None:
        events = self._events
        if events is None:
            log_event(log, "smpp_event_dropped", level=logging.WARNING, what=what)
            return

        def run() -> None:
            for attempt in range(1, _EVENT_ATTEMPTS + 1):
                try:
                    call(events)
                    return
                except Exception:
                    if attempt == _EVENT_ATTEMPTS:
                        log.exception("action=smpp_event_failed what=%s", what)
                        return
                    time.sleep(0.2 * attempt)

        self._event_thread.submit(run)

    def drain_events(self, timeout: float = 10.0) -> None:
        """Wait until every receipt and inbound text received so far is handled (tests)."""
        self._event_thread.submit(lambda: None).result(timeout=timeout)


class _NotBound(Exception):
    pass


def _first_word(error: BaseException) -> str:
    text = str(error).split(" ", 1)[0]
    return text if text.startswith("ESME_") else type(error).__name__
