"""The operators' queue through the real Asterisk, nobody there to answer: the caller
hears music and news (position, expected wait, the offer to be called back), never more
than 5 s of silence, and a number keyed after pressing 1 reaches the operators' console
(the controller's FastAGI -> the HITL desk -> the WebSocket) as a callback alert.
Measured on the caller's received, decoded RTP; heard with Whisper."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from smartpbx_ari.call.hitl import CALLBACK
from smartpbx_ari.cli.wiring import callback_alerts
from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.events import HandedOff
from smartpbx_ari.media.resample import resample
from smartpbx_ari.sipcaller.caller import Dial, Line, SyntheticCaller
from smartpbx_ari.sipcaller.phone import SipPhone
from smartpbx_ari.sipcaller.silence import longest_silence
from smartpbx_ari.telephony.agi import AgiServer
from smartpbx_ari.telephony.pbx import LocalPbx
from tests.e2e.conftest import Controller
from tests.fixtures.web_app import WebUnderTest, make_engine, running_web
from tests.integration.test_api import call, token
from tests.integration.test_websocket import next_of, ws_url

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]
MAX_SILENCE_S = 5.0  # the target for a caller waiting for a person
WAIT_S = 45.0  # two position announcements (every 30 s) and the first callback offer (10 s)
NUMBER = "5551234567"


@pytest.fixture
def queue(pbx: LocalPbx, settings: Settings, credentials: Credentials) -> Dial:
    """Extension 0: straight to the operators' queue; no operator phone is registered."""
    return Dial("0", (settings.pbx.host, settings.pbx.sip_port), "caller",
                credentials.caller_password)


@pytest.fixture(scope="module")
def caller(settings: Settings) -> SyntheticCaller:
    return SyntheticCaller(settings)


@pytest.fixture
async def console(settings: Settings, tmp_path: Path) -> AsyncIterator[WebUnderTest]:
    """The console (web app, desk, WebSocket feed) behind the controller's FastAGI, wired
    as `smartpbx serve` wires them."""

    async def no_rules() -> list[object]:
        return []

    async with running_web(*make_engine(tmp_path / "web")) as web:
        server = await AgiServer(no_rules, settings.agi.host, settings.agi.port,
                                 on_callback=callback_alerts(web.context.desk)).start()
        try:
            yield web
        finally:
            await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


async def heard_between(line: Line, start_s: float, end_s: float) -> str:
    return words(await line.transcribe(line.answered_at + start_s, line.answered_at + end_s))


async def test_a_caller_alone_in_the_queue_hears_music_and_news_never_silence(
    queue: Dial, caller: SyntheticCaller
) -> None:
    async with caller.dial(queue) as line:
        await asyncio.sleep(WAIT_S)
        until = line.answered_at + WAIT_S
        silence = longest_silence(line.call.rtp.received, line.answered_at, until)
        first = await heard_between(line, 0, 10)
        offer = await heard_between(line, 9, 20)
        again = await heard_between(line, 29, 40)
    print(f"longest silence {silence.seconds:.2f} s at +{silence.start - line.answered_at:.1f} s")
    assert silence.seconds < MAX_SILENCE_S
    assert "first in line" in first, first  # the position, at once
    assert re.search(r"press (1|one)\b", offer) and "call you back" in offer, offer
    assert "first in line" in again, again  # and again 30 s later


async def test_a_second_caller_hears_their_position_and_the_expected_wait(
    queue: Dial, caller: SyntheticCaller
) -> None:
    async with caller.dial(queue) as first:
        # in the queue (its news has begun) before the second dials: two dials at once
        # may join in either order
        assert await first.wait_voice(first.answered_at, 10) is not None
        async with caller.dial(queue) as second:
            await asyncio.sleep(13)
            heard = await heard_between(second, 0, 13)
        still_waiting = not first.call.ended.is_set()
    assert still_waiting  # (else the second was rightly told it is first)
    assert re.search(r"caller number (2|two)\b", heard), heard
    # Asterisk's estimate from the queue's average wait (none answered yet: 30 s)
    assert re.search(r"hold time is currently \w+ seconds", heard), heard


async def test_a_number_left_by_dtmf_becomes_a_callback_alert_and_the_call_ends_politely(
    queue: Dial, caller: SyntheticCaller, console: WebUnderTest, http: aiohttp.ClientSession
) -> None:
    otto = await token(console, http, "otto")
    async with http.ws_connect(ws_url(console, "otto", otto)) as ws, \
            caller.dial(queue) as line:
        await next_of(ws, "hello")
        await asyncio.sleep(1.0)
        await line.call.send_dtmf("1")
        pressed = line.call.rtp.received[-1][0]
        asked = await line.wait_voice(pressed + 0.5, 5)  # the announcement stops, the ask starts
        assert asked is not None
        done = await line.wait_quiet(asked)
        prompt = words(await line.transcribe(pressed, done))
        for digit in NUMBER + "#":
            await line.call.send_dtmf(digit)
            await asyncio.sleep(0.15)
        alert = await next_of(ws, "hitl_alert")  # on the operator's screen
        thanks_at = await line.wait_voice(done + 0.5, 10)
        assert thanks_at is not None
        await asyncio.wait_for(line.call.ended.wait(), 15)  # Asterisk hangs up after it
        thanks = words(await line.transcribe(thanks_at, line.call.rtp.received[-1][0]))
    assert "phone number we should call you back on" in prompt, prompt
    assert (alert["reason"], alert["question"]) == (CALLBACK, NUMBER)
    assert re.fullmatch(r"\d+\.\d+", alert["call_id"])  # the caller's channel in Asterisk
    status, listed = await call(http, "GET", f"{console.url}/api/v1/alerts", otto)
    assert status == 200 and [(a["reason"], a["question"]) for a in listed["data"]] == [
        (CALLBACK, NUMBER)]
    assert "call you back" in thanks and "goodbye" in thanks, thanks


async def test_a_number_too_short_takes_the_caller_back_into_the_queue_without_an_alert(
    queue: Dial, caller: SyntheticCaller, console: WebUnderTest
) -> None:
    async with caller.dial(queue) as line:
        await asyncio.sleep(1.0)
        await line.call.send_dtmf("1")
        await asyncio.sleep(1.0)  # into the ask for a number
        for digit in "12#":
            await line.call.send_dtmf(digit)
            await asyncio.sleep(0.15)
        keyed = line.call.rtp.received[-1][0]
        await asyncio.sleep(12)
        heard = words(await line.transcribe(keyed, keyed + 12))
        assert not line.call.ended.is_set()
    assert "could not take that number" in heard and "back in the queue" in heard, heard
    assert "first in line" in heard, heard  # the queue again, from the top
    assert console.context.desk.open_alerts() == []


async def test_a_caller_the_ai_hands_over_hears_no_silence_on_the_way_into_the_queue(
    controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    async with caller.dial(dial) as line:
        assert await line.wait_voice(line.answered_at, 10) is not None  # the greeting
        await line.call.send_dtmf("0")
        pressed = line.call.rtp.received[-1][0]
        assert (await controller.until(HandedOff)).reason == "caller pressed 0"
        await asyncio.sleep(20)
        silence = longest_silence(line.call.rtp.received, pressed, pressed + 20)
        heard = await heard_between(line, pressed - line.answered_at,
                                    pressed - line.answered_at + 12)
    print(f"longest silence {silence.seconds:.2f} s at +{silence.start - pressed:.1f} s "
          "after pressing 0")
    assert silence.seconds < MAX_SILENCE_S
    assert "first in line" in heard, heard


async def test_an_operator_who_answers_is_put_through_at_once_and_heard(
    queue: Dial, caller: SyntheticCaller, settings: Settings, credentials: Credentials
) -> None:
    server = (settings.pbx.host, settings.pbx.sip_port)
    async with SipPhone.register(server, "2001", credentials.operator_password) as phone:
        await asyncio.sleep(1.0)  # the registration reaches the queue's member state
        async with caller.dial(queue) as line:
            answered = await phone.incoming(15)  # rung while the caller hears the queue
            put_through_s = time.monotonic() - line.answered_at
            speech = await caller.tts.synthesize("Hello, this is Anna from the shop.")
            rate = answered.rtp.codec.sample_rate
            pcm = speech if rate == 16000 else resample(speech, 16000, rate).astype(np.int16)
            spoke = time.monotonic()
            await answered.rtp.play(pcm)
            heard_at = await line.wait_voice(spoke, 5)
            assert heard_at is not None, "the caller did not hear the operator"
            heard = words(await line.transcribe(heard_at, await line.wait_quiet(heard_at)))
            await line.call.hangup()
    print(f"operator answered {put_through_s:.2f} s after the queue answered the caller; "
          f"the caller heard them {heard_at - spoke:.2f} s after they spoke")
    assert "shop" in heard, heard
    assert heard_at - spoke < 1.0  # bridged: no announcement in between
