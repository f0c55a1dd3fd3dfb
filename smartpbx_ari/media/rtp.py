"""RTP (RFC 3550) parse and serialize: sans-IO, bytes in, typed packets out.

``RtpPacket.parse(data).serialize() == data`` for every valid packet (padding, CSRCs and
header extensions included). ``RTPParser`` keeps the seed's API.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")

PT_PCMU = 0
PT_PCMA = 8
PT_G722 = 9  # static: Asterisk's External Media accepts it back (16 kHz audio)
PT_SLIN16 = 118  # Asterisk's dynamic payload type for slin16 on External Media


@dataclass
class RtpPacket:
    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    payload: bytes = b""
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    extension: bytes = b""
    padding_size: int = 0

    @property
    def version(self) -> int:
        return RTP_VERSION

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram; raise ``ValueError`` naming what is wrong."""
        if len(data) < HEADER_SIZE:
            raise ValueError("RTP packet too short")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise ValueError(f"RTP version {b0 >> 6} is not 2")
        pos = HEADER_SIZE
        cc = b0 & 0x0F
        if len(data) < pos + 4 * cc:
            raise ValueError("RTP packet truncated in CSRC list")
        csrc = list(struct.unpack_from(f"!{cc}I", data, pos))
        pos += 4 * cc
        profile: int | None = None
        ext = b""
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise ValueError("RTP packet truncated in extension header")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise ValueError("RTP packet truncated in extension")
            ext = data[pos : pos + 4 * words]
            pos += 4 * words
        end = len(data)
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < pos:
                raise ValueError("RTP padding length is invalid")
            end -= padding
        return cls(
            payload_type=b1 & 0x7F, sequence_number=seq, timestamp=ts, ssrc=ssrc,
            marker=bool(b1 & 0x80), payload=data[pos:end], csrc=csrc,
            extension_profile=profile, extension=ext, padding_size=padding,
        )

    def serialize(self) -> bytes:
        """The datagram; ``ValueError`` naming a field the header cannot carry (sequence,
        timestamp and SSRC wrap around)."""
        self._check()
        b0 = RTP_VERSION << 6 | len(self.csrc)
        if self.padding_size:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(b0, b1, self.sequence_number & 0xFFFF,
                              self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF)]
        parts.extend(struct.pack("!I", c) for c in self.csrc)
        if self.extension_profile is not None:
            parts.append(struct.pack("!HH", self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)

    def _check(self) -> None:
        if not 0 <= self.payload_type <= 0x7F:
            raise ValueError(f"RTP payload_type {self.payload_type} is not 0-127")
        if len(self.csrc) > 15:
            raise ValueError(f"RTP csrc: {len(self.csrc)} sources, at most 15 fit")
        if any(not 0 <= c <= 0xFFFFFFFF for c in self.csrc):
            raise ValueError("RTP csrc: each source must be a 32-bit unsigned number")
        if not 0 <= self.padding_size <= 0xFF:
            raise ValueError(f"RTP padding_size {self.padding_size} is not 0-255")
        if self.extension_profile is None:
            if self.extension:
                raise ValueError("RTP extension given without an extension_profile")
            return
        if not 0 <= self.extension_profile <= 0xFFFF:
            raise ValueError(f"RTP extension_profile {self.extension_profile} is not 16-bit")
        if len(self.extension) % 4 or len(self.extension) > 4 * 0xFFFF:
            raise ValueError("RTP extension length must be a multiple of 4, at most 262140")


class RTPParser:
    """The seed's parser API, as a thin face over :class:`RtpPacket`."""

    @staticmethod
    def parse(data: bytes) -> RtpPacket:
        return RtpPacket.parse(data)

    @staticmethod
    def strip_header(data: bytes) -> bytes:
        return RtpPacket.parse(data).payload


RTPPacket = RtpPacket  # the seed's name
