"""The models every call shares (loaded once): STT (and Korean calls' own), TTS, the
responder, the VAD (its windows batched across calls), the turn model, and the greetings
and apologies already spoken, by call language."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from smartpbx_ari.ai import faults
from smartpbx_ari.ai.biasing import tune
from smartpbx_ari.ai.language import base_language
from smartpbx_ari.ai.responder import Responder
from smartpbx_ari.ai.retrieval import HybridRetriever
from smartpbx_ari.ai.speech_cache import SpeechCache
from smartpbx_ari.ai.stt import SpeechToText, korean_ears
from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.call.ear import RATE, Ear, EarEvent, Pcm, Playback
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.call.hold import chime, load_music
from smartpbx_ari.config import Settings, TurnSettings
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.media.smart_turn import SmartTurn, model_file
from smartpbx_ari.media.vad import NARROWBAND, SileroVad, StreamingVad
from smartpbx_ari.media.vad_batch import VadBatcher

log = logging.getLogger(__name__)


def make_tts(settings: Settings) -> TextToSpeech:
    """The agent's voice at the call path's rate, with the speech cache on disk."""
    cache = SpeechCache(settings.cache_dir / "speech", settings.tts.cache_mb * 2**20) \
        if settings.tts.cache_mb else None
    return TextToSpeech(settings.tts, RATE, cache)


def load_turn_model(turn: TurnSettings, cache_dir: Path) -> SmartTurn | None:
    """Blocking (it may fetch the packaged model with pip). ``None`` means turns end on the
    silence timer, said once in the log."""
    if turn.model == "off":
        return None
    try:
        path = Path(turn.model).expanduser() if turn.model else model_file(cache_dir)
        if not path.is_file():
            raise UserFacingError(f"turn.model: {path} does not exist")
        return SmartTurn(path)
    except Exception as err:  # onnxruntime reports a corrupt file as a plain error
        log.warning("turn model unavailable, turns end after %d ms of silence: %s",
                    turn.end_silence_ms, err)
        return None


async def warm_speech(tts: TextToSpeech, phrases: dict[str, list[str]]) -> int:
    """Synthesize into the cache what is not there yet, each language in its voice;
    how many sentences were new."""
    new = 0
    for language, texts in phrases.items():
        new += await tts.warm(texts, tts.voice_for(language))
    return new


def line_vad(turn: TurnSettings, rate: int) -> StreamingVad:
    """A VAD for a line at ``rate``: a narrowband line's own 8 kHz frames go to Silero's
    8 kHz mode (``turn.narrowband_vad``); anything else is heard at 16 kHz."""
    native = rate == NARROWBAND and turn.narrowband_vad
    return StreamingVad(SileroVad(rate=rate if native else RATE), turn.vad_threshold,
                        turn.vad_hysteresis)


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
    stt_ko: SpeechToText | None = None  # Korean calls' multilingual model; None: not heard
    turn_model: SmartTurn | None = None  # None: turns end on the silence timer
    hold_music: Pcm = field(default_factory=chime)  # what a caller on hold hears
    vad_batch: VadBatcher = field(default_factory=VadBatcher)  # every call's VAD windows
    _turn_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="turn"))

    def stt_for(self, language: str) -> SpeechToText | None:
        """The model that hears a call's language; None: none here can (the call goes to
        the operators)."""
        return self.stt_ko if base_language(language) == "ko" else self.stt

    def second_ear_for(self, language: str) -> SpeechToText | None:
        """The larger model that also hears a turn the agent was unsure of
        (``stt.second_ear``): Korean calls' (multilingual) model, for the other calls,
        where it is another model than theirs; None: none."""
        if not self.settings.stt.second_ear or base_language(language) == "ko" \
                or self.stt_ko is self.stt:
            return None
        return self.stt_ko

    def greeting_for(self, language: str) -> Pcm:
        return self.greetings.get(base_language(language), self.greeting)

    def apology_for(self, language: str) -> Pcm:
        return self.apologies.get(base_language(language), self.apology)

    def tune_to(self, retriever: HybridRetriever) -> None:
        """Prime each model with the knowledge base's words (``stt.prompt_tokens``)."""
        for stt in {id(s): s for s in (self.stt, self.stt_ko) if s is not None}.values():
            tune(stt, retriever)

    def vad(self, rate: int) -> StreamingVad:
        """A call's own VAD state over the shared Silero session, for a line at ``rate``."""
        return line_vad(self.settings.turn, rate)

    async def hear(self, ear: Ear, vad: StreamingVad, frames: list[Pcm],
                   playback: Callable[[], Playback], act: Callable[[EarEvent], None]) -> None:
        """Frames through a call's ear, their VAD windows scored in one batch with every
        other call's, off the event loop (``vad`` is the stream the ear was given). What
        the ear decides goes to ``act`` as it is decided: a hold before the scoring."""
        windows: list[Pcm] = []
        for pcm in frames:
            taken, now = ear.take(pcm, playback())
            windows += taken
            for event in now:
                act(event)
        probabilities = await self.vad_batch.score(vad.vad, windows) if windows else []
        for event in ear.decide(probabilities, playback()):
            act(event)

    async def turn_complete(self, audio: Pcm) -> float:
        """The turn model's probability that the caller is done, off the event loop."""
        if self.turn_model is None:
            raise RuntimeError("no turn model loaded")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._turn_pool, self.turn_model.complete, audio)

    @classmethod
    async def load(cls, settings: Settings, responder: Responder,
                   desk: HitlDesk | None = None) -> VoiceEngine:
        """Load every model; arms the test-only fail points ``[faults]`` names (none by
        default)."""
        faults.install(settings.faults)
        loop = asyncio.get_running_loop()
        stt = await loop.run_in_executor(None, SpeechToText, settings.stt, settings.cache_dir)
        stt_ko = await loop.run_in_executor(None, korean_ears, settings, stt)
        tts = make_tts(settings)
        await tts.load()
        await loop.run_in_executor(None, SileroVad)  # load the shared ONNX session now
        turn_model = await loop.run_in_executor(None, load_turn_model, settings.turn,
                                                settings.cache_dir)
        greeting = await tts.synthesize(settings.agent.greeting)
        apology = await tts.synthesize(settings.agent.apology)
        korean = tts.voice_for("ko")
        return cls(settings, stt, tts, responder, greeting, apology, desk,
                   {"ko": await tts.synthesize(settings.agent.greeting_ko, korean)},
                   {"ko": await tts.synthesize(settings.agent.apology_ko, korean)},
                   stt_ko, turn_model,
                   await loop.run_in_executor(None, load_music, settings.agent.hold_music))


async def backlog(recv: Callable[[], Awaitable[Pcm]],
                  arrived: Callable[[Pcm], object] | None = None
                  ) -> AsyncGenerator[list[Pcm]]:
    """A call's frames, each time every one that came while the last were heard: a call
    whose listening fell behind (a busy moment) catches up in one VAD batch instead of a
    round trip per frame. ``arrived`` sees each frame as it comes, before the frames ahead
    of it are heard (a barge-in's hold). ``recv``'s error ends it."""
    frames: asyncio.Queue[Pcm | BaseException] = asyncio.Queue()

    async def read() -> None:
        try:
            while True:
                pcm = await recv()
                if arrived is not None:
                    arrived(pcm)
                frames.put_nowait(pcm)
        except Exception as err:
            frames.put_nowait(err)

    reader = asyncio.create_task(read())
    try:
        while True:
            batch = [await frames.get()]
            while not frames.empty():
                batch.append(frames.get_nowait())
            if audio := [f for f in batch if not isinstance(f, BaseException)]:
                yield audio
            if isinstance(batch[-1], BaseException):  # the reader stopped at it
                raise batch[-1]
    finally:
        reader.cancel()
