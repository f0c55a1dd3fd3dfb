"""Random datagrams at the controller's RTP port during a live call through the real
Asterisk (issue 16): garbage, truncated RTP, a wrong payload type, a wrong SSRC, huge
packets; from a stranger's address and spoofed from Asterisk's own (a raw socket: we run as
root in the tests). The call goes on, each kind is counted where the endpoint drops it, and
the caller's next question is answered."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import pytest

from smartpbx_ari.events import CallEnded, CallStarted, Said
from smartpbx_ari.media.endpoint import RtpStats
from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from tests.e2e.conftest import Controller

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]
PER_KIND = 300  # datagrams of each kind, from each source


def datagrams(rng: random.Random, payload_type: int) -> dict[str, list[bytes]]:
    """The fuzz, by kind."""
    def rtp(pt: int, ssrc: int, size: int) -> bytes:
        return RtpPacket(pt, rng.randrange(2**16), rng.randrange(2**32), ssrc,
                         payload=rng.randbytes(size)).serialize()

    return {
        "garbage": [rng.randbytes(rng.randrange(0, 1500)) for _ in range(PER_KIND)],
        "truncated": [rtp(payload_type, 7, 160)[: rng.randrange(0, 12)] for _ in range(PER_KIND)]
        + [bytes([0x8F]) + rtp(payload_type, 7, 0)[1:] for _ in range(PER_KIND)],  # 15 CSRCs
        "wrong payload type": [rtp(rng.choice([3, 13, 96, 101, 127]), 7, 160)
                               for _ in range(PER_KIND)],
        "wrong SSRC": [rtp(payload_type, rng.randrange(2**32), 160) for _ in range(PER_KIND)],
        "huge": [rtp(payload_type, 7, rng.randrange(9000, 65000)) for _ in range(20)]
        + [rng.randbytes(65000) for _ in range(20)],
    }


def spoofed(source: tuple[str, int], target: tuple[str, int], payload: bytes) -> bytes:
    """An IPv4 + UDP datagram from ``source`` (the kernel fills in the IP checksum; a UDP
    checksum of 0 means none)."""
    udp = struct.pack("!HHHH", source[1], target[1], 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP,
                     0, socket.inet_aton(source[0]), socket.inet_aton(target[0]))
    return ip + udp


async def test_random_datagrams_at_the_calls_rtp_port_leave_the_call_answering(
    controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    rng = random.Random(20261128)
    async with caller.dial(dial) as line:
        started = await controller.until(CallStarted)
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        session = controller.app.sessions[started.call_id]
        endpoint = session.endpoint
        assert endpoint is not None and endpoint.remote is not None
        target = (controller.app.settings.media.bind_host, session.port)
        fuzz = datagrams(rng, endpoint.payload_type)
        assert session.media is not None
        jitter = session.media.receiver.stats
        before, resyncs = RtpStats(**vars(endpoint.stats)), jitter.resyncs
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger, \
                socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
            for kind in fuzz.values():
                for data in kind:
                    stranger.sendto(data, target)
                    raw.sendto(spoofed(endpoint.remote, target, data), target)
                    sent += 2
                    if sent % 20 == 0:  # a flood, but the loop reads as it comes
                        await asyncio.sleep(0.005)
        await asyncio.sleep(0.5)
        stats = endpoint.stats
        # each kind counted where it is dropped; the kernel may drop a few of a flood
        # before we read them (a full socket buffer), hence "most"
        assert stats.dropped_unknown_source - before.dropped_unknown_source >= 0.9 * sent / 2
        assert stats.dropped_malformed - before.dropped_malformed >= 0.9 * 2 * PER_KIND
        assert stats.dropped_payload_type - before.dropped_payload_type >= 0.9 * PER_KIND
        # the spoofed wrong-SSRC packets passed every check: the jitter buffer resynced
        assert stats.rx_packets - before.rx_packets >= 0.9 * PER_KIND
        assert jitter.resyncs - resyncs >= 0.5 * PER_KIND
        # the wrong-SSRC packets are heard as a burst of noise: let any answer to it end
        await line.wait_quiet(line.answered_at, timeout=30)
        while not controller.events.queue.empty():
            controller.events.queue.get_nowait()
        spoken = await line.say("Which payment methods do you accept?")
        async with asyncio.timeout(30):
            while (said := await controller.until(Said, 30)).intent != "payment":
                pass
        assert said.call_id == started.call_id
        assert await line.wait_voice(spoken, 10) is not None  # and the caller hears it
        assert started.call_id in controller.app.sessions  # the same call, still up
    ended = await controller.until(CallEnded)
    assert ended.reason == "caller hung up"
