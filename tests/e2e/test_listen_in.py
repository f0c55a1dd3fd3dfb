"""Listen-in through the real Asterisk: an operator's phone (our SIP UA, 2001) is rung
through ARI and hears the live AI call (the caller and the AI, through a snoop channel)
without being heard; taking over from there joins that same phone to the caller."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.events import ListenEnded, ListeningIn, Said, TakenOver
from smartpbx_ari.media.resample import resample
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.sipcaller.phone import IncomingCall
from smartpbx_ari.sipcaller.rtp_stream import RtpStream
from smartpbx_ari.telephony.ari import AriError
from tests.e2e.conftest import Controller, greeted_with_phone

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]


async def heard_on(controller: Controller, rtp: RtpStream, since: float, until: float) -> str:
    pcm = rtp.recorded_pcm(since, until)
    rate = rtp.codec.sample_rate
    pcm16k = pcm if rate == 16000 else resample(pcm, rate, 16000).astype(np.int16)
    return (await controller.engine.stt.transcribe(pcm16k)).text.lower()


async def speak_on(caller: SyntheticCaller, phone: IncomingCall, text: str) -> None:
    speech = await caller.tts.synthesize(text)
    rate = phone.rtp.codec.sample_rate
    await phone.rtp.play(speech if rate == 16000 else resample(speech, 16000, rate)
                         .astype(np.int16))


async def test_an_operator_listens_in_unheard_then_takes_over_from_there(
    controller: Controller, caller: SyntheticCaller, dial: Dial, settings: Settings,
    credentials: Credentials,
) -> None:
    async with greeted_with_phone(controller, caller, dial, settings, credentials) as (
            started, line, phone):
        await controller.app.listen(started.call_id, "2001")
        with pytest.raises(AriError, match="has the call already"):
            await controller.app.take_over(started.call_id, "2002")
        listening = await phone.incoming(15)
        assert (await controller.until(ListeningIn)).endpoint == "2001"
        # the operator hears the caller's question and the AI's answer
        asked = time.monotonic()
        await line.say("How do I get a refund?")
        said = await controller.until(Said)
        assert said.intent == "refund", said
        answered = await line.wait_voice(asked + 0.5, 10)
        assert answered is not None
        done = await line.wait_quiet(answered)
        heard = await heard_on(controller, listening.rtp, asked, done)
        assert "refund" in heard, heard  # the question, and the answer's words
        # the operator speaks while listening: the caller hears nothing
        spoke = time.monotonic()
        await speak_on(caller, listening, "This is Anna, just listening.")
        assert await line.wait_voice(spoke, 2) is None, "the caller heard the listener"
        # taking over from there: the same phone now talks with the caller
        await controller.app.take_over(started.call_id, "2001")
        assert (await controller.until(TakenOver)).endpoint == "2001"
        spoke = time.monotonic()
        await speak_on(caller, listening, "Hello, this is Anna from the shop.")
        heard_at = await line.wait_voice(spoke, 5)
        assert heard_at is not None, "the caller did not hear the operator"
        assert "shop" in (await line.transcribe(heard_at, await line.wait_quiet(heard_at))
                          ).lower()
        assert not listening.ended.is_set()  # one phone call all along


async def test_a_listener_who_hangs_up_leaves_the_call_with_the_ai(
    controller: Controller, caller: SyntheticCaller, dial: Dial, settings: Settings,
    credentials: Credentials,
) -> None:
    async with greeted_with_phone(controller, caller, dial, settings, credentials) as (
            started, line, phone):
        await controller.app.listen(started.call_id, "2001")
        await phone.incoming(15)
        await controller.until(ListeningIn)
        await phone.hangup()
        assert (await controller.until(ListenEnded)).endpoint == "2001"
        await asyncio.sleep(0.5)
        assert controller.app.listener(started.call_id) == ""
        await controller.ai_answers(line, "How do I get a refund?")
        bridges = await controller.app.ari.bridges()
        assert not [b for b in bridges if "listen" in b.name]  # the listen bridge is gone
