"""The thin UDP shell around RTP: one endpoint per call, ports from a pool.

Inbound packets go to a bounded queue; when it is full the *oldest* frame is dropped and
counted, so the receive callback never blocks and the newest audio wins. Datagrams that
do not parse, carry an unexpected payload type, or come from an unknown address are
dropped and counted; the call goes on.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import typing
from dataclasses import dataclass

from smartpbx_ari.media.rtp import RtpPacket

log = logging.getLogger(__name__)
BIND_TRIES = 16  # ports of the pool tried before a call's media gives up


class PortPool:
    """UDP ports for External Media; a port is reused only after it is released."""

    def __init__(self, start: int, end: int) -> None:
        self._free = list(range(start, end + 1))
        self._used: set[int] = set()

    def acquire(self) -> int:
        if not self._free:
            raise RuntimeError("RTP port pool exhausted")
        port = self._free.pop(0)
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        return len(self._used)


@dataclass
class RtpStats:
    rx_packets: int = 0
    rx_payload_bytes: int = 0
    tx_packets: int = 0
    dropped_malformed: int = 0
    dropped_payload_type: int = 0
    dropped_unknown_source: int = 0
    dropped_overflow: int = 0


class RtpEndpoint(asyncio.DatagramProtocol):
    """Receives RTP into a bounded queue; sends to the learned or given remote address."""

    def __init__(self, payload_type: int, queue_size: int, allowed_host: str) -> None:
        self.payload_type = payload_type
        self.allowed_host = allowed_host
        self.remote: tuple[str, int] | None = None
        self.queue: asyncio.Queue[RtpPacket] = asyncio.Queue(maxsize=queue_size)
        self.stats = RtpStats()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, host: str, port: int, payload_type: int, queue_size: int,
                   allowed_host: str) -> RtpEndpoint:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: cls(payload_type, queue_size, allowed_host), local_addr=(host, port))
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    @classmethod
    async def open_in(cls, pool: PortPool, host: str, payload_type: int, queue_size: int,
                      allowed_host: str) -> tuple[int, RtpEndpoint]:
        """On a port of ``pool``. Another program may hold a port of the range (an
        ephemeral port the kernel gave it): that port goes back to the end of the pool and
        the next is tried, so a clash costs a try, not the call."""
        for _ in range(BIND_TRIES):
            port = pool.acquire()
            try:
                return port, await cls.open(host, port, payload_type, queue_size,
                                            allowed_host)
            except OSError as err:
                pool.release(port)
                if err.errno != errno.EADDRINUSE:
                    raise
                log.warning("RTP port %d is held by another program; trying the next", port)
        raise RuntimeError(f"RTP port pool: {BIND_TRIES} ports in a row are held by other "
                           "programs (media.port_start/port_end overlap their ports?)")

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        source = (str(addr[0]), int(addr[1]))
        if not self._source_ok(source):
            self.stats.dropped_unknown_source += 1
            return
        try:
            pkt = RtpPacket.parse(data)
        except ValueError:
            self.stats.dropped_malformed += 1
            return
        if pkt.payload_type != self.payload_type:
            self.stats.dropped_payload_type += 1
            return
        self.stats.rx_packets += 1
        self.stats.rx_payload_bytes += len(pkt.payload)
        if self.queue.full():
            self.queue.get_nowait()
            self.stats.dropped_overflow += 1
        self.queue.put_nowait(pkt)

    def _source_ok(self, source: tuple[str, int]) -> bool:
        if self.remote is not None:
            return source == self.remote
        return source[0] == self.allowed_host

    def send(self, data: bytes) -> None:
        if self.transport is None or self.remote is None or self.transport.is_closing():
            return
        self.transport.sendto(data, self.remote)
        self.stats.tx_packets += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
