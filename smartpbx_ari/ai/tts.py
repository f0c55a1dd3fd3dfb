"""Text to speech with espeak-ng, sentence by sentence so the first audio leaves early.

espeak-ng runs as a subprocess (asyncio, never blocking the loop) writing a WAV to
stdout; the audio is resampled to the call's rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shutil
import wave
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt

from smartpbx_ari.ai.language import base_language
from smartpbx_ari.config import TtsSettings
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.media.resample import resample

Pcm = npt.NDArray[np.int16]
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


class TtsError(UserFacingError):
    code = "tts-failed"


def split_sentences(text: str) -> list[str]:
    """Sentences, so speech can start after the first one is synthesized."""
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


class TextToSpeech:
    def __init__(self, settings: TtsSettings, rate: int = 16000) -> None:
        if shutil.which("espeak-ng") is None:
            raise TtsError("tts: espeak-ng is not installed (apt-get install espeak-ng)")
        self.settings = settings
        self.rate = rate

    def voice_for(self, language: str) -> str:
        """The espeak-ng voice of a call's language (from the routing rules): the
        configured voice for English or no language, else the language's own voice."""
        if not language or base_language(language) == base_language(self.settings.voice):
            return self.settings.voice
        return language.lower()

    async def synthesize(self, text: str, voice: str = "") -> Pcm:
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng", "--stdout", "-v", voice or self.settings.voice,
            "-s", str(self.settings.words_per_minute), "--", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:  # the call ended or the caller barged in
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0 or not out:
            raise TtsError(f"tts: espeak-ng failed ({proc.returncode}): {err.decode()[:200]}")
        return self._decode(out)

    def _decode(self, wav_bytes: bytes) -> Pcm:
        # espeak-ng writes a streaming WAV whose header sizes are 0xFFFFFFFF: patch them.
        data = bytearray(wav_bytes)
        data[4:8] = (len(data) - 8).to_bytes(4, "little")
        data[40:44] = (len(data) - 44).to_bytes(4, "little")
        with wave.open(io.BytesIO(bytes(data)), "rb") as w:
            src_rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
        return resample(pcm, src_rate, self.rate) if src_rate != self.rate else pcm

    async def stream(self, text: str, voice: str = "") -> AsyncIterator[Pcm]:
        """Yield each sentence's audio; the next is synthesized while this one plays."""
        async for pcm in self.speak(_each(split_sentences(text)), voice):
            yield pcm

    async def speak(self, sentences: AsyncIterator[str], voice: str = "") -> AsyncIterator[Pcm]:
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


async def _each(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item
