"""The voice loop of one call: caller audio -> ear -> STT -> responder -> TTS -> mouth.

Two tasks per call share one TaskGroup: ``listen`` (never blocks on a model: it feeds the
ear and acts on what it decides, starting transcriptions) and ``talk`` (one answer at a
time). Barge-in is a control signal that overtakes audio: ``listen`` stops the player at
once. A failing stage (STT, search: raised or past its deadline, ``ai/deadline.py``)
becomes the apology (already synthesized: no model needed to say it), an operator alert
naming the stage and a ``StageFailed`` event; the next turn still works, and a call whose
turns fail :data:`FAULTS_TO_QUEUE` times in a row goes to the operators. A failing LLM
rephrasing is spoken as the stored answer, with the same alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from smartpbx_ari.ai.agent import HOLDING
from smartpbx_ari.ai.language import base_language, ends_unfinished
from smartpbx_ari.ai.responder import HUMAN_REQUEST, Reply, Responder
from smartpbx_ari.ai.stt import SpeechToText, SttError, Transcript, spelled
from smartpbx_ari.ai.tts import TtsError
from smartpbx_ari.call.ear import (
    BargeIn,
    CheckTurn,
    DropTranscript,
    Ear,
    EarEvent,
    HoldPlayback,
    Pcm,
    ResumePlayback,
    StartTranscript,
    TurnEnded,
    TurnResumed,
)
from smartpbx_ari.call.engine import VoiceEngine, backlog
from smartpbx_ari.call.hitl import Alert, HitlDesk
from smartpbx_ari.call.hold import ADDED, CONNECTING, UPDATE, comfort
from smartpbx_ari.call.mouth import Mouth
from smartpbx_ari.call.overhear import overhear
from smartpbx_ari.call.ports import CallPort
from smartpbx_ari.errors import StageError, UserFacingError
from smartpbx_ari.events import BargedIn, Heard, Said, StageFailed
from smartpbx_ari.media import codecs
from smartpbx_ari.media.turn import rms

log = logging.getLogger(__name__)
RESUME_S = 2.0  # music stopped for the caller's voice comes back after this if no turn came
FAULTS_TO_QUEUE = 2  # turns failed in a row (a model broken, not a glitch): the operators


@dataclass
class Utterance:
    transcript: asyncio.Future[Transcript]
    ended_at: float  # monotonic, when the ear closed the turn
    pause_s: float | None = None  # the caller's silence the ear waited out; None: a key
    # set when the caller resumed the turn before its answer began: it is moot
    went_on: asyncio.Event = field(default_factory=asyncio.Event)
    overheard: bool = False  # it ended while an operator had the call: record it only
    begun: bool = False  # answered from here on (the reply's first audio, or hand-over)
    heard: Heard | None = None  # its transcript's record, published as it is begun
    resumed: bool = False  # the caller went on in its answer's first moments: whole turn next

    @property
    def moot(self) -> bool:
        return self.went_on.is_set()


@dataclass(frozen=True)
class Chosen:
    """The responder's reply to a question, and when it was asked and chosen (monotonic)."""

    reply: Reply
    question: str
    asked: float
    at: float = field(default_factory=time.monotonic)


class VoiceConversation:
    def __init__(self, engine: VoiceEngine) -> None:
        self.engine = engine
        self.turns: asyncio.Queue[Utterance] = asyncio.Queue(maxsize=4)
        self.eager: asyncio.Task[Transcript] | None = None
        self.judging: set[asyncio.Task[None]] = set()  # the turn model on recent pauses
        self.last: Utterance | None = None
        self.legs: set[asyncio.Task[None]] = set()  # each party transcribed apart (takeover)
        self.faults = 0  # turns failed in a row
        # the clarifying question we said last, the next turn's context for the STT (its
        # answer, "No.", is one word Whisper hears better knowing what was asked)
        self.asked = ""

    async def run(self, port: CallPort) -> None:
        mouth = Mouth(port.send, port.codec)
        try:
            if self.engine.stt_for(port.language) is None:
                await self._unheard(port, mouth)
                return
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._listen(port, mouth), name=f"call:{port.call_id}:listen")
                tg.create_task(self._talk(port, mouth), name=f"call:{port.call_id}:talk")
                tg.create_task(self._keys(port), name=f"call:{port.call_id}:keys")
                tg.create_task(self._overhear_legs(port), name=f"call:{port.call_id}:legs")
        finally:  # one conversation a call: its memory goes with it
            self.engine.responder.end(port.call_id)

    async def _unheard(self, port: CallPort, mouth: Mouth) -> None:
        """No model here hears the call's language (said in the log at start): the
        holding phrase in that language, and the operators."""
        why = f"no speech model hears language {port.language!r}"
        port.publish(StageFailed(call_id=port.call_id, code="stt-unavailable", message=why))
        spoken = base_language(port.language)
        await mouth.play(self._synth(port, HOLDING.get(spoken, HOLDING["en"])))
        port.hand_off(why)

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
        question = ""
        try:
            transcript = await self._heard(port, utterance)
            if transcript is None:
                return ""
            question, asked = transcript.text, time.monotonic()
            reply = await self.engine.responder.respond(question, port.call_id,
                                                        port.language)
        except Exception as err:  # a failing stage must not end the call
            if port.operator.is_set() or utterance.overheard:  # not the AI's turn to speak
                self._failed(port, err, question, alert=False)
                return ""
            if question and not self._begin(port, utterance):
                return ""
            return await self._fault(port, mouth, err, question)
        self.faults = 0
        chosen = Chosen(reply, question, asked)
        if reply.unsure:  # heard again while we wait to see whether the caller goes on
            again = None if self.asked else asyncio.ensure_future(hear_again(
                self.engine.stt_for(port.language), self.engine.responder, transcript,
                port.call_id, port.language, self.engine.second_ear_for(port.language),
                self.engine.settings.stt.hear_again_below))
            went_on = await self._went_on(
                port, utterance, self.engine.settings.turn.unsure_silence_ms)
            found = await _found(port, again)
            if went_on:
                self.engine.responder.retract(port.call_id)
                return ""  # the next turn holds it whole
            if found is not None:
                chosen = Chosen(found[1], found[0], asked)
                reply = chosen.reply
                if utterance.heard is not None:
                    utterance.heard = replace(utterance.heard, text=chosen.question)
        if not reply.hitl:
            self.asked = reply.text if reply.choices else ""
            await self._speak(port, mouth, chosen, utterance)
            return ""
        if not self._begin(port, utterance):
            return ""
        self.asked = ""
        self._said(port, chosen)
        return await self._ask_a_human(port, mouth, utterance, transcript.text, reply)

    def _begin(self, port: CallPort, utterance: Utterance) -> bool:
        """The turn is answered from here: its transcript goes on the record, and the
        caller's going on no longer makes it moot (it barges in). False: they went on
        before (the next turn holds it whole): the reply chosen is taken back."""
        if utterance.moot:
            self.engine.responder.retract(port.call_id)
            return False
        utterance.begun = True
        if utterance.heard is not None:
            port.publish(utterance.heard)
        return True

    async def _speak(self, port: CallPort, mouth: Mouth, chosen: Chosen,
                     utterance: Utterance | None = None) -> None:
        """An answer, on the record as its first audio leaves (so the record's reply time
        is voice-to-voice), or when it ends if none did (stopped at once, failed). The
        ``utterance`` it answers is begun there: until then, the caller going on makes it
        moot, and nothing is said."""
        said = False

        def record(first_audio: bool) -> None:
            nonlocal said
            if not said:
                said = True
                self._said(port, chosen, out_at=time.monotonic() if first_audio else None)

        speech = self._phrased(port, chosen) if chosen.reply.speech else None
        audio = self._synth(port, chosen.reply.text, speech)
        if utterance is not None:
            audio = _unless(audio, lambda: self._begin(port, utterance))
        await mouth.play(audio, on_start=lambda: record(True))
        if utterance is not None and not utterance.begun and not self._begin(port, utterance):
            return  # stopped before its first audio by the caller going on
        record(False)

    async def _phrased(self, port: CallPort, chosen: Chosen) -> AsyncIterator[str]:
        """The LLM's sentences; if it failed before it said anything, the stored answer
        (and the fault to the operators)."""
        speech = chosen.reply.speech
        assert speech is not None
        try:
            async for sentence in speech:
                yield sentence
        except StageError as err:
            self._failed(port, err, chosen.question)
            yield chosen.reply.text
        finally:  # a barge-in stops the model at once
            aclose = getattr(speech, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _fault(self, port: CallPort, mouth: Mouth, err: Exception, question: str
                     ) -> str:
        """A turn a stage failed: the apology and an operator alert, or, failed
        :data:`FAULTS_TO_QUEUE` times in a row, the holding phrase and the operators."""
        self._failed(port, err, question)
        self.faults += 1
        if self.faults < FAULTS_TO_QUEUE:
            await mouth.play(_once(self.engine.apology_for(port.language)))
            return ""
        holding = HOLDING.get(base_language(port.language), HOLDING["en"])
        await mouth.play(self._synth(port, holding))
        return f"{_stage(err)} failed {self.faults} turns in a row"

    def _failed(self, port: CallPort, err: Exception, question: str,
                alert: bool = True) -> None:
        """On the record (its event is the fault's one log line) and, with ``alert``,
        to the operators with the stage in the alert's reason."""
        if not isinstance(err, UserFacingError):  # not a stage's error: a bug, traced
            log.error("call=%s: the agent failed", port.call_id, exc_info=err)
        code = err.code if isinstance(err, UserFacingError) else "agent-failed"
        port.publish(StageFailed(call_id=port.call_id, code=code, message=str(err)))
        desk = self.engine.desk
        if alert and desk is not None:
            desk.raise_alert(port.call_id, f"{_stage(err)}_failed", question)

    async def _heard(self, port: CallPort, utterance: Utterance) -> Transcript | None:
        """The turn's transcript (its record kept for :meth:`_begin`); None: nothing for
        the AI to answer. Raises :class:`SttError` (unless the turn is moot)."""
        try:
            transcript = await utterance.transcript
        except SttError:
            if utterance.moot:
                return None
            raise
        if utterance.moot:  # the next turn holds it whole
            return None
        if not transcript.text:  # a cough, a click; or speech the STT could not make out
            log.info("call %s: %d ms of audio heard as no words", port.call_id,
                     round(transcript.audio_s * 1000))
            return None
        if ends_unfinished(transcript.text, port.language) and await self._went_on(
                port, utterance, self.engine.settings.turn.max_silence_ms):
            return None  # the next turn holds it whole
        confidence = round(transcript.confidence, 3)
        if utterance.overheard or port.operator.is_set():  # an operator's call: record only
            utterance.begun = True
            if not self.legs:  # the legs apart are on the record: not their mix
                port.publish(Heard(call_id=port.call_id, text=transcript.text,
                                   speaker="call", confidence=confidence))
            return None
        waited = time.monotonic() - utterance.ended_at
        ended = time.time() - waited  # wall clock, for the record
        began = transcript.started  # None: a key pressed, nothing decoded to time
        # turn ended -> decoding began; 0: an eager decode began before the turn ended
        queued = None if began is None else max(0.0, began - utterance.ended_at)
        utterance.heard = Heard(
            call_id=port.call_id, text=transcript.text, confidence=confidence,
            stt_ms=None if began is None else _ms(transcript.decode_s), wait_ms=_ms(waited),
            start=round(ended - transcript.audio_s, 3), end=round(ended, 3),
            pause_ms=_ms(utterance.pause_s), queue_ms=_ms(queued))
        return transcript

    async def _went_on(self, port: CallPort, utterance: Utterance, silence_ms: int) -> bool:
        """A turn the model ended that is not answered yet: its words stop short of a
        sentence's end ("Could I get the"), or no entry answers them surely ("I'd like to
        change"); the caller may have paused mid-sentence. It waits until they go on
        (True) or the pause reaches ``silence_ms`` (False: answered as heard), as an
        incomplete verdict waits. Turns ended by the cap, the timer or a key do not."""
        if self.engine.turn_model is None or utterance.pause_s is None \
                or utterance.overheard or silence_ms <= 0:
            return False
        left = utterance.ended_at + silence_ms / 1000 - utterance.pause_s - time.monotonic()
        if left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(utterance.went_on.wait(), left)
        return utterance.moot

    @staticmethod
    def _said(port: CallPort, chosen: Chosen, text: str = "",
              out_at: float | None = None) -> None:
        """``out_at``: monotonic, as the answer's first audio left (None: not spoken so)."""
        reply = chosen.reply
        port.publish(Said(call_id=port.call_id, text=text or reply.text, intent=reply.intent,
                          confidence=round(reply.confidence, 3), hitl=reply.hitl,
                          phrased=reply.speech is not None, question=chosen.question,
                          agent_ms=_ms(chosen.at - chosen.asked),
                          first_audio_ms=None if out_at is None else _ms(out_at - chosen.at)))

    async def _ask_a_human(self, port: CallPort, mouth: Mouth, utterance: Utterance,
                           question: str, reply: Reply) -> str:
        """Alert the operators; a caller who asked for a person goes to the queue, an
        unsure answer puts the caller on a live hold for an operator's typed one. A
        caller who went on in the holding phrase's first moments was cut off ("Stop, ...":
        the comma taken for the end): the alert is withdrawn, and their whole turn is
        answered next."""
        desk = self.engine.desk
        person = reply.for_a_person
        alert = desk.raise_alert(port.call_id, HUMAN_REQUEST if person else
                                 "low_confidence", question, reply.confidence,
                                 waiting=not person) if desk else None
        await mouth.play(self._synth(port, reply.text))
        if utterance.resumed and (alert is None or alert.status in ("open", "accepted")):
            if desk is not None and alert is not None:  # (an operator's answer stands)
                desk.withdraw(alert)
            return ""
        if person:
            return "caller asked for a person"
        if desk is None or alert is None:
            return "no confident answer"
        return await self._hold(port, mouth, desk, alert, reply.intent)

    async def _hold(self, port: CallPort, mouth: Mouth, desk: HitlDesk, alert: Alert,
                    intent: str) -> str:
        """Until an operator answers, takes over or the wait runs out: music and updates,
        and the caller's turns still answered (a person asked for: the queue at once; an
        answerable question: answered; an unsure one: added to the alert)."""
        agent = self.engine.settings.agent
        answer = asyncio.ensure_future(desk.wait_answer(alert, agent.hitl_wait_s))
        turn: asyncio.Future[Utterance] | None = None
        try:
            while True:
                turn = turn or asyncio.ensure_future(self.turns.get())
                either: set[asyncio.Future[Any]] = {answer, turn}
                if not answer.done():  # (an operator may answer during the holding phrase)
                    music = asyncio.ensure_future(mouth.play(self._comfort(port)))
                    await asyncio.wait(either | {music}, return_when=asyncio.FIRST_COMPLETED)
                    if music.done() and not (answer.done() or turn.done()):
                        # the caller spoke over the music: their turn, or music again soon
                        await asyncio.wait(either, timeout=RESUME_S,
                                           return_when=asyncio.FIRST_COMPLETED)
                    await _silence(mouth, music)
                if answer.done():
                    if turn.done():  # said as the answer came: the next turn
                        self._queue(turn.result())
                    return await self._operator_answered(port, mouth, alert, intent,
                                                         answer.result())
                if turn.done():
                    utterance, turn = turn.result(), None
                    why = await self._held_turn(port, mouth, desk, alert, utterance)
                    if why:
                        return why
        finally:
            for task in (answer, turn):
                if task is not None:
                    task.cancel()

    async def _comfort(self, port: CallPort) -> AsyncIterator[Pcm]:
        language = base_language(port.language)
        update = UPDATE.get(language, UPDATE["en"])
        async for pcm in comfort(self.engine.hold_music, self.engine.settings.agent.hold_update_s,
                                 lambda: self._synth(port, update)):
            yield pcm

    async def _held_turn(self, port: CallPort, mouth: Mouth, desk: HitlDesk, alert: Alert,
                         utterance: Utterance) -> str:
        """A turn of a caller on hold; returns why the call must go to the queue, or "".
        A failing stage is on the record only: the caller is on hold, the operators
        alerted already."""
        question = ""
        try:
            transcript = await self._heard(port, utterance)
            if transcript is None:
                return ""
            question, asked = transcript.text, time.monotonic()
            reply = await self.engine.responder.respond(question, port.call_id,
                                                        port.language)
        except Exception as err:  # the hold goes on
            if question and not self._begin(port, utterance):
                return ""
            self._failed(port, err, question, alert=False)
            if question:
                desk.heard_on_hold(alert, question, "")
            return ""
        if not self._begin(port, utterance):
            return ""
        chosen = Chosen(reply, question, asked)
        if reply.for_a_person:
            desk.heard_on_hold(alert, question, "")
            self._said(port, chosen)
            return "caller asked for a person"  # at once: the queue says what comes next
        if reply.hitl:  # unsure again: the operator gets this question too
            said = ADDED.get(base_language(port.language), ADDED["en"])
            desk.heard_on_hold(alert, question, "")
            self._said(port, chosen, said)
            await mouth.play(self._synth(port, said))
            return ""
        desk.heard_on_hold(alert, question, reply.text)
        await self._speak(port, mouth, chosen)
        return ""

    async def _operator_answered(self, port: CallPort, mouth: Mouth, alert: Alert,
                                 intent: str, answer: str | None) -> str:
        if answer is None:
            language = base_language(port.language)
            await mouth.play(self._synth(port, CONNECTING.get(language, CONNECTING["en"])))
            return "no operator answered in time"
        if not answer:  # taken over: the operator talks to the caller themselves
            return ""
        port.publish(Said(call_id=port.call_id, text=answer, speaker="operator",
                          operator=alert.accepted_by, intent=intent,
                          question=alert.question))
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
        rate = codecs.codec(port.codec).sample_rate
        vad = self.engine.vad(rate)
        stt = self.engine.stt_for(port.language)
        ear = Ear(self.engine.settings.turn, vad, rate,
                  self.engine.turn_model is not None,
                  busy=lambda: stt is not None and stt.busy)
        operator = port.operator.is_set()
        try:
            async with contextlib.aclosing(backlog(
                    port.recv, lambda pcm: self._hold_at_once(mouth, pcm))) as heard:
                async for frames in heard:
                    if operator != port.operator.is_set():  # a takeover or a hand-back
                        operator = not operator
                        if not operator:
                            self._stop_legs()
                        for event in ear.cut():  # a turn across it was said with one
                            self._act(port, mouth, ear, event, overheard=True)
                    await self.engine.hear(ear, vad, frames, lambda: mouth.playback,
                                           lambda event: self._act(port, mouth, ear, event))
        finally:
            self._drop_eager()
            self._stop_legs()
            for task in self.judging:
                task.cancel()

    @staticmethod
    def _hold_at_once(mouth: Mouth, pcm: Pcm) -> None:
        """A frame just arrived (at the codec's rate: its level is the same) that holds
        our playback holds it now, not once the frames ahead of it are scored."""
        if Ear.holds(rms(pcm), mouth.playback):
            mouth.player.hold()

    async def _judge(self, port: CallPort, mouth: Mouth, ear: Ear, check: CheckTurn) -> None:
        """Ask the turn model while the ear listens on; its verdict may end the turn."""
        try:
            probability = await self.engine.turn_complete(check.audio)
        except Exception as err:  # the silence cap still ends the turn
            log.warning("turn model failed on call %s: %s", port.call_id, err)
            return
        for event in ear.judge(check.pause, probability):
            self._act(port, mouth, ear, event)

    async def _keys(self, port: CallPort) -> None:
        """A key the caller pressed is a turn of its own: its digit is what they "said"
        (1 or 2 answers a clarifying question)."""
        while True:
            digit = await port.digits.get()
            heard: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
            heard.set_result(Transcript(digit, 1.0, 0.0, 0.0))
            self._queue(Utterance(heard, time.monotonic()))

    async def _overhear_legs(self, port: CallPort) -> None:
        """During a takeover, each party apart, as the PBX side makes them available."""
        while True:
            leg = await port.legs.get()
            task = asyncio.create_task(overhear(self.engine, port, leg))
            self.legs.add(task)
            task.add_done_callback(self.legs.discard)

    def _stop_legs(self) -> None:
        for task in self.legs:
            task.cancel()

    def _act(self, port: CallPort, mouth: Mouth, ear: Ear, event: EarEvent,
             overheard: bool = False) -> None:
        if self.legs and port.operator.is_set() and \
                isinstance(event, StartTranscript | CheckTurn | TurnEnded):
            self._drop_eager()  # the mix: each party's own words are on the record
            return
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
            case CheckTurn():
                task = asyncio.ensure_future(self._judge(port, mouth, ear, event))
                self.judging.add(task)
                task.add_done_callback(self.judging.discard)
            case TurnResumed():
                if self.last is not None and not self.last.begun:
                    self.last.went_on.set()
                elif self.last is not None:
                    self.last.resumed = True
            case TurnEnded(audio=audio):
                future = self.eager or asyncio.ensure_future(self._transcribe(port, audio))
                self.eager = None
                self._queue(Utterance(future, time.monotonic(), event.pause_s,
                                      overheard=overheard or port.operator.is_set()))

    def _queue(self, utterance: Utterance) -> None:
        self.last = utterance
        if self.turns.full():  # the caller talks faster than we answer: keep the newest
            dropped = self.turns.get_nowait()
            dropped.transcript.cancel()
        self.turns.put_nowait(utterance)

    async def _transcribe(self, port: CallPort, audio: Pcm) -> Transcript:
        stt = self.engine.stt_for(port.language)
        if stt is None:  # run() hands such a call over before it listens
            raise SttError(f"no speech model hears language {port.language!r}")
        return await stt.transcribe(audio, port.language, self.asked)

    def _drop_eager(self) -> None:
        if self.eager is not None:
            self.eager.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self.eager.exception()
            self.eager = None


async def _silence(mouth: Mouth, playing: asyncio.Future[None]) -> None:
    """Stop what ``playing`` plays, also if its player has not started it yet."""
    while not playing.done():
        mouth.player.stop()  # a no-op until the player has begun
        await asyncio.wait({playing}, timeout=0.05)


async def _once(pcm: Pcm) -> AsyncIterator[Pcm]:
    yield pcm


async def _unless(audio: AsyncIterator[Pcm], go: Callable[[], bool]) -> AsyncIterator[Pcm]:
    """``audio``, if ``go()`` says so as its first chunk is ready (else nothing of it)."""
    async with contextlib.aclosing(audio):  # type: ignore[type-var]
        first = True
        async for pcm in audio:
            if first and not go():
                return
            first = False
            yield pcm


async def hear_again(stt: SpeechToText | None, responder: Responder,
                     transcript: Transcript, session_id: str, language: str,
                     second: SpeechToText | None, below: float) -> tuple[str, Reply] | None:
    """Another reading of a turn the responder was unsure of that it answers surely, and
    that answer, given in the turn's place; None: no such reading, or the turn was heard
    surely (its confidence at least ``below``, ``stt.hear_again_below``). The readings:
    what ``second`` (a larger model) hears, then ``stt``'s other best (``stt.readings``)."""
    if stt is None or transcript.confidence >= below:
        return None
    spare = not stt.busy  # others' first hearings go before this second one
    ours = asyncio.ensure_future(stt.readings(transcript, language))
    readings = []
    if second is not None and transcript.audio is not None and spare and not second.busy:
        theirs = (await second.transcribe(transcript.audio, language)).text
        if theirs and spelled(theirs) != spelled(transcript.text):
            readings.append(theirs)
    taken = {spelled(r) for r in readings}
    readings += [r for r in await ours if spelled(r) not in taken]
    return await responder.surely(readings, session_id, language) if readings else None


async def _found(port: CallPort, again: asyncio.Future[tuple[str, Reply] | None] | None
                 ) -> tuple[str, Reply] | None:
    """What hearing a turn again found; None also when it failed (the first reply
    stands: a second opinion that failed is no fault of the turn's)."""
    if again is None:
        return None
    try:
        return await again
    except Exception as err:
        log.warning("call %s: hearing the turn again failed: %s", port.call_id, err)
        return None


def _stage(err: Exception) -> str:
    """The stage an error names (stt, search, llm), or "agent" for anything else."""
    return err.stage if isinstance(err, StageError) else "agent"


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
