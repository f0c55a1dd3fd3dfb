"""Minimal SDP (RFC 4566 / RFC 3264) for the synthetic caller: one audio stream, sans-IO.

The offer carries one codec (PCMU/8000 by default; G722/8000 for 16 kHz wideband) and
telephone-event at the same RTP clock rate (RFC 4733); the answer parser finds where the
peer wants our RTP, which codec it chose and its DTMF payload type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smartpbx_ari.media.codecs import CODECS, Codec

PT_PCMU = 0
DEFAULT_DTMF_PT = 101
# RFC 3551 static payload types a PBX may answer with.
STATIC_PAYLOADS = {0: ("PCMU", 8000), 3: ("GSM", 8000), 8: ("PCMA", 8000),
                   9: ("G722", 8000), 18: ("G729", 8000)}
SDP_NAMES = {"ulaw": "PCMU", "alaw": "PCMA", "slin16": "L16", "g722": "G722"}
_RTPMAP = re.compile(r"([0-9]{1,3})\s+([^/\s]+)/([0-9]{1,9})")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def build_offer(
    ip: str, port: int, *, session_id: int, session_version: int = 1,
    dtmf_payload_type: int = DEFAULT_DTMF_PT, ptime_ms: int = 20,
    codec: Codec = CODECS["ulaw"],
) -> str:
    """An SDP offer for ``codec`` audio plus RFC 4733 events on ``ip:port`` (IPv4)."""
    pt, rate = codec.payload_type, codec.clock_rate or codec.sample_rate
    lines = [
        "v=0",
        f"o=- {session_id} {session_version} IN IP4 {ip}",
        "s=SmartPBX caller",
        f"c=IN IP4 {ip}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {pt} {dtmf_payload_type}",
        f"a=rtpmap:{pt} {SDP_NAMES[codec.name]}/{rate}",
        f"a=rtpmap:{dtmf_payload_type} telephone-event/{rate}",
        f"a=fmtp:{dtmf_payload_type} 0-16",
        f"a=ptime:{ptime_ms}",
        "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"


@dataclass(frozen=True)
class SdpAnswer:
    """The peer's audio stream: where to send RTP and in which format."""

    ip: str
    port: int
    payload_type: int
    encoding: str
    clock_rate: int
    dtmf_payload_type: int | None = None
    direction: str = "sendrecv"


@dataclass
class _Audio:
    port: int
    formats: list[int]
    ip: str | None = None
    rtpmap: dict[int, tuple[str, int]] | None = None
    direction: str = "sendrecv"


def parse_answer(sdp: str) -> SdpAnswer:
    """The first audio stream of ``sdp``; ``ValueError`` if there is none usable."""
    session_ip: str | None = None
    audio: _Audio | None = None
    section = "session"  # then "audio" for the first audio stream, "other" for the rest
    for kind, value in _lines(sdp):
        if kind == "m":
            media = _media_line(value) if audio is None else None
            audio = audio or media
            section = "audio" if media else "other"
        elif kind == "c" and section != "other":
            ip = _connection_ip(value)
            if audio is None:
                session_ip = ip
            else:
                audio.ip = ip
        elif kind == "a" and section == "audio" and audio is not None:
            _attribute(audio, value)
    return _answer(audio, session_ip)


def _lines(sdp: str) -> list[tuple[str, str]]:
    out = []
    for line in sdp.splitlines():
        if not line.strip():
            continue
        kind, sep, value = line.partition("=")
        if not sep or len(kind) != 1:
            raise ValueError(f"malformed SDP line {line[:60]!r}")
        out.append((kind, value.strip()))
    return out


def _media_line(value: str) -> _Audio | None:
    fields = value.split()
    if len(fields) < 4 or fields[0] != "audio":
        return None
    port = fields[1].split("/", 1)[0]
    if not (_number(port, 0xFFFF) and all(_number(f, 127) for f in fields[3:])):
        raise ValueError(f"malformed SDP media line {value[:60]!r}")
    return _Audio(port=int(port), formats=[int(f) for f in fields[3:]])


def _number(text: str, most: int) -> bool:
    """ASCII digits (no other script's, no superscripts) of a number up to ``most``."""
    return text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= most


def _connection_ip(value: str) -> str:
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise ValueError(f"malformed SDP connection line {value[:60]!r}")
    return fields[2].split("/", 1)[0]


def _attribute(audio: _Audio, value: str) -> None:
    name, _, rest = value.partition(":")
    if name in DIRECTIONS:
        audio.direction = name
    elif name == "rtpmap" and (m := _RTPMAP.match(rest)):
        if audio.rtpmap is None:
            audio.rtpmap = {}
        audio.rtpmap[int(m.group(1))] = (m.group(2), int(m.group(3)))


def _answer(audio: _Audio | None, session_ip: str | None) -> SdpAnswer:
    if audio is None:
        raise ValueError("SDP has no audio stream")
    if audio.port == 0:
        raise ValueError("SDP rejected the audio stream (port 0)")
    ip = audio.ip or session_ip
    if ip is None:
        raise ValueError("SDP has no connection address for audio")
    codecs = {**STATIC_PAYLOADS, **(audio.rtpmap or {})}
    dtmf = next((pt for pt in audio.formats
                 if codecs.get(pt, ("",))[0].lower() == "telephone-event"), None)
    voice = [pt for pt in audio.formats if pt != dtmf]
    if not voice or voice[0] not in codecs:
        raise ValueError(f"SDP audio has no known codec (formats {audio.formats})")
    encoding, rate = codecs[voice[0]]
    return SdpAnswer(ip=ip, port=audio.port, payload_type=voice[0], encoding=encoding,
                     clock_rate=rate, dtmf_payload_type=dtmf, direction=audio.direction)
