"""The longest silence a caller heard: from the arrival times and levels of received frames.

Silence is time with no frame at or above ``floor`` (RMS of 16-bit samples): frames too
quiet to hear and frames that never came (no RTP at all) both count. Pure: fed the
``(arrival, pcm)`` log of the caller's RTP stream, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from smartpbx_ari.media.audible import AUDIBLE_RMS
from smartpbx_ari.media.codecs import Pcm
from smartpbx_ari.media.turn import rms


@dataclass(frozen=True)
class Silence:
    start: float  # arrival time (the log's clock) the silence began
    seconds: float


def longest_silence(frames: Sequence[tuple[float, Pcm]], since: float, until: float,
                    floor: float = AUDIBLE_RMS) -> Silence:
    """The longest stretch of ``[since, until]`` without an audible frame."""
    if until < since:
        raise ValueError(f"until: {until} is before since {since}")
    longest = Silence(since, 0.0)
    last = since
    for arrival, pcm in frames:
        if arrival < since or arrival > until or rms(pcm) < floor:
            continue
        if arrival - last > longest.seconds:
            longest = Silence(last, arrival - last)
        last = arrival
    if until - last > longest.seconds:
        longest = Silence(last, until - last)
    return longest
