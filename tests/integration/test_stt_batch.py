"""Utterances waiting together are decoded by the real tiny.en as one batch, and each is
heard exactly as it is decoded alone: speech, silence and noise, with and without the
knowledge base's prompt. A shorter window takes the short utterances only. A cancelled
wait costs no one else their answer; a failed batch fails each of its utterances with
the STT's own error. It is busy while an utterance is asked for and not answered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from smartpbx_ari.ai import stt as stt_module
from smartpbx_ari.ai import stt_batch
from smartpbx_ari.ai.stt import SpeechToText, SttError
from smartpbx_ari.config import ConfigError, load_settings
from tests.fixtures.audio import read_pcm16, speak_wav

pytestmark = [pytest.mark.integration, pytest.mark.ai]
SAID = ["Where is my parcel? I ordered it last week.",
        "Can I change the delivery address of my order?",
        "How long does a refund take to reach my card?"]


@pytest.fixture(scope="module")
def stt() -> Iterator[SpeechToText]:
    settings = load_settings()
    ears = SpeechToText(replace(settings.stt, batch_max=8, workers=1, window_s=30.0),
                        settings.cache_dir)  # Whisper's own window: as faster-whisper hears
    yield ears
    ears.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    where = tmp_path_factory.mktemp("said")
    spoken = [np.frombuffer(read_pcm16(speak_wav(text, where / f"{i}.wav", 16000))[0],
                            "<i2").astype(np.int16) for i, text in enumerate(SAID)]
    rng = np.random.default_rng(3)
    return [*spoken, np.zeros(24000, np.int16),
            rng.normal(0, 1500, 24000).astype(np.int16)]


async def _together(stt: SpeechToText, clips: list[np.ndarray]) -> list[str]:
    before = dict(stt.batches)
    heard = await asyncio.gather(*(stt.transcribe(c, "en") for c in clips))
    grown = {size: n - before.get(size, 0) for size, n in stt.batches.items()
             if n != before.get(size, 0)}
    # the first finds a free worker and goes alone; the rest waited for it: one batch
    assert grown == {1: 1, len(clips) - 1: 1}, grown
    return [t.text for t in heard]


async def test_a_batch_hears_each_utterance_as_it_is_heard_alone(
        stt: SpeechToText, clips: list[np.ndarray]) -> None:
    alone = [stt._decode(c, "en").text for c in clips]
    assert all(alone[:3]) and alone[3:] == ["", ""]  # speech heard, silence and noise not
    assert await _together(stt, clips) == alone


async def test_with_the_prompt_silence_and_noise_in_a_batch_stay_silent(
        stt: SpeechToText, clips: list[np.ndarray]) -> None:
    stt.bias = lambda language: "refund parcel delivery address order card invoice"
    try:
        alone = [stt._decode(c, "en").text for c in clips]
        together = await _together(stt, clips)
    finally:
        stt.bias = None
    assert together == alone and together[3:] == ["", ""]


async def test_a_cancelled_wait_costs_the_others_nothing(
        stt: SpeechToText, clips: list[np.ndarray]) -> None:
    tasks = [asyncio.create_task(stt.transcribe(c, "en")) for c in clips[:3]]
    await asyncio.sleep(0)  # all three waiting; the first is decoding
    tasks[1].cancel()
    first, second, third = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(second, asyncio.CancelledError)
    assert not isinstance(first, BaseException) and first.text
    assert not isinstance(third, BaseException) and third.text
    assert stt._waiting == []


async def test_the_stt_is_busy_while_an_utterance_is_asked_for_and_not_answered(
        stt: SpeechToText, clips: list[np.ndarray]) -> None:
    """What the ear asks before it speculates on a pause's first moments (call/ear.py)."""
    assert not stt.busy
    task = asyncio.create_task(stt.transcribe(clips[0], "en"))
    await asyncio.sleep(0)
    assert stt.busy
    assert (await task).text
    assert not stt.busy
    task = asyncio.create_task(stt.transcribe(clips[1], "en"))
    await asyncio.sleep(0)
    task.cancel()  # a dropped eager transcript: no longer asked for
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not stt.busy


async def test_a_failed_batch_fails_each_of_its_utterances_with_the_stt_error(
        stt: SpeechToText, clips: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(pcms: list[np.ndarray], language: str, context: str) -> list[object]:
        raise RuntimeError("ctranslate2: out of memory")

    monkeypatch.setattr(stt, "_decode_many", broken)
    heard = await asyncio.gather(*(stt.transcribe(c, "en") for c in clips[:3]),
                                 return_exceptions=True)
    assert all(isinstance(h, SttError) and "out of memory" in str(h) for h in heard), heard
    assert stt._waiting == []


def test_a_batch_max_below_one_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="batch_max"):
        replace(load_settings().stt, batch_max=0)


async def test_a_short_window_takes_short_utterances_and_leaves_long_ones_whisper_s(
        clips: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    ears = SpeechToText(replace(settings.stt, window_s=10.0), settings.cache_dir)
    windows: list[tuple[int, float]] = []
    real = stt_module.decode_batch

    def spy(model: object, audios: list[np.ndarray], *args: object) -> object:
        windows.append((len(audios), float(args[-1])))  # type: ignore[arg-type]
        return real(model, audios, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(stt_module, "decode_batch", spy)
    long = np.concatenate([clips[0], np.zeros(8000, np.int16), clips[1]])  # over 5 s
    try:
        heard = ears._decode_many([clips[0], long, clips[2]], "en")
    finally:
        ears.close()
    assert sorted(windows) == [(1, 30.0), (2, 10.0)]
    assert len(long) > 5 * 16000 and all(t.text for t in heard)


def test_a_decode_stops_at_the_tokens_its_audio_can_hold_and_says_it_was_cut(
        stt: SpeechToText, clips: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop ("my my my ...") costs no more than the audio's worth of tokens; the limit
    does not count the knowledge base's prompt, however long."""
    audio = clips[2].astype(np.float32) / 32768.0
    prompt = " ".join(["refund parcel delivery address order card invoice warranty"] * 8)
    assert stt.tokens(prompt) > stt_batch.max_tokens(len(audio) / 16000)
    whole = stt_batch.decode_batch(stt._model, [audio], "en", prompt, 1, 30.0)[0]
    assert not whole.cut and whole.text.lower().startswith("how long does a refund take")
    monkeypatch.setattr(stt_batch, "TOKENS_PER_S", 0)
    monkeypatch.setattr(stt_batch, "TOKENS_MIN", 4)
    cut = stt_batch.decode_batch(stt._model, [audio], "en", prompt, 1, 30.0)[0]
    assert cut.cut and whole.text.startswith(cut.text) and len(cut.text) < len(whole.text)


async def test_a_decode_that_loops_or_is_in_pieces_in_the_short_window_is_redone_in_30_s(
        clips: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop is redone, plainly, in 30 s; so is a word spelled in hyphenated pieces (the
    short window's mishearing of a last word). An unsure decode stands."""
    settings = load_settings()
    ears = SpeechToText(replace(settings.stt, window_s=10.0), settings.cache_dir)
    asked: list[tuple[int, str, float]] = []
    real = stt_module.decode_batch

    def narrow_in_10_s(model: object, audios: list[np.ndarray], language: str,
                       prompt: str, beam: int, window: float) -> list[stt_batch.Decoded]:
        asked.append((len(audios), prompt, window))
        out = real(model, audios, language, prompt, beam, window)
        if window < 30:  # the first clip loops; the second is in pieces; the third unsure
            return [replace(out[0], text="how how how how", cut=True),
                    replace(out[1], text="Can I change the delivery ad-dr-"),
                    replace(out[2], avg_logprob=-1.5)]
        return out

    monkeypatch.setattr(stt_module, "decode_batch", narrow_in_10_s)
    try:
        heard = ears._decode_many(clips[:3], "en")
    finally:
        ears.close()
    assert asked == [(3, "", 10.0), (2, "", 30.0)] and ears.widened == 2
    assert heard[0].text.lower().startswith("where is my parcel")
    assert "address" in heard[1].text.lower()
    assert heard[2].confidence == pytest.approx(np.exp(-1.5))


async def test_two_workers_share_the_waiting_utterances_without_taking_one_twice(
        clips: list[np.ndarray]) -> None:
    settings = load_settings()
    ears = SpeechToText(replace(settings.stt, workers=2, cpu_threads=1, batch_max=2,
                                window_s=30.0), settings.cache_dir)
    try:
        heard = await asyncio.gather(*(ears.transcribe(c, "en") for c in clips * 2))
    finally:
        ears.close()
    assert [t.text for t in heard[:3]] == [t.text for t in heard[5:8]]
    assert all(t.text for t in heard[:3]) and ears._waiting == []
    assert sum(size * n for size, n in ears.batches.items()) == len(clips) * 2


async def test_other_readings_of_an_utterance_are_other_words_and_none_of_silence(
        stt: SpeechToText, clips: list[np.ndarray]) -> None:
    """Whisper's n best (a beam of stt.readings): each reading differs from what was heard
    and from the others in its words, not only in case or punctuation."""
    heard = await stt.transcribe(clips[1], "en")
    others = await stt.readings(heard, "en")
    assert 1 <= len(others) < stt.settings.readings, others
    spelled = [stt_module.spelled(t) for t in [heard.text, *others]]
    assert len(set(spelled)) == len(spelled), others
    silence = await stt.transcribe(clips[3], "en")
    assert silence.text == "" and await stt.readings(silence, "en") == []


async def test_no_other_readings_when_off_busy_or_not_decoded_here(
        stt: SpeechToText, clips: list[np.ndarray]) -> None:
    heard = await stt.transcribe(clips[0], "en")
    asked = stt.heard_again
    assert await stt.readings(replace(heard, audio=None), "en") == []  # e.g. a key pressed
    settings, stt.settings = stt.settings, replace(stt.settings, readings=0)
    try:
        assert await stt.readings(heard, "en") == []
    finally:
        stt.settings = settings
    other = asyncio.ensure_future(stt.transcribe(clips[2], "en"))
    await asyncio.sleep(0)  # asked for: busy
    assert stt.busy and await stt.readings(heard, "en") == []  # the other's first hearing
    await other
    assert stt.heard_again == asked


def test_readings_outside_0_to_10_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="stt.readings"):
        load_settings(environ={"SMARTPBX_STT__READINGS": "11"})
