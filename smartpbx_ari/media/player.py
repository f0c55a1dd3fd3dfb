"""Outbound RTP: a sans-IO packetizer and schedule, and an asyncio player pacing at 20 ms.

The packetizer owns sequence numbers and timestamps for the whole call, so they stay
continuous across answers. The schedule puts frame ``n`` at ``t0 + n * 20 ms`` from the
start, so timer lateness never accumulates into drift. The controller's player and the
synthetic caller's RTP stream both send through these two.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

from .codecs import Codec
from .rtp import RtpPacket

_SLACK = 1e-6  # float sums of 20 ms steps are a hair off; don't lose a whole frame to it


class RtpPacketizer:
    """Frames of codec payload in, RTP datagrams out (RFC 3550 numbering)."""

    def __init__(
        self, payload_type: int, ssrc: int, samples_per_frame: int, frame_bytes: int, *,
        first_sequence: int | None = None, first_timestamp: int | None = None,
    ) -> None:
        if samples_per_frame <= 0 or frame_bytes <= 0:
            raise ValueError("samples_per_frame and frame_bytes must be positive")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.samples_per_frame = samples_per_frame
        self.frame_bytes = frame_bytes
        # RFC 3550 wants random starting numbers; tests pass fixed ones.
        self._seq = secrets.randbits(16) if first_sequence is None else first_sequence & 0xFFFF
        self._ts = secrets.randbits(32) if first_timestamp is None else first_timestamp
        self._marker = False

    @classmethod
    def for_codec(cls, codec: Codec, ssrc: int, *, first_sequence: int | None = None,
                  first_timestamp: int | None = None) -> RtpPacketizer:
        return cls(codec.payload_type, ssrc, codec.timestamp_step, codec.frame_bytes,
                   first_sequence=first_sequence, first_timestamp=first_timestamp)

    @property
    def sequence_number(self) -> int:
        """Sequence number of the next packet."""
        return self._seq

    @property
    def timestamp(self) -> int:
        """RTP timestamp of the next packet."""
        return self._ts

    def start_talkspurt(self) -> None:
        """Mark the next packet: the receiver may then re-adapt its jitter buffer."""
        self._marker = True

    def skip(self, frames: int) -> None:
        """Advance the timestamp over frames not sent (silence), as wall time goes on."""
        if frames < 0:
            raise ValueError(f"cannot skip {frames} frames")
        self._ts = (self._ts + frames * self.samples_per_frame) & 0xFFFFFFFF

    def packetize(self, payload: bytes) -> bytes:
        if len(payload) != self.frame_bytes:
            # Timestamps advance by whole frames; a short frame would desync them.
            raise ValueError(f"frame is {len(payload)} bytes, expected {self.frame_bytes}")
        packet = RtpPacket(payload_type=self.payload_type, sequence_number=self._seq,
                           timestamp=self._ts, ssrc=self.ssrc, marker=self._marker,
                           payload=payload)
        self._marker = False
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + self.samples_per_frame) & 0xFFFFFFFF
        return packet.serialize()

    def packetize_event(self, payload_type: int, payload: bytes, timestamp: int, *,
                        marker: bool = False) -> bytes:
        """One packet of a named event (RFC 4733 DTMF): its own payload type, the event's
        start ``timestamp``; only the sequence number advances (``skip`` moves time on)."""
        packet = RtpPacket(payload_type=payload_type, sequence_number=self._seq,
                           timestamp=timestamp, ssrc=self.ssrc, marker=marker, payload=payload)
        self._seq = (self._seq + 1) & 0xFFFF
        return packet.serialize()


class FrameSchedule:
    """When each frame is due: ``t0 + n * frame_s``, sans-IO (the caller feeds the clock).

    A sender more than ``max_lag_frames`` behind restarts from now instead of bursting
    the backlog (which would overflow the far end's jitter buffer); :meth:`catch_up`
    says how many frames' time was lost, for the packetizer to skip.
    """

    def __init__(self, frame_s: float = 0.02, max_lag_frames: int = 3) -> None:
        if frame_s <= 0:
            raise ValueError(f"frame_s must be positive, got {frame_s}")
        self.frame_s = frame_s
        self.max_lag_frames = max_lag_frames
        self._t0 = 0.0
        self._n = 0  # frames sent since start()

    def start(self, now: float) -> None:
        self._t0, self._n = now, 0

    @property
    def sent(self) -> int:
        return self._n

    def due(self) -> float:
        """When the next frame is due."""
        return self._t0 + self._n * self.frame_s

    def advance(self) -> None:
        """One frame went out."""
        self._n += 1

    def catch_up(self, now: float) -> int:
        """Frames to skip when more than ``max_lag_frames`` late (else 0); the schedule
        moves on by as many, so the next frame is due now."""
        lag = now - self.due()
        if lag <= self.max_lag_frames * self.frame_s:
            return 0
        frames = self.frames_in(lag)
        self._t0 += frames * self.frame_s
        return frames

    def frames_in(self, seconds: float) -> int:
        """Whole frames in ``seconds`` (float sums of 20 ms steps are a hair off)."""
        return int(seconds / self.frame_s + _SLACK)


def split_frames(data: bytes, frame_bytes: int, fill: int) -> list[bytes]:
    """Cut encoded audio into frames, padding the last with the codec's silence byte."""
    padded = data + bytes([fill]) * (-len(data) % frame_bytes)
    return [padded[i : i + frame_bytes] for i in range(0, len(padded), frame_bytes)]


async def _next(it: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(it)
    except StopAsyncIteration:
        return None


async def _frames(source: AsyncIterable[bytes] | Iterable[bytes],
                  stopped: asyncio.Future[None]) -> AsyncGenerator[bytes, None]:
    """Yield frames until the source ends or ``stopped`` completes, even mid-wait."""
    if not isinstance(source, AsyncIterable):
        for frame in source:
            yield frame
        return
    it = aiter(source)
    fetch: asyncio.Future[bytes | None] | None = None
    try:
        while True:
            fetch = asyncio.ensure_future(_next(it))
            waiters: list[asyncio.Future[Any]] = [fetch, stopped]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not fetch.done():
                fetch.cancel()
                await asyncio.wait([fetch])
                return
            fetched = fetch.result()
            if fetched is None:
                return
            yield fetched
    finally:
        if fetch is not None and not fetch.done():  # cancelled mid-fetch (hang-up)
            fetch.cancel()
            await asyncio.wait([fetch])
        if inspect.isasyncgen(it):
            await it.aclose()  # the producer's cleanup (e.g. stop synthesis) runs now


class PacedPlayer:
    """Sends one answer at a time at real-time pace; ``stop()`` is barge-in."""

    def __init__(
        self, send: Callable[[bytes], None], packetizer: RtpPacketizer,
        frame_s: float = 0.02, clock: Callable[[], float] = time.monotonic,
        max_lag_frames: int = 3,
    ) -> None:
        self._send = send
        self.packetizer = packetizer
        self.schedule = FrameSchedule(frame_s, max_lag_frames)
        self._clock = clock
        self._stopped: asyncio.Future[None] | None = None  # set while playing
        self._running = asyncio.Event()  # cleared by hold()
        self._running.set()
        self._schedule_end: float | None = None
        self.frames_sent = 0
        self.late_resyncs = 0

    @property
    def playing(self) -> bool:
        return self._stopped is not None

    def stop(self) -> None:
        """End the current ``play()`` now; a no-op when nothing is playing."""
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    @property
    def held(self) -> bool:
        return not self._running.is_set()

    def hold(self) -> None:
        """Pause sending at the next frame (a possible barge-in) until resume() or stop()."""
        if self.playing:
            self._running.clear()

    def resume(self) -> None:
        """Go on after hold(); the schedule resyncs to now, timestamps skip the pause."""
        self._running.set()

    async def play(self, frames: AsyncIterable[bytes] | Iterable[bytes]) -> int:
        """Send every frame on schedule; return how many were sent.

        Returns once the last frame has had its 20 ms of air time, or at ``stop()``.
        An async generator given as ``frames`` is closed when play ends early.
        """
        if self._stopped is not None:
            raise RuntimeError("PacedPlayer is already playing; stop() it first")
        self._stopped = asyncio.get_running_loop().create_future()
        try:
            return await self._run(frames, self._stopped)
        finally:
            self._stopped = None
            self._running.set()
            self._schedule_end = self.schedule.due()

    async def _run(self, frames: AsyncIterable[bytes] | Iterable[bytes],
                   stopped: asyncio.Future[None]) -> int:
        self._start_schedule()
        source = _frames(frames, stopped)
        try:
            async for payload in source:
                if not await self._slot(stopped):
                    break
                self._send(self.packetizer.packetize(payload))
                self.schedule.advance()
                self.frames_sent += 1
            else:
                await self._wait_until_due(stopped, resync=False)  # last frame's air time
        finally:
            await source.aclose()
        return self.schedule.sent

    async def _slot(self, stopped: asyncio.Future[None]) -> bool:
        """Wait until the next frame may go: not held, and its slot due (a hold that
        comes while it waits for the slot holds this frame too); False if stopped."""
        while True:
            if not await self._wait_while_held(stopped):
                return False
            if not await self._wait_until_due(stopped, resync=True):
                return False
            if self._running.is_set():
                return True

    async def _wait_while_held(self, stopped: asyncio.Future[None]) -> bool:
        if self._running.is_set():
            return True
        running = asyncio.ensure_future(self._running.wait())
        waiters: list[asyncio.Future[Any]] = [stopped, running]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            running.cancel()
        return not stopped.done()

    def _start_schedule(self) -> None:
        now = self._clock()
        if self._schedule_end is not None:
            # Timestamps follow wall time across the pause between two answers.
            idle = self.schedule.frames_in(now - self._schedule_end)
            self.packetizer.skip(max(idle, 0))
        self.packetizer.start_talkspurt()
        self.schedule.start(now)

    async def _wait_until_due(self, stopped: asyncio.Future[None], resync: bool) -> bool:
        """Wait for the next frame's slot; False if stopped meanwhile."""
        if resync and (lost := self.schedule.catch_up(self._clock())):
            # Far behind (slow source, stalled loop): the timestamps jump over the time lost.
            self.packetizer.skip(lost)
            self.late_resyncs += 1
        delay = self.schedule.due() - self._clock()
        if delay > 0:
            await asyncio.wait([stopped], timeout=delay)
        else:
            await asyncio.sleep(0)  # let stop() and the RTP receiver run even when behind
        return not stopped.done()
