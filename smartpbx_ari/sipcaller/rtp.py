"""The caller's RTP, sans-IO: 20 ms ticks (audio, DTMF, silence) to packets through
media's :class:`RtpPacketizer`, and a log of the audio heard and when it arrived."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from smartpbx_ari.media.codecs import CODECS, Codec, Pcm, decoder, encoder
from smartpbx_ari.media.player import RtpPacketizer
from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.media.turn import rms

PTIME = 0.02
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
               "A": 12, "B": 13, "C": 14, "D": 15}
DTMF_VOLUME = 10  # -10 dBm0
DTMF_END_REPEATS = 3  # RFC 4733 §2.5.1.4: the end packet is sent three times
ULAW = CODECS["ulaw"]


@dataclass(frozen=True)
class AudioTick:
    pcm: Pcm  # one 20 ms frame; encoded when sent, so a stateful codec sees send order


@dataclass(frozen=True)
class DtmfTick:
    event: int
    duration: int  # samples since the event began, this packet included
    first: bool
    end: bool


TickItem = AudioTick | DtmfTick


def audio_ticks(pcm: Pcm, codec: Codec = ULAW) -> list[AudioTick]:
    """Cut int16 PCM at the codec's rate into 20 ms frames (the last one zero-padded)."""
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise ValueError(f"PCM must be mono (1-D), got shape {pcm.shape}")
    if pcm.dtype != np.int16:
        raise TypeError(f"PCM must be int16, got {pcm.dtype}")
    n = codec.samples_per_frame
    padded = np.concatenate([pcm, np.zeros(-len(pcm) % n, np.int16)])
    return [AudioTick(padded[i : i + n]) for i in range(0, len(padded), n)]


def dtmf_ticks(digit: str, duration: float = 0.1,
               samples_per_frame: int = ULAW.timestamp_step) -> list[DtmfTick]:
    """RFC 4733 event packets for one key press, one per 20 ms tick."""
    event = DTMF_EVENTS.get(digit.upper())
    if event is None or len(digit) != 1:
        raise ValueError(f"not a DTMF digit: {digit!r} (want 0-9, *, #, A-D)")
    n = max(1, round(duration / PTIME))
    return [DtmfTick(event, samples_per_frame * (k + 1), first=k == 0, end=k == n - 1)
            for k in range(n)]


class RtpSender:
    """Turns one 20 ms tick at a time into RTP datagrams: continuous seq and timestamp,
    marker on the first packet of each talkspurt and of each DTMF event."""

    def __init__(self, *, ssrc: int, codec: Codec = ULAW,
                 dtmf_payload_type: int | None = 101, keepalive: bool = True,
                 sequence: int = 0, timestamp: int = 0) -> None:
        self.codec = codec
        self.packetizer = RtpPacketizer.for_codec(codec, ssrc, first_sequence=sequence,
                                                  first_timestamp=timestamp)
        # One encoder for everything sent, in send order: G.722 (ADPCM) state must match
        # the far end's decoder, or every talkspurt starts with a burst of noise.
        self._encode = encoder(codec.name)
        self._zeros = np.zeros(codec.samples_per_frame, np.int16)
        self.dtmf_payload_type = dtmf_payload_type
        self.keepalive = keepalive
        self._talking = False
        self._event_timestamp = timestamp

    def tick(self, item: TickItem | None) -> list[bytes]:
        """Datagrams for the next 20 ms: audio, DTMF, or silence (``None``)."""
        talkspurt_start = isinstance(item, AudioTick) and not self._talking
        self._talking = isinstance(item, AudioTick)
        if isinstance(item, AudioTick):
            if talkspurt_start:
                self.packetizer.start_talkspurt()
            return [self.packetizer.packetize(self._encode(item.pcm))]
        if isinstance(item, DtmfTick):
            packets = self._dtmf(item)
        elif self.keepalive:  # keeps strictrtp and NAT bindings fed between talkspurts
            return [self.packetizer.packetize(self._encode(self._zeros))]
        else:
            packets = []
        self.packetizer.skip(1)  # time runs on over the tick
        return packets

    def skip(self, frames: int) -> None:
        """Frames' time lost (a stalled loop): the timestamps jump over it."""
        self.packetizer.skip(frames)

    def _dtmf(self, item: DtmfTick) -> list[bytes]:
        if self.dtmf_payload_type is None:
            raise ValueError("the peer did not accept telephone-event")
        if item.first:  # every packet of an event carries its start time
            self._event_timestamp = self.packetizer.timestamp
        flags = (0x80 if item.end else 0) | DTMF_VOLUME
        payload = struct.pack("!BBH", item.event, flags, item.duration)
        count = DTMF_END_REPEATS if item.end else 1
        return [self.packetizer.packetize_event(self.dtmf_payload_type, payload,
                                                self._event_timestamp,
                                                marker=item.first and i == 0)
                for i in range(count)]


class ReceivedAudio:
    """Every audio packet heard, decoded, with the arrival time it was fed."""

    MAX_GAP_FILL = 16000 * 10  # larger timestamp jumps are a new stream, not a gap

    def __init__(self, max_frames: int = 30_000, codec: Codec = ULAW) -> None:
        self.use(codec)
        self.frames: list[tuple[float, Pcm]] = []
        self.other: list[tuple[float, RtpPacket]] = []  # telephone-event, CN, ...
        self.dropped = 0  # packets over max_frames, not kept
        self._timestamps: list[int] = []
        self._max_frames = max_frames

    def add(self, arrival: float, packet: RtpPacket) -> None:
        if len(self.frames) + len(self.other) >= self._max_frames:
            self.dropped += 1
            return
        if packet.payload_type != self.payload_type:
            self.other.append((arrival, packet))  # telephone-event, comfort noise, ...
            return
        pcm = self.decode(packet.payload)
        self.frames.append((arrival, pcm))
        self._timestamps.append(packet.timestamp)

    def use(self, codec: Codec) -> None:
        """Decode audio of ``codec`` (with fresh state) from now on; the rest is "other"."""
        self.payload_type = codec.payload_type
        self.decode = decoder(codec.name)

    def first_voice_after(self, t: float, rms_threshold: float = 500.0) -> float | None:
        """Arrival time of the first frame at or after ``t`` louder than the threshold."""
        return next((arrival for arrival, pcm in self.frames
                     if arrival >= t and rms(pcm) >= rms_threshold), None)

    def recorded_pcm(self, since: float | None = None, until: float | None = None) -> Pcm:
        """Frames in arrival order, timestamp gaps (lost packets) filled with silence."""
        parts: list[Pcm] = []
        end_ts: int | None = None
        for (arrival, pcm), ts in zip(self.frames, self._timestamps, strict=True):
            if (since is not None and arrival < since) or (until is not None and arrival > until):
                continue
            gap = 0 if end_ts is None else (ts - end_ts) & 0xFFFFFFFF
            if 0 < gap <= self.MAX_GAP_FILL:
                parts.append(np.zeros(gap, np.int16))
            parts.append(pcm)
            end_ts = (ts + len(pcm)) & 0xFFFFFFFF
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)
