"""espeak-ng TTS (the Korean voice and the fallback): 16 kHz audio, sentence streaming,
and no process left behind on cancel."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import pytest

from smartpbx_ari.ai.tts import Pcm, TextToSpeech, split_sentences
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.config import TtsSettings
from smartpbx_ari.media.turn import rms

pytestmark = [pytest.mark.integration, pytest.mark.ai]
ESPEAK = TtsSettings(engine="espeak")


def test_split_sentences() -> None:
    assert split_sentences(" One. Two?  Three! four ") == ["One.", "Two?", "Three!", "four"]
    assert split_sentences("   ") == []


async def test_synthesize_gives_16k_speech() -> None:
    pcm = await TextToSpeech(ESPEAK).synthesize("Hello there.")
    assert 0.4 < len(pcm) / 16000 < 3.0
    assert rms(pcm) > 500


async def test_stream_yields_sentence_by_sentence() -> None:
    chunks = [c async for c in TextToSpeech(ESPEAK).stream("One. Two. Three.")]
    assert len(chunks) == 3


async def test_cancelled_synthesis_and_closed_stream_leave_nothing_running() -> None:
    tts = TextToSpeech(ESPEAK)
    task = asyncio.create_task(tts.synthesize("A long sentence that takes a while. " * 30))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stream = tts.stream("One. Two. Three. Four.")
    await anext(stream)
    await stream.aclose()
    await asyncio.sleep(0.05)
    assert _espeak_children() == []  # killed and reaped, not left talking to nobody
    gc.collect()  # an unclosed pipe transport would now raise (filterwarnings = error)


async def test_callers_asking_for_one_phrase_at_once_wait_for_one_rendering() -> None:
    """Twenty calls at once reaching a phrase not yet cached (a clarifying question, an
    operator's answer): one rendering, not twenty in a row on the one TTS worker. One
    caller hanging up meanwhile leaves the others their audio."""
    tts = TextToSpeech(ESPEAK)
    renders: list[str] = []
    render = tts._render
    begun, hung_up = asyncio.Event(), asyncio.Event()  # it renders once a caller has gone

    async def counted(text: str, voice: Voice) -> Pcm:
        renders.append(text)
        if len(renders) == 1:
            begun.set()
            await hung_up.wait()
        return await render(text, voice)

    tts._render = counted  # type: ignore[method-assign]
    waiters = [asyncio.create_task(tts.synthesize("Is it about A, or about B?"))
               for _ in range(5)]
    await begun.wait()
    waiters[0].cancel()
    await asyncio.wait([waiters[0]])
    hung_up.set()
    done = await asyncio.gather(*waiters[1:])
    assert renders == ["Is it about A, or about B?"]
    assert all(pcm is done[0] for pcm in done) and rms(done[0]) > 500
    assert waiters[0].cancelled()
    assert (await tts.synthesize("Another phrase.")).size and len(renders) == 2


def _espeak_children() -> list[int]:
    me = str(os.getpid())
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1]
        if name.startswith("espeak") and rest.split()[1] == me:
            found.append(int(proc.name))
    return found


async def test_speak_starts_on_the_first_sentence_of_a_slow_source() -> None:
    tts = TextToSpeech(ESPEAK)
    second_asked = asyncio.Event()

    async def writer():  # type: ignore[no-untyped-def]
        yield "First sentence."
        second_asked.set()
        await asyncio.sleep(1.0)  # the LLM still writing
        yield "Second sentence."

    stream = tts.speak(writer())
    first = await asyncio.wait_for(anext(stream), 0.9)  # before the second exists
    assert rms(first) > 500
    assert second_asked.is_set()  # the next sentence is already being waited for
    rest = [c async for c in stream]
    assert len(rest) == 1


async def test_a_korean_call_gets_the_korean_voice() -> None:
    tts = TextToSpeech(ESPEAK)
    assert tts.voice_for("") == tts.voice_for("en") == Voice("espeak", "en-us")
    assert tts.voice_for("ko") == Voice("espeak", "ko")
    assert tts.voice_for("ko-KR").engine == "espeak"
    neural = TextToSpeech(TtsSettings())
    assert neural.voice_for("en-US") == Voice("piper")  # English: the neural voice
    assert neural.voice_for("ko") == Voice("espeak", "ko")  # no Korean neural voice
    korean = await tts.synthesize("배송은 보통 이틀 걸립니다.", tts.voice_for("ko"))
    assert rms(korean) > 500
