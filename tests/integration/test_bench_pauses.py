"""The pause benchmark's own parts: the hesitation is put where the sentence goes on, found
in Piper's real rendering, and stretched to the length asked for."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.config import TtsSettings
from smartpbx_ari.sipcaller.caller import trim_silence
from tests.fixtures.scripts import load_script

pytestmark = [pytest.mark.integration, pytest.mark.ai]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_pauses")  # (it imports its sibling bench_hearing)


def test_the_comma_goes_after_the_middle_word(bench: ModuleType) -> None:
    assert bench.with_comma("Can I pay for my sofa in instalments?") == \
        "Can I pay for, my sofa in instalments?"
    assert bench.with_comma("Do you ship?") is None  # too short to hesitate in
    assert bench.with_comma("Hi, where is my parcel today?") is None  # a pause of its own


def test_quiet_at_either_end_is_no_pause_inside(bench: ModuleType) -> None:
    tone = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)
    quiet = np.zeros(4000, np.int16)
    assert bench.pause_at(np.concatenate([quiet, tone, quiet])) is None
    start, end = bench.pause_at(np.concatenate([tone, quiet, tone]))
    assert abs(start - 8000) <= 320 and abs(end - 12000) <= 320


async def test_pipers_comma_pause_is_found_and_stretched(bench: ModuleType) -> None:
    tts = TextToSpeech(TtsSettings())
    text = bench.with_comma("Can I change the address on my order?")
    pcm = trim_silence(await tts.synthesize(text, Voice("piper")))
    tts.close()
    pause = bench.pause_at(pcm)
    assert pause is not None
    start, end = pause
    assert 0.25 < start / len(pcm) < 0.75  # the middle, not a stop closure at an end
    longer = bench.stretched(pcm, pause, 1.0)
    assert len(longer) == len(pcm) - (end - start) + 16000
    assert not longer[start : start + 16000].any()
    assert np.array_equal(longer[start + 16000 :], pcm[end:])
