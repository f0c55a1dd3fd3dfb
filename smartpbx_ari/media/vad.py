"""Silero VAD (v6.2, the ONNX model the ``silero-vad`` package ships) on one call's stream.

Measured on the spoken benchmark (neural voices over G.711 8 kHz band-limited to
300-3400 Hz): the older graph that faster-whisper ships (``silero_vad_v6.onnx``) scores
only 37-54 % of speech windows above 0.5 there, against 90-95 % for this model, so the
caller's words were lost before the STT saw them. The model's graph: ``input`` float32
[batch, 64 + 512] (64 samples of context from the previous window + 512 new ones at
16 kHz), ``state`` float32 [2, batch, 128], ``sr`` int64; outputs ``output`` [batch, 1] and
``stateN``. The context and state are per stream; the session is shared by all calls in
the process (``InferenceSession.run`` is thread-safe). A window costs well under 1 ms.
(Its 8 kHz mode, fed G.711 frames as they come, measured no better overall on the
benchmark: better on the neural voices, worse on espeak-ng.)

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
CONTEXT = 64  # samples of the previous window the model sees again
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


def as_float(frame: npt.NDArray[np.int16] | _F32) -> _F32:
    if frame.shape != (WINDOW,):
        raise ValueError(f"VAD window must be {WINDOW} samples, got shape {frame.shape}")
    if frame.dtype == np.int16:
        return frame.astype(np.float32) / np.float32(32768.0)
    if frame.dtype != np.float32:
        raise TypeError(f"VAD window must be int16 or float32, got {frame.dtype}")
    return frame.astype(np.float32, copy=False)


class SileroVad:
    """Speech probability per 512-sample window of one 16 kHz stream."""

    def __init__(self, model_path: Path | None = None) -> None:
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self._session = shared_session(model_path)
        self.reset()

    def reset(self) -> None:
        """Forget the stream (new call, or after our own playback)."""
        self._state: _F32 = np.zeros((2, 1, 128), dtype=np.float32)
        self._context: _F32 = np.zeros(CONTEXT, dtype=np.float32)

    def probability(self, frame16k: npt.NDArray[np.int16] | _F32) -> float:
        audio = as_float(frame16k)
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
        self._context = audio[-CONTEXT:].copy()

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
    """Accepts 16 kHz int16 chunks of any length (e.g. 20 ms RTP frames).

    Samples wait until a whole 512-sample window is there, so at most 511 are held.
    """

    def __init__(self, vad: SileroVad | None = None, threshold: float = 0.5,
                 hysteresis: float = HYSTERESIS) -> None:
        self.vad = vad or SileroVad()
        self.decide = Hysteresis(threshold, hysteresis)
        self._pending: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)

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
        whole = len(audio) - len(audio) % WINDOW
        self._pending = audio[whole:].copy()
        return [audio[start : start + WINDOW] for start in range(0, whole, WINDOW)]

    def judge(self, probabilities: list[float]) -> list[VadWindow]:
        """The windows' probabilities, in order, as speech decisions (with hysteresis)."""
        return [VadWindow(WINDOW / SAMPLE_RATE, p, self.decide(p)) for p in probabilities]
