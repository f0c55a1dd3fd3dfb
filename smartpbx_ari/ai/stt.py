"""Speech to text with faster-whisper, off the event loop in a bounded worker pool; the
model of Korean calls (multilingual) beside the default one (tiny.en).

``transcribe()`` of faster-whisper returns a lazy generator: it is consumed *inside* the
worker (``list(...)``), or decoding would silently run on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smartpbx_ari.ai import stt_models
from smartpbx_ari.ai.language import base_language
from smartpbx_ari.config import Settings, SttSettings
from smartpbx_ari.errors import UserFacingError

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
# Whisper's own checks of a decode: a segment more likely silence than speech, one decoded
# unsurely (mean log-probability), text so repetitive it compresses this well (a loop)
NO_SPEECH = 0.6
UNSURE = -1.0
LOOPING = 2.4


class SttError(UserFacingError):
    code = "stt-failed"


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # mean token probability, 0..1
    audio_s: float
    decode_s: float
    started: float | None = None  # time.monotonic() as decoding began; None: not decoded


class SpeechToText:
    """One Whisper model and its worker pool; ``bias`` (set by the owner) gives the words
    to prime the decoder with for a call's language (the knowledge base's vocabulary)."""

    def __init__(self, settings: SttSettings, cache_dir: Path | None = None,
                 model: str | None = None, key: str = "stt.model") -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        self.name = settings.model if model is None else model
        try:
            path = stt_models.resolve(self.name, cache_dir, key)
        except stt_models.ModelFileError as err:
            raise SttError(str(err)) from err
        try:
            self._model = WhisperModel(path, device="cpu", compute_type=settings.compute_type,
                                       cpu_threads=settings.cpu_threads, num_workers=1,
                                       local_files_only=True)
        except Exception as err:  # ctranslate2 raises plain RuntimeError for bad files
            raise SttError(f"{key}: cannot load {path}: {err}") from err
        self.multilingual = bool(self._model.model.is_multilingual)
        self.bias: Callable[[str], str] | None = None
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
                                                  self.language(language))
            except SttError:
                raise
            except Exception as err:
                raise SttError(f"transcription failed: {err}") from err

    def tokens(self, text: str) -> int:
        """How many tokens of this model's vocabulary ``text`` is, as a prompt."""
        return len(self._model.hf_tokenizer.encode(" " + text.strip(),
                                                   add_special_tokens=False).ids)

    def language(self, call_language: str = "") -> str:
        """What Whisper is told: the call's base language (``ko-KR`` -> ``ko``), else
        ``stt.language``; always ``en`` for an English-only model."""
        if not self.multilingual:
            return "en"
        return base_language(call_language) or self.settings.language

    def _decode(self, pcm16k: npt.NDArray[np.int16], language: str) -> Transcript:
        started = time.monotonic()
        audio = pcm16k.astype(np.float32) / 32768.0
        prompt = self.bias(language) if self.bias else ""
        parts = self._segments(audio, language, prompt)
        if prompt and any(s.no_speech_prob > NO_SPEECH or s.avg_logprob < UNSURE
                          or s.compression_ratio > LOOPING for s in parts):
            # the prompt may have spoken, not the caller: on silence or noise a primed
            # decoder loops ("$1,000, $1,000, ...") where a plain one says nothing. The
            # primed decode stands only when Whisper's own checks pass it.
            parts = self._segments(audio, language, "")
        text = " ".join(s.text.strip() for s in parts).strip()
        logprobs = [s.avg_logprob for s in parts]
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else 0.0
        return Transcript(text, confidence, len(pcm16k) / SAMPLE_RATE,
                          time.monotonic() - started, started)

    def _segments(self, audio: npt.NDArray[np.float32], language: str,
                  prompt: str) -> list[Any]:
        segments, _info = self._model.transcribe(
            audio, language=language, beam_size=self.settings.beam_size,
            initial_prompt=prompt or None,
            without_timestamps=True, condition_on_previous_text=False, vad_filter=False,
            temperature=0.0)
        return list(segments)  # consume the generator here, in the worker

def korean_ears(settings: Settings, default: SpeechToText) -> SpeechToText | None:
    """The model Korean calls are heard with (``stt.model_ko``, multilingual), or None,
    said once in the log: Korean calls then go to the operators."""
    name = settings.stt.model_ko
    if not name:
        log.warning("stt.model_ko is empty: Korean calls go to the operators")
        return None
    if name == default.name and default.multilingual:
        return default
    try:
        ears = SpeechToText(settings.stt, settings.cache_dir, name, "stt.model_ko")
    except SttError as err:
        log.error("%s; Korean calls go to the operators", err)
        return None
    if not ears.multilingual:
        ears.close()
        log.error("stt.model_ko: %s is English-only; Korean calls go to the operators", name)
        return None
    return ears
