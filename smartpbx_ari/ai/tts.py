"""Text to speech: the Piper neural voice for English, espeak-ng for Korean and as the
fallback, sentence by sentence so the first audio leaves early, cached by phrase.

Piper runs on one worker thread (never on the event loop); espeak-ng runs as a
subprocess writing a WAV to stdout (killed if the caller hangs up meanwhile). Audio
comes out at the call path's rate (16 kHz), resampled with a proper polyphase filter
(whole phrases) or soxr's streaming resampler (chunks). A phrase already in the speech
cache costs a lookup; a phrase that is not (an operator's typed answer, the LLM's
phrasing) is spoken chunk by chunk as Piper decodes it, then kept in the cache.
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
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

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


@dataclass
class _Rendering:
    task: asyncio.Future[Pcm]
    waiters: int = 0


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
        # a phrase being rendered whole, by cache key: callers asking for it at once wait
        # for one rendering (twenty synthetic callers' one question; a Korean call's
        # espeak-ng phrase). A call's Piper phrase is streamed by _phrase, not shared.
        self._rendering: dict[str, _Rendering] = {}

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
        key = cache_key(text, voice.key, self.rate)
        rendering = self._rendering.get(key)
        if rendering is None:
            rendering = self._rendering[key] = _Rendering(asyncio.ensure_future(
                self._render_and_keep(text, voice, key)))
            rendering.task.add_done_callback(lambda done: self._rendered(key, done))
        rendering.waiters += 1
        try:  # shielded: one waiter hanging up stops no other
            return await asyncio.shield(rendering.task)
        finally:
            rendering.waiters -= 1
            if not rendering.waiters:  # nobody waits any more: stop (espeak is killed)
                rendering.task.cancel()

    async def _render_and_keep(self, text: str, voice: Voice, key: str) -> Pcm:
        pcm = await self._render(text, voice)
        if self.cache is not None:
            await asyncio.to_thread(self.cache.put, key, pcm)
        return pcm

    def _rendered(self, key: str, done: asyncio.Future[Pcm]) -> None:
        del self._rendering[key]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have hung up

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
                voice = self._fallback(err, voice)
        return await self._espeak_render(text, voice)

    async def load(self) -> None:
        """Load the configured Piper voice now (at start), so that the first sentence not
        in the cache (a clarifying question, an operator's answer) does not pay for it in
        a call; an unusable voice is said in the log and espeak-ng speaks instead."""
        if self.settings.engine != "piper":
            return
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._worker, self._piper, self.settings.piper_voice)
        except VoiceError as err:
            log.warning("tts: %s; speaking with espeak-ng instead", err)

    def _fallback(self, err: VoiceError, voice: Voice) -> Voice:
        log.warning("tts: %s; speaking with espeak-ng instead", err)
        return Voice("espeak", self.settings.voice, voice.speed, voice.pitch)

    def _piper_render(self, text: str, voice: Voice) -> Pcm:
        piper = self._piper(voice.name)
        factor = voice.pitch_factor  # slower by the factor, then played faster by it
        pcm = piper.synthesize(text, voice.speed / factor, voice.take)
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

    async def stream(self, text: str, voice: Voice | None = None) -> AsyncGenerator[Pcm, None]:
        """Audio of ``text``: each sentence from the cache, or chunk by chunk as it is
        synthesized while the previous chunk plays."""
        async with contextlib.aclosing(self.speak(_each(split_sentences(text)), voice)) as audio:
            async for pcm in audio:  # closed at once when we are: no synthesis runs on
                yield pcm

    async def speak(self, sentences: AsyncIterator[str],
                    voice: Voice | None = None) -> AsyncGenerator[Pcm, None]:
        """Audio of sentences as they come (an LLM's): the next chunk is synthesized
        while this one plays."""
        chosen = voice or self.voice_for("")

        async def chunks() -> AsyncGenerator[Pcm, None]:
            async for sentence in sentences:
                if sentence.strip():
                    async for pcm in self._phrase(sentence, chosen):
                        yield pcm

        audio = chunks()
        pending = asyncio.ensure_future(anext(audio, None))
        try:
            while (pcm := await pending) is not None:
                pending = asyncio.ensure_future(anext(audio, None))
                yield pcm
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, TtsError):
                    await pending
            await audio.aclose()
            aclose = getattr(sentences, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _phrase(self, text: str, voice: Voice) -> AsyncIterator[Pcm]:
        """One sentence: from the cache, else Piper's chunks as they come (then the whole
        into the cache), else espeak-ng's whole phrase."""
        cached = await self._cached(text, voice)
        if cached is not None:
            yield cached
            return
        if voice.engine != "piper":
            yield await self.synthesize(text, voice)
            return
        spoken: list[Pcm] = []
        try:
            async for pcm in self._piper_chunks(text, voice):
                spoken.append(pcm)
                yield pcm
        except VoiceError as err:
            if spoken:  # half a sentence is out: the rest would not match its voice
                raise TtsError(f"tts: {err}") from err
            yield await self._espeak_render(text, self._fallback(err, voice))
            return
        if self.cache is not None and spoken:
            await asyncio.to_thread(self.cache.put, cache_key(text, voice.key, self.rate),
                                    np.concatenate(spoken))

    async def _piper_chunks(self, text: str, voice: Voice) -> AsyncIterator[Pcm]:
        loop = asyncio.get_running_loop()
        piper = await loop.run_in_executor(self._worker, self._piper, voice.name)
        factor = voice.pitch_factor  # slower by the factor, then played faster by it
        # runs on the worker, chunk by chunk
        chunks = piper.stream(text, voice.speed / factor, voice.take)
        resampler = soxr.ResampleStream(_shifted(piper.sample_rate, factor), self.rate, 1,
                                        dtype="int16")
        while True:
            pcm = await loop.run_in_executor(self._worker, next, chunks, None)
            last = pcm is None
            out = resampler.resample_chunk(np.zeros(0, np.int16) if last else pcm, last=last)
            if len(out):
                yield np.asarray(out, dtype=np.int16)
            if last:
                return

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
