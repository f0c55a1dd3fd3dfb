"""The SIP UDP socket shared by the caller and the phone: datagrams in, parsed messages out."""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Callable

from smartpbx_ari.sipcaller.sip import SIPMessage

log = logging.getLogger(__name__)

Addr = tuple[str, int]


class SipEndpoint(asyncio.DatagramProtocol):
    """One UDP socket: parses what arrives for ``handler``, serializes what is sent."""

    def __init__(self) -> None:
        self.handler: Callable[[SIPMessage, Addr], None] = lambda msg, addr: None
        self._transport: asyncio.DatagramTransport | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, local_ip: str = "127.0.0.1", port: int = 0) -> SipEndpoint:
        _, endpoint = await asyncio.get_running_loop().create_datagram_endpoint(
            cls, local_addr=(local_ip, port))
        return endpoint

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport is not a DatagramTransport subclass
        self._transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        try:
            msg = SIPMessage.parse(data)
        except ValueError as err:
            log.warning("dropping malformed SIP datagram from %s:%s: %s", addr[0], addr[1], err)
            return
        log.debug("SIP <- %s:%s %s", addr[0], addr[1], msg.summary())
        self.handler(msg, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)

    @property
    def local_addr(self) -> Addr:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, msg: SIPMessage, addr: Addr) -> None:
        assert self._transport is not None
        log.debug("SIP -> %s:%s %s", addr[0], addr[1], msg.summary())
        self._transport.sendto(msg.serialize(), addr)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            await asyncio.wait_for(asyncio.shield(self._lost), 1.0)
