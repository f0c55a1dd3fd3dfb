"""The caller's RTP socket: sends on media's 20 ms :class:`FrameSchedule`, logs what it hears.

Between :meth:`RtpStream.start` and :meth:`RtpStream.close` the process's one pacer
thread ticks the stream every 20 ms on the monotonic clock, sending queued audio/DTMF or
(``keepalive``) silence through the sans-IO :class:`RtpSender`. A thread, not a task: a
caller is a phone elsewhere, and must not stall when the event loop it shares with the
system under test does (a busy moment would otherwise stop its voice mid-word, a gap the
PBX's mixing bridge fills with silence). One thread for every stream, not one each: twenty
callers wake the interpreter 50 times a second, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
import time
import typing
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from smartpbx_ari.media.codecs import Codec, Pcm, codec_for_payload_type
from smartpbx_ari.media.player import FrameSchedule
from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.sipcaller.rtp import (
    PTIME,
    ULAW,
    ReceivedAudio,
    RtpSender,
    TickItem,
    audio_ticks,
    dtmf_ticks,
)
from smartpbx_ari.sipcaller.transport import Addr

log = logging.getLogger(__name__)

MAX_TICK_LAG_FRAMES = 10  # 200 ms behind schedule: resync instead of bursting


@dataclass
class _Job:
    ticks: deque[TickItem]
    done: asyncio.Future[None]
    begun: bool = False


class RtpStream(asyncio.DatagramProtocol):
    """The caller's RTP socket: a 20 ms pacer for what it sends, a log of what it hears.

    ``play`` returns as the last frame of its audio leaves: the caller's "end of speech".
    """

    def __init__(self, *, keepalive: bool = True, max_seconds: float = 600.0) -> None:
        self.audio = ReceivedAudio(max_frames=round(max_seconds / PTIME))
        self.keepalive = keepalive
        self.invalid_packets = 0
        self.remote: Addr | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sender: RtpSender | None = None
        self._jobs: deque[_Job] = deque()
        self._lock = threading.Lock()  # the jobs and the sending, loop and pacer thread
        self._loop = asyncio.get_running_loop()
        self._halt = False  # under _lock: once set, nothing more is sent
        self._sock: socket.socket | None = None
        self.spurt_at: float | None = None  # when the last play()'s first frame went out

    @classmethod
    async def open(cls, local_ip: str = "127.0.0.1", port: int = 0, *,
                   keepalive: bool = True) -> RtpStream:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((local_ip, port))
            sock.setblocking(False)
            _, stream = await loop.create_datagram_endpoint(
                lambda: cls(keepalive=keepalive), sock=sock)
        except BaseException:
            sock.close()
            raise
        stream._sock = sock  # the pacer thread sends on it; the loop's transport receives
        return stream

    # ---- asyncio protocol --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport is not a DatagramTransport subclass
        self._transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        arrival = time.monotonic()
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.invalid_packets += 1
            return
        self.audio.add(arrival, packet)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)

    # ---- what was heard ----------------------------------------------------------
    @property
    def local_addr(self) -> Addr:
        if self._transport is None:
            raise RuntimeError("RTP stream is not open")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def received(self) -> list[tuple[float, Pcm]]:
        return self.audio.frames

    def first_voice_after(self, t: float, rms_threshold: float = 500.0) -> float | None:
        return self.audio.first_voice_after(t, rms_threshold)

    def recorded_pcm(self, since: float | None = None, until: float | None = None) -> Pcm:
        return self.audio.recorded_pcm(since, until)

    # ---- sending -----------------------------------------------------------------
    def start(self, remote: Addr, payload_type: int = ULAW.payload_type,
              dtmf_payload_type: int | None = 101) -> None:
        if self._sender is not None:
            raise RuntimeError("RTP stream already started")
        try:
            codec = codec_for_payload_type(payload_type)
        except ValueError:
            raise ValueError(f"cannot send RTP payload type {payload_type}") from None
        self.remote = remote
        self.audio.use(codec)
        self._sender = RtpSender(ssrc=secrets.randbits(32), codec=codec,
                                 dtmf_payload_type=dtmf_payload_type, keepalive=self.keepalive,
                                 sequence=secrets.randbits(16), timestamp=secrets.randbits(32))
        PACER.add(self)

    @property
    def codec(self) -> Codec:
        """The negotiated codec: :meth:`play` takes int16 PCM at its sample rate."""
        return self._started().codec

    async def play(self, pcm: Pcm) -> None:
        """Send int16 PCM (at the codec's rate) as one talkspurt; returns once it is out."""
        await self._run(audio_ticks(pcm, self._started().codec))

    async def send_dtmf(self, digit: str, duration: float = 0.1) -> None:
        if self._started().dtmf_payload_type is None:
            raise RuntimeError("the peer did not accept telephone-event; cannot send DTMF")
        await self._run(dtmf_ticks(digit, duration, self._started().codec.timestamp_step))

    async def go_silent(self) -> None:
        """Send nothing more, and say nothing (no BYE): a phone that crashed or lost its
        network. What arrives is still heard."""
        self._stop_pacer()
        self._fail_jobs(ConnectionError("RTP stream went silent"))

    async def close(self) -> None:
        self._stop_pacer()
        self._fail_jobs(ConnectionError("RTP stream closed"))
        if self._transport is not None:
            self._transport.close()
            await asyncio.wait_for(asyncio.shield(self._lost), 1.0)

    def _started(self) -> RtpSender:
        if self._sender is None:
            raise RuntimeError("RTP stream not started (no remote address yet)")
        return self._sender

    async def _run(self, ticks: Sequence[TickItem]) -> None:
        if self._sender is None or self._halt:
            raise ConnectionError("RTP pacer is not running (stream closed or failed)")
        job = _Job(deque(ticks), self._loop.create_future())
        with self._lock:
            self._jobs.append(job)
        try:
            await job.done
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._jobs.remove(job)  # cancelled mid-way: stop sending the rest

    def _stop_pacer(self) -> None:
        with self._lock:  # a tick under way ends first: after this, nothing is sent
            self._halt = True
        PACER.remove(self)

    def _pace(self, skip: int) -> bool:
        """From the pacer thread, every 20 ms: one frame out (after ``skip`` frames' time
        lost to a stall). False: this stream is done with (closed, failed, or its loop is
        gone, as a task on it would be)."""
        if self._loop.is_closed():
            return False
        try:
            with self._lock:
                if self._halt:
                    return False
                if skip:
                    self._started().skip(skip)
                self._tick()
                return True
        except Exception as err:
            log.exception("RTP pacer failed")
            with self._lock:
                self._halt = True
            # no play() may wait forever on a dead pacer
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._fail_jobs, err)
            return False

    def _fail_jobs(self, err: Exception) -> None:
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            if not job.done.done():
                job.done.set_exception(err)

    def _tick(self) -> None:
        """Under ``_lock``: the next frame of the first job, or keepalive silence."""
        job = self._jobs[0] if self._jobs else None
        item = job.ticks.popleft() if job and job.ticks else None
        if job is not None and not job.begun:
            job.begun, self.spurt_at = True, time.monotonic()
        for datagram in self._started().tick(item):
            self._send(datagram)
        if job is not None and not job.ticks:
            self._jobs.popleft()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(_settle, job.done)

    def _send(self, datagram: bytes) -> None:
        """From the pacer thread: the socket itself (an asyncio transport is the loop's)."""
        if self._sock is not None and self.remote is not None:
            try:
                self._sock.sendto(datagram, self.remote)
            except (BlockingIOError, InterruptedError):  # a full send buffer: lost, as on a line
                log.debug("RTP send buffer full; a packet was dropped")
            except OSError as err:  # closed meanwhile, or unreachable: said in the log
                log.debug("RTP send failed: %s", err)


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


class _Pacer:
    """The process's one clock for every started :class:`RtpStream`: a thread that ticks
    each of them every 20 ms, and ends when none is left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: list[RtpStream] = []
        self._thread: threading.Thread | None = None

    def add(self, stream: RtpStream) -> None:
        with self._lock:
            self._streams.append(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rtp-pacer",
                                                daemon=True)
                self._thread.start()

    def remove(self, stream: RtpStream) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._streams.remove(stream)

    def _run(self) -> None:
        schedule = FrameSchedule(PTIME, MAX_TICK_LAG_FRAMES)
        schedule.start(time.monotonic())
        skip = 0
        while True:
            with self._lock:
                streams = list(self._streams)
                if not streams:
                    self._thread = None  # the next add() starts another
                    return
            for stream in streams:
                if not stream._pace(skip):
                    self.remove(stream)
            schedule.advance()
            skip = schedule.catch_up(time.monotonic())  # stalled: resync, don't burst
            time.sleep(max(0.0, schedule.due() - time.monotonic()))


PACER = _Pacer()
