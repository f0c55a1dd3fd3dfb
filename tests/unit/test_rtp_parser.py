"""RTP (RFC 3550) parsing: the seed's three cases, CSRCs, header extensions and padding,
and the round trip ``parse(serialize(p)) == p`` for every packet the header can carry."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartpbx_ari.media.rtp import RTPPacket, RtpPacket, RTPParser

pytestmark = pytest.mark.unit


def header(b0: int = 0x80, b1: int = 0x00, seq: int = 0x1234, ts: int = 1,
           ssrc: int = 0xAABBCCDD) -> bytes:
    return struct.pack("!BBHII", b0, b1, seq, ts, ssrc)


# ---- the seed's cases --------------------------------------------------------------
@pytest.mark.smoke
def test_parse_rtp_packet(sample_rtp_packet: bytes, sample_audio_data: bytes) -> None:
    packet = RTPParser.parse(sample_rtp_packet)
    assert isinstance(packet, RTPPacket)
    assert packet.version == 2
    assert packet.payload_type == 0
    assert packet.sequence_number == 0x1234
    assert packet.timestamp == 1
    assert packet.ssrc == 0xAABBCCDD
    assert not packet.marker
    assert packet.payload == sample_audio_data and len(packet.payload) == 160
    assert (packet.csrc, packet.extension_profile, packet.padding_size) == ([], None, 0)


def test_parse_invalid_packet() -> None:
    with pytest.raises(ValueError, match="RTP packet too short"):
        RTPParser.parse(b"\x80\x00\x12")


def test_strip_rtp_header() -> None:
    payload = RTPParser.strip_header(b"\x80\x00" + b"\x00" * 10 + b"PAYLOAD")
    assert payload == b"PAYLOAD"
    assert len(payload) == 7


def test_a_header_alone_is_a_packet_with_an_empty_payload() -> None:
    assert RTPParser.parse(header()).payload == b""


def test_marker_and_payload_type_share_the_second_byte() -> None:
    packet = RTPParser.parse(header(b1=0x80 | 101) + b"\x05\x0a\x00\xa0")
    assert packet.marker and packet.payload_type == 101


@pytest.mark.parametrize("version", [0, 1, 3])
def test_other_versions_are_refused(version: int) -> None:
    with pytest.raises(ValueError, match=f"RTP version {version} is not 2"):
        RTPParser.parse(header(b0=version << 6) + b"x")


# ---- CSRC ----------------------------------------------------------------------------
def test_csrcs_are_read_and_the_payload_starts_after_them(sample_audio_data: bytes) -> None:
    csrcs = [1, 0xDEADBEEF, 7]
    data = header(b0=0x80 | 3) + struct.pack("!3I", *csrcs) + sample_audio_data
    packet = RTPParser.parse(data)
    assert packet.csrc == csrcs
    assert packet.payload == sample_audio_data


def test_fifteen_csrcs_the_most_the_header_counts() -> None:
    data = header(b0=0x80 | 15) + struct.pack("!15I", *range(15)) + b"voice"
    packet = RTPParser.parse(data)
    assert packet.csrc == list(range(15)) and packet.payload == b"voice"
    assert packet.serialize() == data


def test_a_csrc_list_longer_than_the_datagram_is_refused() -> None:
    with pytest.raises(ValueError, match="truncated in CSRC list"):
        RTPParser.parse(header(b0=0x80 | 2) + b"\x00\x00\x00\x01")


def test_sixteen_csrcs_cannot_be_written() -> None:
    """Four bits count them: a sixteenth would set the extension bit instead."""
    with pytest.raises(ValueError, match="csrc: 16 sources"):
        RtpPacket(csrc=list(range(16))).serialize()


# ---- header extension ------------------------------------------------------------------
def test_an_extension_is_read_apart_from_the_payload() -> None:
    ext = b"\x10\xaa\x00\x00" + b"\x20\xbb\xcc\x00"  # RFC 8285 one-byte elements, 2 words
    data = header(b0=0x90) + struct.pack("!HH", 0xBEDE, 2) + ext + b"audio"
    packet = RTPParser.parse(data)
    assert packet.extension_profile == 0xBEDE
    assert packet.extension == ext
    assert packet.payload == b"audio"
    assert packet.serialize() == data


def test_an_empty_extension_still_has_its_profile() -> None:
    data = header(b0=0x90) + struct.pack("!HH", 0x1000, 0) + b"audio"
    packet = RTPParser.parse(data)
    assert (packet.extension_profile, packet.extension, packet.payload) == (0x1000, b"",
                                                                            b"audio")


def test_csrcs_come_before_the_extension() -> None:
    data = (header(b0=0x90 | 1) + struct.pack("!I", 42) + struct.pack("!HH", 0xBEDE, 1)
            + b"\x10\x01\x00\x00" + b"audio")
    packet = RTPParser.parse(data)
    assert packet.csrc == [42] and packet.extension == b"\x10\x01\x00\x00"
    assert packet.payload == b"audio"


@pytest.mark.parametrize(("tail", "message"), [
    (b"\xbe\xde", "truncated in extension header"),
    (b"\xbe\xde\x00\x02" + b"\x00" * 7, "truncated in extension"),
])
def test_a_truncated_extension_is_refused(tail: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RTPParser.parse(header(b0=0x90) + tail)


def test_an_extension_must_be_whole_words_to_be_written() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        RtpPacket(extension_profile=0xBEDE, extension=b"abc").serialize()
    with pytest.raises(ValueError, match="without an extension_profile"):
        RtpPacket(extension=b"abcd").serialize()


# ---- padding -------------------------------------------------------------------------------
def test_padding_is_removed_from_the_payload(sample_audio_data: bytes) -> None:
    data = header(b0=0xA0) + sample_audio_data + b"\x00\x00\x00\x04"
    packet = RTPParser.parse(data)
    assert packet.padding_size == 4
    assert packet.payload == sample_audio_data
    assert RTPParser.strip_header(data) == sample_audio_data
    assert packet.serialize() == data


def test_padding_may_take_the_whole_payload() -> None:
    packet = RTPParser.parse(header(b0=0xA0) + b"\x00\x02")
    assert (packet.payload, packet.padding_size) == (b"", 2)


@pytest.mark.parametrize("tail", [b"audio\x00", b"audio\x07", b"\xff"],
                         ids=["zero count", "longer than the payload", "longer than all"])
def test_an_impossible_padding_count_is_refused(tail: bytes) -> None:
    with pytest.raises(ValueError, match="padding length is invalid"):
        RTPParser.parse(header(b0=0xA0) + tail)


def test_padding_cannot_reach_into_the_extension() -> None:
    data = header(b0=0xB0) + struct.pack("!HH", 0xBEDE, 1) + b"\x00\x00\x00\x05"
    with pytest.raises(ValueError, match="padding length is invalid"):
        RTPParser.parse(data)


@pytest.mark.parametrize(("fields", "message"), [
    ({"padding_size": 256}, "padding_size 256"),
    ({"payload_type": 128}, "payload_type 128"),
    ({"csrc": [1 << 32]}, "32-bit"),
    ({"extension_profile": 1 << 16}, "extension_profile"),
])
def test_fields_the_header_cannot_carry_are_refused_by_name(fields: dict[str, object],
                                                            message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RtpPacket(**fields).serialize()  # type: ignore[arg-type]


# ---- the round trip ----------------------------------------------------------------------------
@st.composite
def packets(draw: st.DrawFn) -> RtpPacket:
    """Any packet the header can carry."""
    profile = draw(st.none() | st.integers(0, 0xFFFF))
    words = draw(st.integers(0, 10)) if profile is not None else 0
    return RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(st.integers(0, 0xFFFFFFFF)),
        ssrc=draw(st.integers(0, 0xFFFFFFFF)),
        marker=draw(st.booleans()),
        payload=draw(st.binary(max_size=400)),
        csrc=draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15)),
        extension_profile=profile,
        extension=draw(st.binary(min_size=4 * words, max_size=4 * words)),
        padding_size=draw(st.integers(0, 255)),
    )


@given(packets())
def test_parse_inverts_serialize(packet: RtpPacket) -> None:
    data = packet.serialize()
    assert RtpPacket.parse(data) == packet
    assert RTPParser.strip_header(data) == packet.payload


@given(st.binary(max_size=200))
def test_any_datagram_parses_or_raises_value_error_and_round_trips(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ValueError:
        return
    assert RtpPacket.parse(packet.serialize()) == packet
    if packet.padding_size == 0:
        assert packet.serialize() == data
