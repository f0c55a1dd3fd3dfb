"""A caller's whole utterance reaches the STT through a real call, on the line that lost
words: G.711 mu-law at 8 kHz, band-limited to 300-3400 Hz.

The reference is what was said (the reading's transcript, the text spoken), counted as
Whisper's word error rates are. The live call must hear it, in one turn, as well as the same
STT hears the same clip offline, whole (no VAD): no first or last word that offline hears
lost, and at most a tenth more errors. (Offline, tiny.en drops the reading's first "And";
the live pre-roll keeps it: hearing more than offline is no fault.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.config import Settings
from smartpbx_ari.events import CallStarted, Heard, Said
from smartpbx_ari.media.resample import resample
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller, trim_silence
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.stasis import EXTERNAL_SUFFIX
from tests.e2e.conftest import Controller
from tests.fixtures.audio import librivox, telephone_band

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]
LOW_VOICE = Voice("piper", pitch=-3)  # the lower voice whose words Silero used to drop
QUESTION = "Can I get a fixed IP for my home server?"
SPELLING = Path(__file__).parents[2] / "scripts" / "data" / "whisper-english-spelling.json"
NORMALIZE = EnglishTextNormalizer(json.loads(SPELLING.read_text("utf-8")))


def words(text: str) -> list[str]:
    return NORMALIZE(text).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


async def low_voice(settings: Settings) -> np.ndarray:
    tts = TextToSpeech(settings.tts, 16000)
    try:
        return trim_silence(await tts.synthesize(QUESTION, LOW_VOICE))
    finally:
        tts.close()


@pytest.mark.parametrize("speaker", ["a lower neural voice", "a person reading"])
async def test_an_utterance_played_into_a_call_is_heard_whole(
    controller: Controller, caller: SyntheticCaller, dial: Dial, settings: Settings,
    speaker: str
) -> None:
    if speaker == "a person reading":
        text, pcm16k = librivox("sense_and_sensibility_01_austen_64kb-0870")
    else:
        text, pcm16k = QUESTION, await low_voice(settings)
    said = words(text)
    line_pcm = telephone_band(pcm16k)
    offline = words((await controller.engine.stt.transcribe(resample(line_pcm, 8000, 16000))
                     ).text)
    assert len(offline) >= 8, offline
    async with caller.dial(Dial(dial.exten, dial.server, dial.user, dial.password,
                                "ulaw")) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        await line.play(np.concatenate([np.zeros(2400, np.int16), line_pcm]))
        heard = await controller.until(Heard, 15)
        await controller.until(Said, 15)
    live = words(heard.text)
    for end in (slice(None, 1), slice(-1, None)):  # the first word, the last word
        assert live[end] == said[end] or offline[end] != said[end], (said, offline, live)
    assert word_errors(said, live) <= word_errors(said, offline) + len(said) // 10, (
        said,
        offline,
        live,
    )


@pytest.mark.parametrize(("codec", "line"), [("ulaw", "(ulaw)"), ("alaw", "(alaw)"),
                                              ("g722", "(g722)")])
async def test_a_caller_s_line_reaches_the_ear_in_its_own_codec(
    controller: Controller, caller: SyntheticCaller, dial: Dial, ari: AriClient,
    codec: str, line: str
) -> None:
    """A G.711 caller is taken in its codec (media.follow_caller), not transcoded up to
    G.722 by Asterisk: the ear hears the 8 kHz line as it is (Silero's 8 kHz mode), and
    the caller hears the agent."""
    async with caller.dial(Dial(dial.exten, dial.server, dial.user, dial.password,
                                codec)) as call:
        started = await controller.until(CallStarted)
        assert await call.wait_voice(call.answered_at, 10) is not None  # the greeting
        external = started.call_id + EXTERNAL_SUFFIX
        assert await ari.get_variable(external, "CHANNEL(audionativeformat)") == line
