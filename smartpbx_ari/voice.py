"""The voice loop of one call: RTP in -> VAD/turn -> STT -> responder -> TTS -> paced RTP out.

Two tasks per call share one TaskGroup: ``listen`` (never blocks on a model: it only
decodes, scores VAD and starts transcriptions) and ``talk`` (one answer at a time).
Barge-in is a control signal that overtakes audio: ``listen`` stops the player at once.
A failing stage becomes a spoken apology; the next turn still works.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from smartpbx_ari.ai.responder import Reply, Responder
from smartpbx_ari.ai.stt import SpeechToText, SttError, Transcript
from smartpbx_ari.ai.tts import TextToSpeech, TtsError
from smartpbx_ari.config import Settings
from smartpbx_ari.hitl import HitlDesk
from smartpbx_ari.media import codecs
from smartpbx_ari.media.jitter import JitterBuffer
from smartpbx_ari.media.player import PacedPlayer, RtpPacketizer, split_frames
from smartpbx_ari.media.resample import Resampler
from smartpbx_ari.media.turn import (
    BargeInDetector,
    SpeechEnded,
    SpeechStarted,
    TurnDetector,
    UtteranceTooShort,
    rms,
)
from smartpbx_ari.media.vad import SileroVad, StreamingVad
from smartpbx_ari.telephony.stasis import CallMedia

log = logging.getLogger(__name__)
Pcm = npt.NDArray[np.int16]
RATE = 16000  # VAD, STT and TTS work at 16 kHz
PREROLL_S = 0.3
FRAME_S = 0.02
ECHO_WINDOW = 8  # frames (160 ms) of our own playback an echo may lag behind
# A hold is cheap and undone in HOLD_MAX_S, so it trusts the line's echo cancellation
# (residual echo ~16 dB down); stopping needs the VAD *and* 6 dB (BargeInDetector's
# echo_ratio, the ITU-T G.168 hybrid minimum), so our own echo can pause us, never cut us.
HOLD_ECHO_RATIO = 0.15
HOLD_RMS = 400.0  # a caller this loud (well above line noise) holds our playback ...
HOLD_MAX_S = 0.2  # ... for at most this long unless the VAD confirms speech
SILENCE_FILL_S = 0.06  # a gap this long in the caller's RTP is fed to VAD as silence


@dataclass
class VoiceEngine:
    """Models shared by every call (loaded once)."""

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
        return self.greetings.get(language.split("-")[0], self.greeting)

    def apology_for(self, language: str) -> Pcm:
        return self.apologies.get(language.split("-")[0], self.apology)

    @classmethod
    async def load(cls, settings: Settings, responder: Responder,
                   desk: HitlDesk | None = None) -> VoiceEngine:
        loop = asyncio.get_running_loop()
        stt = await loop.run_in_executor(None, SpeechToText, settings.stt)
        tts = TextToSpeech(settings.tts, RATE)
        await loop.run_in_executor(None, SileroVad)  # load the shared ONNX session now
        greeting = await tts.synthesize(settings.agent.greeting)
        apology = await tts.synthesize(settings.agent.apology)
        korean = tts.voice_for("ko")
        return cls(settings, stt, tts, responder, greeting, apology, desk,
                   {"ko": await tts.synthesize(settings.agent.greeting_ko, korean)},
                   {"ko": await tts.synthesize(settings.agent.apology_ko, korean)})


@dataclass
class Utterance:
    transcript: asyncio.Future[Transcript]
    ended_at: float  # monotonic, when the turn detector closed it


class VoiceConversation:
    def __init__(self, engine: VoiceEngine) -> None:
        self.engine = engine
        self.turns: asyncio.Queue[Utterance] = asyncio.Queue(maxsize=4)
        # Echo reference: levels of the frames queued for the player, and of those sent in
        # the last ECHO_WINDOW frames (an echo arrives within that tail).
        self._queued_levels: collections.deque[float] = collections.deque()
        self._sent_levels: collections.deque[float] = collections.deque(maxlen=ECHO_WINDOW)
        self.player: PacedPlayer | None = None
        self.encode: Callable[[Pcm], bytes] = codecs.encoder("ulaw")

    async def run(self, media: CallMedia) -> None:
        codec = codecs.codec(media.codec)
        self.encode = codecs.encoder(codec.name)
        packetizer = RtpPacketizer.for_codec(codec, secrets.randbits(32))
        self.player = PacedPlayer(self._sender(media), packetizer)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._listen(media), name=f"call:{media.call_id}:listen")
            tg.create_task(self._talk(media), name=f"call:{media.call_id}:talk")

    # ---- talking ------------------------------------------------------------------
    async def _talk(self, media: CallMedia) -> None:
        await self._play(media, _once(self.engine.greeting_for(media.language)))
        while True:
            utterance = await self.turns.get()
            hand_off = await self._answer(media, utterance)
            if hand_off:
                media.hand_off(hand_off)
                return

    async def _answer(self, media: CallMedia, utterance: Utterance) -> str:
        """One turn; returns why the call must go to the operators, or ""."""
        try:
            transcript = await utterance.transcript
        except SttError as err:
            media.emit("error", code=err.code, message=str(err))
            await self._play(media, _once(self.engine.apology_for(media.language)))
            return ""
        if not transcript.text:
            return ""
        if media.operator.is_set():  # an operator has the call: record, do not answer
            media.emit("heard", text=transcript.text, speaker="call",
                       confidence=round(transcript.confidence, 3))
            return ""
        waited = time.monotonic() - utterance.ended_at
        ended = time.time() - waited  # wall clock, for the record
        media.emit("heard", text=transcript.text, confidence=round(transcript.confidence, 3),
                   stt_ms=round(transcript.decode_s * 1000), wait_ms=round(waited * 1000),
                   start=round(ended - transcript.audio_s, 3), end=round(ended, 3))
        reply = await self.engine.responder.respond(transcript.text, media.call_id,
                                                    media.language)
        media.emit("said", text=reply.text, intent=reply.intent,
                   confidence=round(reply.confidence, 3), hitl=reply.hitl,
                   phrased=reply.speech is not None, question=transcript.text)
        if not reply.hitl:
            await self._play(media, self._synth(media, reply.text, reply.speech))
            return ""
        return await self._ask_a_human(media, transcript.text, reply)

    async def _ask_a_human(self, media: CallMedia, question: str, reply: Reply) -> str:
        """Alert the operators; a caller who asked for a person goes to the queue, an
        unsure answer waits (holding phrase) for an operator's typed one."""
        desk = self.engine.desk
        person = reply.intent == "human_request"
        alert = desk.raise_alert(media.call_id, "human_request" if person else
                                 "low_confidence", question, reply.confidence,
                                 waiting=not person) if desk else None
        await self._play(media, self._synth(media, reply.text))
        if person:
            return "caller asked for a person"
        if desk is None or alert is None:
            return "no confident answer"
        answer = await desk.wait_answer(alert, self.engine.settings.agent.hitl_wait_s)
        if answer is None:
            return "no operator answered in time"
        if not answer:  # taken over: the operator talks to the caller themselves
            return ""
        media.emit("said", text=answer, speaker="operator", operator=alert.accepted_by,
                   intent=reply.intent, confidence=None, hitl=False, question=question)
        await self._play(media, self._synth(media, answer))
        return ""

    async def _synth(self, media: CallMedia, text: str,
                     speech: AsyncIterator[str] | None = None) -> AsyncIterator[Pcm]:
        tts = self.engine.tts
        voice = tts.voice_for(media.language)
        try:
            async for pcm in tts.speak(speech, voice) if speech else tts.stream(text, voice):
                yield pcm
        except TtsError as err:
            media.emit("error", code=err.code, message=str(err))
            yield self.engine.apology_for(media.language)

    @property
    def playback_rms(self) -> float:
        """How loud we were over the last few frames sent (0 when silent)."""
        return max(self._sent_levels, default=0.0)

    def _sender(self, media: CallMedia) -> Callable[[bytes], None]:
        def send(packet: bytes) -> None:
            media.endpoint.send(packet)
            self._sent_levels.append(self._queued_levels.popleft() if self._queued_levels
                                     else 0.0)

        return send

    async def _play(self, media: CallMedia, audio: AsyncIterator[Pcm]) -> None:
        assert self.player is not None
        await self.player.play(self._frames(media, audio))
        self._queued_levels.clear()
        self._sent_levels.clear()

    async def _frames(self, media: CallMedia, audio: AsyncIterator[Pcm]) -> AsyncIterator[bytes]:
        codec = codecs.codec(media.codec)
        down = Resampler(RATE, codec.sample_rate) if codec.sample_rate != RATE else None
        first = True
        async for pcm in audio:
            if first:
                assert self.player is not None
                self.player.packetizer.start_talkspurt()
                first = False
            pcm = down.process(pcm) if down else pcm
            n = codec.samples_per_frame
            pcm = np.concatenate([pcm, np.zeros(-len(pcm) % n, np.int16)])
            for i, frame in enumerate(split_frames(self.encode(pcm), codec.frame_bytes,
                                                   codec.silence_byte)):
                self._queued_levels.append(rms(pcm[i * n : (i + 1) * n]))
                yield frame

    # ---- listening ----------------------------------------------------------------
    async def _listen(self, media: CallMedia) -> None:
        ear = Ear(self.engine, self, media)
        jitter = JitterBuffer(depth=3)
        decode = codecs.decoder(media.codec)
        silence = np.zeros(codecs.codec(media.codec).samples_per_frame, np.int16)
        while True:
            try:
                async with asyncio.timeout(SILENCE_FILL_S):
                    packet = await media.endpoint.queue.get()
            except TimeoutError:
                # No RTP (DTX, or a caller that sends nothing while silent) is silence:
                # without it a turn would never end.
                for pkt in jitter.flush():
                    ear.hear(decode(pkt.payload))
                for _ in range(round(SILENCE_FILL_S / FRAME_S)):
                    ear.hear(silence)
                continue
            for pkt in jitter.push(packet):
                ear.hear(decode(pkt.payload))


class Ear:
    """Per-call listening state: VAD, turns, barge-in, eager transcription."""

    def __init__(self, engine: VoiceEngine, talk: VoiceConversation, media: CallMedia) -> None:
        t = engine.settings.turn
        self.engine, self.talk, self.media = engine, talk, media
        self.vad = StreamingVad(SileroVad(t.vad_threshold))
        self.turn = TurnDetector(t.start_speech_ms / 1000, t.end_silence_ms / 1000,
                                 t.min_utterance_ms / 1000, t.max_utterance_ms / 1000)
        self.barge = BargeInDetector(min_speech_s=t.barge_in_ms / 1000)
        self.eager_s = t.eager_silence_ms / 1000
        self.held_s = 0.0
        rate = codecs.codec(media.codec).sample_rate
        self.up = Resampler(rate, RATE) if rate != RATE else None
        self.recent: collections.deque[Pcm] = collections.deque(maxlen=int(PREROLL_S / 0.02))
        self.capture: list[Pcm] | None = None
        self.silence_s = 0.0
        self.eager: asyncio.Task[Transcript] | None = None

    def hear(self, pcm: Pcm) -> None:
        if self.up is not None:
            pcm = self.up.process(pcm)
        self.recent.append(pcm)
        if self.capture is not None:
            self.capture.append(pcm)
        level = rms(pcm)
        for window in self.vad.process(pcm):
            speech = self._gate(window.duration_s, window.is_speech, level)
            self._track_silence(window.duration_s, speech)
            for event in self.turn.process(window.duration_s, speech):
                self._on_turn(event)

    def _gate(self, seconds: float, is_speech: bool, level: float) -> bool:
        """While we talk, only a confirmed barge-in counts as the caller's speech.

        The echo gate (the caller louder than half our own recent playback) keeps our
        voice, echoed back by the line, from interrupting us. Silero is slow on unvoiced
        onsets ("s", "t"), so a loud line first *holds* the answer at once and the VAD
        then stops it or lets it go on."""
        player = self.talk.player
        if player is None or not player.playing:
            self.barge.reset()
            self.held_s = 0.0
            return is_speech
        echo = self.talk.playback_rms * HOLD_ECHO_RATIO
        if not player.held and level >= max(HOLD_RMS, echo):
            player.hold()  # loud: pause now, the VAD decides within HOLD_MAX_S
        if self.barge.process(seconds, is_speech, level, self.talk.playback_rms):
            player.stop()
            self.media.emit("barge_in")
        elif player.held:
            self.held_s += seconds
            if self.held_s >= HOLD_MAX_S:  # a cough or a click: go on talking
                self.held_s = 0.0
                player.resume()
        return is_speech and self.barge.triggered

    def _track_silence(self, seconds: float, speech: bool) -> None:
        if not self.turn.in_speech:
            return
        if speech:
            self.silence_s = 0.0
            self._drop_eager()
            return
        self.silence_s += seconds
        if self.eager is None and self.silence_s >= self.eager_s and self.capture:
            self.eager = asyncio.ensure_future(self._transcribe())

    def _on_turn(self, event: object) -> None:
        if isinstance(event, SpeechStarted):
            self.capture = list(self.recent)
            self.silence_s = 0.0
        elif isinstance(event, SpeechEnded):
            future = self.eager or asyncio.ensure_future(self._transcribe())
            self.eager, self.capture = None, None
            self._queue(Utterance(future, time.monotonic()))
        elif isinstance(event, UtteranceTooShort):
            self._drop_eager()
            self.capture = None

    def _queue(self, utterance: Utterance) -> None:
        if self.talk.turns.full():  # the caller talks faster than we answer: keep the newest
            dropped = self.talk.turns.get_nowait()
            dropped.transcript.cancel()
        self.talk.turns.put_nowait(utterance)

    async def _transcribe(self) -> Transcript:
        audio = np.concatenate(self.capture) if self.capture else np.zeros(0, np.int16)
        return await self.engine.stt.transcribe(audio, self.media.language)

    def _drop_eager(self) -> None:
        if self.eager is not None:
            self.eager.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self.eager.exception()
            self.eager = None


async def _once(pcm: Pcm) -> AsyncIterator[Pcm]:
    yield pcm
