"""Resampler: frequency and level kept, aliasing removed, chunking invisible."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smartpbx_ari.media.resample import Resampler, resample

pytestmark = pytest.mark.unit


def tone(freq: float, rate: int, seconds: float, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def stream(resampler: Resampler, pcm: np.ndarray, chunk: int) -> np.ndarray:
    return np.concatenate([resampler.process(pcm[i : i + chunk])
                           for i in range(0, len(pcm), chunk)])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def test_upsampled_tone_keeps_frequency_and_level() -> None:
    r = Resampler(8000, 16000)
    out = stream(r, tone(1000, 8000, 1.0), 160)
    steady = out[r.delay + 320 :]  # past the filter's start-up
    assert abs(peak_hz(steady, 16000) - 1000) <= 2
    level_db = 20 * np.log10(rms(steady) / (10000 / np.sqrt(2)))
    assert abs(level_db) < 1.0


def test_downsampled_tone_keeps_frequency_and_level() -> None:
    r = Resampler(16000, 8000)
    out = stream(r, tone(1000, 16000, 1.0), 320)[r.delay + 160 :]
    assert abs(peak_hz(out, 8000) - 1000) <= 2
    assert abs(20 * np.log10(rms(out) / (10000 / np.sqrt(2)))) < 1.0


def test_tone_above_new_nyquist_is_attenuated_30db() -> None:
    r = Resampler(16000, 8000)
    out = stream(r, tone(6000, 16000, 1.0), 320)[r.delay + 160 :]
    # Without the filter, 6 kHz would alias to a full-level 2 kHz tone.
    assert 20 * np.log10(max(rms(out), 1e-9) / (10000 / np.sqrt(2))) <= -30


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000)])
def test_output_length_is_exact_per_20ms_chunk(src: int, dst: int) -> None:
    r = Resampler(src, dst)
    for _ in range(5):
        assert len(r.process(np.zeros(src // 50, dtype=np.int16))) == dst // 50


@pytest.mark.parametrize(("src", "dst", "chunk"), [(8000, 16000, 160), (16000, 8000, 320)])
def test_chunked_equals_one_shot_after_the_delay(src: int, dst: int, chunk: int) -> None:
    noise = np.random.default_rng(7).normal(0, 4000, src).astype(np.int16)
    r = Resampler(src, dst)
    chunked, whole = stream(r, noise, chunk), resample(noise, src, dst)
    assert len(chunked) == len(whole)
    diff = chunked[r.delay :].astype(np.int64) - whole[: len(whole) - r.delay]
    assert np.abs(diff).max() <= 1


@given(chunks=st.lists(st.integers(1, 400), min_size=1, max_size=12),
       pcm=hnp.arrays(np.int16, 2000, elements=st.integers(-20000, 20000)))
def test_any_chunking_gives_the_same_stream(chunks: list[int], pcm: np.ndarray) -> None:
    # Odd chunk sizes carry the polyphase offset; the result must not depend on them.
    reference = Resampler(16000, 8000).process(pcm)
    r, pieces, pos = Resampler(16000, 8000), [], 0
    for size in chunks:
        pieces.append(r.process(pcm[pos : pos + size]))
        pos += size
    pieces.append(r.process(pcm[pos:]))
    assert np.array_equal(np.concatenate(pieces), reference)


def test_no_click_at_chunk_boundaries() -> None:
    # A stateless per-chunk filter would restart from zeros at every 20 ms boundary.
    r = Resampler(8000, 16000)
    out = stream(r, tone(440, 8000, 0.5), 160)[r.delay + 320 :].astype(np.int64)
    smooth_limit = 2 * np.pi * 440 / 16000 * 10000 * 1.1  # steepest step of the sine
    assert np.abs(np.diff(out)).max() <= smooth_limit


def test_reset_forgets_history() -> None:
    r = Resampler(8000, 16000)
    r.process(tone(1000, 8000, 0.02))
    r.reset()
    assert not r.process(np.zeros(160, dtype=np.int16)).any()


def test_one_shot_any_ratio() -> None:
    out = resample(tone(440, 22050, 1.0), 22050, 16000)
    assert len(out) == 16000
    assert abs(peak_hz(out, 16000) - 440) <= 2


def test_same_rate_is_a_copy() -> None:
    pcm = tone(440, 16000, 0.02)
    assert np.array_equal(Resampler(16000, 16000).process(pcm), pcm)
    assert np.array_equal(resample(pcm, 16000, 16000), pcm)


def test_bad_rates_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16000)
