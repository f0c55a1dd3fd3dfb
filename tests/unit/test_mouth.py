"""The mouth: chunks of a streamed sentence leave as one continuous run of frames (no
padding between chunks), the last frame padded, and each frame's level kept for the
echo reference."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from smartpbx_ari.call.mouth import Mouth
from smartpbx_ari.media import codecs
from smartpbx_ari.media.rtp import RtpPacket


async def _chunks(pcm: np.ndarray, sizes: list[int]) -> AsyncIterator[np.ndarray]:
    start = 0
    for size in sizes:
        yield pcm[start : start + size]
        start += size


async def test_streamed_chunks_play_as_one_run_of_frames() -> None:
    sent: list[bytes] = []
    mouth = Mouth(sent.append, "slin16")
    ramp = (np.arange(1000) * 13 % 20000 + 1).astype(np.int16)  # never zero
    await mouth.play(_chunks(ramp, [100, 250, 333, 317]))
    payload = b"".join(RtpPacket.parse(p).payload for p in sent)
    played = codecs.slin16_be_to_pcm(payload)
    assert len(sent) == 4  # 1000 samples: three whole 20 ms frames and one padded
    assert np.array_equal(played[:1000], ramp)  # no gap where one chunk met the next
    assert not played[1000:].any()


async def test_each_frame_sent_becomes_the_echo_reference() -> None:
    seen: list[float] = []
    mouth: Mouth

    def send(packet: bytes) -> None:
        seen.append(mouth.playback.level)  # the frames sent before this one

    mouth = Mouth(send, "slin16")
    loud = np.full(640, 8000, np.int16)  # two 20 ms frames, then two silent ones
    await mouth.play(_chunks(np.concatenate([loud, np.zeros(640, np.int16)]), [700, 580]))
    assert seen == [0.0, 8000.0, 8000.0, 8000.0]  # the loudest of the last 8 frames
    assert mouth.playback.level == 0.0  # said: nothing of ours can echo any more
