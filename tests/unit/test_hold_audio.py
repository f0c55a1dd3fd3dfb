"""What a caller on hold hears, sans-IO: soft music looped in half-second chunks with the
spoken update every ``hold_update_s``; the PBX's music, or a chime without it; a bad file
names the setting."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from smartpbx_ari.call.hold import MOH_DIR, MUSIC_RMS, chime, comfort, load_music
from smartpbx_ari.config import ConfigError
from smartpbx_ari.media.audible import AUDIBLE_RMS, frame_levels

pytestmark = pytest.mark.unit


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm.astype(np.float64)))))


@pytest.mark.parametrize("track", sorted(p.name for p in MOH_DIR.glob("*.wav")) or ["none"])
def test_the_pbx_music_is_soft_at_16_khz_and_never_silent_for_long_even_looped(
        track: str) -> None:
    assert track != "none", "apt-get install asterisk-moh-opsound-wav"
    music = load_music(str(MOH_DIR / track))
    assert music.dtype == np.int16 and len(music) > 60 * 16000  # a minute or more, 16 kHz
    assert _rms(music) == pytest.approx(MUSIC_RMS, rel=0.02)
    looped = np.concatenate([music[-10 * 16000 :], music[: 10 * 16000]])  # the loop point
    for pcm in (music, looped):
        quiet = frame_levels(pcm, 16000) < AUDIBLE_RMS
        runs = np.diff(np.flatnonzero(np.concatenate([[True], ~quiet, [True]]))) - 1
        assert runs.max() * 0.02 <= 2.5, track  # the target is 5 s of silence at most


def test_a_chime_when_there_is_no_music(tmp_path: Path) -> None:
    tone = chime()
    assert _rms(tone) == pytest.approx(MUSIC_RMS, rel=0.02)
    assert len(tone) == 2 * 16000  # two notes and a rest, every 2 s


def test_a_bad_music_file_names_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(ConfigError, match="agent.hold_music"):
        load_music(str(bad))
    short = tmp_path / "short.wav"
    with wave.open(str(short), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(400, np.int16).tobytes())
    with pytest.raises(ConfigError, match="agent.hold_music: .* less than a second"):
        load_music(str(short))


async def test_the_music_loops_with_the_update_every_few_seconds() -> None:
    music = np.arange(16000 * 3, dtype=np.int16)  # 3 s, so the loop shows
    spoken = np.full(800, -1, np.int16)

    async def update() -> AsyncIterator[np.ndarray]:
        yield spoken

    chunks: list[np.ndarray] = []
    stream = comfort(music, 2.0, update)
    async for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 10:
            break
    await stream.aclose()
    assert [len(c) for c in chunks] == [8000] * 4 + [800] + [8000] * 4 + [800]
    assert chunks[4] is spoken and chunks[9] is spoken  # after each 2 s of music
    played = np.concatenate([c for c in chunks if c is not spoken])
    assert np.array_equal(played[: len(music)], music)  # in order, from the start
    assert np.array_equal(played[len(music) :], music[: len(played) - len(music)])  # looped
