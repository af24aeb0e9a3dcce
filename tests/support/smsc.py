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
        self._held_receipts: list[tuple[Submitted, str, int]] = []
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

    def send_mo(self, source: str, text: str, *, destination: str = "13438036032") -> None:
        """A caller's text to every bound ESME (long ones as concatenated parts)."""
        self._call(self._send_mo(source, text, destination))

    async def _send_mo(self, source: str, text: str, destination: str) -> None:
        encoded = split_udh(text, 0x42)
        for _ in range(500):  # the client may be bound before the server lists its session
            if self._sessions:
                break
            await asyncio.sleep(0.01)
        assert self._sessions, "no ESME bound to send the text to"
        for esme in list(self._sessions.values()):
            for part in encoded.parts:
                response = await esme.deliver_sm(
                    destination,
                    part,
                    source_addr=source.lstrip("+"),
                    source_addr_ton=1 if source.startswith("+") else 0,
                    source_addr_npi=1,
                    esm_class=encoded.esm_class,
                    data_coding=encoded.data_coding,
                )
                assert response.is_success, response
            return

    # --- the server --------------------------------------------------------------------

    async def _serve(self, server: Any) -> None:
        while True:
            event = await server.next()
            try:
                if isinstance(event, smpp34.Esme):
                    with self._lock:
                        self._binds += 1
                    self._sessions[event.session_id] = event
                    if self._held_receipts:
                        self._spawn(self._redeliver(event))
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
        """Send a receipt on the submitter's session; like an SMSC, keep it for the next
        bind when that session is gone."""
        if self.behaviour.hold_receipts:
            self._manual_receipts.append((sub, message_id, number))
            return
        esme = self._sessions.get(sub.session_id)
        if esme is None:
            self._held_receipts.append((sub, message_id, number))
            return
        try:
            await self._send_receipt(esme, sub, message_id, number)
        except smpp34.SmppError:
            self._held_receipts.append((sub, message_id, number))

    async def _redeliver(self, esme: Any) -> None:
        held, self._held_receipts = self._held_receipts, []
        for sub, message_id, number in held:
            try:
                await self._send_receipt(esme, sub, message_id, number)
            except smpp34.SmppError:
                self._held_receipts.append((sub, message_id, number))

    async def _send_receipt(self, esme: Any, sub: Submitted, message_id: str, number: int) -> None:
        stat, err = self.behaviour.failures.get(sub.destination, ("DELIVRD", "000"))
        now = datetime.now(UTC)
        delivered = "001" if stat == "DELIVRD" else "000"
        text = (
            f"id:{self._receipt_id(message_id, number)} sub:001 dlvrd:{delivered} "
            f"submit date:{now:%y%m%d%H%M} done date:{now:%y%m%d%H%M%S} "
            f"stat:{stat} err:{err} text:{sub.text[:20]}"
        )
        await esme.deliver_sm(
            sub.source,
            text.encode("latin-1", errors="replace"),
            source_addr=sub.destination,
            source_addr_ton=sub.dest_ton,
            esm_class=0x04,
            data_coding=DATA_CODING_GSM7,
        )

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
