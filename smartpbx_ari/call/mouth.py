"""Our side of one call: answers as 16 kHz PCM in, paced RTP out, and the echo reference.

The player (``media.player``) paces one answer at a time and is held, resumed or stopped
on the ear's word; the levels of the frames sent tell the ear how loud our own voice
may come back as echo.
"""

from __future__ import annotations

import collections
import secrets
from collections.abc import AsyncIterator, Callable

import numpy as np

from smartpbx_ari.call.ear import RATE, Pcm, Playback
from smartpbx_ari.media import codecs
from smartpbx_ari.media.player import PacedPlayer, RtpPacketizer, split_frames
from smartpbx_ari.media.resample import Resampler
from smartpbx_ari.media.turn import rms

ECHO_WINDOW = 8  # frames (160 ms) of our own playback an echo may lag behind


class Mouth:
    def __init__(self, send: Callable[[bytes], None], codec_name: str) -> None:
        self.codec = codecs.codec(codec_name)
        self.encode = codecs.encoder(codec_name)
        self._send = send
        # Echo reference: levels of the frames queued for the player, and of those sent in
        # the last ECHO_WINDOW frames (an echo arrives within that tail).
        self._queued_levels: collections.deque[float] = collections.deque()
        self._sent_levels: collections.deque[float] = collections.deque(maxlen=ECHO_WINDOW)
        packetizer = RtpPacketizer.for_codec(self.codec, secrets.randbits(32))
        self.player = PacedPlayer(self._sent, packetizer)

    @property
    def playback(self) -> Playback:
        return Playback(self.player.playing, self.player.held,
                        max(self._sent_levels, default=0.0))

    async def play(self, audio: AsyncIterator[Pcm],
                   on_start: Callable[[], None] | None = None) -> None:
        """Say ``audio`` (16 kHz chunks, as they come); returns when said or stopped.
        ``on_start``: called as its first audio leaves (voice-to-voice is measured there)."""
        await self.player.play(self._frames(audio, on_start))
        self._queued_levels.clear()
        self._sent_levels.clear()

    def _sent(self, packet: bytes) -> None:
        self._send(packet)
        self._sent_levels.append(self._queued_levels.popleft() if self._queued_levels
                                 else 0.0)

    async def _frames(self, audio: AsyncIterator[Pcm],
                      on_start: Callable[[], None] | None) -> AsyncIterator[bytes]:
        """Whole codec frames of the chunks as they come; a chunk's tail waits for the
        next one (padding every chunk would put a gap in a streamed sentence)."""
        codec = self.codec
        down = Resampler(RATE, codec.sample_rate) if codec.sample_rate != RATE else None
        n = codec.samples_per_frame
        rest = np.zeros(0, np.int16)
        first = True
        try:
            async for pcm in audio:
                if first:
                    self.player.packetizer.start_talkspurt()
                    first = False
                    if on_start is not None:
                        on_start()
                pcm = np.concatenate([rest, down.process(pcm) if down else pcm])
                whole = len(pcm) - len(pcm) % n
                rest = pcm[whole:]
                for frame in self._encoded(pcm[:whole]):
                    yield frame
        finally:  # stopped (barge-in) or said: the producer stops at once
            aclose = getattr(audio, "aclose", None)
            if aclose is not None:
                await aclose()
        if len(rest):
            for frame in self._encoded(np.concatenate([rest, np.zeros(n - len(rest), np.int16)])):
                yield frame

    def _encoded(self, pcm: Pcm) -> list[bytes]:
        codec = self.codec
        n = codec.samples_per_frame
        frames = split_frames(self.encode(pcm), codec.frame_bytes, codec.silence_byte)
        for i in range(len(frames)):
            self._queued_levels.append(rms(pcm[i * n : (i + 1) * n]))
        return frames
