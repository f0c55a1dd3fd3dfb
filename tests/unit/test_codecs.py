"""G.711 against a scalar transcription of the ITU-T G.191 reference, plus slin16 framing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smartpbx_ari.media import codecs
from smartpbx_ari.media.rtp import PT_PCMA, PT_PCMU, PT_SLIN16

pytestmark = pytest.mark.unit

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
ALL_BYTES = bytes(range(256))
pcm_arrays = hnp.arrays(np.int16, st.integers(0, 400))


# Scalar ports of G.191 g711.c, written loop-for-loop like the C, so the vectorised tables
# are checked against an independent implementation.
def ref_ulaw_compress(x: int) -> int:
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    absno = min(absno, 0x1FFF)
    i, segno = absno >> 6, 1
    while i:
        segno, i = segno + 1, i >> 1
    code = ((8 - segno) << 4) | (0x0F - ((absno >> segno) & 0x0F))
    return code | 0x80 if x >= 0 else code


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x07
    step = 4 << (exponent + 1)
    return sign * ((0x80 << exponent) + step * (mantissa & 0x0F) + step // 2 - 4 * 33)


def ref_alaw_compress(x: int) -> int:
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix, iexp = ix >> 1, iexp + 1
        ix = ix - 16 + (iexp << 4)
    if x >= 0:
        ix |= 0x80
    return ix ^ 0x55


def ref_alaw_expand(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    iexp, mant = ix >> 4, ix & 0x0F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 8
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


def test_known_values() -> None:
    zero = np.zeros(1, dtype=np.int16)
    assert codecs.ulaw_encode(zero) == b"\xff"
    assert codecs.ulaw_decode(b"\xff\x00\x80\x7f").tolist() == [0, -32124, 32124, 0]
    assert codecs.alaw_encode(zero) == b"\xd5"
    assert codecs.alaw_decode(b"\xd5\x55\x2a\xaa").tolist() == [8, -8, -32256, 32256]


def test_ulaw_encode_bit_exact_with_g191_for_every_sample() -> None:
    expected = bytes(ref_ulaw_compress(int(x)) for x in ALL_INT16)
    assert codecs.ulaw_encode(ALL_INT16) == expected


def test_alaw_encode_bit_exact_with_g191_for_every_sample() -> None:
    expected = bytes(ref_alaw_compress(int(x)) for x in ALL_INT16)
    assert codecs.alaw_encode(ALL_INT16) == expected


def test_decode_bit_exact_with_g191_for_every_code() -> None:
    assert codecs.ulaw_decode(ALL_BYTES).tolist() == [ref_ulaw_expand(c) for c in ALL_BYTES]
    assert codecs.alaw_decode(ALL_BYTES).tolist() == [ref_alaw_expand(c) for c in ALL_BYTES]


def test_negative_samples_use_ones_complement_like_g191() -> None:
    # audioop negated instead and gave 0x7E here; G.191 says negative zero.
    assert codecs.ulaw_encode(np.array([-1], dtype=np.int16)) == b"\x7f"


def test_alaw_reencodes_every_byte() -> None:
    assert codecs.alaw_encode(codecs.alaw_decode(ALL_BYTES)) == ALL_BYTES


def test_ulaw_reencodes_every_byte_but_negative_zero() -> None:
    reencoded = codecs.ulaw_encode(codecs.ulaw_decode(ALL_BYTES))
    expected = bytearray(ALL_BYTES)
    expected[0x7F] = 0xFF  # both zeros decode to 0, which encodes to the positive zero
    assert reencoded == bytes(expected)


@given(pcm_arrays)
def test_round_trip_within_quantization_error(pcm: np.ndarray) -> None:
    # The largest G.711 step is 1/16 of the level, so half a step is |x|/32; the
    # reference's 1/2-step offset near zero adds up to 8 (values beyond the top
    # code clip, still within this bound).
    bound = np.abs(pcm.astype(np.int64)) / 32 + 8
    for enc, dec in ((codecs.ulaw_encode, codecs.ulaw_decode),
                     (codecs.alaw_encode, codecs.alaw_decode)):
        error = np.abs(dec(enc(pcm)).astype(np.int64) - pcm)
        assert np.all(error <= bound)


@given(pcm_arrays)
def test_encode_is_one_byte_per_sample_and_keeps_sign(pcm: np.ndarray) -> None:
    decoded = codecs.ulaw_decode(codecs.ulaw_encode(pcm))
    assert len(decoded) == len(pcm)
    loud = np.abs(pcm.astype(np.int64)) > 16
    assert np.array_equal(np.sign(decoded[loud]), np.sign(pcm[loud]))


@given(pcm_arrays)
def test_slin16_round_trip_is_big_endian(pcm: np.ndarray) -> None:
    payload = codecs.pcm_to_slin16_be(pcm)
    assert payload == b"".join(int(x).to_bytes(2, "big", signed=True) for x in pcm)
    assert np.array_equal(codecs.slin16_be_to_pcm(payload), pcm)


def test_slin16_known_bytes() -> None:
    assert codecs.slin16_be_to_pcm(b"\x01\x02\xff\xfe").tolist() == [0x0102, -2]


def test_slin16_odd_payload_is_rejected() -> None:
    with pytest.raises(ValueError, match="odd length"):
        codecs.slin16_be_to_pcm(b"\x00\x01\x02")


def test_encode_refuses_non_int16() -> None:
    with pytest.raises(TypeError, match="int16"):
        codecs.ulaw_encode(np.zeros(4, dtype=np.float32))


def test_codec_table() -> None:
    assert [(c.name, c.payload_type, c.sample_rate, c.frame_bytes)
            for c in codecs.CODECS.values()] == [
        ("slin16", PT_SLIN16, 16000, 640), ("g722", 9, 16000, 160),
        ("ulaw", PT_PCMU, 8000, 160), ("alaw", PT_PCMA, 8000, 160)]
    assert codecs.codec("slin16").samples_per_frame == 320
    assert codecs.codec("slin16").timestamp_step == 320
    # G.722 carries 16 kHz audio on an 8 kHz RTP clock (RFC 3551)
    assert codecs.codec("g722").samples_per_frame == 320
    assert codecs.codec("g722").timestamp_step == 160
    assert codecs.codec_for_payload_type(PT_PCMA).name == "alaw"


def test_g722_streams_keep_their_own_state_and_keep_wideband() -> None:
    t = np.arange(16000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 6000 * t)).astype(np.int16)  # above narrowband
    enc, dec = codecs.encoder("g722"), codecs.decoder("g722")
    frames = [enc(tone[i : i + 320]) for i in range(0, len(tone), 320)]
    assert {len(f) for f in frames} == {160}
    out = np.concatenate([dec(f) for f in frames])
    spectrum = np.abs(np.fft.rfft(out[4000:].astype(np.float64)))
    peak = np.fft.rfftfreq(len(out) - 4000, 1 / 16000)[spectrum.argmax()]
    assert abs(peak - 6000) < 20
    assert abs(_rms(out[4000:]) / _rms(tone[4000:]) - 1) < 0.1
    with pytest.raises(ValueError, match="keeps state"):
        codecs.decode("g722", frames[0])


@pytest.mark.parametrize("name", ["slin16", "ulaw", "alaw"])
def test_generic_decode_gives_a_frame_at_the_codec_rate(name: str) -> None:
    spec = codecs.codec(name)
    silence = bytes([spec.silence_byte]) * spec.frame_bytes
    pcm = codecs.decode(name, silence)
    assert len(pcm) == spec.samples_per_frame
    assert np.abs(pcm.astype(np.int64)).max() <= 8  # the silence byte really is silence
    assert codecs.encode(name, pcm) == silence


def test_unknown_codec_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="slin16, g722, ulaw, alaw"):
        codecs.decode("opus", b"")
    with pytest.raises(ValueError, match="payload type 97"):
        codecs.codec_for_payload_type(97)


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
