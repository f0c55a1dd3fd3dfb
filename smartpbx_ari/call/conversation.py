"""The voice loop of one call: caller audio -> ear -> STT -> responder -> TTS -> mouth.

Two tasks per call share one TaskGroup: ``listen`` (never blocks on a model: it feeds the
ear and acts on what it decides, starting transcriptions) and ``talk`` (one answer at a
time). Barge-in is a control signal that overtakes audio: ``listen`` stops the player at
once. A failing stage becomes a spoken apology; the next turn still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from smartpbx_ari.ai.responder import Reply
from smartpbx_ari.ai.stt import SttError, Transcript
from smartpbx_ari.ai.tts import TtsError
from smartpbx_ari.call.ear import (
    BargeIn,
    DropTranscript,
    Ear,
    EarEvent,
    HoldPlayback,
    Pcm,
    ResumePlayback,
    StartTranscript,
    TurnEnded,
)
from smartpbx_ari.call.engine import VoiceEngine
from smartpbx_ari.call.mouth import Mouth
from smartpbx_ari.call.ports import CallPort
from smartpbx_ari.events import BargedIn, Heard, Said, StageFailed
from smartpbx_ari.media import codecs


@dataclass
class Utterance:
    transcript: asyncio.Future[Transcript]
    ended_at: float  # monotonic, when the ear closed the turn


class VoiceConversation:
    def __init__(self, engine: VoiceEngine) -> None:
        self.engine = engine
        self.turns: asyncio.Queue[Utterance] = asyncio.Queue(maxsize=4)
        self.eager: asyncio.Task[Transcript] | None = None

    async def run(self, port: CallPort) -> None:
        mouth = Mouth(port.send, port.codec)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._listen(port, mouth), name=f"call:{port.call_id}:listen")
            tg.create_task(self._talk(port, mouth), name=f"call:{port.call_id}:talk")
            tg.create_task(self._keys(port), name=f"call:{port.call_id}:keys")

    # ---- talking ------------------------------------------------------------------
    async def _talk(self, port: CallPort, mouth: Mouth) -> None:
        await mouth.play(_once(self.engine.greeting_for(port.language)))
        while True:
            utterance = await self.turns.get()
            hand_off = await self._answer(port, mouth, utterance)
            if hand_off:
                port.hand_off(hand_off)
                return

    async def _answer(self, port: CallPort, mouth: Mouth, utterance: Utterance) -> str:
        """One turn; returns why the call must go to the operators, or ""."""
        try:
            transcript = await utterance.transcript
        except SttError as err:
            port.publish(StageFailed(call_id=port.call_id, code=err.code, message=str(err)))
            await mouth.play(_once(self.engine.apology_for(port.language)))
            return ""
        if not transcript.text:
            return ""
        confidence = round(transcript.confidence, 3)
        if port.operator.is_set():  # an operator has the call: record, do not answer
            port.publish(Heard(call_id=port.call_id, text=transcript.text, speaker="call",
                               confidence=confidence))
            return ""
        waited = time.monotonic() - utterance.ended_at
        ended = time.time() - waited  # wall clock, for the record
        port.publish(Heard(call_id=port.call_id, text=transcript.text, confidence=confidence,
                           stt_ms=round(transcript.decode_s * 1000),
                           wait_ms=round(waited * 1000),
                           start=round(ended - transcript.audio_s, 3), end=round(ended, 3)))
        reply = await self.engine.responder.respond(transcript.text, port.call_id,
                                                    port.language)
        port.publish(Said(call_id=port.call_id, text=reply.text, intent=reply.intent,
                          confidence=round(reply.confidence, 3), hitl=reply.hitl,
                          phrased=reply.speech is not None, question=transcript.text))
        if not reply.hitl:
            await mouth.play(self._synth(port, reply.text, reply.speech))
            return ""
        return await self._ask_a_human(port, mouth, transcript.text, reply)

    async def _ask_a_human(self, port: CallPort, mouth: Mouth, question: str,
                           reply: Reply) -> str:
        """Alert the operators; a caller who asked for a person goes to the queue, an
        unsure answer waits (holding phrase) for an operator's typed one."""
        desk = self.engine.desk
        person = reply.intent == "human_request"
        alert = desk.raise_alert(port.call_id, "human_request" if person else
                                 "low_confidence", question, reply.confidence,
                                 waiting=not person) if desk else None
        await mouth.play(self._synth(port, reply.text))
        if person:
            return "caller asked for a person"
        if desk is None or alert is None:
            return "no confident answer"
        answer = await desk.wait_answer(alert, self.engine.settings.agent.hitl_wait_s)
        if answer is None:
            return "no operator answered in time"
        if not answer:  # taken over: the operator talks to the caller themselves
            return ""
        port.publish(Said(call_id=port.call_id, text=answer, speaker="operator",
                          operator=alert.accepted_by, intent=reply.intent, question=question))
        await mouth.play(self._synth(port, answer))
        return ""

    async def _synth(self, port: CallPort, text: str,
                     speech: AsyncIterator[str] | None = None) -> AsyncIterator[Pcm]:
        tts = self.engine.tts
        voice = tts.voice_for(port.language)
        try:
            audio = tts.speak(speech, voice) if speech else tts.stream(text, voice)
            async with contextlib.aclosing(audio):  # a barge-in stops synthesis at once
                async for pcm in audio:
                    yield pcm
        except TtsError as err:
            port.publish(StageFailed(call_id=port.call_id, code=err.code, message=str(err)))
            yield self.engine.apology_for(port.language)

    # ---- listening ----------------------------------------------------------------
    async def _listen(self, port: CallPort, mouth: Mouth) -> None:
        ear = Ear(self.engine.settings.turn, self.engine.vad(),
                  codecs.codec(port.codec).sample_rate)
        try:
            while True:
                pcm = await port.recv()
                for event in ear.hear(pcm, mouth.playback):
                    self._act(port, mouth, event)
        finally:
            self._drop_eager()

    async def _keys(self, port: CallPort) -> None:
        """A key the caller pressed is a turn of its own: its digit is what they "said"
        (1 or 2 answers a clarifying question)."""
        while True:
            digit = await port.digits.get()
            heard: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
            heard.set_result(Transcript(digit, 1.0, 0.0, 0.0))
            self._queue(Utterance(heard, time.monotonic()))

    def _act(self, port: CallPort, mouth: Mouth, event: EarEvent) -> None:
        match event:
            case HoldPlayback():
                mouth.player.hold()
            case ResumePlayback():
                mouth.player.resume()
            case BargeIn():
                mouth.player.stop()
                port.publish(BargedIn(call_id=port.call_id))
            case StartTranscript(audio=audio):
                self.eager = asyncio.ensure_future(self._transcribe(port, audio))
            case DropTranscript():
                self._drop_eager()
            case TurnEnded(audio=audio):
                future = self.eager or asyncio.ensure_future(self._transcribe(port, audio))
                self.eager = None
                self._queue(Utterance(future, time.monotonic()))

    def _queue(self, utterance: Utterance) -> None:
        if self.turns.full():  # the caller talks faster than we answer: keep the newest
            dropped = self.turns.get_nowait()
            dropped.transcript.cancel()
        self.turns.put_nowait(utterance)

    async def _transcribe(self, port: CallPort, audio: Pcm) -> Transcript:
        return await self.engine.stt.transcribe(audio, port.language)

    def _drop_eager(self) -> None:
        if self.eager is not None:
            self.eager.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self.eager.exception()
            self.eager = None


async def _once(pcm: Pcm) -> AsyncIterator[Pcm]:
    yield pcm
