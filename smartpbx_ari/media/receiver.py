"""One call's inbound audio: RTP packets in (the endpoint's bounded queue), 20 ms PCM out.

The receiver owns reordering (jitter buffer), decoding and silence fill, in the shape of
aiortc's ``RTCRtpReceiver`` -> ``MediaStreamTrack.recv()``: ``await recv()`` gives the
next frame of the caller's audio. A pause in the caller's RTP (DTX, or a peer that sends
nothing while silent) comes out as silence, or a turn would never end. A pause right
after loud audio is more likely a stall (a network or a sender catching up) than the
caller falling silent mid-word: it is waited out longer (:data:`STALL_S`) before it is
filled, so a late burst does not come with silence cut into its words. A wait that times
out with a packet already queued was our lateness, not a pause (a loaded event loop runs
the timer before the task the packet woke): nothing is filled. A wait whose timer fired
well past its deadline (the loop stalled: a busy box) waits one more fill period from
then, since whatever sends or relays the caller's RTP on this box stalled with it.
"""

from __future__ import annotations

import asyncio
from collections import deque

import numpy as np
import numpy.typing as npt

from . import codecs
from .jitter import JitterBuffer, JitterStats
from .rtp import RtpPacket
from .turn import rms

Pcm = npt.NDArray[np.int16]
FRAME_S = 0.02
SILENCE_FILL_S = 0.06  # a gap this long in the caller's RTP is heard as silence
STALL_S = 0.25  # ... unless the last frame was speech: then a gap this long
LOUD_RMS = 300.0  # about -40 dBFS: a frame of speech, not line noise or comfort noise
LATE_S = 0.02  # a fill deadline met this late was our loop's lateness, not the caller's pause


class RtpReceiver:
    def __init__(self, packets: asyncio.Queue[RtpPacket], codec_name: str, depth: int = 3,
                 silence_fill_s: float = SILENCE_FILL_S, stall_s: float = STALL_S) -> None:
        self.codec = codecs.codec(codec_name)
        self._packets = packets
        self._jitter = JitterBuffer(depth)
        self._decode = codecs.decoder(codec_name)
        self._silence = np.zeros(self.codec.samples_per_frame, np.int16)
        self._fill_s, self._stall_s = silence_fill_s, max(stall_s, silence_fill_s)
        self._last = self._silence  # the last frame decoded
        self._fill_frames = max(1, round(silence_fill_s / FRAME_S))
        self._ready: deque[Pcm] = deque()

    @property
    def stats(self) -> JitterStats:
        return self._jitter.stats

    async def recv(self) -> Pcm:
        """The next frame of the caller's audio (returns at once while frames are ready)."""
        while not self._ready:
            await self._refill()
        return self._ready.popleft()

    async def _refill(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + (self._stall_s if rms(self._last) >= LOUD_RMS else self._fill_s)
        for grace in (True, False):
            try:
                async with asyncio.timeout_at(due):
                    packet = await self._packets.get()
            except TimeoutError:
                if not self._packets.empty():  # the RTP came on time; we ran late (a busy loop)
                    return
                if grace and loop.time() - due > LATE_S:
                    # the loop stalled past the deadline: a sender or relay that stalled
                    # with it (a loaded box) gets one more fill period from now
                    due = loop.time() + self._fill_s
                    continue
                self._fill()
                return
            self._deliver(self._jitter.push(packet))
            return

    def _fill(self) -> None:
        """A real pause in the caller's RTP: what the jitter buffer holds, then silence."""
        self._deliver(self._jitter.flush())
        self._ready.extend([self._silence] * self._fill_frames)
        self._last = self._silence

    def _deliver(self, packets: list[RtpPacket]) -> None:
        frames = [self._decode(p.payload) for p in packets]
        if frames:
            self._ready.extend(frames)
            self._last = frames[-1]
