"""The RTP endpoint drops bad input, counts it, and never blocks on a full queue."""

from __future__ import annotations

import asyncio
import socket

import pytest

from smartpbx_ari.media.endpoint import PortPool, RtpEndpoint
from smartpbx_ari.media.rtp import PT_PCMU, PT_SLIN16, RtpPacket
from tests.fixtures.ports import free_udp_port

pytestmark = pytest.mark.unit


def _pkt(seq: int, pt: int = PT_SLIN16) -> bytes:
    return RtpPacket(payload_type=pt, sequence_number=seq, timestamp=seq * 320,
                     ssrc=7, payload=bytes(640)).serialize()


async def _settle(endpoint: RtpEndpoint, total: int) -> None:
    async with asyncio.timeout(2):
        while True:
            s = endpoint.stats
            seen = (s.rx_packets + s.dropped_malformed + s.dropped_payload_type
                    + s.dropped_unknown_source)
            if seen >= total:
                return
            await asyncio.sleep(0.01)


async def test_bad_packets_are_dropped_and_counted() -> None:
    port = free_udp_port()
    ep = await RtpEndpoint.open("127.0.0.1", port, PT_SLIN16, queue_size=10,
                                allowed_host="127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind(("127.0.0.1", 0))
        for data in (b"\x80\x00short", _pkt(1, PT_PCMU), _pkt(2), b"\x00" * 20):
            sender.sendto(data, ("127.0.0.1", port))
        await _settle(ep, 4)
        ep.remote = ("127.0.0.1", sender.getsockname()[1] + 1)  # now only that peer counts
        sender.sendto(_pkt(3), ("127.0.0.1", port))
        await _settle(ep, 5)
    ep.close()
    s = ep.stats
    assert (s.rx_packets, s.dropped_malformed, s.dropped_payload_type,
            s.dropped_unknown_source) == (1, 2, 1, 1)
    assert ep.queue.get_nowait().sequence_number == 2


async def test_full_queue_drops_the_oldest() -> None:
    port = free_udp_port()
    ep = await RtpEndpoint.open("127.0.0.1", port, PT_SLIN16, queue_size=3,
                                allowed_host="127.0.0.1")
    for seq in range(5):
        ep.datagram_received(_pkt(seq), ("127.0.0.1", 4000))
    ep.close()
    assert ep.stats.dropped_overflow == 2
    assert [ep.queue.get_nowait().sequence_number for _ in range(3)] == [2, 3, 4]


def test_port_pool_reuses_only_released_ports() -> None:
    pool = PortPool(20000, 20001)
    a, b = pool.acquire(), pool.acquire()
    assert {a, b} == {20000, 20001}
    with pytest.raises(RuntimeError, match="exhausted"):
        pool.acquire()
    pool.release(a)
    assert pool.acquire() == a
    assert pool.in_use == 2


async def test_a_port_another_program_holds_costs_a_try_not_the_call() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))  # a port the kernel gave another program
        held = squatter.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", held + 1))  # the next one is free (else: OSError)
        pool = PortPool(held, held + 1)
        port, ep = await RtpEndpoint.open_in(pool, "127.0.0.1", PT_SLIN16, 10, "127.0.0.1")
        try:
            assert port == held + 1 and pool.in_use == 1
            assert pool.acquire() == held  # back in the pool, for when it is free again
        finally:
            ep.close()


async def test_a_pool_whose_ports_are_all_held_says_so() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        held = squatter.getsockname()[1]
        with pytest.raises(RuntimeError, match="held by other programs"):
            await RtpEndpoint.open_in(PortPool(held, held), "127.0.0.1", PT_SLIN16, 10,
                                      "127.0.0.1")
