"""The models every call shares (loaded once): STT, TTS, the responder, the VAD, and the
greetings and apologies already spoken, by call language."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from smartpbx_ari.ai.language import base_language
from smartpbx_ari.ai.responder import Responder
from smartpbx_ari.ai.speech_cache import SpeechCache
from smartpbx_ari.ai.stt import SpeechToText
from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.call.ear import RATE, Pcm
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.config import Settings
from smartpbx_ari.media.vad import SileroVad, StreamingVad


def make_tts(settings: Settings) -> TextToSpeech:
    """The agent's voice at the call path's rate, with the speech cache on disk."""
    cache = SpeechCache(settings.cache_dir / "speech", settings.tts.cache_mb * 2**20) \
        if settings.tts.cache_mb else None
    return TextToSpeech(settings.tts, RATE, cache)


async def warm_speech(tts: TextToSpeech, phrases: dict[str, list[str]]) -> int:
    """Synthesize into the cache what is not there yet, each language in its voice;
    how many sentences were new."""
    new = 0
    for language, texts in phrases.items():
        new += await tts.warm(texts, tts.voice_for(language))
    return new


@dataclass
class VoiceEngine:
    settings: Settings
    stt: SpeechToText
    tts: TextToSpeech
    responder: Responder
    greeting: Pcm
    apology: Pcm
    desk: HitlDesk | None = None  # without one, an unsure answer hands the call over at once
    # other languages' greeting and apology, by call language (routing)
    greetings: dict[str, Pcm] = field(default_factory=dict)
    apologies: dict[str, Pcm] = field(default_factory=dict)

    def greeting_for(self, language: str) -> Pcm:
        return self.greetings.get(base_language(language), self.greeting)

    def apology_for(self, language: str) -> Pcm:
        return self.apologies.get(base_language(language), self.apology)

    def vad(self) -> StreamingVad:
        """A call's own VAD state over the shared Silero session."""
        return StreamingVad(SileroVad(self.settings.turn.vad_threshold))

    @classmethod
    async def load(cls, settings: Settings, responder: Responder,
                   desk: HitlDesk | None = None) -> VoiceEngine:
        loop = asyncio.get_running_loop()
        stt = await loop.run_in_executor(None, SpeechToText, settings.stt)
        tts = make_tts(settings)
        await loop.run_in_executor(None, SileroVad)  # load the shared ONNX session now
        greeting = await tts.synthesize(settings.agent.greeting)
        apology = await tts.synthesize(settings.agent.apology)
        korean = tts.voice_for("ko")
        return cls(settings, stt, tts, responder, greeting, apology, desk,
                   {"ko": await tts.synthesize(settings.agent.greeting_ko, korean)},
                   {"ko": await tts.synthesize(settings.agent.apology_ko, korean)})
