"""Silero VAD on real synthetic speech (espeak-ng, resampled by sox) and on silence/noise."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from smartpbx_ari.call.engine import line_vad
from smartpbx_ari.config import TurnSettings
from smartpbx_ari.media.vad import (
    WINDOW,
    WINDOWS,
    SileroVad,
    StreamingVad,
    VadWindow,
    shared_session,
)
from tests.fixtures.audio import telephone_band

pytestmark = [pytest.mark.integration, pytest.mark.ai]

SENTENCE = "Hello, I would like to book an appointment for next Tuesday afternoon, please."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    tmp: Path = tmp_path_factory.mktemp("vad")
    raw, wav16 = tmp / "espeak.wav", tmp / "speech16k.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), SENTENCE], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav16)],
                   check=True)
    with wave.open(str(wav16)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        frames: bytes = w.readframes(w.getnframes())
    return np.frombuffer(frames, "<i2").astype(np.int16)


def run_stream(pcm: np.ndarray, chunk: int = 320) -> list[VadWindow]:
    vad = StreamingVad()
    return [w for i in range(0, len(pcm), chunk) for w in vad.process(pcm[i : i + chunk])]


def window_rms(pcm: np.ndarray, n: int) -> np.ndarray:
    frames = pcm[: n * WINDOW].astype(np.float64).reshape(n, WINDOW)
    return np.asarray(np.sqrt(np.mean(frames**2, axis=1)), dtype=np.float64)


def test_speech_windows_score_high(speech: np.ndarray) -> None:
    windows = run_stream(speech)
    probs = np.array([w.probability for w in windows])
    voiced = window_rms(speech, len(windows)) > 500  # clearly audible: ~-36 dBFS and up
    assert voiced.sum() > 50
    assert np.mean(probs[voiced] >= 0.5) >= 0.9
    assert np.median(probs[voiced]) >= 0.9


def test_digital_silence_scores_low(speech: np.ndarray) -> None:
    pcm = np.concatenate([np.zeros(16000, dtype=np.int16), speech])
    probs = [w.probability for w in run_stream(pcm)[: 16000 // WINDOW]]
    assert max(probs) < 0.1


@pytest.mark.parametrize("level", [10.0, 30.0, 100.0])
def test_low_level_noise_scores_low(level: float) -> None:
    noise = np.random.default_rng(3).normal(0, level, 32000).astype(np.int16)
    windows = run_stream(noise)
    assert max(w.probability for w in windows) < 0.3
    assert not any(w.is_speech for w in windows)


def test_windows_are_512_samples_whatever_the_chunking(speech: np.ndarray) -> None:
    pcm = speech[:16000]
    by_20ms, by_7 = run_stream(pcm, 320), run_stream(pcm, 7)
    assert len(by_20ms) == 16000 // WINDOW
    assert all(w.duration_s == WINDOW / 16000 for w in by_20ms)
    assert [w.probability for w in by_7] == pytest.approx([w.probability for w in by_20ms])


def test_streams_keep_separate_state(speech: np.ndarray) -> None:
    frames = [speech[i : i + WINDOW] for i in range(0, 40 * WINDOW, WINDOW)]
    alone = SileroVad()
    expected = [alone.probability(f) for f in frames]
    a, b = SileroVad(), SileroVad()
    got = []
    for f in frames:
        got.append(a.probability(f))
        b.probability(np.zeros(WINDOW, dtype=np.int16))  # another call in between
    assert got == pytest.approx(expected, abs=1e-6)
    assert a._session is b._session is shared_session()


def test_reset_restores_a_fresh_stream(speech: np.ndarray) -> None:
    frame = speech[20 * WINDOW : 21 * WINDOW]
    vad = SileroVad()
    first = vad.probability(frame)
    for i in range(30):
        vad.probability(speech[i * WINDOW : (i + 1) * WINDOW])
    vad.reset()
    assert vad.probability(frame) == pytest.approx(first, abs=1e-6)


def test_int16_and_float32_agree(speech: np.ndarray) -> None:
    frame = speech[20 * WINDOW : 21 * WINDOW]
    as_float = frame.astype(np.float32) / np.float32(32768)
    assert SileroVad().probability(frame) == pytest.approx(
        SileroVad().probability(as_float), abs=1e-6)


def test_a_narrowband_line_is_heard_in_the_8_khz_mode(speech: np.ndarray) -> None:
    """A G.711 line's own frames (300-3400 Hz at 8 kHz), 160 samples at a time: 32 ms
    windows of 256 samples, speech found as at 16 kHz, silence not."""
    line = np.concatenate([np.zeros(8000, np.int16), telephone_band(speech)])
    vad = StreamingVad(SileroVad(rate=8000))
    windows = [w for i in range(0, len(line), 160) for w in vad.process(line[i : i + 160])]
    window = WINDOWS[8000]
    assert len(windows) == len(line) // window
    assert all(w.duration_s == window / 8000 == WINDOW / 16000 for w in windows)
    probs = np.array([w.probability for w in windows])
    frames = line[: len(windows) * window].astype(np.float64).reshape(-1, window)
    voiced = np.sqrt(np.mean(frames**2, axis=1)) > 500
    assert voiced.sum() > 50
    assert np.mean(probs[voiced] >= 0.5) >= 0.9
    assert max(probs[: 8000 // window]) < 0.1  # the leading second of silence


def test_wrong_window_size_rejected() -> None:
    with pytest.raises(ValueError, match="512"):
        SileroVad().probability(np.zeros(320, dtype=np.int16))
    with pytest.raises(ValueError, match="256"):
        SileroVad(rate=8000).probability(np.zeros(512, dtype=np.int16))
    with pytest.raises(ValueError, match="11025"):
        SileroVad(rate=11025)
    with pytest.raises(ValueError, match="hysteresis"):
        StreamingVad(threshold=0.3, hysteresis=0.3)


def test_a_line_s_vad_follows_its_rate_and_the_setting() -> None:
    assert line_vad(TurnSettings(), 8000).rate == 8000
    assert line_vad(TurnSettings(narrowband_vad=False), 8000).rate == 16000
    assert line_vad(TurnSettings(), 16000).rate == 16000
