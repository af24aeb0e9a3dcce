"""SMPP 3.4: a transceiver bind to the operator's SMSC, held by the worker process.

Client library: ``smpp34`` (Rust core, asyncio API). aiosmpplib was the first choice and
was tried against a real SMSC: its receipt parser raises on the 12-digit ``done date``
(``YYMMDDhhmmss``) that many SMSCs send, inside its read loop, which drops the bind
before the receipt is acknowledged — so the SMSC sends the same receipt again after the
rebind, for ever. It also keeps submits in an internal queue across disconnects, so a
text this provider had already reported as failed could leave later (a duplicate once
the dispatcher retries). ``smpp34`` hands each ``submit_sm`` its own awaitable
``submit_sm_resp``, which is what one outbox row per text needs. It sends
``enquire_link`` itself (every 30 s) and reports a dropped link; this module rebinds with
backoff.

Acknowledging ``deliver_sm`` only once it is recorded: smpp34's client answers every
``deliver_sm`` with ``deliver_sm_resp`` (``ESME_ROK``) in its Rust core *before* Python
sees the PDU, and offers no way to answer it ourselves. An SMSC forgets a message it got
``ESME_ROK`` for, so a worker that died between that answer and the database commit lost
the receipt — or a caller's STOP. So the client does not talk to the SMSC directly: it
connects to :class:`_AckRelay`, a loopback hop in the same event loop that passes every
PDU through unchanged except ``deliver_sm``, which it decodes (``smpp34.decode``) and
answers itself, when the handler has committed (``ESME_ROK``) or failed (a temporary
error, ``ESME_RX_T_APPN`` by default, so the SMSC delivers it again). A worker that dies
first sends no answer at all, and the SMSC delivers the PDU again after its response
timer or on the next bind. Delivery is therefore at least once: receipts are idempotent,
and a caller's text delivered again after an answer that was lost keeps its first id
here (see ``_mo_retry``) so it is stored once.

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

Answers to ``deliver_sm`` (``command_status`` of ``deliver_sm_resp``): ``ESME_ROK`` once
the receipt or text is committed, or when there is nothing to record (an unreadable
receipt, an SME acknowledgement, a part of a longer text still incomplete);
``retry_status`` (``ESME_RX_T_APPN``) when the handler failed, so the SMSC retries;
``ESME_RX_P_APPN`` for a PDU this module cannot parse (trying again would not help).

Throttling of a later part of a long text (the first parts already accepted) is waited
out here, a few times, so the caller gets one whole text rather than a retry of parts
already on their way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
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
#: deliver_sm_resp statuses (SMPP 3.4 section 5.1.3): "ESME receiver temporary / permanent
#: app error" — the first asks the SMSC to deliver the message again later.
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
_DELIVER_SM = 0x00000005
_DELIVER_SM_RESP = 0x80000005
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
_MO_RETRY_TTL = 3600.0  # seconds the id of a text the SMSC will deliver again is kept
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
        retry_status: int = ESME_RX_T_APPN,
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
        self._connect_timeout = connect_timeout
        self._connect_timeout_ms = int(connect_timeout * 1000)
        #: ``deliver_sm_resp`` status for a receipt or text that could not be recorded:
        #: one the SMSC retries. SMPP 3.4 defines ESME_RX_T_APPN for it; some SMSCs only
        #: retry on others (ESME_RSYSERR, ESME_RTHROTTLED), see docs/sms.md.
        self._retry_status = retry_status
        self._events: ProviderEvents | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._bound = threading.Event()
        self._smsc: Any = None
        self._event_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smpp-events")
        self._mo_parts: dict[tuple[str, int, int], _MoParts] = {}
        # A caller's text not yet acknowledged, or that the SMSC will deliver again
        # (refused, or our answer was lost although it may be committed) -> the message
        # id it was given, so a second delivery is recognised as the same text (the
        # inbound handler's unique id). SMPP has no id of its own for a mobile-originated
        # text. Loop thread only.
        self._mo_retry: dict[tuple[str, str, str], tuple[str, float]] = {}
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
            # The client binds through the relay, which answers deliver_sm itself
            # (module docstring); one relay per connection.
            relay = _AckRelay(self._host, self._port, self._connect_timeout, self._on_deliver_sm)
            try:
                client: Any = None
                try:
                    port = await relay.start()  # connects to the SMSC
                    client = smpp34.Client(
                        "127.0.0.1",
                        port,
                        self._system_id,
                        self._password,
                        bind_type="TRX",
                        system_type=self._system_type,
                        connect_timeout_ms=self._connect_timeout_ms,
                    )
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
                    if client is not None:
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
            finally:
                await relay.close()
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
                # Not expected: the relay answers every deliver_sm it can decode and the
                # library never sees it. One the library decoded where smpp34.decode did
                # not was already acknowledged by the library; record it all the same.
                self._on_deliver_sm(event, _answered_by_library)
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
    #
    # Every deliver_sm gets exactly one answer through ``respond`` (the relay's, on this
    # loop's thread): ESME_ROK only after the sink committed what it carried, so a worker
    # that dies before the commit never acknowledged it and the SMSC delivers it again.

    def _on_deliver_sm(self, event: Any, respond: Callable[[int], bool]) -> None:
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
        from_phone = f"+{source}" if ton == _TON_INTERNATIONAL and source.isdigit() else source
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
        events = self._events
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

    def drain_events(self, timeout: float = 10.0) -> None:
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


def _answered_by_library(status: int) -> bool:
    return True


class _AckRelay:
    """A loopback hop between smpp34's client and the SMSC that answers ``deliver_sm``.

    smpp34 acknowledges every ``deliver_sm`` in its core before the application sees it
    (see the module docstring). The relay connects to the SMSC, then the client connects
    to the relay instead; one connection is accepted and joined to it, and every PDU is
    passed on unchanged, whole, both ways — except a ``deliver_sm`` from the SMSC that
    ``smpp34.decode`` reads: that one is handed to ``on_deliver_sm(pdu, respond)`` and
    not to the library, and its ``deliver_sm_resp`` is written to the SMSC when
    ``respond(command_status)`` is called (False: the link is gone, nothing was sent).
    The SMSC's sequence numbers are its own, so answers written here never collide with
    the library's. All of it runs on the provider's event loop.
    """

    def __init__(
        self,
        host: str,
        port: int,
        connect_timeout: float,
        on_deliver_sm: Callable[[Any, Callable[[int], bool]], None],
    ) -> None:
        self._host = host
        self._port = port
        self._connect_timeout = connect_timeout
        self._on_deliver_sm = on_deliver_sm
        self._server: asyncio.Server | None = None
        self._link_task: asyncio.Task[None] | None = None
        self._streams: list[asyncio.StreamWriter] = []
        self._from_smsc: asyncio.StreamReader | None = None
        self._smsc: asyncio.StreamWriter | None = None

    async def start(self) -> int:
        """Connect to the SMSC (OSError, TimeoutError when that fails), then listen on a
        free loopback port for the client, returned. Connecting first makes an SMSC that
        is down a bind failure at once, not after the library's bind timer."""
        self._from_smsc, to_smsc = await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port), self._connect_timeout
        )
        self._streams.append(to_smsc)
        self._smsc = to_smsc
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._smsc = None
        for writer in self._streams:
            writer.transport.abort()
        if self._link_task is not None:
            self._link_task.cancel()
            await asyncio.gather(self._link_task, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, so the task is ours to cancel (asyncio reports a cancelled
        # client_connected_cb task as an error).
        if self._link_task is not None or self._server is None:
            writer.transport.abort()  # one connection per relay
            return
        self._server.close()  # stop listening; the accepted connection stays
        self._streams.append(writer)
        self._link_task = asyncio.ensure_future(self._link(reader, writer))

    async def _link(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        assert self._from_smsc is not None and self._smsc is not None
        pumps = {
            asyncio.ensure_future(self._pass(client, self._smsc)),
            asyncio.ensure_future(self._pass(self._from_smsc, to_client, intercept=True)),
        }
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._smsc = None
            for writer in self._streams:
                writer.close()  # what was written is still sent (an unbind_resp)

    async def _pass(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        intercept: bool = False,
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, OSError):
            while True:
                header = await reader.readexactly(16)
                length = int.from_bytes(header[:4], "big")
                if length < 16:
                    return  # not SMPP framing any more: end the link, rebind
                pdu = header + await reader.readexactly(length - 16)
                command_id = int.from_bytes(header[4:8], "big")
                if intercept and command_id == _DELIVER_SM and self._take(pdu):
                    continue
                writer.write(pdu)  # one write per PDU: answers never land inside one
                await writer.drain()

    def _take(self, pdu: bytes) -> bool:
        """Hand a decodable ``deliver_sm`` to the provider; False leaves it to the library
        (which answers what it cannot read, as it always did)."""
        try:
            decoded = smpp34.decode(pdu)
        except smpp34.SmppError:
            return False
        if not isinstance(decoded, smpp34.DeliverSm):
            return False
        self._on_deliver_sm(decoded, partial(self._respond, decoded.sequence_number))
        return True

    def _respond(self, sequence: int, command_status: int) -> bool:
        writer = self._smsc
        if writer is None or writer.is_closing():
            return False
        # deliver_sm_resp: header, then message_id — unused, a single NUL (SMPP 3.4 4.6.2).
        writer.write(struct.pack(">IIII", 17, _DELIVER_SM_RESP, command_status, sequence) + b"\0")
        return True


class _NotBound(Exception):
    pass


def _first_word(error: BaseException) -> str:
    text = str(error).split(" ", 1)[0]
    return text if text.startswith("ESME_") else type(error).__name__
