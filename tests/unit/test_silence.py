"""The longest silence a caller heard, from arrival times and levels (no clock, no audio)."""

from __future__ import annotations

import numpy as np
import pytest

from smartpbx_ari.sipcaller.silence import AUDIBLE_RMS, Silence, longest_silence

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
