"""The RTP receiver: packets in any order in, the caller's audio in order out, silence
when the caller's RTP pauses."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from smartpbx_ari.media import codecs
from smartpbx_ari.media.receiver import RtpReceiver
from smartpbx_ari.media.rtp import RtpPacket

pytestmark = pytest.mark.unit


def _packet(seq: int, level: int) -> RtpPacket:
    pcm = np.full(160, level, np.int16)
    return RtpPacket(payload_type=0, sequence_number=seq, timestamp=seq * 160,
                     payload=codecs.ulaw_encode(pcm))


@pytest.mark.smoke
async def test_reordered_packets_come_out_in_order() -> None:
    queue: asyncio.Queue[RtpPacket] = asyncio.Queue()
    for seq in (0, 2, 1, 3, 4):
        queue.put_nowait(_packet(seq, 100 * (seq + 1)))
    receiver = RtpReceiver(queue, "ulaw", depth=3)
    levels = [int(np.median(await receiver.recv())) for _ in range(5)]
    assert levels == sorted(levels) and len(set(levels)) == 5
    assert receiver.stats.reordered == 1


async def test_a_pause_in_the_rtp_is_heard_as_silence() -> None:
    queue: asyncio.Queue[RtpPacket] = asyncio.Queue()
    receiver = RtpReceiver(queue, "ulaw", silence_fill_s=0.04)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    frame = await receiver.recv()
    assert loop.time() - t0 >= 0.035
    assert frame.shape == (160,) and not frame.any()
    assert not (await receiver.recv()).any()  # 40 ms of silence: two frames


async def test_a_held_packet_is_flushed_when_the_rtp_pauses() -> None:
    queue: asyncio.Queue[RtpPacket] = asyncio.Queue()
    queue.put_nowait(_packet(10, 500))
    queue.put_nowait(_packet(12, 700))  # 11 missing: 12 waits in the jitter buffer
    receiver = RtpReceiver(queue, "ulaw", depth=3, silence_fill_s=0.02, stall_s=0.02)
    heard = [int(np.median(await receiver.recv())) for _ in range(3)]
    assert heard[0] > 0 and heard[1] > heard[0] and heard[2] == 0


async def test_a_stall_mid_speech_is_waited_out_not_cut_into_the_words() -> None:
    """Loud audio, then 120 ms without RTP, then the late packets in a burst: the words
    come out whole. After quiet audio the same pause is silence at once (a turn ends)."""
    queue: asyncio.Queue[RtpPacket] = asyncio.Queue()
    receiver = RtpReceiver(queue, "ulaw", silence_fill_s=0.04, stall_s=0.3)
    loop = asyncio.get_running_loop()

    async def late_burst(first: int, level: int) -> None:
        await asyncio.sleep(0.12)
        for seq in range(first, first + 6):
            queue.put_nowait(_packet(seq, level))

    for seq in range(4):  # (the jitter buffer primes with its depth)
        queue.put_nowait(_packet(seq, 3000))
    assert [int(np.median(await receiver.recv())) > 2000 for _ in range(2)] == [True] * 2
    burst = asyncio.create_task(late_burst(4, 3000))
    heard = [int(np.median(await receiver.recv())) for _ in range(8)]
    assert min(heard) > 2000, heard  # no silence cut in
    await burst
    queue.put_nowait(_packet(10, 20))  # quiet now: a pause is the caller's silence
    await receiver.recv()
    t0 = loop.time()
    assert not (await receiver.recv()).any()
    assert loop.time() - t0 < 0.2


async def test_wideband_frames_are_decoded_at_16_khz() -> None:
    queue: asyncio.Queue[RtpPacket] = asyncio.Queue()
    g722 = codecs.codec("g722")
    payload = codecs.encoder("g722")(np.zeros(g722.samples_per_frame, np.int16))
    queue.put_nowait(RtpPacket(payload_type=9, sequence_number=1, timestamp=0,
                               payload=payload))
    receiver = RtpReceiver(queue, "g722")
    assert (await receiver.recv()).shape == (320,)


async def test_a_busy_loop_late_for_the_rtp_is_not_a_pause_in_it() -> None:
    """The next packet came in time, but the event loop ran late (a loaded box), so the
    fill's timer and the packet fall due together, the timer first: the packet is
    there, so nothing is filled. Before, 60 ms of silence went into the caller's word
    (the closure before "stock"'s k: "is this product and stop", under load only)."""
    queue: asyncio.Queue[RtpPacket] = asyncio.Queue()
    receiver = RtpReceiver(queue, "ulaw", depth=0, silence_fill_s=0.02)
    loop = asyncio.get_running_loop()
    queue.put_nowait(_packet(0, 100))  # quiet: the short fill timer applies
    assert int(np.median(await receiver.recv())) > 0

    def busy() -> None:  # the loop is held past the timer, while the packet arrives
        time.sleep(0.05)
        loop.call_soon(queue.put_nowait, _packet(1, 120))

    loop.call_later(0.005, busy)
    frame = await receiver.recv()
    assert int(np.median(frame)) > 0, "silence was filled in while the packet waited"
    assert queue.empty()


async def test_a_stall_of_the_loop_past_the_fill_deadline_gives_the_rtp_time_to_come() -> None:
    """The loop stalled past the fill's deadline, and so did what relays the caller's RTP
    on this box (a loaded box): the packet comes just after the loop is back, within one
    more fill period from then, and is heard, not 60 ms of silence cut into a word."""
    queue: asyncio.Queue[RtpPacket] = asyncio.Queue()
    receiver = RtpReceiver(queue, "ulaw", depth=0, silence_fill_s=0.04)
    loop = asyncio.get_running_loop()
    queue.put_nowait(_packet(0, 100))  # quiet: the short fill timer applies
    assert int(np.median(await receiver.recv())) > 0

    def stall() -> None:  # past the deadline; the packet is sent once the loop is back
        time.sleep(0.1)
        loop.call_later(0.01, queue.put_nowait, _packet(1, 120))

    loop.call_later(0.005, stall)
    frame = await receiver.recv()
    assert int(np.median(frame)) > 0, "silence was filled in for the loop's own stall"
    # a real pause after it is still heard as silence
    assert not (await receiver.recv()).any()
