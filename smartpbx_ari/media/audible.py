"""What a caller can hear: frame levels against one floor, and audio with its quiet ends cut.

One floor serves both the product (music on hold without dead air) and the measure of the
silence a caller heard, so the two cannot disagree.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from smartpbx_ari.media.codecs import Pcm

Levels = npt.NDArray[np.float64]

AUDIBLE_RMS = 100.0  # about -50 dBFS: quieter than this is heard as nothing on a phone
FRAME_S = 0.02


def frame_levels(pcm: Pcm, rate: int, frame_s: float = FRAME_S) -> Levels:
    """RMS of each whole ``frame_s`` frame of ``pcm`` (a trailing part frame is left out)."""
    size = round(rate * frame_s)
    n = len(pcm) // size
    frames = pcm[: n * size].astype(np.float64).reshape(n, size)
    levels: Levels = np.sqrt(np.mean(np.square(frames), axis=1))
    return levels


def trim_quiet(pcm: Pcm, rate: int, keep_s: float = 0.2,
               floor: float = AUDIBLE_RMS) -> Pcm:
    """``pcm`` without its inaudible head and tail (``keep_s`` of each kept as a breath);
    all of it inaudible -> empty."""
    audible = np.flatnonzero(frame_levels(pcm, rate) >= floor)
    if audible.size == 0:
        return pcm[:0]
    size, keep = round(rate * FRAME_S), round(rate * keep_s)
    start = max(0, int(audible[0]) * size - keep)
    end = min(len(pcm), (int(audible[-1]) + 1) * size + keep)
    return pcm[start:end]
