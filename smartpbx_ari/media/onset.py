"""Where the caller's utterance began, read back from the frames before the VAD's
confirmed onset, with energy as the second opinion (sans-IO: levels in, an index out).

Silero confirms a soft or narrowband onset late: on a lower voice over G.711 the first
words of "Can I get a fixed IP ..." scored under 0.5 for 0.9 s. So the ear keeps up to
``turn.preroll_ms`` of audio from before the onset. Keeping all of it would also bring in
the end of the caller's previous sentence, or our own echo, for the STT to hear again; so
the pre-roll reaches back only over audible frames (above the line's noise floor), stops
at a quiet gap, and reaches into audio heard while we were talking no further than
``MIN_PREROLL_S``, the fixed pre-roll it always keeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

QUIET_DB = 6.0  # a frame within this of the noise floor is quiet
GAP_S = 0.16  # this much quiet before the onset is where the utterance began
MIN_PREROLL_S = 0.3  # always kept: the pre-roll's fixed part
FLOOR_RISE_DB_S = 4.0  # the floor follows a rising noise this fast, a falling one at once
MIN_FLOOR = 30.0  # rms; digital silence still counts as about -60 dBFS


class Frame(NamedTuple):
    level: float  # rms
    ours: bool  # heard while our playback was on: maybe our echo


class NoiseFloor:
    """The line's noise level, minimum-statistics style: drops to any quieter frame at
    once and creeps up slowly, so speech never lifts it."""

    def __init__(self, frame_s: float) -> None:
        self.rise = 10 ** (FLOOR_RISE_DB_S * frame_s / 20)
        self.level = math.inf

    def update(self, level: float) -> None:
        self.level = max(MIN_FLOOR, min(level, self.level * self.rise))


def onset(frames: Sequence[Frame], floor: float, frame_s: float) -> int:
    """Index of the first frame of ``frames`` (oldest first, ending at the confirmed
    onset) that belongs to the utterance."""
    quiet = floor * 10 ** (QUIET_DB / 20)
    gap, fixed = round(GAP_S / frame_s), round(MIN_PREROLL_S / frame_s)
    start, run = len(frames), 0
    for i in range(len(frames) - 1, -1, -1):
        level, ours = frames[i]
        fixed_part = len(frames) - i <= fixed
        if not fixed_part and ours:
            break
        run = run + 1 if level <= quiet else 0
        if run >= gap and not fixed_part:
            break
        start = i
    return start
