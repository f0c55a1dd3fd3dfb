"""G.711 (mu-law, A-law) and slin16 payload codecs, without ``audioop`` (gone in 3.13).

The tables are built once from the ITU-T G.191 reference (``g711.c``: ``ulaw_compress``,
``ulaw_expand``, ``alaw_compress``, ``alaw_expand``), so every value is bit-exact with it.
The reference takes the one's complement of negative samples; ``audioop`` negated them
instead, so the two differ by one code for some negative inputs.

Mu-law has two codes for zero (0xFF and 0x7F, "negative zero"): both decode to 0 and 0
encodes to 0xFF, so ``encode(decode(b)) == b`` for every byte except 0x7F.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from .rtp import PT_G722, PT_PCMA, PT_PCMU, PT_SLIN16

Pcm = npt.NDArray[np.int16]
_I64 = npt.NDArray[np.int64]


def _i64(values: object) -> _I64:
    return np.asarray(values, dtype=np.int64)


def _bit_length(v: _I64) -> _I64:
    # frexp's exponent is int.bit_length() for non-negative integers below 2**53.
    return np.frexp(v.astype(np.float64))[1].astype(np.int64)


def _ulaw_compress(x: _I64) -> _I64:
    absno = np.minimum(np.where(x < 0, ~x, x) >> 2, 0x1FFF - 33) + 33
    segno = 1 + _bit_length(absno >> 6)
    low = 0x0F - ((absno >> segno) & 0x0F)
    code = ((8 - segno) << 4) | low
    return _i64(np.where(x >= 0, code | 0x80, code))


def _ulaw_expand(code: _I64) -> _I64:
    sign = np.where(code < 0x80, -1, 1)
    inverted = ~code
    exponent = (inverted >> 4) & 0x07
    step = 4 << (exponent + 1)
    linear = (0x80 << exponent) + step * (inverted & 0x0F) + step // 2 - 4 * 33
    return _i64(sign * linear)


def _alaw_compress(x: _I64) -> _I64:
    ix = np.where(x < 0, ~x, x) >> 4  # 12 magnitude bits, 0..2047
    exponent = np.maximum(_bit_length(ix) - 4, 1)
    segmented = ((ix >> (exponent - 1)) - 16) + (exponent << 4)
    code = np.where(ix > 15, segmented, ix)
    return _i64(np.where(x >= 0, code | 0x80, code) ^ 0x55)


def _alaw_expand(code: _I64) -> _I64:
    ix = (code ^ 0x55) & 0x7F
    exponent = ix >> 4
    mant = np.where(exponent > 0, (ix & 0x0F) + 16, ix & 0x0F)
    mant = ((mant << 4) + 8) << np.maximum(exponent - 1, 0)
    return _i64(np.where(code > 127, mant, -mant))


def _encode_table(compress: Callable[[_I64], _I64]) -> npt.NDArray[np.uint8]:
    # Indexed by the int16 sample's bit pattern, so encoding is one uint16 view + take.
    samples = np.arange(65536, dtype=np.int64)
    signed = np.where(samples >= 32768, samples - 65536, samples)
    return compress(signed).astype(np.uint8)


def _decode_table(expand: Callable[[_I64], _I64]) -> Pcm:
    return expand(np.arange(256, dtype=np.int64)).astype(np.int16)


_ULAW_ENC = _encode_table(_ulaw_compress)
_ULAW_DEC = _decode_table(_ulaw_expand)
_ALAW_ENC = _encode_table(_alaw_compress)
_ALAW_DEC = _decode_table(_alaw_expand)


def _as_pcm(pcm: Pcm) -> Pcm:
    # Refuse other dtypes: a silent cast of float or int32 audio wraps into loud noise.
    if pcm.dtype != np.int16:
        raise TypeError(f"PCM must be int16, got {pcm.dtype}")
    return pcm


def ulaw_decode(payload: bytes) -> Pcm:
    return _ULAW_DEC[np.frombuffer(payload, dtype=np.uint8)]


def ulaw_encode(pcm: Pcm) -> bytes:
    return _ULAW_ENC[_as_pcm(pcm).view(np.uint16)].tobytes()


def alaw_decode(payload: bytes) -> Pcm:
    return _ALAW_DEC[np.frombuffer(payload, dtype=np.uint8)]


def alaw_encode(pcm: Pcm) -> bytes:
    return _ALAW_ENC[_as_pcm(pcm).view(np.uint16)].tobytes()


def slin16_be_to_pcm(payload: bytes) -> Pcm:
    """Asterisk's slin16 RTP payload is network order (big-endian) 16-bit."""
    if len(payload) % 2:
        raise ValueError(f"slin16 payload has an odd length ({len(payload)} bytes)")
    return np.frombuffer(payload, dtype=">i2").astype(np.int16)


def pcm_to_slin16_be(pcm: Pcm) -> bytes:
    return _as_pcm(pcm).astype(">i2").tobytes()


@dataclass(frozen=True)
class Codec:
    """What the RTP layer needs to know about a payload format (20 ms ptime)."""

    name: str
    payload_type: int
    sample_rate: int  # of the PCM it carries
    frame_bytes: int
    silence_byte: int  # fills a short last frame without a click (stateless codecs)
    clock_rate: int = 0  # RTP timestamp rate when it differs (G.722: 8000, RFC 3551)

    @property
    def samples_per_frame(self) -> int:
        """PCM samples in one 20 ms frame."""
        return self.sample_rate // 50

    @property
    def timestamp_step(self) -> int:
        """RTP timestamp units per 20 ms frame."""
        return (self.clock_rate or self.sample_rate) // 50


CODECS: Mapping[str, Codec] = MappingProxyType({
    "slin16": Codec("slin16", PT_SLIN16, 16000, 640, 0x00),
    "g722": Codec("g722", PT_G722, 16000, 160, 0x00, clock_rate=8000),
    "ulaw": Codec("ulaw", PT_PCMU, 8000, 160, 0xFF),
    "alaw": Codec("alaw", PT_PCMA, 8000, 160, 0xD5),
})

_DECODERS: Mapping[str, Callable[[bytes], Pcm]] = {
    "slin16": slin16_be_to_pcm, "ulaw": ulaw_decode, "alaw": alaw_decode,
}
_ENCODERS: Mapping[str, Callable[[Pcm], bytes]] = {
    "slin16": pcm_to_slin16_be, "ulaw": ulaw_encode, "alaw": alaw_encode,
}
G722_BITRATE = 64000


def decoder(codec_name: str) -> Callable[[bytes], Pcm]:
    """A decoder for one stream (stateful for G.722, shared functions otherwise)."""
    name = codec(codec_name).name
    if name != "g722":
        return _DECODERS[name]
    from G722 import G722

    state = G722(16000, G722_BITRATE)
    def decode_g722(payload: bytes) -> Pcm:
        return np.asarray(state.decode(payload), dtype=np.int16)

    return decode_g722


def encoder(codec_name: str) -> Callable[[Pcm], bytes]:
    """An encoder for one stream (stateful for G.722)."""
    name = codec(codec_name).name
    if name != "g722":
        return _ENCODERS[name]
    from G722 import G722

    state = G722(16000, G722_BITRATE)
    def encode_g722(pcm: Pcm) -> bytes:
        return bytes(state.encode(_as_pcm(pcm)))

    return encode_g722


def codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; known: {', '.join(CODECS)}") from None


def codec_for_payload_type(payload_type: int) -> Codec:
    for candidate in CODECS.values():
        if candidate.payload_type == payload_type:
            return candidate
    raise ValueError(f"no codec for RTP payload type {payload_type}")


def decode(codec_name: str, payload: bytes) -> Pcm:
    """Payload bytes to int16 PCM at the codec's own sample rate (stateless codecs)."""
    return _DECODERS[_stateless(codec_name)](payload)


def encode(codec_name: str, pcm: Pcm) -> bytes:
    """int16 PCM, already at the codec's sample rate, to payload bytes (stateless codecs)."""
    return _ENCODERS[_stateless(codec_name)](pcm)


def _stateless(codec_name: str) -> str:
    name = codec(codec_name).name
    if name not in _DECODERS:
        raise ValueError(f"{name} keeps state between frames: use decoder()/encoder()")
    return name
