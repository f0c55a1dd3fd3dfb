"""Minimal SDP offer/answer for the synthetic caller (smartpbx_ari.sipcaller.sdp)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartpbx_ari.sipcaller.sdp import SdpAnswer, build_offer, parse_answer

pytestmark = [pytest.mark.unit]

# The answer our Asterisk 22 gave to build_offer() on extension 600 (Echo).
ASTERISK_ANSWER = (
    "v=0\r\no=- 1798287076 3 IN IP4 127.0.0.1\r\ns=Asterisk\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 10884 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    "a=maxptime:140\r\na=sendrecv\r\n"
)


def test_offer_lines() -> None:
    offer = build_offer("127.0.0.1", 40000, session_id=42)
    assert offer.endswith("\r\n")
    lines = offer.split("\r\n")
    assert lines[0] == "v=0"
    assert "o=- 42 1 IN IP4 127.0.0.1" in lines
    assert "c=IN IP4 127.0.0.1" in lines
    assert "m=audio 40000 RTP/AVP 0 101" in lines
    assert "a=rtpmap:0 PCMU/8000" in lines
    assert "a=rtpmap:101 telephone-event/8000" in lines
    assert "a=fmtp:101 0-16" in lines


@pytest.mark.smoke
def test_parse_asterisk_answer() -> None:
    assert parse_answer(ASTERISK_ANSWER) == SdpAnswer(
        ip="127.0.0.1", port=10884, payload_type=0, encoding="PCMU", clock_rate=8000,
        dtmf_payload_type=101, direction="sendrecv")


@given(ip=st.ip_addresses(v=4).map(str), port=st.integers(1, 65535),
       dtmf=st.integers(96, 127))
def test_offer_parses_back(ip: str, port: int, dtmf: int) -> None:
    answer = parse_answer(build_offer(ip, port, session_id=1, dtmf_payload_type=dtmf))
    assert (answer.ip, answer.port, answer.payload_type, answer.dtmf_payload_type) == (
        ip, port, 0, dtmf)


def test_media_level_connection_wins_and_lf_is_accepted() -> None:
    sdp = ("v=0\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 8 0\n"
           "c=IN IP4 10.0.0.2\na=sendonly\n")
    answer = parse_answer(sdp)
    assert (answer.ip, answer.port, answer.payload_type, answer.encoding) == (
        "10.0.0.2", 5004, 8, "PCMA")
    assert answer.dtmf_payload_type is None
    assert answer.direction == "sendonly"


def test_first_audio_stream_after_video() -> None:
    sdp = ("v=0\nc=IN IP4 10.0.0.1\nm=video 6000 RTP/AVP 96\nc=IN IP4 10.9.9.9\n"
           "a=rtpmap:96 H264/90000\na=recvonly\nm=audio 5004 RTP/AVP 96 0\n"
           "a=rtpmap:96 opus/48000/2\nm=audio 7000 RTP/AVP 0\n")
    answer = parse_answer(sdp)
    assert (answer.ip, answer.port, answer.payload_type, answer.encoding, answer.clock_rate) == (
        "10.0.0.1", 5004, 96, "opus", 48000)
    assert answer.direction == "sendrecv"


@pytest.mark.parametrize(("sdp", "message"), [
    ("", "no audio stream"),
    ("v=0\nm=video 1 RTP/AVP 96\n", "no audio stream"),
    ("v=0\nc=IN IP4 1.2.3.4\nm=audio 0 RTP/AVP 0\n", "rejected the audio stream"),
    ("v=0\nm=audio 4000 RTP/AVP 0\n", "no connection address"),
    ("v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 77\n", "no known codec"),
    ("v=0\nc=IN IP4 1.2.3.4\nm=audio x RTP/AVP 0\n", "malformed SDP media line"),
    ("v=0\nc=IN\nm=audio 4000 RTP/AVP 0\n", "malformed SDP connection line"),
    ("garbage\n", "malformed SDP line"),
])
def test_bad_answers(sdp: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_answer(sdp)
