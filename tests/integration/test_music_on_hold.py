"""The music the real PBX plays on hold: Debian's tracks in the root, quiet ends cut, so a
caller who waits through a track's end hears no dead air (a 45 s call cannot reach one)."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np
import pytest

from smartpbx_ari.media.audible import AUDIBLE_RMS, FRAME_S, frame_levels
from smartpbx_ari.media.codecs import Pcm, decoder
from smartpbx_ari.telephony.pbx import PLAYED_MUSIC_DIR, LocalPbx

pytestmark = [pytest.mark.integration]
MAX_SILENCE_S = 5.0  # the target for a caller waiting for a person


def _quiet(pcm: Pcm, rate: int) -> tuple[float, float, float]:
    """(inaudible head, longest inaudible stretch inside, inaudible tail) in seconds."""
    quiet = frame_levels(pcm, rate) < AUDIBLE_RMS
    runs = [len(list(g)) for q, g in itertools.groupby(quiet) if q]
    head = int(np.argmax(~quiet)) if (~quiet).any() else len(quiet)
    tail = int(np.argmax(~quiet[::-1])) if (~quiet).any() else len(quiet)
    return head * FRAME_S, max(runs, default=0) * FRAME_S, tail * FRAME_S


def _read(path: Path) -> tuple[Pcm, int]:
    if path.suffix == ".g722":
        return decoder("g722")(path.read_bytes()), 16000
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def test_the_played_tracks_never_go_quiet_for_5_s_even_from_one_track_to_the_next(
    pbx: LocalPbx
) -> None:
    played = sorted((pbx.root / PLAYED_MUSIC_DIR).iterdir())
    assert {p.suffix for p in played} == {".wav", ".g722"} and len(played) == 10
    for suffix in (".wav", ".g722"):
        ends = {}
        for path in (p for p in played if p.suffix == suffix):
            head, inside, tail = _quiet(*_read(path))
            assert inside < MAX_SILENCE_S, (path.name, inside)
            ends[path.name] = (head, tail)
        worst = max(a[1] + b[0] for a, b in itertools.permutations(ends.values(), 2))
        print(f"{suffix}: longest quiet junction between two tracks {worst:.2f} s")
        assert worst < 1.0  # heads and tails cut to a breath (Debian's cold_day: 8.8 s)
