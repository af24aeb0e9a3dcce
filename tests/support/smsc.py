"""A real SMSC for tests: the ``smpp34`` package's SMPP 3.4 server on 127.0.0.1.

``smpp34.Server`` accepts binds, hands us every ``submit_sm`` to answer, and lets us push
``deliver_sm`` to a bound ESME. This helper runs it on its own asyncio loop in a thread
and adds what an operator's SMSC does and the tests need:

* message ids in hexadecimal or decimal, and receipts that quote them in either base;
* delivery receipts (``esm_class`` 0x04, SMPP 3.4 appendix B text with a 12-digit
  ``done date``, as many SMSCs send), after the ``submit_sm_resp`` or *before* it;
* receipts with a chosen failure for chosen numbers;
* throttling (``ESME_RTHROTTLED`` / ``ESME_RMSGQFUL``) for the next N submits;
* mobile-originated texts, long ones concatenated with a user-data header;
* redelivery, as SMPP 3.4 has an SMSC do: a ``deliver_sm`` (receipt or text) answered with
  a temporary error (``ESME_RX_T_APPN``, ``ESME_RSYSERR``, ``ESME_RMSGQFUL``,
  ``ESME_RTHROTTLED``) or not answered at all (the link dropped, or no
  ``deliver_sm_resp`` within the response timer) is delivered again after a pause — on
  the same bind, or on the next one when that bind is gone; a permanent error
  (``ESME_RX_P_APPN``, ``ESME_RX_R_APPN``, anything else) ends it. Every attempt and its
  answer is recorded (:attr:`FakeSmsc.deliveries`);
* a TCP proxy in front of the server that records every PDU the client sends (decoded
  with ``smpp34.decode``, so fields the server API does not expose, such as
  ``validity_period``, can be checked) and can drop every link at once, the way a
  network failure does.

Everything is stopped and joined by :meth:`FakeSmsc.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import smpp34

from callerconnect.adapters.sms.smpp_text import (
    DATA_CODING_GSM7,
    decode_short_message,
    split_udh,
    strip_udh,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Submitted:
    """A ``submit_sm`` the SMSC accepted (or refused: ``message_id`` None)."""

    session_id: str
    destination: str
    dest_ton: int
    source: str
    source_ton: int
    data_coding: int
    esm_class: int
    short_message: bytes
    registered_delivery: int
    message_id: str | None
    status: int
    at: float = field(default_factory=time.monotonic)  # when the SMSC had it

    @property
    def text(self) -> str:
        body = self.short_message
        if self.esm_class & 0x40:
            body, _ = strip_udh(body)
        return decode_short_message(body, self.data_coding)

    @property
    def concatenation(self) -> tuple[int, int, int] | None:
        if not self.esm_class & 0x40:
            return None
        _, concat = strip_udh(self.short_message)
        return None if concat is None else (concat.reference, concat.total, concat.number)


# deliver_sm_resp statuses after which an SMSC tries again (SMPP 3.4 5.1.3: "ESME receiver
# temporary app error", and the system / queue / throttling errors SMSCs treat alike).
TEMPORARY_STATUSES = frozenset({0x64, 0x08, 0x14, 0x58})


@dataclass(frozen=True)
class Delivery:
    """One ``deliver_sm`` attempt and the ESME's answer: ``status`` None means none came
    (the link dropped, or the response timer ran out)."""

    kind: str  # "receipt" or "mo"
    attempt: int
    session_id: str
    short_message: bytes
    status: int | None
    sent_at: float  # time.monotonic()
    answered_at: float


@dataclass
class _Pending:
    """A ``deliver_sm`` the SMSC still owes an ESME."""

    kind: str
    fields: dict[str, Any]
    session_id: str | None = None  # where it goes first (a receipt: the submitter's bind)
    attempts: int = 0


@dataclass
class _Behaviour:
    id_base: str = "hex"  # how submit_sm_resp writes ids
    receipt_base: str = "same"  # how receipts quote them: same, decimal, hex
    receipts: bool = True
    receipt_before_resp: bool = False
    receipt_delay: float = 0.0
    hold_receipts: bool = False  # keep receipts until release_receipts()
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)  # dest -> (stat, err)
    refuse_next: list[int] = field(default_factory=list)  # command_status for next submits
    # Redelivery of deliver_sm: the pause between attempts, how many attempts before the
    # SMSC gives up, and its response timer (smpp34's own is 30 s).
    redeliver_after: float = 0.2
    deliver_attempts: int = 50
    response_timeout: float = 5.0


class FakeSmsc:
    def __init__(self) -> None:
        self.behaviour = _Behaviour()
        self.server_port = free_port()
        self.port = 0  # the proxy's: what the client connects to
        self._ids = itertools.count(0x1A2B3C00)
        self._lock = threading.Lock()
        self._submitted: list[Submitted] = []
        self._client_pdus: list[Any] = []
        self._sessions: dict[str, Any] = {}
        self._binds = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held: list[_Pending] = []  # for the next bind
        self._deliveries: list[Delivery] = []
        self._manual_receipts: list[tuple[Submitted, str, int]] = []

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeSmsc:
        self._thread = threading.Thread(target=self._run, name="fake-smsc", daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "SMSC did not start"
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None or self._stop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "SMSC did not stop"

    def __enter__(self) -> FakeSmsc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = smpp34.Server("127.0.0.1", self.server_port, system_id="FAKESMSC")
        await server.start()
        proxy = await asyncio.start_server(self._proxy, "127.0.0.1", 0)
        self.port = proxy.sockets[0].getsockname()[1]
        events = asyncio.ensure_future(self._serve(server))
        self._ready.set()
        await self._stop.wait()
        events.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await events
        proxy.close()
        self._drop_links()
        await proxy.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.stop()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # --- what happened -------------------------------------------------------------

    @property
    def submitted(self) -> list[Submitted]:
        with self._lock:
            return list(self._submitted)

    @property
    def accepted(self) -> list[Submitted]:
        return [s for s in self.submitted if s.message_id is not None]

    @property
    def client_submits(self) -> list[Any]:
        """Every ``submit_sm`` PDU the client sent, decoded (``smpp34.SubmitSm``)."""
        with self._lock:
            return list(self._client_pdus)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every ``deliver_sm`` attempt that was answered or given up on, in order."""
        with self._lock:
            return list(self._deliveries)

    def statuses(self, kind: str) -> list[int | None]:
        """The answers to every ``deliver_sm`` attempt of one kind ("mo", "receipt")."""
        return [d.status for d in self.deliveries if d.kind == kind]

    @property
    def binds(self) -> int:
        with self._lock:
            return self._binds

    @property
    def errors(self) -> list[BaseException]:
        with self._lock:
            return list(self._errors)

    def texts_to(self, destination: str) -> list[str]:
        """Whole texts accepted for ``destination`` (parts joined), in order."""
        texts: list[str] = []
        pending: dict[int, dict[int, str]] = {}
        for sub in self.accepted:
            if sub.destination != destination:
                continue
            concat = sub.concatenation
            if concat is None:
                texts.append(sub.text)
                continue
            ref, total, number = concat
            parts = pending.setdefault(ref, {})
            parts[number] = sub.text
            if len(parts) == total:
                texts.append("".join(parts[n] for n in sorted(parts)))
                del pending[ref]
        return texts

    # --- misbehaviour and traffic ----------------------------------------------------

    def refuse_next(self, count: int, status: int = smpp34.ESME_RTHROTTLED) -> None:
        with self._lock:
            self.behaviour.refuse_next.extend([status] * count)

    def release_receipts(self, count: int | None = None) -> None:
        """Send ``count`` (default: all) of the receipts kept by ``hold_receipts``."""
        self._call(self._release(count))

    async def _release(self, count: int | None) -> None:
        self.behaviour.hold_receipts = False
        take = len(self._manual_receipts) if count is None else count
        batch, self._manual_receipts = self._manual_receipts[:take], self._manual_receipts[take:]
        for sub, message_id, number in batch:
            await self._receipt(sub, message_id, number)
        self.behaviour.hold_receipts = bool(self._manual_receipts)

    def drop_links(self) -> None:
        """Cut every TCP connection between clients and the SMSC (a network failure)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._drop_links)

    def send_mo(
        self,
        source: str,
        text: str,
        *,
        destination: str = "13438036032",
        wait: bool = True,
    ) -> None:
        """A caller's text to a bound ESME (long ones as concatenated parts). ``wait``:
        return once every part was answered (or given up on); else at once."""
        self._call(self._send_mo(source, text, destination, wait), timeout=60)

    async def _send_mo(self, source: str, text: str, destination: str, wait: bool) -> None:
        encoded = split_udh(text, 0x42)
        for _ in range(500):  # the client may be bound before the server lists its session
            if self._sessions:
                break
            await asyncio.sleep(0.01)
        assert self._sessions, "no ESME bound to send the text to"
        parts = [
            _Pending(
                "mo",
                {
                    "destination_addr": destination,
                    "short_message": part,
                    "source_addr": source.lstrip("+"),
                    "source_addr_ton": 1 if source.startswith("+") else 0,
                    "source_addr_npi": 1,
                    "esm_class": encoded.esm_class,
                    "data_coding": encoded.data_coding,
                },
            )
            for part in encoded.parts
        ]
        if wait:
            await self._deliver_in_order(parts)
        else:
            self._spawn(self._deliver_in_order(parts))

    async def _deliver_in_order(self, items: list[_Pending]) -> None:
        try:
            for item in items:
                await self._deliver(item)
        except Exception as error:  # a bug in the helper: report it to the test
            with self._lock:
                self._errors.append(error)

    async def _deliver(self, item: _Pending) -> None:
        """Deliver until the ESME accepts or refuses for good, the SMSC gives up, or no
        ESME is bound (then it waits for the next bind)."""
        while True:
            esme = self._sessions.get(item.session_id or "") or next(
                iter(self._sessions.values()), None
            )
            if esme is None:
                self._held.append(item)
                return
            item.session_id = esme.session_id
            item.attempts += 1
            sent_at = time.monotonic()
            status: int | None
            try:
                response = await asyncio.wait_for(
                    esme.deliver_sm(**item.fields), self.behaviour.response_timeout
                )
                status = int(response.command_status)
            except smpp34.SmppError:  # the link dropped: that bind is gone
                status = None
                self._sessions.pop(esme.session_id, None)
            except TimeoutError:  # no deliver_sm_resp in time
                status = None
            with self._lock:
                self._deliveries.append(
                    Delivery(
                        item.kind,
                        item.attempts,
                        esme.session_id,
                        bytes(item.fields["short_message"]),
                        status,
                        sent_at,
                        time.monotonic(),
                    )
                )
            if status == 0:
                return
            if status is not None and status not in TEMPORARY_STATUSES:
                return  # refused for good: the SMSC drops it
            if item.attempts >= self.behaviour.deliver_attempts:
                return  # given up
            await asyncio.sleep(self.behaviour.redeliver_after)

    # --- the server --------------------------------------------------------------------

    async def _serve(self, server: Any) -> None:
        while True:
            event = await server.next()
            try:
                if isinstance(event, smpp34.Esme):
                    with self._lock:
                        self._binds += 1
                    self._sessions[event.session_id] = event
                    if self._held:
                        held, self._held = self._held, []
                        self._spawn(self._deliver_in_order(held))
                elif isinstance(event, smpp34.Unbound):
                    self._sessions.pop(event.session_id, None)
                elif isinstance(event, smpp34.SubmitSmEvent):
                    self._spawn(self._on_submit(event))
            except Exception as error:  # a bug in the helper: report it to the test
                with self._lock:
                    self._errors.append(error)

    def _new_id(self) -> tuple[str, int]:
        number = next(self._ids)
        text = format(number, "X") if self.behaviour.id_base == "hex" else str(number)
        return text, number

    def _receipt_id(self, message_id: str, number: int) -> str:
        style = self.behaviour.receipt_base
        if style == "decimal":
            return str(number)
        if style == "hex":
            return format(number, "x")
        return message_id

    async def _on_submit(self, event: Any) -> None:
        try:
            with self._lock:
                refuse = self.behaviour.refuse_next.pop(0) if self.behaviour.refuse_next else None
            message_id, number = (None, 0) if refuse is not None else self._new_id()
            sub = Submitted(
                session_id=event.session_id,
                destination=event.destination_addr,
                dest_ton=event.dest_addr_ton,
                source=event.source_addr,
                source_ton=event.source_addr_ton,
                data_coding=event.data_coding,
                esm_class=event.esm_class,
                short_message=bytes(event.short_message),
                registered_delivery=event.registered_delivery,
                message_id=message_id,
                status=refuse or 0,
            )
            with self._lock:
                self._submitted.append(sub)
            if refuse is not None:
                event.reject(refuse)
                return
            assert message_id is not None
            wants_receipt = self.behaviour.receipts and event.registered_delivery & 0x01
            if wants_receipt and self.behaviour.receipt_before_resp:
                await self._receipt(sub, message_id, number)
            event.accept(message_id)
            if wants_receipt and not self.behaviour.receipt_before_resp:
                await asyncio.sleep(self.behaviour.receipt_delay)
                await self._receipt(sub, message_id, number)
        except Exception as error:
            with self._lock:
                self._errors.append(error)

    async def _receipt(self, sub: Submitted, message_id: str, number: int) -> None:
        """Send a receipt on the submitter's session (another one, or the next bind, when
        that session is gone), delivered again until it is accepted."""
        if self.behaviour.hold_receipts:
            self._manual_receipts.append((sub, message_id, number))
            return
        stat, err = self.behaviour.failures.get(sub.destination, ("DELIVRD", "000"))
        now = datetime.now(UTC)
        delivered = "001" if stat == "DELIVRD" else "000"
        text = (
            f"id:{self._receipt_id(message_id, number)} sub:001 dlvrd:{delivered} "
            f"submit date:{now:%y%m%d%H%M} done date:{now:%y%m%d%H%M%S} "
            f"stat:{stat} err:{err} text:{sub.text[:20]}"
        )
        fields = {
            "destination_addr": sub.source,
            "short_message": text.encode("latin-1", errors="replace"),
            "source_addr": sub.destination,
            "source_addr_ton": sub.dest_ton,
            "esm_class": 0x04,
            "data_coding": DATA_CODING_GSM7,
        }
        await self._deliver(_Pending("receipt", fields, session_id=sub.session_id))

    # --- the proxy -----------------------------------------------------------------------

    async def _proxy(self, client_reader: asyncio.StreamReader, client_writer: Any) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.server_port
            )
        except OSError:
            client_writer.close()
            return
        self._links.update({client_writer, server_writer})
        upstream = asyncio.ensure_future(self._pump(client_reader, server_writer, record=True))
        downstream = asyncio.ensure_future(self._pump(server_reader, client_writer, record=False))
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        for writer in (client_writer, server_writer):
            self._links.discard(writer)
            writer.close()
        for task in (upstream, downstream):
            task.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool
    ) -> None:
        try:
            while True:
                header = await reader.readexactly(16)
                length = int.from_bytes(header[:4], "big")
                body = await reader.readexactly(length - 16)
                pdu = header + body
                if record and int.from_bytes(header[4:8], "big") == 0x00000004:
                    with self._lock:
                        self._client_pdus.append(smpp34.decode(pdu))
                writer.write(pdu)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return

    def _drop_links(self) -> None:
        for writer in list(self._links):
            transport = writer.transport
            transport.abort()
        self._links.clear()
