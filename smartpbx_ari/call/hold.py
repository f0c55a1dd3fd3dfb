"""What a caller on hold with the AI hears: soft music with a short spoken update every
``agent.hold_update_s``, so the line is never silent while an operator is asked.

The music is Debian's music-on-hold (``asterisk-moh-opsound-wav``, the PBX's ``default``
class, CC-BY-SA 3.0), its quiet ends cut, at a soft level; without it, a soft chime. The update is a
phrase in the call's language, spoken by the TTS (cached after the first hold).
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np

from smartpbx_ari.call.ear import RATE, Pcm
from smartpbx_ari.config import ConfigError
from smartpbx_ari.media.audible import trim_quiet
from smartpbx_ari.media.resample import resample

MOH_DIR = Path("/usr/share/asterisk/moh")  # Debian's asterisk-moh-opsound-wav
MUSIC_RMS = 900.0  # soft: about -31 dBFS, under a voice at -20 dBFS
CHUNK_S = 0.5  # the music is handed to the player this much at a time
UPDATE = {"en": "Still checking for you. Say agent, or press 0, to talk to a person.",
          "ko": "계속 확인하고 있습니다. 상담원 연결을 원하시면 상담원이라고 말씀하시거나 "
                "0번을 눌러 주세요."}
ADDED = {"en": "I have added that for my colleague. Please stay on the line.",
         "ko": "그 질문도 상담원에게 전달했습니다. 잠시만 기다려 주세요."}
CONNECTING = {"en": "I am connecting you to a colleague now.",
              "ko": "지금 상담원에게 연결해 드리겠습니다."}


def load_music(path: str = "") -> Pcm:
    """16 kHz mono music at ``MUSIC_RMS``: the WAV at ``path`` ("" = the first of the
    ``default`` class in ``MOH_DIR``; missing: a chime). Bad files name the setting."""
    file = Path(path) if path else next(iter(sorted(MOH_DIR.glob("*.wav"))), None)
    if file is None:
        return chime()
    try:
        with wave.open(str(file)) as w:
            if w.getsampwidth() != 2:
                raise ConfigError(f"agent.hold_music: {file} is not 16-bit PCM")
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
            pcm = pcm.reshape(-1, w.getnchannels()).mean(axis=1)
            rate = w.getframerate()
    except (OSError, wave.Error, EOFError) as err:
        raise ConfigError(f"agent.hold_music: cannot read {file}: {err}") from err
    if len(pcm) < rate:
        raise ConfigError(f"agent.hold_music: {file} holds less than a second of audio")
    pcm = trim_quiet(pcm.astype(np.int16), rate)  # a track's quiet ends: dead air on a loop
    if len(pcm) < rate:
        raise ConfigError(f"agent.hold_music: {file} is (nearly) silent")
    music = resample(pcm, rate, RATE) if rate != RATE else pcm
    return soften(music)


def chime() -> Pcm:
    """Two soft notes (E5, C5) with a decay, then quiet, every 2 s."""
    t = np.arange(int(0.6 * RATE)) / RATE
    envelope = np.exp(-t * 5)
    notes = [np.sin(2 * np.pi * f * t) * envelope for f in (659.3, 523.3)]
    pattern = np.concatenate([notes[0], notes[1], np.zeros(int(0.8 * RATE))])
    return soften(pattern)


def soften(audio: np.ndarray) -> Pcm:
    level = float(np.sqrt(np.mean(np.square(audio.astype(np.float64))))) or 1.0
    return np.clip(np.rint(audio * (MUSIC_RMS / level)), -32768, 32767).astype(np.int16)


async def comfort(music: Pcm, update_s: float,
                  update: Callable[[], AsyncIterator[Pcm]]) -> AsyncIterator[Pcm]:
    """The music (looped), with ``update()`` spoken every ``update_s``, for as long as
    it is played."""
    chunk, position = int(CHUNK_S * RATE), 0
    while True:
        for _ in range(max(1, round(update_s / CHUNK_S))):
            end = position + chunk
            yield (music[position:end] if end <= len(music) else
                   np.concatenate([music[position:], music[: end - len(music)]]))
            position = end % len(music)
        async for pcm in update():
            yield pcm

