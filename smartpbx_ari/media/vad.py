"""Silero VAD on the ONNX model that faster-whisper ships (no download at run time).

The model (``faster_whisper/assets/silero_vad_v6.onnx``) is 16 kHz only. Its graph:
``input`` float32 [batch, 576] = 64 samples of context from the previous window + 512 new
samples, LSTM state ``h`` and ``c`` float32 [1, 1, 128]; outputs ``speech_probs`` [batch],
``hn``, ``cn``. The context and LSTM state are per stream; the session is shared by all
calls in the process, since ``InferenceSession.run`` is thread-safe and one copy of the
weights is enough. One window costs well under a millisecond on one CPU thread.
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
WINDOW = 512  # samples per inference (32 ms): the only size the 16 kHz model accepts
CONTEXT = 64  # samples of the previous window the model sees again
MODEL_FILE = "silero_vad_v6.onnx"

_F32 = npt.NDArray[np.float32]


class VadModelError(UserFacingError):
    code = "vad-model-missing"


def default_model_path() -> Path:
    """Find the model without importing faster_whisper (which loads ctranslate2)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError("faster-whisper is not installed; it ships the Silero VAD model")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / MODEL_FILE
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


def _as_float(frame: npt.NDArray[np.int16] | _F32) -> _F32:
    if frame.shape != (WINDOW,):
        raise ValueError(f"VAD window must be {WINDOW} samples, got shape {frame.shape}")
    if frame.dtype == np.int16:
        return frame.astype(np.float32) / np.float32(32768.0)
    if frame.dtype != np.float32:
        raise TypeError(f"VAD window must be int16 or float32, got {frame.dtype}")
    return frame.astype(np.float32, copy=False)


class SileroVad:
    """Speech probability per 512-sample window of one 16 kHz stream."""

    def __init__(self, threshold: float = 0.5, model_path: Path | None = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self._session = shared_session(model_path)
        self._h: _F32 = np.zeros((1, 1, 128), dtype=np.float32)
        self._c: _F32 = np.zeros((1, 1, 128), dtype=np.float32)
        self._context: _F32 = np.zeros(CONTEXT, dtype=np.float32)

    def reset(self) -> None:
        """Forget the stream (new call, or after our own playback)."""
        self._h = np.zeros_like(self._h)
        self._c = np.zeros_like(self._c)
        self._context = np.zeros_like(self._context)

    def probability(self, frame16k: npt.NDArray[np.int16] | _F32) -> float:
        audio = _as_float(frame16k)
        model_input = np.concatenate([self._context, audio])[np.newaxis, :]
        probs, self._h, self._c = self._session.run(
            None, {"input": model_input, "h": self._h, "c": self._c}
        )
        self._context = audio[-CONTEXT:].copy()
        return float(np.asarray(probs).reshape(-1)[0])

    def is_speech(self, probability: float) -> bool:
        return probability >= self.threshold


class VadWindow(NamedTuple):
    duration_s: float
    probability: float
    is_speech: bool


class StreamingVad:
    """Accepts 16 kHz int16 chunks of any length (e.g. 20 ms RTP frames).

    Samples wait until a whole 512-sample window is there, so at most 511 are held.
    """

    def __init__(self, vad: SileroVad | None = None) -> None:
        self.vad = vad or SileroVad()
        self._pending: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)

    def reset(self) -> None:
        self.vad.reset()
        self._pending = np.zeros(0, dtype=np.int16)

    def process(self, chunk: npt.NDArray[np.int16]) -> list[VadWindow]:
        if chunk.dtype != np.int16 or chunk.ndim != 1:
            raise TypeError(f"expected 1-D int16 audio, got {chunk.dtype} {chunk.shape}")
        return [self._score(w) for w in self._windows(chunk)]

    def _windows(self, chunk: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]:
        audio = np.concatenate([self._pending, chunk])
        whole = len(audio) - len(audio) % WINDOW
        self._pending = audio[whole:].copy()
        return [audio[start : start + WINDOW] for start in range(0, whole, WINDOW)]

    def _score(self, window: npt.NDArray[np.int16]) -> VadWindow:
        prob = self.vad.probability(window)
        return VadWindow(WINDOW / SAMPLE_RATE, prob, self.vad.is_speech(prob))
