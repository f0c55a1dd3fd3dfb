"""SIP message parsing/serializing and digest auth (smartpbx_ari.sipcaller.sip)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartpbx_ari.sipcaller.sip import (
    DigestChallenge,
    SIPHeaders,
    SIPMessage,
    SIPMethod,
    authorization_for,
    build_authorization,
    choose_challenge,
    digest_response,
    header_param,
    name_addr_uri,
    parse_auth_params,
    split_header_list,
    uri_host_port,
)

pytestmark = [pytest.mark.unit]

SDP = "v=0\no=- 1 1 IN IP4 10.153.195.11\ns=-\nc=IN IP4 10.153.195.11\nt=0 0\n" \
      "m=audio 10000 RTP/AVP 0\na=rtpmap:0 PCMU/8000"

SEED_INVITE = f"""INVITE sip:1004@10.153.195.83 SIP/2.0
Via: SIP/2.0/UDP 10.153.195.11:5060;branch=z9hG4bK-abc123
From: "1003" <sip:1003@10.153.195.11>;tag=abc123
To: <sip:1004@10.153.195.83>
Call-ID: xyz789@10.153.195.11
CSeq: 1 INVITE
Contact: <sip:1003@10.153.195.11:5060>
Content-Type: application/sdp
Content-Length: {len(SDP)}

{SDP}"""

# Captured from our Asterisk 22 (PJSIP), byte for byte.
ASTERISK_401 = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:51748;rport=51748;received=127.0.0.1;"
    b"branch=z9hG4bK6f91d4835e7345c3\r\n"
    b"Call-ID: 7cdf38dddab5bb7a4348@127.0.0.1\r\n"
    b"From: <sip:caller@127.0.0.1>;tag=01a2fe502826\r\n"
    b"To: <sip:600@127.0.0.1>;tag=z9hG4bK6f91d4835e7345c3\r\n"
    b"CSeq: 1 INVITE\r\n"
    b'WWW-Authenticate: Digest realm="asterisk",nonce="1795579801/0515d1c11077a4c3fef865d29f6b'
    b'7271",opaque="7dd4383a049018cf",algorithm=MD5,qop="auth"\r\n'
    b"Server: SmartPBX\r\n"
    b"Content-Length:  0\r\n"
    b"\r\n"
)
ASTERISK_200_SDP = (
    b"v=0\r\no=- 1290871404 3 IN IP4 127.0.0.1\r\ns=Asterisk\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 10638 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    b"a=maxptime:140\r\na=sendrecv\r\n"
)
ASTERISK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:53162;rport=53162;received=127.0.0.1;"
    b"branch=z9hG4bKda5251062dbb886d\r\n"
    b"Call-ID: 75ef1badc83eb2a84e36@127.0.0.1\r\n"
    b"From: <sip:caller@127.0.0.1>;tag=1afb9978e18d\r\n"
    b"To: <sip:1000@127.0.0.1>;tag=b7783fe1-5905-4c96-90a2-201c727cd426\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Server: SmartPBX\r\n"
    b"Contact: <sip:127.0.0.1:5060>\r\n"
    b"Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, "
    b"PRACK, INFO\r\n"
    b"Supported: 100rel, timer\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length:   222\r\n"
    b"\r\n" + ASTERISK_200_SDP
)


# ---- the seed's tests ----------------------------------------------------------------
@pytest.fixture
def invite() -> SIPMessage:
    return SIPMessage.parse(SEED_INVITE)


@pytest.mark.smoke
def test_parse_invite(invite: SIPMessage) -> None:
    assert invite.method == SIPMethod.INVITE
    assert invite.uri == "sip:1004@10.153.195.83"
    assert invite.headers["Call-ID"] == "xyz789@10.153.195.11"
    assert invite.headers["From"].startswith('"1003"')
    assert invite.body is not None
    assert "m=audio 10000" in invite.body


def test_create_response(invite: SIPMessage) -> None:
    response = SIPMessage.create_response(invite, 200, "OK", contact="sip:1004@10.153.195.83:5060")
    assert response.status_code == 200
    assert response.reason_phrase == "OK"
    assert response.headers["Contact"] == "<sip:1004@10.153.195.83:5060>"
    assert response.headers["Call-ID"] == invite.headers["Call-ID"]


@pytest.mark.parametrize(("method", "uri", "expected"), [
    (SIPMethod.INVITE, "sip:1004@example.com", True),
    (SIPMethod.BYE, "sip:1004@example.com", True),
    (SIPMethod.CANCEL, "sip:1004@example.com", True),
    (None, "sip:1004@example.com", False),
    (SIPMethod.INVITE, "", False),
])
def test_is_valid(method: SIPMethod | None, uri: str, expected: bool) -> None:
    assert SIPMessage(method=method, uri=uri).is_valid() == expected


# ---- parsing ---------------------------------------------------------------------------
def test_parse_crlf_and_lf_alike() -> None:
    crlf = SEED_INVITE.replace("\n", "\r\n")
    assert SIPMessage.parse(crlf).headers == SIPMessage.parse(SEED_INVITE).headers
    assert SIPMessage.parse(crlf.encode()).method is SIPMethod.INVITE


def test_headers_are_case_insensitive(invite: SIPMessage) -> None:
    assert invite.headers["call-id"] == invite.headers["CALL-ID"] == "xyz789@10.153.195.11"
    assert "cseq" in invite.headers
    assert invite.headers.get("X-Missing") is None
    assert invite.cseq == (1, "INVITE")
    assert invite.branch == "z9hG4bK-abc123"


def test_compact_forms_read_as_full_names() -> None:
    raw = ("BYE sip:a@b SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bK1\nf: <sip:x@y>;tag=1\n"
           "t: <sip:a@b>;tag=2\ni: id1\nCSeq: 2 BYE\nm: <sip:x@h>\nc: text/plain\nl: 2\n\nhi")
    msg = SIPMessage.parse(raw)
    assert msg.headers["Via"] == "SIP/2.0/UDP h;branch=z9hG4bK1"
    assert msg.headers["Call-ID"] == msg.headers["i"] == "id1"
    assert msg.headers["Contact"] == "<sip:x@h>"
    assert msg.body == "hi"
    assert b"\r\nCall-ID: id1\r\n" in msg.serialize()


def test_multiple_vias_kept_in_order() -> None:
    raw = ("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
           "Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\nv: SIP/2.0/UDP c;branch=z9hG4bK3\r\n"
           "CSeq: 1 INVITE\r\n\r\n")
    msg = SIPMessage.parse(raw)
    assert msg.headers.get_all("via") == [
        "SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b;branch=z9hG4bK2",
        "SIP/2.0/UDP c;branch=z9hG4bK3"]
    assert msg.headers["Via"].endswith("z9hG4bK1")
    response = SIPMessage.create_response(msg, 200, "OK")  # any message's Vias are copied
    assert response.headers.get_all("Via") == msg.headers.get_all("Via")


def test_folded_header_is_unfolded() -> None:
    msg = SIPMessage.parse("OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n  two\r\n\ttwo\r\n\r\n")
    assert msg.headers["Subject"] == "one two two"


def test_content_length_truncates_body() -> None:
    msg = SIPMessage.parse(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcdef")
    assert msg.body == "abc"


def test_status_line_reason_may_have_spaces_or_be_empty() -> None:
    assert SIPMessage.parse("SIP/2.0 486 Busy Here\r\n\r\n").reason_phrase == "Busy Here"
    assert SIPMessage.parse("SIP/2.0 200\r\n\r\n").reason_phrase == ""


def test_leading_blank_lines_ignored() -> None:
    assert SIPMessage.parse("\r\n\r\nSIP/2.0 100 Trying\r\n\r\n").status_code == 100


def test_asterisk_401_parses_and_round_trips() -> None:
    msg = SIPMessage.parse(ASTERISK_401)
    assert msg.status_code == 401
    assert msg.body is None
    assert header_param(msg.headers["To"], "tag") == "z9hG4bK6f91d4835e7345c3"
    challenge = DigestChallenge.parse(msg.headers["WWW-Authenticate"])
    assert challenge == DigestChallenge(realm="asterisk",
                                        nonce="1795579801/0515d1c11077a4c3fef865d29f6b7271",
                                        algorithm="MD5", qop=("auth",), opaque="7dd4383a049018cf")
    # Asterisk pads "Content-Length:  0"; we normalise it, and then round-trip exactly.
    again = msg.serialize()
    assert again == ASTERISK_401.replace(b"Length:  0", b"Length: 0")
    assert SIPMessage.parse(again).serialize() == again


def test_asterisk_200_body_and_round_trip() -> None:
    msg = SIPMessage.parse(ASTERISK_200)
    assert msg.body is not None and msg.body.encode() == ASTERISK_200_SDP
    assert msg.serialize() == ASTERISK_200.replace(b"Length:   222", b"Length: 222")


def test_parse_invite_rejects_other_messages() -> None:
    assert SIPMessage.parse_invite(SEED_INVITE).method is SIPMethod.INVITE
    with pytest.raises(ValueError, match="expected an INVITE, got 401 Unauthorized"):
        SIPMessage.parse_invite(ASTERISK_401)


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "empty SIP message"),
    (b"\r\n\r\n", "empty SIP message"),
    (b"hello world", "malformed SIP request line"),
    (b"\x00\x01\x02garbage", "control character"),
    (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "unsupported SIP version"),
    (b"INVITE sip:a@b\r\n\r\n", "malformed SIP request line"),
    (b"invite sip:a@b SIP/2.0\r\n\r\n", "unsupported SIP method"),
    (b"FROB sip:a@b SIP/2.0\r\n\r\n", "unsupported SIP method"),
    (b"INVITE nota-uri SIP/2.0\r\n\r\n", "malformed Request-URI"),
    (b"SIP/2.0 20 OK\r\n\r\n", "malformed SIP status code"),
    (b"SIP/2.0 700 Huh\r\n\r\n", "malformed SIP status code"),
    (b"SIP/2.0 OK 200\r\n\r\n", "malformed SIP status code"),
    (b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", "no colon"),
    (b"SIP/2.0 200 OK\r\nBad Name: x\r\n\r\n", "invalid SIP header name"),
    (b"SIP/2.0 200 OK\r\n cont\r\n\r\n", "continuation"),
    (b"SIP/2.0 200 OK\r\nContent-Length: many\r\n\r\n", "malformed Content-Length"),
    (b"SIP/2.0 200 OK\r\nVia: \xff\xfe\r\n\r\n", "not valid UTF-8"),
    (b"SIP/2.0 200 OK\r\n\r\n\xff\xfe", "body is not valid UTF-8"),
])
def test_invalid_input_raises_clear_value_error(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SIPMessage.parse(raw)


def test_cseq_malformed() -> None:
    with pytest.raises(ValueError, match="malformed CSeq"):
        _ = SIPMessage.parse("SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n").cseq


# ---- building ----------------------------------------------------------------------
def test_response_copies_dialog_headers_and_adds_tag(invite: SIPMessage) -> None:
    resp = SIPMessage.create_response(invite, 200, "OK", body="v=0\r\n", to_tag="t1")
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert resp.headers[name] == invite.headers[name]
    assert resp.headers["To"] == "<sip:1004@10.153.195.83>;tag=t1"
    assert resp.headers["Content-Type"] == "application/sdp"
    assert resp.headers["Content-Length"] == "5"
    assert header_param(SIPMessage.create_response(invite, 486, "Busy").headers["To"], "tag")
    assert "tag" not in SIPMessage.create_response(invite, 100, "Trying").headers["To"]


def test_response_keeps_existing_to_tag() -> None:
    req = SIPMessage.parse("BYE sip:a@b SIP/2.0\r\nTo: <sip:a@b>;tag=mine\r\n\r\n")
    assert SIPMessage.create_response(req, 200, "OK", to_tag="x").headers["To"].endswith("=mine")


def test_serialize_sets_content_length_in_bytes() -> None:
    msg = SIPMessage(method=SIPMethod.MESSAGE, uri="sip:a@b", body="é€")
    msg.headers["Content-Length"] = "999"
    raw = msg.serialize()
    assert b"\r\nContent-Length: 5\r\n\r\n" in raw
    assert raw.startswith(b"MESSAGE sip:a@b SIP/2.0\r\n")
    assert SIPMessage.parse(raw).body == "é€"


def test_serialize_invalid_message_raises() -> None:
    with pytest.raises(ValueError, match="invalid SIP message"):
        SIPMessage(uri="sip:a@b").serialize()


def test_plain_dict_headers_are_accepted() -> None:
    msg = SIPMessage(status_code=200, reason_phrase="OK",
                     headers={"call-id": "x"})  # type: ignore[arg-type]
    assert msg.headers["Call-ID"] == "x"


def test_header_mapping_behaviour() -> None:
    h = SIPHeaders([("Via", "a"), ("To", "t"), ("via", "b")])
    assert list(h) == ["Via", "To"] and len(h) == 2
    h["VIA"] = "c"
    assert h.pairs() == [("VIA", "c"), ("To", "t")]
    del h["to"]
    assert h.pairs() == [("VIA", "c")]
    with pytest.raises(KeyError):
        del h["To"]
    with pytest.raises(ValueError, match="control character"):
        h["X-Evil"] = "a\r\nInjected: yes"
    assert SIPHeaders({"X-A": "1", "i": "2"}) == {"x-a": "1", "call-id": "2"}


def test_header_field_helpers() -> None:
    assert name_addr_uri('"Bob" <sip:bob@h;transport=udp>;tag=1') == "sip:bob@h;transport=udp"
    assert name_addr_uri("sip:bob@h;tag=1") == "sip:bob@h"
    assert header_param('"A;B" <sip:x@y;lr>;tag=7;foo', "tag") == "7"
    assert header_param("<sip:x@y;tag=no>", "tag") is None
    assert split_header_list('<sip:a;lr>, "x, y" <sip:b>,<sip:c,d>') == [
        "<sip:a;lr>", '"x, y" <sip:b>', "<sip:c,d>"]
    assert uri_host_port("sip:127.0.0.1:5060") == ("127.0.0.1", 5060)
    assert uri_host_port("sip:600@pbx.example;transport=udp") == ("pbx.example", 5060)
    assert uri_host_port("sip:u@[::1]:5070") == ("::1", 5070)


# ---- properties --------------------------------------------------------------------
_TOKEN = st.from_regex(r"[A-Za-z][A-Za-z0-9\-.!%*_+`'~]{0,15}", fullmatch=True).filter(
    lambda n: n.lower() not in ("content-length", "l"))
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x7f")
                .filter(lambda c: ord(c) >= 0x20 or c == "\t"), max_size=40)
_VALUE = _TEXT.map(str.strip)
_URI = st.from_regex(r"sips?:[a-z0-9]{1,8}@[a-z0-9.\-]{1,16}(:[0-9]{1,5})?(;[a-z]+=[a-z0-9]+)?",
                     fullmatch=True)
_BODY = st.none() | st.text(st.characters(codec="utf-8"), min_size=1)


@st.composite
def sip_messages(draw: st.DrawFn) -> SIPMessage:
    headers = SIPHeaders(draw(st.lists(st.tuples(_TOKEN, _VALUE), max_size=8)))
    body = draw(_BODY)
    if draw(st.booleans()):
        return SIPMessage(method=draw(st.sampled_from(SIPMethod)), uri=draw(_URI),
                          headers=headers, body=body)
    return SIPMessage(status_code=draw(st.integers(100, 699)),
                      reason_phrase=draw(_TEXT.map(str.lstrip)), headers=headers, body=body)


@given(sip_messages())
def test_parse_inverts_serialize(msg: SIPMessage) -> None:
    parsed = SIPMessage.parse(msg.serialize())
    del parsed.headers["Content-Length"]
    assert parsed == msg


@settings(max_examples=300)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | sip_messages().map(SIPMessage.serialize).flatmap(
           lambda raw: st.integers(0, len(raw)).map(lambda cut: raw[:cut])))
def test_any_input_is_rejected_or_stable(raw: bytes) -> None:
    try:
        first = SIPMessage.parse(raw).serialize()
    except ValueError:
        return
    assert SIPMessage.parse(first).serialize() == first


# ---- digest authentication -----------------------------------------------------------
RFC2617 = DigestChallenge(realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                          qop=("auth", "auth-int"), opaque="5ccc069c403ebaf9f0171e9517f40e41")


def test_digest_rfc2617_example() -> None:
    challenge = DigestChallenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    assert challenge == RFC2617
    response = digest_response(challenge, method="GET", uri="/dir/index.html", username="Mufasa",
                               password="Circle Of Life", cnonce="0a4f113b", nc=1)
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_digest_rfc7616_examples(algorithm: str, expected: str) -> None:
    challenge = DigestChallenge(realm="http-auth@example.org",
                                nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                                algorithm=algorithm, qop=("auth", "auth-int"),
                                opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    response = digest_response(challenge, method="GET", uri="/dir/index.html",
                               username="Mufasa", password="Circle of Life",
                               cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc=1)
    assert response == expected


def test_digest_without_qop_is_rfc2069() -> None:
    challenge = DigestChallenge(realm="asterisk", nonce="n1")
    ha1 = hashlib.md5(b"caller:asterisk:secret").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:600@127.0.0.1").hexdigest()
    expected = hashlib.md5(f"{ha1}:n1:{ha2}".encode()).hexdigest()
    value = build_authorization(challenge, method="INVITE", uri="sip:600@127.0.0.1",
                                username="caller", password="secret", cnonce="ignored")
    params = parse_auth_params(value.removeprefix("Digest "))
    assert params["response"] == expected
    assert "qop" not in params and "cnonce" not in params and "opaque" not in params


def test_authorization_header_fields() -> None:
    value = build_authorization(RFC2617, method="GET", uri="/dir/index.html", username="Mufasa",
                                password="Circle Of Life", cnonce="0a4f113b", nc=1)
    assert value.startswith("Digest ")
    assert parse_auth_params(value.removeprefix("Digest ")) == {
        "username": "Mufasa", "realm": "testrealm@host.com",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093", "uri": "/dir/index.html",
        "response": "6629fae49393a05397450978507c4ef1", "algorithm": "MD5",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41", "qop": "auth", "nc": "00000001",
        "cnonce": "0a4f113b"}


def test_authorization_for_401_and_407() -> None:
    challenge = SIPMessage.parse(ASTERISK_401)
    name, value = authorization_for(challenge, method="INVITE", uri="sip:600@127.0.0.1",
                                    username="caller", password="pw", cnonce="c")
    assert name == "Authorization" and 'realm="asterisk"' in value
    proxy = SIPMessage.parse(b"SIP/2.0 407 Proxy Authentication Required\r\n"
                             b'Proxy-Authenticate: Digest realm="p", nonce="n"\r\n\r\n')
    name, _ = authorization_for(proxy, method="INVITE", uri="sip:a@b", username="u",
                                password="p", cnonce="c")
    assert name == "Proxy-Authorization"
    with pytest.raises(ValueError, match="no authenticate challenge"):
        authorization_for(SIPMessage.parse(b"SIP/2.0 401 No\r\n\r\n"), method="INVITE",
                          uri="sip:a@b", username="u", password="p", cnonce="c")


def test_choose_challenge_prefers_sha256_and_rejects_unknown() -> None:
    md5 = 'Digest realm="r", nonce="1", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"'
    assert choose_challenge([md5, sha]).nonce == "2"
    with pytest.raises(ValueError, match="no supported Digest challenge"):
        choose_challenge(['Digest realm="r", nonce="3", algorithm=SHA-512-256'])
    with pytest.raises(ValueError, match="no supported Digest challenge"):
        choose_challenge(['Digest realm="r", nonce="3", qop="auth-int"'])


@pytest.mark.parametrize(("value", "message"), [
    ('Basic realm="x"', "not a Digest challenge"),
    ('Digest nonce="n"', "lacks realm"),
    ('Digest realm="r", nonce="n", ===', "malformed auth parameters"),
])
def test_bad_challenges(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DigestChallenge.parse(value)


def test_auth_params_unquote_escapes() -> None:
    assert parse_auth_params(r'realm="a \"b\" c", stale=TRUE') == {"realm": 'a "b" c',
                                                                  "stale": "TRUE"}
    assert DigestChallenge.parse('Digest realm="r", nonce="n", stale=TRUE').stale
