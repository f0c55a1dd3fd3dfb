"""Music on hold without dead air: Debian's tracks with their inaudible heads and tails cut.

Played one after another, a track's fade-out (macroform-cold_day ends with about 9 s
under -50 dBFS) and the next one's lead-in sound to a waiting caller like a dropped line.
:func:`curate` writes each track, as 8 kHz WAV and as G.722 (16 kHz, no transcoding for
G.722 callers), with those ends cut, into the folder the ``default`` class plays.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from smartpbx_ari.media.audible import trim_quiet
from smartpbx_ari.media.codecs import decoder, encoder

G722_RATE = 16000


def curate(src: Path, dest: Path) -> list[str]:
    """Every ``*.wav`` and ``*.g722`` of ``src`` into ``dest``, quiet ends cut; a track
    already there is kept (the work is done once per PBX root). Returns the names written."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for track in sorted(src.glob("*.wav")) + sorted(src.glob("*.g722")):
        target = dest / track.name
        if target.exists():
            continue
        partial = target.with_name(f".{track.name}.partial")
        if track.suffix == ".wav":
            _trim_wav(track, partial)
        else:
            pcm = trim_quiet(decoder("g722")(track.read_bytes()), G722_RATE)
            partial.write_bytes(encoder("g722")(pcm))
        partial.rename(target)
        written.append(track.name)
    return written


def _trim_wav(src: Path, dest: Path) -> None:
    with wave.open(str(src), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{src}: music on hold must be 16-bit mono WAV")
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(trim_quiet(pcm, rate).astype("<i2").tobytes())
