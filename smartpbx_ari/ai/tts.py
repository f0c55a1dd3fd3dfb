"""Text to speech: the Piper neural voice for English, espeak-ng for Korean and as the
fallback, sentence by sentence so the first audio leaves early, cached by phrase.

Piper runs on one worker thread (never on the event loop); espeak-ng runs as a
subprocess writing a WAV to stdout (killed if the caller hangs up meanwhile). Audio
comes out at the call path's rate (16 kHz), resampled with a proper polyphase filter.
A phrase already in the speech cache costs a lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import shutil
import threading
import wave
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from smartpbx_ari.ai.language import base_language
from smartpbx_ari.ai.piper import PiperVoice, VoiceError, packaged_voice
from smartpbx_ari.ai.speech_cache import SpeechCache, cache_key
from smartpbx_ari.ai.voice import Voice
from smartpbx_ari.config import TtsSettings
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.media.resample import resample

log = logging.getLogger(__name__)
Pcm = npt.NDArray[np.int16]
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


class TtsError(UserFacingError):
    code = "tts-failed"


def split_sentences(text: str) -> list[str]:
    """Sentences, so speech can start after the first one is synthesized."""
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


class TextToSpeech:
    def __init__(self, settings: TtsSettings, rate: int = 16000,
                 cache: SpeechCache | None = None) -> None:
        if shutil.which("espeak-ng") is None:
            raise TtsError("tts: espeak-ng is not installed (apt-get install espeak-ng)")
        self.settings = settings
        self.rate = rate
        self.cache = cache
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="tts")
        self._voices: dict[str, PiperVoice | None] = {}  # by model path; None: unusable
        self._load_lock = threading.Lock()

    def voice_for(self, language: str) -> Voice:
        """The voice of a call's language (from the routing rules): the configured
        English voice for English or no language, else espeak-ng's voice of it."""
        if not language or base_language(language) == base_language(self.settings.voice):
            if self.settings.engine == "piper":
                return Voice("piper", self.settings.piper_voice)
            return Voice("espeak", self.settings.voice)
        return Voice("espeak", language.lower())

    async def synthesize(self, text: str, voice: Voice | None = None) -> Pcm:
        """``text`` spoken by ``voice`` (default: the English voice) at ``self.rate``."""
        voice = voice or self.voice_for("")
        cached = await self._cached(text, voice)
        if cached is not None:
            return cached
        pcm = await self._render(text, voice)
        if self.cache is not None:
            await asyncio.to_thread(self.cache.put, cache_key(text, voice.key, self.rate), pcm)
        return pcm

    async def _cached(self, text: str, voice: Voice) -> Pcm | None:
        """The phrase from memory at once, else from disk off the loop, else None."""
        if self.cache is None:
            return None
        key = cache_key(text, voice.key, self.rate)
        found = self.cache.get(key, memory_only=True)
        return found if found is not None else await asyncio.to_thread(self.cache.get, key)

    async def _render(self, text: str, voice: Voice) -> Pcm:
        if voice.engine == "piper":
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._worker, self._piper_render, text, voice)
            except VoiceError as err:
                log.warning("tts: %s; speaking with espeak-ng instead", err)
                voice = Voice("espeak", self.settings.voice, voice.speed, voice.pitch)
        return await self._espeak_render(text, voice)

    def _piper_render(self, text: str, voice: Voice) -> Pcm:
        piper = self._piper(voice.name)
        factor = voice.pitch_factor  # slower by the factor, then played faster by it
        try:
            pcm = piper.synthesize(text, voice.speed / factor)
        except VoiceError:
            raise
        except Exception as err:  # onnxruntime's own errors: fall back for this phrase
            raise VoiceError(f"Piper failed on a phrase ({type(err).__name__})") from err
        return resample(pcm, _shifted(piper.sample_rate, factor), self.rate)

    def _piper(self, name: str) -> PiperVoice:
        with self._load_lock:
            if name not in self._voices:
                try:
                    self._voices[name] = PiperVoice(Path(name) if name else packaged_voice())
                except VoiceError as err:
                    self._voices[name] = None
                    raise VoiceError(f"the Piper voice is unavailable ({err})") from err
            piper = self._voices[name]
        if piper is None:
            raise VoiceError("the Piper voice is unavailable (see the first warning)")
        return piper

    async def _espeak_render(self, text: str, voice: Voice) -> Pcm:
        factor = voice.pitch_factor
        wpm = max(80, min(450, round(self.settings.words_per_minute * voice.speed / factor)))
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng", "--stdout", "-v", voice.name or self.settings.voice,
            "-s", str(wpm), "--", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:  # the call ended or the caller barged in
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0 or not out:
            raise TtsError(f"tts: espeak-ng failed ({proc.returncode}): {err.decode()[:200]}")
        pcm, src_rate = _read_wav(out)
        return resample(pcm, _shifted(src_rate, factor), self.rate)

    async def warm(self, texts: Iterable[str], voice: Voice | None = None) -> int:
        """Synthesize (into the cache) every sentence of ``texts`` not there yet; how
        many were new. Stored answers then cost no synthesis during a call."""
        voice = voice or self.voice_for("")
        new = 0
        for text in texts:
            for sentence in split_sentences(text):
                if await self._cached(sentence, voice) is None:
                    await self.synthesize(sentence, voice)
                    new += 1
        return new

    async def stream(self, text: str, voice: Voice | None = None) -> AsyncIterator[Pcm]:
        """Yield each sentence's audio; the next is synthesized while this one plays."""
        async for pcm in self.speak(_each(split_sentences(text)), voice):
            yield pcm

    async def speak(self, sentences: AsyncIterator[str],
                    voice: Voice | None = None) -> AsyncIterator[Pcm]:
        """Audio of sentences as they come (an LLM's): each is synthesized while the
        previous one plays."""

        async def next_audio() -> Pcm | None:
            async for sentence in sentences:
                if sentence.strip():
                    return await self.synthesize(sentence, voice)
            return None

        pending = asyncio.ensure_future(next_audio())
        try:
            while (audio := await pending) is not None:
                pending = asyncio.ensure_future(next_audio())
                yield audio
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, TtsError):
                    await pending
            aclose = getattr(sentences, "aclose", None)
            if aclose is not None:
                await aclose()

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def _shifted(rate: int, factor: float) -> int:
    """The rate to read audio at for a pitch shift by ``factor`` (a multiple of 50 Hz,
    so the resampling ratio stays small)."""
    return rate if factor == 1.0 else round(rate * factor / 50) * 50


def _read_wav(wav_bytes: bytes) -> tuple[Pcm, int]:
    # espeak-ng writes a streaming WAV whose header sizes are 0xFFFFFFFF: patch them.
    data = bytearray(wav_bytes)
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    data[40:44] = (len(data) - 44).to_bytes(4, "little")
    with wave.open(io.BytesIO(bytes(data)), "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    return pcm, rate


async def _each(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item
