"""Silero VAD (v6.2, the ONNX model the ``silero-vad`` package ships) on one call's stream.

Measured on the spoken benchmark (neural voices over G.711 8 kHz band-limited to
300-3400 Hz): the older graph that faster-whisper ships (``silero_vad_v6.onnx``) scores
only 37-54 % of speech windows above 0.5 there, against 90-95 % for this model, so the
caller's words were lost before the STT saw them. The model's graph: ``input`` float32
[batch, 64 + 512] (64 samples of context from the previous window + 512 new ones at
16 kHz), ``state`` float32 [2, batch, 128], ``sr`` int64; outputs ``output`` [batch, 1] and
``stateN``. The context and state are per stream; the session is shared by all calls in
the process (``InferenceSession.run`` is thread-safe). A window costs well under 1 ms.

A narrowband call (G.711, 8 kHz) is scored in the model's own 8 kHz mode (32 + 256 samples
a window, still 32 ms), fed the line's frames as they come: upsampled to 16 kHz, a lower
voice in 15 dB of noise scored too low to be heard at all (bench_hearing, validation set,
neural-low over mu-law at 15 dB SNR: 4 of 90 questions unheard, word error 0.225 against
the STT's 0.169 on the whole clip; in the 8 kHz mode none unheard, 0.182; espeak-ng's
voice 0.403 -> 0.384 without noise, 0.548 -> 0.519 with it).

A window is speech when its probability reaches ``threshold``; once in speech, it stays
speech down to ``threshold - hysteresis`` (Silero's own ``neg_threshold``), so a soft
syllable mid-sentence does not gap the utterance.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..errors import UserFacingError

SAMPLE_RATE = 16000
WINDOW = 512  # samples per inference (32 ms): the size the model takes at 16 kHz
NARROWBAND = 8000  # the model's other rate
WINDOWS = {SAMPLE_RATE: WINDOW, NARROWBAND: 256}  # 32 ms either way
CONTEXTS = {SAMPLE_RATE: 64, NARROWBAND: 32}  # samples of the previous window seen again
HYSTERESIS = 0.15
MODEL_PACKAGE = "silero_vad"
MODEL_FILE = "silero_vad.onnx"

_F32 = npt.NDArray[np.float32]


class VadModelError(UserFacingError):
    code = "vad-model-missing"


def default_model_path() -> Path:
    """Find the model without importing silero_vad (which imports torch)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError("the silero-vad package is not installed; it ships the VAD model "
                            "(pip install silero-vad)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.is_file():
        raise VadModelError(f"Silero VAD model not found at {path}")
    return path


def shared_session(model_path: Path | None = None) -> Any:
    """One session per process and model file; each stream keeps only its own state."""
    return _session((model_path or default_model_path()).resolve())


@functools.cache
def _session(path: Path) -> Any:
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    # Many calls run at once: one thread per inference beats contending thread pools.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return onnxruntime.InferenceSession(
        str(path), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def as_float(frame: npt.NDArray[np.int16] | _F32, window: int = WINDOW) -> _F32:
    if frame.shape != (window,):
        raise ValueError(f"VAD window must be {window} samples, got shape {frame.shape}")
    if frame.dtype == np.int16:
        return frame.astype(np.float32) / np.float32(32768.0)
    if frame.dtype != np.float32:
        raise TypeError(f"VAD window must be int16 or float32, got {frame.dtype}")
    return frame.astype(np.float32, copy=False)


class SileroVad:
    """Speech probability per 32 ms window of one stream at 16 or 8 kHz."""

    def __init__(self, model_path: Path | None = None, rate: int = SAMPLE_RATE) -> None:
        if rate not in WINDOWS:
            raise ValueError(f"VAD rate must be one of {sorted(WINDOWS)} Hz, got {rate}")
        self.rate, self.window = rate, WINDOWS[rate]
        self._sr = np.array(rate, dtype=np.int64)
        self._session = shared_session(model_path)
        self.reset()

    def reset(self) -> None:
        """Forget the stream (new call, or after our own playback)."""
        self._state: _F32 = np.zeros((2, 1, 128), dtype=np.float32)
        self._context: _F32 = np.zeros(CONTEXTS[self.rate], dtype=np.float32)

    def probability(self, frame: npt.NDArray[np.int16] | _F32) -> float:
        audio = as_float(frame, self.window)
        probs, state = self._session.run(
            None, {"input": self.model_input(audio)[np.newaxis, :], "state": self._state,
                   "sr": self._sr}
        )
        self.advance(audio, state)
        return float(np.asarray(probs).reshape(-1)[0])

    def model_input(self, audio: _F32) -> _F32:
        """The model's row for the next window: the context, then the window."""
        return np.concatenate([self._context, audio])

    def advance(self, audio: _F32, state: _F32) -> None:
        """The window was scored: keep its tail as context and the model's new state."""
        self._state = state
        self._context = audio[-len(self._context) :].copy()

    @property
    def state(self) -> _F32:
        return self._state


class Hysteresis:
    """Speech from ``threshold`` up; once in speech, down to ``threshold - hysteresis``."""

    def __init__(self, threshold: float = 0.5, hysteresis: float = HYSTERESIS) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if not 0.0 <= hysteresis < threshold:
            raise ValueError(f"hysteresis must be in [0, threshold), got {hysteresis}")
        self.threshold = threshold
        self.floor = threshold - hysteresis
        self.speaking = False

    def __call__(self, probability: float) -> bool:
        self.speaking = probability >= (self.floor if self.speaking else self.threshold)
        return self.speaking


class VadWindow(NamedTuple):
    duration_s: float
    probability: float
    is_speech: bool


class StreamingVad:
    """Accepts int16 chunks of any length (e.g. 20 ms RTP frames) at the VAD's rate.

    Samples wait until a whole window is there, so at most a window less one are held.
    """

    def __init__(self, vad: SileroVad | None = None, threshold: float = 0.5,
                 hysteresis: float = HYSTERESIS) -> None:
        self.vad = vad or SileroVad()
        self.decide = Hysteresis(threshold, hysteresis)
        self._pending: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)

    @property
    def rate(self) -> int:
        return self.vad.rate

    def reset(self) -> None:
        self.vad.reset()
        self.decide.speaking = False
        self._pending = np.zeros(0, dtype=np.int16)

    def process(self, chunk: npt.NDArray[np.int16]) -> list[VadWindow]:
        """Score each whole window here and now (offline, and a single stream)."""
        return self.judge(self.score(self.split(chunk)))

    def score(self, windows: list[npt.NDArray[np.int16]]) -> list[float]:
        return [self.vad.probability(w) for w in windows]

    def split(self, chunk: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]:
        """The whole windows ``chunk`` completes, to be scored in order (by ``process``, or
        by a :class:`~smartpbx_ari.media.vad_batch.VadBatcher` with other calls')."""
        if chunk.dtype != np.int16 or chunk.ndim != 1:
            raise TypeError(f"expected 1-D int16 audio, got {chunk.dtype} {chunk.shape}")
        audio = np.concatenate([self._pending, chunk])
        window = self.vad.window
        whole = len(audio) - len(audio) % window
        self._pending = audio[whole:].copy()
        return [audio[start : start + window] for start in range(0, whole, window)]

    def judge(self, probabilities: list[float]) -> list[VadWindow]:
        """The windows' probabilities, in order, as speech decisions (with hysteresis)."""
        seconds = self.vad.window / self.rate
        return [VadWindow(seconds, p, self.decide(p)) for p in probabilities]
