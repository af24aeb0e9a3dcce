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
connects to :class:`AckRelay`, a loopback hop in the same event loop that passes every
PDU through unchanged except ``deliver_sm``, which it decodes (``smpp34.decode``) and
answers itself, when the handler has committed (``ESME_ROK``) or failed (a temporary
error, ``ESME_RX_T_APPN`` by default, so the SMSC delivers it again). A worker that dies
first sends no answer at all, and the SMSC delivers the PDU again after its response
timer or on the next bind. Delivery is therefore at least once: receipts are idempotent,
and a caller's text delivered again after an answer that was lost keeps its first id
here (see ``DeliverSmHandler._mo_retry``) so it is stored once.

Where each part lives: this module holds the bind (connect, rebind with backoff,
liveness) and sends; :mod:`smpp_submit` builds the ``submit_sm`` PDUs and reads their
answers; :mod:`smpp_deliver` records and answers ``deliver_sm``; :mod:`smpp_relay` is
the loopback hop; :mod:`smpp_text` is the encoding and the receipt format.

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
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import smpp34

from callerconnect.adapters.sms.base import (
    OutgoingSms,
    ProviderEvents,
    SendError,
    SendResult,
)
from callerconnect.adapters.sms.phone import mask_phone
from callerconnect.adapters.sms.smpp_deliver import (
    ESME_RX_T_APPN,
    DeliverSmHandler,
    answered_by_library,
)
from callerconnect.adapters.sms.smpp_relay import AckRelay
from callerconnect.adapters.sms.smpp_submit import (
    NotBound,
    first_word,
    submit_pdus,
    submitted_id,
)
from callerconnect.logs import log_event

log = logging.getLogger("callerconnect.smpp")


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
        self._sender = sender
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
        self._deliveries = DeliverSmHandler(retry_status)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._bound = threading.Event()
        self._smsc: Any = None
        #: How many times a bind was established (1 + reconnects); for operators and tests.
        self.binds = 0

    def __repr__(self) -> str:
        return (
            f"SmppProvider(host={self._host!r}, port={self._port}, system_id={self._system_id!r})"
        )

    # --- lifecycle -------------------------------------------------------------------

    def attach(self, events: ProviderEvents) -> None:
        self._deliveries.events = events

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
        self._deliveries.close()

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
            relay = AckRelay(
                self._host, self._port, self._connect_timeout, self._deliveries.on_deliver_sm
            )
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
                self._deliveries.on_deliver_sm(event, answered_by_library)
        finally:
            stop.cancel()
            if receive is not None:
                receive.cancel()

    # --- sending -------------------------------------------------------------------------

    def send(self, message: OutgoingSms) -> SendResult:
        self.start()
        if not self._bound.wait(self._bind_wait):
            raise SendError("unavailable", retryable=True, detail="no SMPP bind to the SMSC")
        submits = submit_pdus(message, self._sender)
        total = len(submits)
        # The first part keeps the text's rate slot, checked on the link's loop just
        # before its submit_sm is written; the others follow it.
        ids = [
            self._submit_part(submit, number, total, message.check_in_time if number == 1 else None)
            for number, submit in enumerate(submits, start=1)
        ]
        log_event(
            log,
            "smpp_submitted",
            to=mask_phone(message.to),
            parts=total,
            data_coding=submits[0]["data_coding"],
            message_id=ids[0],
        )
        return SendResult(provider_message_id=ids[0], part_ids=tuple(ids) if total > 1 else ())

    def _submit_part(
        self,
        submit: dict[str, Any],
        number: int,
        total: int,
        check_in_time: Callable[[], None] | None = None,
    ) -> str:
        """Submit one part; later parts of a long text are retried here a few times."""
        attempts = 1 if number == 1 else 1 + self._part_retries
        for attempt in range(1, attempts + 1):
            try:
                return self._submit_once(submit, check_in_time)
            except SendError as error:
                if not error.retryable or attempt == attempts:
                    if number > 1:
                        error.detail = f"part {number} of {total}: {error.detail}".strip()
                    raise
                time.sleep(self._part_retry_pause * attempt)
                self._bound.wait(self._bind_wait)
        raise AssertionError("unreachable")

    def _submit_once(self, submit: dict[str, Any], check_in_time: Callable[[], None] | None) -> str:
        loop = self._loop
        if loop is None or not self._bound.is_set():
            raise SendError("unavailable", retryable=True, detail="no SMPP bind to the SMSC")
        future = asyncio.run_coroutine_threadsafe(self._submit(submit, check_in_time), loop)
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
                "unavailable", retryable=True, detail=f"SMPP link: {first_word(error)}"
            ) from None
        except NotBound:
            raise SendError(
                "unavailable", retryable=True, detail="no SMPP bind to the SMSC"
            ) from None
        return submitted_id(status, message_id)

    async def _submit(
        self, submit: dict[str, Any], check_in_time: Callable[[], None] | None
    ) -> tuple[int, str | None]:
        smsc = self._smsc
        if smsc is None:
            raise NotBound
        if check_in_time is not None:
            # Here, on the link's loop, not before the hand-off to it: on a starved
            # machine the loop can take longer to run this than the slot leaves.
            check_in_time()
        response = await smsc.submit_sm(**submit)
        return int(response.command_status), response.message_id

    def drain_events(self, timeout: float = 10.0) -> None:
        """Wait until every receipt and inbound text received so far is handled (tests).
        Its answer to the SMSC follows on the link's loop a moment later."""
        self._deliveries.drain(timeout)
