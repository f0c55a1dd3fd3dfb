"""The synthetic caller's SIP user agent (UAC only) and its RTP stream, over asyncio UDP.

Protocol decisions live in sans-IO pieces: :mod:`.sip` (messages, digest), :mod:`.sdp`,
:class:`Dialog` (which requests to send), :class:`RtpSender` (20 ms ticks to RTP packets)
and :class:`ReceivedAudio` (what was heard, when). :class:`SipCall` and :class:`RtpStream`
are the socket-and-timer shells around them::

    async with SipCall.dial(user="caller", password=pw, exten="600") as call:
        await call.rtp.play(pcm)  # int16 at call.rtp.codec.sample_rate
        heard = call.rtp.first_voice_after(t0)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import struct
import time
import typing
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.media.codecs import CODECS, Codec, Pcm, codec_for_payload_type, decoder, encoder
from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.media.turn import rms
from smartpbx_ari.sipcaller.sdp import SdpAnswer, build_offer, parse_answer
from smartpbx_ari.sipcaller.sip import (
    SIPHeaders,
    SIPMessage,
    SIPMethod,
    authorization_for,
    header_param,
    name_addr_uri,
    new_branch,
    new_tag,
    split_header_list,
    uri_host_port,
)

log = logging.getLogger(__name__)

Addr = tuple[str, int]
T1 = 0.5  # RFC 3261 §17.1.1.1: RTT estimate; retransmissions double from here
T2 = 4.0  # cap on non-INVITE retransmission intervals
PTIME = 0.02
MAX_TICK_LAG = 0.2  # seconds behind schedule before the pacer resyncs instead of bursting
USER_AGENT = "SmartPBX-caller"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY"
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
               "A": 12, "B": 13, "C": 14, "D": 15}
DTMF_VOLUME = 10  # -10 dBm0
DTMF_END_REPEATS = 3  # RFC 4733 §2.5.1.4: the end packet is sent three times
ULAW = CODECS["ulaw"]


class SipError(UserFacingError):
    """The call failed with a final SIP status (or a local equivalent such as 408)."""

    code = "sip-error"

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"SIP {status} {reason}")
        self.status = status
        self.reason = reason


class SipTimeoutError(SipError, TimeoutError):
    """Nothing answered in time (RFC 3261 Timer B/F, or the answer timeout): status 408."""

    code = "sip-timeout"

    def __init__(self, reason: str) -> None:
        super().__init__(408, reason)


# ---- RTP: sans-IO sender -----------------------------------------------------------
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
    """Turns one 20 ms tick at a time into RTP packets: continuous seq and timestamp,
    marker on the first packet of each talkspurt and of each DTMF event."""

    def __init__(self, *, ssrc: int, codec: Codec = ULAW,
                 dtmf_payload_type: int | None = 101, keepalive: bool = True,
                 sequence: int = 0, timestamp: int = 0) -> None:
        self.ssrc = ssrc
        self.codec = codec
        self.payload_type = codec.payload_type
        # One encoder for everything sent, in send order: G.722 (ADPCM) state must match
        # the far end's decoder, or every talkspurt starts with a burst of noise.
        self._encode = encoder(codec.name)
        self._zeros = np.zeros(codec.samples_per_frame, np.int16)
        self.dtmf_payload_type = dtmf_payload_type
        self.keepalive = keepalive
        self.sequence = sequence
        self.timestamp = timestamp
        self._talking = False
        self._event_timestamp = timestamp

    def tick(self, item: TickItem | None) -> list[RtpPacket]:
        """Packets for the next 20 ms: audio, DTMF, or silence (``None``)."""
        ts = self.timestamp
        self.timestamp = (ts + self.codec.timestamp_step) & 0xFFFFFFFF
        talkspurt_start = isinstance(item, AudioTick) and not self._talking
        self._talking = isinstance(item, AudioTick)
        if isinstance(item, AudioTick):
            return [self._packet(self.payload_type, self._encode(item.pcm), ts, talkspurt_start)]
        if isinstance(item, DtmfTick):
            return self._dtmf(item, ts)
        if self.keepalive:  # keeps strictrtp and NAT bindings fed between talkspurts
            silence = self._encode(self._zeros)
            return [self._packet(self.payload_type, silence, ts, False)]
        return []

    def _dtmf(self, item: DtmfTick, ts: int) -> list[RtpPacket]:
        if self.dtmf_payload_type is None:
            raise ValueError("the peer did not accept telephone-event")
        if item.first:
            self._event_timestamp = ts  # every packet of an event carries its start time
        flags = (0x80 if item.end else 0) | DTMF_VOLUME
        payload = struct.pack("!BBH", item.event, flags, item.duration)
        count = DTMF_END_REPEATS if item.end else 1
        return [self._packet(self.dtmf_payload_type, payload, self._event_timestamp,
                             item.first and i == 0) for i in range(count)]

    def _packet(self, pt: int, payload: bytes, ts: int, marker: bool) -> RtpPacket:
        packet = RtpPacket(payload_type=pt, sequence_number=self.sequence, timestamp=ts,
                           ssrc=self.ssrc, marker=marker, payload=payload)
        self.sequence = (self.sequence + 1) & 0xFFFF
        return packet


# ---- RTP: sans-IO receive log ------------------------------------------------------
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


# ---- RTP: the UDP shell ------------------------------------------------------------
@dataclass
class _Job:
    ticks: deque[TickItem]
    done: asyncio.Future[None]


class RtpStream(asyncio.DatagramProtocol):
    """The caller's RTP socket: a 20 ms pacer for what it sends, a log of what it hears.

    Between :meth:`start` and :meth:`close` one task ticks every 20 ms on the loop's
    monotonic clock, sending queued audio/DTMF or (``keepalive``) mu-law silence.
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
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, local_ip: str = "127.0.0.1", port: int = 0, *,
                   keepalive: bool = True) -> RtpStream:
        loop = asyncio.get_running_loop()
        _, stream = await loop.create_datagram_endpoint(
            lambda: cls(keepalive=keepalive), local_addr=(local_ip, port))
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
        if self._ticker is not None:
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
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="rtp-pacer")

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

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # failures were logged
                await self._ticker
        self._fail_jobs(ConnectionError("RTP stream closed"))
        if self._transport is not None:
            self._transport.close()
            await asyncio.wait_for(asyncio.shield(self._lost), 1.0)

    def _started(self) -> RtpSender:
        if self._sender is None:
            raise RuntimeError("RTP stream not started (no remote address yet)")
        return self._sender

    async def _run(self, ticks: Sequence[TickItem]) -> None:
        if self._ticker is None or self._ticker.done():
            raise ConnectionError("RTP pacer is not running (stream closed or failed)")
        job = _Job(deque(ticks), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        try:
            await job.done
        finally:
            with contextlib.suppress(ValueError):
                self._jobs.remove(job)  # cancelled mid-way: stop sending the rest

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while True:
                self._tick()
                due += PTIME
                if loop.time() - due > MAX_TICK_LAG:
                    due = loop.time()  # we were stalled: resync rather than send a burst
                await asyncio.sleep(max(0.0, due - loop.time()))
        except Exception as err:
            log.exception("RTP pacer failed")
            self._fail_jobs(err)  # no play() may wait forever on a dead pacer
            raise

    def _fail_jobs(self, err: Exception) -> None:
        for job in self._jobs:
            if not job.done.done():
                job.done.set_exception(err)

    def _tick(self) -> None:
        job = self._jobs[0] if self._jobs else None
        item = job.ticks.popleft() if job and job.ticks else None
        for packet in self._started().tick(item):
            self._send(packet)
        if job is not None and not job.ticks:
            self._jobs.popleft()
            if not job.done.done():
                job.done.set_result(None)

    def _send(self, packet: RtpPacket) -> None:
        if self._transport is not None and self.remote is not None:
            self._transport.sendto(packet.serialize(), self.remote)


# ---- SIP: sans-IO dialog -----------------------------------------------------------
@dataclass
class Dialog:
    """One outgoing INVITE dialog (RFC 3261 §12) and the requests it sends."""

    call_id: str
    local_uri: str
    remote_uri: str
    contact: str
    sent_by: str  # our "host:port" for Via
    local_tag: str = field(default_factory=new_tag)
    cseq: int = 0
    remote_tag: str | None = None
    remote_target: str | None = None
    route_set: list[str] = field(default_factory=list)

    def invite(self, sdp: str, auth: tuple[str, str] | None = None) -> SIPMessage:
        self.cseq += 1
        msg = self._request(SIPMethod.INVITE, self.remote_uri, self.cseq, new_branch())
        msg.headers.add("Contact", f"<{self.contact}>")
        msg.headers.add("Allow", ALLOW)
        if auth is not None:
            msg.headers.add(*auth)
        msg.headers.add("Content-Type", "application/sdp")
        msg.body = sdp
        return msg

    def ack(self, invite: SIPMessage, response: SIPMessage) -> SIPMessage:
        """ACK for a 2xx (new transaction to the remote target) or, in the INVITE's
        transaction, for a failure response (RFC 3261 §13.2.2.4, §17.1.1.3)."""
        number, _ = invite.cseq
        if _status(response) < 300:
            msg = self._request(SIPMethod.ACK, self.target, number, new_branch())
            return msg
        msg = SIPMessage(method=SIPMethod.ACK, uri=invite.uri)
        msg.headers = _copy(invite, "Via", "Max-Forwards", "From")
        msg.headers.add("To", response.headers.get("To", invite.headers["To"]))
        msg.headers.add("Call-ID", self.call_id)
        msg.headers.add("CSeq", f"{number} ACK")
        return msg

    def cancel(self, invite: SIPMessage) -> SIPMessage:
        msg = SIPMessage(method=SIPMethod.CANCEL, uri=invite.uri)
        msg.headers = _copy(invite, "Via", "Max-Forwards", "From", "To", "Call-ID", "Route")
        msg.headers.add("CSeq", f"{invite.cseq[0]} CANCEL")
        return msg

    def request(self, method: SIPMethod) -> SIPMessage:
        """A new in-dialog request (BYE, ...)."""
        self.cseq += 1
        return self._request(method, self.target, self.cseq, new_branch())

    def confirm(self, response: SIPMessage) -> None:
        """Adopt the remote tag, target and route set of a 2xx (§12.1.2)."""
        self.remote_tag = header_param(response.headers.get("To", ""), "tag")
        contact = response.headers.get("Contact")
        self.remote_target = name_addr_uri(contact) if contact else self.remote_uri
        routes = [r for v in response.headers.get_all("Record-Route")
                  for r in split_header_list(v)]
        self.route_set = routes[::-1]

    def matches(self, request: SIPMessage) -> bool:
        to_tag = header_param(request.headers.get("To", ""), "tag")
        return request.call_id == self.call_id and to_tag == self.local_tag

    def next_hop(self, default: Addr) -> Addr:
        """First route, else the remote target, when it names an IP; else ``default``."""
        uri = name_addr_uri(self.route_set[0]) if self.route_set else self.target
        host, port = uri_host_port(uri)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return default  # a name: leave resolution to the outbound proxy (the server)
        return host, port

    @property
    def target(self) -> str:
        return self.remote_target or self.remote_uri

    def _request(self, method: SIPMethod, uri: str, cseq: int, branch: str) -> SIPMessage:
        to = f"<{self.remote_uri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")
        headers = SIPHeaders([
            ("Via", f"SIP/2.0/UDP {self.sent_by};rport;branch={branch}"),
            ("Max-Forwards", "70"),
            ("From", f"<{self.local_uri}>;tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method.value}"),
            ("User-Agent", USER_AGENT),
        ])
        for route in self.route_set:
            headers.add("Route", route)
        return SIPMessage(method=method, uri=uri, headers=headers)


def _copy(msg: SIPMessage, *names: str) -> SIPHeaders:
    headers = SIPHeaders()
    for name in names:
        for value in msg.headers.get_all(name)[:1] if name == "Via" else msg.headers.get_all(name):
            headers.add(name, value)
    return headers


def _status(response: SIPMessage) -> int:
    if response.status_code is None:
        raise ValueError(f"not a SIP response: {response.summary()}")
    return response.status_code


# ---- SIP: the UDP shell ------------------------------------------------------------
class _SipEndpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.handler: Callable[[SIPMessage, Addr], None] = lambda msg, addr: None
        self._transport: asyncio.DatagramTransport | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport is not a DatagramTransport subclass
        self._transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        try:
            msg = SIPMessage.parse(data)
        except ValueError as err:
            log.warning("dropping malformed SIP datagram from %s:%s: %s", addr[0], addr[1], err)
            return
        log.debug("SIP <- %s:%s %s", addr[0], addr[1], msg.summary())
        self.handler(msg, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)

    @property
    def local_addr(self) -> Addr:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, msg: SIPMessage, addr: Addr) -> None:
        assert self._transport is not None
        log.debug("SIP -> %s:%s %s", addr[0], addr[1], msg.summary())
        self._transport.sendto(msg.serialize(), addr)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            await asyncio.wait_for(asyncio.shield(self._lost), 1.0)


class SipCall:
    """One outgoing call. Make it with :meth:`dial`; the context hangs up on exit."""

    def __init__(self, endpoint: _SipEndpoint, rtp: RtpStream, dialog: Dialog, *,
                 server: Addr, user: str, password: str, t1: float = T1,
                 codec: Codec = ULAW) -> None:
        self.rtp = rtp
        self.dialog = dialog
        self.ended = asyncio.Event()
        self.provisional: list[int] = []  # 1xx statuses seen while dialling
        self.requests: list[SIPMessage] = []  # requests the peer sent us (BYE, re-INVITE...)
        self.answer: SIPMessage | None = None  # the 2xx that set the call up
        self.sdp_offer = build_offer(rtp.local_addr[0], rtp.local_addr[1], codec=codec,
                                     session_id=secrets.randbits(31))
        self._endpoint = endpoint
        self._server = server
        self._user = user
        self._password = password
        self._t1 = t1
        self._media: SdpAnswer | None = None
        self._pending: dict[tuple[str, str], asyncio.Queue[SIPMessage]] = {}
        self._ack: SIPMessage | None = None

    # ---- public API --------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def dial(
        cls, server: Addr = ("127.0.0.1", 5060), user: str = "caller", password: str = "",
        exten: str = "600", local_ip: str = "127.0.0.1", rtp_port: int = 0, *,
        answer_timeout: float = 30.0, t1: float = T1, keepalive: bool = True,
        codec: str = "ulaw",
    ) -> AsyncIterator[SipCall]:
        """Call ``exten`` at ``server`` offering ``codec`` (ulaw, alaw, or g722 for
        G.722 wideband); yields once answered (2xx ACKed, media flowing)."""
        rtp = await RtpStream.open(local_ip, rtp_port, keepalive=keepalive)
        try:
            call = await cls._open(rtp, server, user, password, exten, local_ip, t1,
                                   CODECS[codec])
        except BaseException:
            await rtp.close()
            raise
        try:
            await call._establish(answer_timeout)
            yield call
        finally:
            await call._shutdown()

    @property
    def media(self) -> SdpAnswer:
        if self._media is None:
            raise RuntimeError("the call has not been answered")
        return self._media

    @property
    def remote_rtp(self) -> Addr:
        return self.rtp.remote or (self.media.ip, self.media.port)

    @property
    def payload_type(self) -> int:
        return self.media.payload_type

    @property
    def dtmf_payload_type(self) -> int | None:
        return self.media.dtmf_payload_type

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    async def send_dtmf(self, digit: str, duration: float = 0.1) -> None:
        await self.rtp.send_dtmf(digit, duration)

    async def hangup(self, timeout: float = 5.0) -> SIPMessage | None:
        """Send BYE and return its final response; ``None`` if the call had already ended."""
        if self.ended.is_set():
            return None
        self.ended.set()
        try:
            async with asyncio.timeout(timeout):
                response = await self._request(self.dialog.request(SIPMethod.BYE))
        except SipTimeoutError:
            raise
        except TimeoutError:
            raise SipTimeoutError(f"no answer to BYE within {timeout} s") from None
        if _status(response) >= 300:
            raise SipError(_status(response), response.reason_phrase)
        return response

    # ---- setting up --------------------------------------------------------------
    @classmethod
    async def _open(cls, rtp: RtpStream, server: Addr, user: str, password: str, exten: str,
                    local_ip: str, t1: float, codec: Codec) -> SipCall:
        endpoint = _SipEndpoint()
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: endpoint, local_addr=(local_ip, 0))
        host, port = endpoint.local_addr
        dialog = Dialog(call_id=f"{secrets.token_hex(10)}@{host}",
                        local_uri=f"sip:{user}@{server[0]}", remote_uri=f"sip:{exten}@{server[0]}",
                        contact=f"sip:{user}@{host}:{port}", sent_by=f"{host}:{port}")
        call = cls(endpoint, rtp, dialog, server=server, user=user, password=password, t1=t1,
                   codec=codec)
        endpoint.handler = call._on_message
        return call

    async def _establish(self, answer_timeout: float) -> None:
        invite = self.dialog.invite(self.sdp_offer)
        response = await self._invite(invite, answer_timeout)
        if _status(response) in (401, 407):
            invite = self.dialog.invite(self.sdp_offer, self._authorization(response, invite))
            response = await self._invite(invite, answer_timeout)
        if _status(response) >= 300:
            raise SipError(_status(response), response.reason_phrase)
        self.answer = response
        self.dialog.confirm(response)
        self._ack = self.dialog.ack(invite, response)
        self._send(self._ack)
        self._start_media(response)

    def _authorization(self, challenge: SIPMessage, request: SIPMessage) -> tuple[str, str]:
        assert request.method is not None
        try:
            return authorization_for(challenge, method=request.method.value, uri=request.uri,
                                     username=self._user, password=self._password,
                                     cnonce=secrets.token_hex(8))
        except ValueError as err:
            raise SipError(_status(challenge), f"{challenge.reason_phrase} ({err})") from None

    def _start_media(self, response: SIPMessage) -> None:
        try:
            self._media = parse_answer(response.body or "")
        except ValueError as err:
            raise SipError(488, f"unusable SDP answer: {err}") from None
        self.rtp.start((self._media.ip, self._media.port), self._media.payload_type,
                       self._media.dtmf_payload_type)

    async def _shutdown(self) -> None:
        try:
            if self.answer is not None and not self.ended.is_set():
                try:
                    await self.hangup()
                except SipError as err:
                    log.warning("call %s: hangup failed: %s", self.call_id, err)
        finally:
            await self.rtp.close()
            await self._endpoint.close()

    # ---- client transactions -----------------------------------------------------
    async def _invite(self, invite: SIPMessage, answer_timeout: float) -> SIPMessage:
        """Run one INVITE transaction; return its final response, ACKed if non-2xx."""
        with self._transaction(invite) as queue:
            response = await self._exchange(invite, queue, final_only=False)
            deadline = asyncio.get_running_loop().time() + answer_timeout
            while _status(response) < 200:
                self.provisional.append(_status(response))
                response = await self._await_final(invite, queue, deadline)
        if _status(response) >= 300:
            self._send(self.dialog.ack(invite, response))
        return response

    async def _await_final(self, invite: SIPMessage, queue: asyncio.Queue[SIPMessage],
                           deadline: float) -> SIPMessage:
        try:
            async with asyncio.timeout_at(deadline):
                return await queue.get()
        except TimeoutError:
            await self._cancel(invite, queue)
            raise SipTimeoutError("no answer before the answer timeout") from None
        except asyncio.CancelledError:
            self._send(self.dialog.cancel(invite))
            raise

    async def _cancel(self, invite: SIPMessage, queue: asyncio.Queue[SIPMessage]) -> None:
        """CANCEL a ringing INVITE and ACK its 487, best effort."""
        cancel = self.dialog.cancel(invite)
        with self._transaction(cancel) as cancel_queue, contextlib.suppress(SipError):
            await self._exchange(cancel, cancel_queue, final_only=True)
        final = await _get_within(queue, 2.0, final_only=True)
        if final is not None:
            self._send(self.dialog.ack(invite, final))

    async def _request(self, request: SIPMessage) -> SIPMessage:
        """A non-INVITE transaction, answering one digest challenge if asked."""
        with self._transaction(request) as queue:
            response = await self._exchange(request, queue, final_only=True)
        if _status(response) not in (401, 407):
            return response
        assert request.method is not None
        retry = self.dialog.request(request.method)
        retry.headers.add(*self._authorization(response, retry))
        with self._transaction(retry) as queue:
            return await self._exchange(retry, queue, final_only=True)

    async def _exchange(self, request: SIPMessage, queue: asyncio.Queue[SIPMessage], *,
                        final_only: bool) -> SIPMessage:
        """Send with UDP retransmissions (Timers A/E) until a response; Timer B/F = 64*T1."""
        loop = asyncio.get_running_loop()
        interval, deadline = self._t1, loop.time() + 64 * self._t1
        while (remaining := deadline - loop.time()) > 0:
            self._send(request)
            response = await _get_within(queue, min(interval, remaining), final_only=final_only)
            if response is not None:
                return response
            interval = interval * 2 if request.method is SIPMethod.INVITE else min(interval * 2, T2)
        raise SipTimeoutError(f"no response to {request.summary()} from "
                              f"{self._destination()[0]}:{self._destination()[1]}")

    @contextlib.contextmanager
    def _transaction(self, request: SIPMessage) -> Iterator[asyncio.Queue[SIPMessage]]:
        assert request.method is not None
        key = (request.branch or "", request.method.value)
        queue: asyncio.Queue[SIPMessage] = asyncio.Queue(maxsize=32)
        self._pending[key] = queue
        try:
            yield queue
        finally:
            self._pending.pop(key, None)

    def _send(self, msg: SIPMessage) -> None:
        self._endpoint.send(msg, self._destination())

    def _destination(self) -> Addr:
        return self.dialog.next_hop(self._server) if self.answer else self._server

    # ---- what the peer sends -----------------------------------------------------
    def _on_message(self, msg: SIPMessage, addr: Addr) -> None:
        if msg.is_response:
            self._on_response(msg)
        else:
            self._on_request(msg, addr)

    def _on_response(self, msg: SIPMessage) -> None:
        try:
            _, method = msg.cseq
        except ValueError:
            log.warning("call %s: response without a valid CSeq dropped", self.call_id)
            return
        queue = self._pending.get((msg.branch or "", method))
        if queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(msg)
        elif method == "INVITE" and 200 <= _status(msg) < 300 and self._ack is not None:
            self._send(self._ack)  # the 2xx was retransmitted: our ACK got lost
        else:
            log.debug("call %s: stray response %s", self.call_id, msg.summary())

    def _on_request(self, req: SIPMessage, addr: Addr) -> None:
        self.requests.append(req)
        method = req.method
        if method is SIPMethod.ACK:
            return
        if method is not SIPMethod.OPTIONS and not self.dialog.matches(req):
            self._reply(req, addr, 481, "Call/Transaction Does Not Exist")
        elif method is SIPMethod.BYE:
            self._reply(req, addr, 200, "OK")
            self.ended.set()
        elif method in (SIPMethod.INVITE, SIPMethod.UPDATE):
            self._on_offer(req, addr)
        elif method in (SIPMethod.OPTIONS, SIPMethod.INFO, SIPMethod.NOTIFY):
            self._reply(req, addr, 200, "OK")
        else:
            self._reply(req, addr, 501, "Not Implemented")

    def _on_offer(self, req: SIPMessage, addr: Addr) -> None:
        """A re-INVITE or UPDATE: follow a moved media address, answer with our SDP."""
        if req.body:
            with contextlib.suppress(ValueError):
                offer = parse_answer(req.body)
                self.rtp.remote = (offer.ip, offer.port)
        self._reply(req, addr, 200, "OK", body=self.sdp_offer)

    def _reply(self, req: SIPMessage, addr: Addr, status: int, reason: str,
               body: str | None = None) -> None:
        contact = f"<{self.dialog.contact}>" if req.method is SIPMethod.INVITE else None
        resp = SIPMessage.create_response(req, status, reason, contact=contact, body=body,
                                          to_tag=self.dialog.local_tag)
        resp.headers["Allow"] = ALLOW
        resp.headers["User-Agent"] = USER_AGENT
        self._endpoint.send(resp, addr)


async def _get_within(queue: asyncio.Queue[SIPMessage], timeout: float, *,
                      final_only: bool) -> SIPMessage | None:
    """The next (final, if asked) response within ``timeout`` seconds, else ``None``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                response = await queue.get()
                if not final_only or _status(response) >= 200:
                    return response
    except TimeoutError:
        return None
