"""The neural voice (Piper "joe" on onnxruntime, espeak-ng phonemes): it speaks, it is
understood after a narrowband phone line, speed and pitch vary it, a missing voice falls
back to espeak-ng with one warning, a phrase is synthesized once, and sounds the same in
every run."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from smartpbx_ari.ai.piper import PiperVoice, packaged_voice
from smartpbx_ari.ai.speech_cache import SpeechCache
from smartpbx_ari.ai.stt import SpeechToText
from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.config import TtsSettings
from smartpbx_ari.media import codecs
from smartpbx_ari.media.resample import resample
from smartpbx_ari.media.turn import rms

pytestmark = [pytest.mark.integration, pytest.mark.ai]
QUESTION = "How do I get a refund for my order?"
ANSWER = ("Refunds go back to the card you paid with, within five working days of our "
          "receiving the parcel.")


def _phone_line(pcm16k: np.ndarray) -> np.ndarray:
    """8 kHz G.711 mu-law and back: what a narrowband call does to a voice."""
    narrow = codecs.ulaw_decode(codecs.ulaw_encode(resample(pcm16k, 16000, 8000)))
    return resample(narrow, 8000, 16000)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _f0(pcm: np.ndarray, rate: int = 16000) -> float:
    """Median pitch of the loud 40 ms frames, by YIN (de Cheveigne & Kawahara 2002): the
    first lag whose cumulative-mean-normalised difference dips below 0.2, 60-400 Hz.
    A plain autocorrelation peak jumps octaves on a low voice."""
    n, lo, hi = rate // 25, rate // 400, rate // 60
    found = []
    for i in range(0, len(pcm) - n, n // 2):
        frame = pcm[i : i + n].astype(np.float64)
        if rms(frame.astype(np.int16)) < 1000:
            continue
        frame -= frame.mean()
        diff = np.array([np.sum((frame[:-lag] - frame[lag:]) ** 2) for lag in range(1, hi + 1)])
        normalised = diff * np.arange(1, hi + 1) / np.maximum(np.cumsum(diff), 1e-9)
        dips = np.flatnonzero(normalised[lo - 1 :] < 0.2)
        if len(dips):
            lag = lo + int(dips[0])
            while lag < hi and normalised[lag] < normalised[lag - 1]:  # to the dip's floor
                lag += 1
            found.append(rate / lag)
    return float(np.median(found))


async def test_the_neural_voice_is_understood_over_a_narrowband_line(
        stt: SpeechToText) -> None:
    tts = TextToSpeech(TtsSettings())
    pcm = await tts.synthesize(QUESTION)
    assert 1.0 < len(pcm) / 16000 < 4.0 and rms(pcm) > 500
    heard = await stt.transcribe(_phone_line(pcm))
    assert _words(heard.text) == _words(QUESTION), heard.text
    tts.close()


async def test_speed_and_pitch_make_other_speakers() -> None:
    tts = TextToSpeech(TtsSettings())
    voice = tts._piper("")  # its durations drawn without noise: renderings comparable
    voice.config = replace(voice.config, noise_scale=0.0, noise_w=0.0)
    plain = await tts.synthesize(QUESTION)
    fast = await tts.synthesize(QUESTION, Voice("piper", speed=1.3))
    low = await tts.synthesize(QUESTION, Voice("piper", pitch=-3))
    assert len(fast) < 0.9 * len(plain)  # 0.86 here: pauses do not shrink with the pace
    assert 0.85 < len(low) / len(plain) < 1.15  # the same pace ...
    assert _f0(low) < 0.93 * _f0(plain)  # ... three semitones (x0.84) lower
    tts.close()


async def test_a_missing_voice_falls_back_to_espeak_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tts = TextToSpeech(TtsSettings(piper_voice=str(tmp_path / "none.onnx")))
    with caplog.at_level(logging.WARNING, "smartpbx_ari.ai.tts"):
        first = await tts.synthesize("Hello there.")
        second = await tts.synthesize("Goodbye now.")
    assert rms(first) > 500 and rms(second) > 500  # espeak-ng spoke both
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "none.onnx" in warnings[0]
    assert "espeak-ng" in warnings[0]
    tts.close()


async def test_a_phrase_is_synthesized_once_then_read_from_the_cache(tmp_path: Path) -> None:
    tts = TextToSpeech(TtsSettings(), cache=SpeechCache(tmp_path, 2**24))
    assert await tts.warm(["Refunds are paid within five days. Anything else?"]) == 2
    assert await tts.warm(["Refunds are paid within five days. Anything else?"]) == 0
    again = TextToSpeech(TtsSettings(), cache=SpeechCache(tmp_path, 2**24))  # a restart
    chunks = [c async for c in again.stream("Refunds are paid within five days. Anything else?")]
    assert len(chunks) == 2 and again.cache is not None and again.cache.hits == 2
    assert not again._voices  # the voice was never even loaded
    tts.close()
    again.close()


def test_a_phrase_sounds_the_same_in_every_run_and_its_noise_is_sampled() -> None:
    """VITS's noise is drawn from a generator seeded by the phrase, not by onnxruntime:
    two loads of the voice (as two runs) render a phrase alike, yet it is sampled (not the
    noise-free mean)."""
    first, second = PiperVoice(packaged_voice()), PiperVoice(packaged_voice())
    once = first.synthesize(QUESTION)
    assert np.array_equal(once, second.synthesize(QUESTION))
    assert np.array_equal(once, first.synthesize(QUESTION))  # nor does a session drift
    second.config = replace(second.config, noise_scale=0.0, noise_w=0.0)
    plain = second.synthesize(QUESTION)
    assert not np.array_equal(once, plain)  # (unequal lengths: unequal)


def test_a_sentence_streams_in_chunks_that_join_to_one_pass() -> None:
    voice = PiperVoice(packaged_voice())
    whole = voice.synthesize(ANSWER).astype(np.float64)
    chunks = list(voice.stream(ANSWER))
    joined = np.concatenate(chunks).astype(np.float64)
    assert len(chunks) >= 4 and len(chunks[0]) <= 0.25 * voice.sample_rate
    assert len(joined) == len(whole)
    # the same waveform (levelled by another gain): the chunks' edges leave no mark
    assert np.corrcoef(joined, whole)[0, 1] > 0.9999


async def test_a_sentence_not_in_the_cache_streams_then_is_kept(tmp_path: Path) -> None:
    tts = TextToSpeech(TtsSettings(), cache=SpeechCache(tmp_path, 2**24))
    chunks = [c async for c in tts.stream(ANSWER)]
    assert len(chunks) >= 4 and len(chunks[0]) < 0.3 * 16000  # speech starts early
    assert rms(np.concatenate(chunks)) > 500
    again = [c async for c in tts.stream(ANSWER)]
    assert len(again) == 1 and np.array_equal(again[0], np.concatenate(chunks))
    tts.close()


async def test_a_sentence_cut_short_is_not_kept(tmp_path: Path) -> None:
    tts = TextToSpeech(TtsSettings(), cache=SpeechCache(tmp_path, 2**24))
    stream = tts.stream(ANSWER)
    await anext(stream)  # the caller barges in after the first chunk
    await stream.aclose()
    assert len([c async for c in tts.stream(ANSWER)]) >= 4  # synthesized again, whole
    tts.close()


async def test_the_voice_loads_at_start_not_in_the_first_uncached_sentence(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tts = TextToSpeech(TtsSettings())
    assert tts._voices == {}
    await tts.load()
    assert tts._voices[TtsSettings().piper_voice] is not None  # loaded, once
    missing = TextToSpeech(TtsSettings(piper_voice=str(tmp_path / "none.onnx")))
    with caplog.at_level(logging.WARNING, "smartpbx_ari.ai.tts"):
        await missing.load()  # said in the log; the call path falls back later
    assert any("none.onnx" in r.getMessage() for r in caplog.records)
    assert rms(await missing.synthesize("Hello there.")) > 500
    tts.close()
    missing.close()
