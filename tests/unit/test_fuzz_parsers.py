"""Property tests of every parser of untrusted input: any input parses or raises the
parser's documented error, nothing else. The checks, samples and mutations are those of
the long run, scripts/fuzz_parsers.py (10^6 inputs per parser); here hypothesis drives
them, plus a few structured strategies of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from smartpbx_ari.sipcaller import sdp, sip
from smartpbx_ari.telephony import agi
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.ari_events import (
    AriEventError,
    Channel,
    ChannelDtmfReceived,
    Connected,
    StasisStart,
    parse_event,
    parse_message,
)
from smartpbx_ari.web import ws
from smartpbx_ari.web.auth import Claims, Tokens
from tests.fixtures.scripts import load_script

pytestmark = pytest.mark.unit


fuzz_parsers = load_script("fuzz_parsers")
TARGETS = fuzz_parsers.targets()
PARSERS = ["rtp", "sip", "sdp", "agi", "ari"]  # ws answers errors, raises none: below


def inputs(name: str) -> st.SearchStrategy[bytes]:
    """Random bytes, or a valid sample mutated as the long run does (by a drawn seed)."""
    target = TARGETS[name]
    mutated = st.integers(0, 2**32).map(lambda seed: fuzz_parsers.Inputs(target, seed).next())
    return st.binary(max_size=600) | mutated | st.sampled_from(target.samples)


def only_documented(name: str, data: bytes) -> None:
    target = TARGETS[name]
    with contextlib.suppress(*target.errors):
        target.check(data)


@pytest.mark.parametrize("name", PARSERS)
def test_valid_samples_parse(name: str) -> None:
    for sample in TARGETS[name].samples:
        TARGETS[name].check(sample)


@settings(max_examples=400)
@given(inputs("rtp"))
def test_rtp_any_datagram(data: bytes) -> None:
    only_documented("rtp", data)


@settings(max_examples=400)
@given(inputs("sip"))
def test_sip_any_message_and_its_header_values(data: bytes) -> None:
    only_documented("sip", data)


@given(st.text(max_size=200))
def test_sip_header_helpers_take_any_value(value: str) -> None:
    sip.header_params(value)
    sip.name_addr_uri(value)
    sip.split_header_list(value)
    for call in (lambda: sip.uri_host_port(value), lambda: sip.choose_challenge([value])):
        with contextlib.suppress(ValueError):
            call()


@pytest.mark.parametrize(("value", "params"), [('"A" <sip:a@b;tag=1', {"tag": "1"}),
                                               ("<sip:a@b;lr;tag=x", {"lr": "", "tag": "x"})])
def test_an_unclosed_name_addr_is_read_whole(value: str, params: dict[str, str]) -> None:
    """Found by fuzzing: an unclosed ``<`` raised IndexError."""
    assert sip.header_params(value) == params


@pytest.mark.parametrize(("cseq", "uri"), [("²3 INVITE", "sip:a@b:²"), ("٣ BYE", "sip:a@b:٣")])
def test_non_ascii_digits_are_malformed_not_numbers(cseq: str, uri: str) -> None:
    msg = sip.SIPMessage(method=sip.SIPMethod.INVITE, uri="sip:a@b")
    msg.headers["CSeq"] = cseq
    with pytest.raises(ValueError, match="malformed CSeq"):
        _ = msg.cseq
    with pytest.raises(ValueError, match="malformed port"):
        sip.uri_host_port(uri)


@settings(max_examples=400)
@given(inputs("sdp"))
def test_sdp_any_answer(data: bytes) -> None:
    only_documented("sdp", data)


@pytest.mark.parametrize("media", ["m=audio ²0 RTP/AVP 0", "m=audio 4000 RTP/AVP ٣",
                                   "m=audio 70000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0 300"])
def test_sdp_ports_and_payload_types_are_ascii_numbers_in_range(media: str) -> None:
    with pytest.raises(ValueError, match="malformed SDP media line"):
        sdp.parse_answer(f"v=0\r\nc=IN IP4 10.0.0.1\r\n{media}\r\n")


@settings(max_examples=300)
@given(inputs("agi"))
def test_agi_any_request(data: bytes) -> None:
    only_documented("agi", data)


@given(st.dictionaries(st.sampled_from(["agi_network_script", "agi_callerid", "agi_extension",
                                        "agi_arg_1", "agi_uniqueid", "agi_other"]),
                       st.text(max_size=40)))
async def test_agi_any_variables_get_a_route_or_a_callback_answer(headers: dict[str, str]
                                                                  ) -> None:
    server = agi.AgiServer(_no_rules, on_callback=lambda request: None)
    answers = await server._answer(headers)
    names = [name for name, _ in answers]
    assert names in (["SMARTPBX_ROUTE", "SMARTPBX_LANGUAGE"], ["SMARTPBX_CALLBACK"])
    assert all('"' not in value and "\n" not in value for _, value in answers)


async def _no_rules() -> list[Any]:
    return []


@settings(max_examples=400)
@given(inputs("ari"))
def test_ari_any_frame(data: bytes) -> None:
    only_documented("ari", data)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
KEYS = st.sampled_from(["type", "application", "channel", "id", "caller", "dialplan",
                        "channelvars", "args", "digit", "duration_ms", "cause", "cause_txt",
                        "name", "number", "exten"])
SHAPED = st.recursive(JSON, lambda inner: st.dictionaries(KEYS, inner, max_size=5), max_leaves=25)


@given(st.dictionaries(KEYS, SHAPED, max_size=6),
       st.sampled_from(["StasisStart", "StasisEnd", "ChannelDtmfReceived", "ChannelDestroyed",
                        "ChannelHangupRequest", "ChannelVarset"]))
def test_ari_any_event_shape_is_an_event_or_an_error_naming_the_field(
        data: dict[str, Any], kind: str) -> None:
    data.setdefault("type", kind)
    with contextlib.suppress(AriEventError):
        parse_event(data)


@pytest.mark.parametrize(("event", "field"), [
    ({"type": "StasisStart", "channel": {}}, "channel.id: missing"),
    ({"type": "StasisStart", "channel": "1700.1"}, "channel: expected an object"),
    ({"type": "StasisStart", "channel": {"id": "1", "caller": []}}, "channel.caller:"),
    ({"type": "StasisStart", "channel": {"id": "1", "channelvars": {"A": {}}}},
     "channel.channelvars.A:"),
    ({"type": "StasisStart", "channel": {"id": "1"}, "args": "ai"}, "args:"),
    ({"type": "ChannelDestroyed", "channel": {"id": "1"}, "cause": [16]}, "cause:"),
    ({"type": "ChannelDtmfReceived", "channel": {"id": "1"}, "duration_ms": "x"},
     "duration_ms:"),
])
def test_a_malformed_event_names_its_field(event: dict[str, Any], field: str) -> None:
    """Found by fuzzing: these raised KeyError, AttributeError or TypeError."""
    with pytest.raises(AriEventError, match=field):
        parse_event(event)


@pytest.mark.parametrize("text", ["", "not json", "[1]", "[" * 100_000 + "]" * 100_000,
                                  b"\xff\xfe"])
def test_a_frame_that_is_no_json_object_is_an_ari_event_error(text: str | bytes) -> None:
    with pytest.raises(AriEventError, match="ARI message"):
        parse_message(text)


def test_a_well_formed_event_still_parses_in_full() -> None:
    event = parse_message(fuzz_parsers.ARI_EVENTS[0])
    assert isinstance(event, StasisStart) and event.args == ("ai", "ko")
    assert event.channel == Channel(
        id="1700.1", name="PJSIP/caller-00000001", state="Up", caller_number="2001",
        caller_name="Ada", exten="1000", context="from-caller", app_name="Stasis",
        app_data="smartpbx", variables={"SMARTPBX_LANGUAGE": "ko"})
    dtmf = parse_message(fuzz_parsers.ARI_EVENTS[1])
    assert isinstance(dtmf, ChannelDtmfReceived) and (dtmf.digit, dtmf.duration_ms) == ("0", 120)


@pytest.fixture
async def asterisk_sending() -> AsyncIterator[tuple[list[str], str]]:
    """A stand-in for ARI's event socket that sends the frames queued in the list."""
    frames: list[str] = []

    async def events(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        for frame in frames:
            await socket.send_str(frame)
        async for _ in socket:  # until the client goes
            pass
        return socket

    app = web.Application()
    app.router.add_get("/ari/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield frames, f"http://127.0.0.1:{port}/ari"
    await runner.cleanup()


async def test_a_bad_frame_from_asterisk_is_skipped_and_the_events_go_on(
        asterisk_sending: tuple[list[str], str], caplog: pytest.LogCaptureFixture) -> None:
    """Before: the first bad frame ended events(), and the Stasis app released every call."""
    frames, url = asterisk_sending
    frames += ["garbage", json.dumps({"type": "StasisStart", "channel": {"name": "x"}}),
               fuzz_parsers.ARI_EVENTS[0].decode()]
    async with AriClient(url, "u", "p", "smartpbx") as client:
        stream = client.events()
        first = await asyncio.wait_for(anext(stream), 5)
        second = await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
    assert isinstance(first, Connected)
    assert isinstance(second, StasisStart) and second.channel.id == "1700.1"
    skipped = [r.message for r in caplog.records if "event skipped" in r.message]
    assert len(skipped) == 2 and "not JSON" in skipped[0] and "channel.id" in skipped[1]


# ---- the operator's WebSocket messages (web/ws.py; helper "sec" owns its fixes) ----------
@settings(max_examples=300)
@given(inputs("ws"))
def test_ws_any_message_from_a_viewer_gets_a_reply(data: bytes) -> None:
    # deep nesting: test_ws_deeply_nested_message_gets_an_error_reply
    with contextlib.suppress(RecursionError):
        TARGETS["ws"].check(data)


async def test_ws_messages_from_a_viewer_token(tokens: Tokens, viewer_token: str) -> None:
    claims = tokens.verify(viewer_token)
    assert claims is not None
    context: Any = None  # never reached: a viewer acts on nothing
    assert await ws._handle(context, claims, '{"type": "ping"}') == {"type": "pong"}
    refused = await ws._handle(context, claims, '{"type": "accept", "alert_id": "a1"}')
    assert refused["type"] == "error" and "viewers" in refused["message"]
    assert (await ws._handle(context, claims, "{"))["message"] == "message: not valid JSON"


async def test_ws_deeply_nested_message_gets_an_error_reply() -> None:
    context: Any = None
    reply = await ws._handle(context, Claims("v", "viewer"), "[" * 100_000 + "]" * 100_000)
    assert reply["type"] == "error"


# ---- the long run's harness ----------------------------------------------------------------
def test_the_long_run_finds_nothing_in_the_websocket_s_messages() -> None:
    result = fuzz_parsers.fuzz(TARGETS["ws"], 2000, seed=7)
    assert result.inputs == result.parsed == 2000 and result.crashes == {}


@pytest.mark.parametrize("name", PARSERS)
def test_the_long_run_finds_nothing_in_a_short_one(name: str) -> None:
    result = fuzz_parsers.fuzz(TARGETS[name], 2000, seed=7)
    assert result.inputs == 2000 and result.parsed > 0 and result.rejected > 0
    assert result.crashes == {}


def test_the_harness_reports_crashes_and_hangs_with_their_input() -> None:
    def check(data: bytes) -> None:
        if data[:1] == b"k":
            raise KeyError("boom")
        if data[:1] == b"h":  # spinning: the CPU-time watchdog
            while True:
                pass
        if data[:1] == b"b":  # blocked: the wall-time watchdog (ten times the CPU one)
            time.sleep(5)
        raise ValueError("documented")

    target = fuzz_parsers.Target("toy", check, (ValueError,), [b"k1", b"h1", b"b1", b"ok"],
                                 [b"x"])
    result = fuzz_parsers.fuzz(target, 80, seed=3, max_seconds=0.02)
    found = {(crash.kind, crash.example[:1]) for crash in result.crashes.values()}
    assert found == {("KeyError", b"k"), ("Hang", b"h"), ("Hang", b"b")}
    assert result.crashed + result.rejected == 80
    assert result.max_input_s < 1.0  # each hang cut short
