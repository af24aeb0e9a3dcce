"""The loopback hop that lets the SMPP provider answer ``deliver_sm`` itself, once what
it carried is recorded (smpp.py's module docstring says why the library cannot)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

import smpp34

DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005


class AckRelay:
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
                if intercept and command_id == DELIVER_SM and self._take(pdu):
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
        writer.write(struct.pack(">IIII", 17, DELIVER_SM_RESP, command_status, sequence) + b"\0")
        return True
