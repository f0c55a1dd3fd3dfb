"""Smart Turn v3.2 (Pipecat, BSD-2): how likely the caller has finished their turn, from the
last 8 s of the utterance's 16 kHz audio, on onnxruntime with one thread.

Fed as Pipecat feeds it (``LocalSmartTurnAnalyzerV3``): the utterance's audio, trailing
silence included, cut to its last 8 s or zero-padded *at the start* to 8 s, then Whisper's
log-mel features (``WhisperFeatureExtractor(chunk_length=8)``, waveform normalized first:
80 mels x 800 frames), computed here in numpy; the model answers a probability in [0, 1].
The file ships only inside the ``pipecat-ai`` wheel: :func:`model_file` takes it from there.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .wheel_file import WheelFile, fetch

RATE = 16000
WINDOW_S = 8
SAMPLES = RATE * WINDOW_S
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 80
MODEL = WheelFile(
    requirement="pipecat-ai==1.14.0",
    member="pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
    sha256="2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
)
MODEL_NAME = "smart-turn-v3.2-cpu.onnx"

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]


def model_file(cache_dir: Path) -> Path:
    """The packaged model in ``<cache_dir>/models``, fetched with pip the first time."""
    return fetch(MODEL, cache_dir / "models" / MODEL_NAME)


def _hz_to_mel(hz: _F64) -> _F64:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    log_step = 27.0 / np.log(6.4)
    return np.where(hz < 1000.0, 3.0 * hz / 200.0,
                    15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) * log_step)


def _mel_to_hz(mel: _F64) -> _F64:
    log_step = np.log(6.4) / 27.0
    return np.where(mel < 15.0, 200.0 * mel / 3.0, 1000.0 * np.exp(log_step * (mel - 15.0)))


@functools.cache
def _mel_filters() -> _F64:
    """Slaney-normalized triangles, [N_FFT // 2 + 1, N_MELS], 0 Hz to Nyquist (librosa's)."""
    bins = np.linspace(0.0, RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(RATE / 2)),
                                   N_MELS + 2))
    width = np.diff(edges)
    slopes = edges[None, :] - bins[:, None]
    rising = -slopes[:, :-2] / width[:-1]
    falling = slopes[:, 2:] / width[1:]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return np.asarray(triangles * (2.0 / (edges[2:] - edges[:-2]))[None, :], np.float64)


def last_window(pcm16k: npt.NDArray[np.int16]) -> _F32:
    """The last 8 s as float in [-1, 1), zero-padded at the start when shorter."""
    tail = pcm16k[-SAMPLES:].astype(np.float32) / np.float32(32768.0)
    return np.pad(tail, (SAMPLES - tail.size, 0))


def log_mel(audio: _F32) -> _F32:
    """Whisper's features of 8 s of audio: [80, 800], roughly in [-1, 1]."""
    if audio.shape != (SAMPLES,):
        raise ValueError(f"audio must be {SAMPLES} samples, got shape {audio.shape}")
    x = (audio - audio.mean()) / np.sqrt(audio.var() + np.float32(1e-7))  # as in float32
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")  # centred frames
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    hann = np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window
    power = np.abs(np.fft.rfft(frames * hann, axis=-1)) ** 2  # [801, 201]
    mel = np.log10(np.maximum(power @ _mel_filters(), 1e-10)).T[:, :-1]  # last frame dropped
    mel = np.maximum(mel, mel.max() - 8.0)
    return np.asarray((mel + 4.0) / 4.0, np.float32)


@functools.cache
def _session(path: Path) -> Any:
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1  # many calls at once: one thread per inference
    opts.inter_op_num_threads = 1
    opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), sess_options=opts,
                                        providers=["CPUExecutionProvider"])


class SmartTurn:
    """End-of-turn probability of an utterance; blocking (run it in a worker thread).

    The ONNX session is shared by every instance of the same file (``run`` is thread-safe).
    """

    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path.resolve()
        self._session = _session(self.model_path)

    def complete(self, pcm16k: npt.NDArray[np.int16]) -> float:
        """Probability in [0, 1] that the caller's turn is over, from the utterance so far
        (16 kHz int16, trailing silence included)."""
        if pcm16k.ndim != 1 or pcm16k.dtype != np.int16:
            raise ValueError(f"pcm16k must be 1-D int16, got {pcm16k.dtype} {pcm16k.shape}")
        features = log_mel(last_window(pcm16k))[None, :, :]
        out = self._session.run(None, {"input_features": features})
        return float(np.asarray(out[0]).reshape(-1)[0])
