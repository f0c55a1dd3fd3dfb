"""Rational-ratio resampling: streaming for 20 ms RTP chunks, one-shot for whole buffers.

Both use the same linear-phase FIR (scipy's ``resample_poly`` design: Kaiser window,
beta 5, cut-off at the lower Nyquist), so a stream equals the one-shot result delayed by
``Resampler.delay`` output samples. The streaming filter keeps its state across chunks;
filtering each chunk on its own would click at every 20 ms boundary.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import signal

Pcm = npt.NDArray[np.int16]
_F64 = npt.NDArray[np.float64]

_HALF_LEN_PER_RATIO = 10  # scipy's default filter length: 10 taps per side per ratio unit


def _ratio(src_rate: int, dst_rate: int) -> tuple[int, int]:
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    g = math.gcd(src_rate, dst_rate)
    return dst_rate // g, src_rate // g


def _design(up: int, down: int) -> _F64:
    if up == down:
        return np.ones(1)  # same rate: an identity "filter", no delay
    # half_len is a multiple of `down` so the stream's delay is whole output samples.
    half_len = _HALF_LEN_PER_RATIO * max(up, down)
    half_len = -(-half_len // down) * down
    taps = signal.firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0))
    return np.asarray(taps, dtype=np.float64)


def _to_int16(x: _F64) -> Pcm:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class Resampler:
    """Streaming resampler; output per chunk is ``len(chunk) * dst / src`` samples.

    Chunks whose length does not divide evenly still work: the polyphase offset is
    carried to the next chunk, so the total output length stays exact.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._up, self._down = _ratio(src_rate, dst_rate)
        self._taps = _design(self._up, self._down) * self._up  # zero-stuffing costs 1/up gain
        self._zi: _F64 = np.zeros(len(self._taps) - 1)
        self._offset = 0  # index of the next kept sample in the next upsampled chunk

    @property
    def delay(self) -> int:
        """Group delay of the streaming filter, in output samples."""
        return (len(self._taps) - 1) // 2 // self._down

    def reset(self) -> None:
        self._zi[:] = 0.0
        self._offset = 0

    def process(self, pcm: Pcm) -> Pcm:
        if self._up == self._down or len(pcm) == 0:
            return pcm.astype(np.int16, copy=True)  # lfilter rejects empty input
        stuffed = np.zeros(len(pcm) * self._up)
        stuffed[:: self._up] = pcm
        filtered, self._zi = signal.lfilter(self._taps, [1.0], stuffed, zi=self._zi)
        kept = np.asarray(filtered, dtype=np.float64)[self._offset :: self._down]
        self._offset = (self._offset - len(stuffed)) % self._down
        return _to_int16(kept)


def resample(pcm: Pcm, src_rate: int, dst_rate: int) -> Pcm:
    """Whole-buffer resampling with no delay (e.g. 22050 Hz TTS output to 16 kHz)."""
    up, down = _ratio(src_rate, dst_rate)
    if up == down:
        return pcm.astype(np.int16, copy=True)
    out = signal.resample_poly(pcm.astype(np.float64), up, down, window=_design(up, down))
    return _to_int16(np.asarray(out, dtype=np.float64))
