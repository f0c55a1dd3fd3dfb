"""The longest silence a caller heard, from arrival times and levels (no clock, no audio)."""

from __future__ import annotations

import numpy as np
import pytest

from smartpbx_ari.media.audible import AUDIBLE_RMS, frame_levels, trim_quiet
from smartpbx_ari.sipcaller.silence import Silence, longest_silence

pytestmark = pytest.mark.unit
LOUD = np.full(320, 2000, np.int16)
HUSH = np.full(320, int(AUDIBLE_RMS) - 1, np.int16)


def _frames(*spans: tuple[float, float, np.ndarray]) -> list[tuple[float, np.ndarray]]:
    out = []
    for start, end, pcm in spans:
        out += [(round(t, 2), pcm) for t in np.arange(start, end, 0.02)]
    return sorted(out, key=lambda f: f[0])


def test_steady_sound_has_no_silence_to_speak_of() -> None:
    heard = longest_silence(_frames((0, 10, LOUD)), 0, 10)
    assert heard.seconds == pytest.approx(0.02, abs=1e-6)


def test_quiet_frames_and_missing_frames_both_count() -> None:
    frames = _frames((0, 2, LOUD), (2, 5, HUSH), (9, 10, LOUD))  # 5-9: no RTP at all
    assert longest_silence(frames, 0, 10) == Silence(1.98, pytest.approx(7.02))


def test_silence_at_the_edges_of_the_window() -> None:
    frames = _frames((3, 4, LOUD))
    assert longest_silence(frames, 0, 10) == Silence(3.98, pytest.approx(6.02))
    assert longest_silence(frames, 0, 5).start == 0  # the 3 s before the first sound
    assert longest_silence([], 0, 5) == Silence(0, 5)


def test_frames_outside_the_window_are_ignored_and_a_reversed_window_is_an_error() -> None:
    frames = _frames((0, 1, LOUD), (9, 10, LOUD))
    assert longest_silence(frames, 2, 8) == Silence(2, 6)
    with pytest.raises(ValueError, match="until"):
        longest_silence(frames, 5, 4)


def test_trim_quiet_cuts_inaudible_ends_and_keeps_a_breath() -> None:
    rate = 8000
    tone = (np.sin(np.arange(rate) * 0.3) * 3000).astype(np.int16)
    fade = (tone[:rate] * 0.02).astype(np.int16)  # about -57 dBFS: inaudible
    pcm = np.concatenate([np.zeros(rate, np.int16), tone, fade, np.zeros(rate, np.int16)])
    cut = trim_quiet(pcm, rate, keep_s=0.2)
    assert len(cut) == rate + 2 * 1600
    assert np.array_equal(cut[1600:-1600], tone)
    assert trim_quiet(np.zeros(rate, np.int16), rate).size == 0
    assert frame_levels(tone[:500], rate).shape == (3,)  # whole 20 ms frames only
