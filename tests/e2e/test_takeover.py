"""Takeover through the real Asterisk: an operator's phone (our SIP UA, registered as
2001) is rung through ARI, bridged with the caller, and the AI goes quiet; the record
keeps caller and operator apart (a snoop and an External Media per leg), and the call's
recording holds the operator's voice; when the operator hangs up, the AI answers again."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.events import CallEnded, HandedBack, Heard, TakenOver
from smartpbx_ari.media.resample import resample
from smartpbx_ari.sipcaller.caller import VOICE_RMS, Dial, SyntheticCaller
from smartpbx_ari.store.recordings import recording_path, recordings_dir
from smartpbx_ari.telephony.ari import AriError
from tests.e2e.conftest import Controller, greeted_with_phone
from tests.fixtures.audio import loudest, wav_samples

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]


async def test_an_operator_takes_the_call_and_hands_it_back(
    controller: Controller, caller: SyntheticCaller, dial: Dial, settings: Settings,
    credentials: Credentials,
) -> None:
    async with greeted_with_phone(controller, caller, dial, settings, credentials) as (
            started, line, phone):
        await controller.app.take_over(started.call_id, "2001")
        with pytest.raises(AriError, match="has the call already"):
            await controller.app.take_over(started.call_id, "2002")
        answered = await phone.incoming(15)
        assert (await controller.until(TakenOver)).endpoint == "2001"
        # the operator speaks; the caller hears the operator
        speech = await caller.tts.synthesize("Hello, this is Anna from the shop.")
        rate = answered.rtp.codec.sample_rate
        pcm = speech if rate == 16000 else resample(speech, 16000, rate).astype(np.int16)
        spoke = asyncio.get_running_loop().time()
        await answered.rtp.play(pcm)
        heard_at = await line.wait_voice(spoke, 5)
        assert heard_at is not None, "the caller did not hear the operator"
        assert "shop" in (await line.transcribe(heard_at, await line.wait_quiet(heard_at))).lower()
        # the record keeps the two apart (each leg heard alone): the operator's words ...
        heard = await controller.until(Heard)
        assert (heard.speaker, "shop" in heard.text.lower()) == ("operator", True), heard
        # ... and the caller's, never answered by the AI
        await line.say("Thank you Anna.")
        heard = await controller.until(Heard)
        assert (heard.speaker, "anna" in heard.text.lower()) == ("caller", True), heard
        await asyncio.sleep(1.5)
        later = []
        while not controller.events.queue.empty():
            later.append(controller.events.queue.get_nowait())
        # no "said": the AI stayed quiet; nothing mixed ("call") on the record
        assert all(isinstance(e, Heard) and e.speaker in ("caller", "operator")
                   for e in later), later
        # the operator hangs up: the AI is back
        await phone.hangup()
        assert (await controller.until(HandedBack)).endpoint == "2001"
        await controller.ai_answers(line, "How do I get a refund?")
        # an operator hangs the call up from the console
        await controller.app.hang_up(started.call_id)
        assert (await controller.until(CallEnded)).reason == "an operator hung up"
        await asyncio.wait_for(line.call.ended.wait(), 5)  # the caller got a BYE
    # the call's recording holds the operator, while the caller and the AI were quiet
    await controller.app.recordings.drain()
    samples, rate = wav_samples(recording_path(recordings_dir(settings), started.call_id))
    at = spoke + time.time() - time.monotonic() - started.at  # seconds into the call
    assert loudest(samples, rate, at, at + len(speech) / 16000) >= VOICE_RMS
