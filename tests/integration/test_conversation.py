"""The voice loop at its narrow seams: a fake STT/TTS and call port, the real Silero VAD,
espeak-ng speech, real turn taking.

A failing stage must not end the call: the caller hears an apology, the next turn works.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smartpbx_ari.ai import stt as stt_module
from smartpbx_ari.ai.agent import HOLDING
from smartpbx_ari.ai.clarify import Choice
from smartpbx_ari.ai.responder import Reply
from smartpbx_ari.ai.stt import SpeechToText, SttError, Transcript
from smartpbx_ari.ai.tts import TtsError
from smartpbx_ari.call.conversation import VoiceConversation
from smartpbx_ari.call.engine import VoiceEngine
from smartpbx_ari.config import load_settings
from smartpbx_ari.events import CallEvent, Heard, Said, StageFailed
from smartpbx_ari.media import codecs
from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.sipcaller.caller import CALLER_STT_S
from tests.fixtures.audio import read_pcm16, speak_wav

pytestmark = [pytest.mark.integration, pytest.mark.ai]
TONE = (3000 * np.sin(2 * np.pi * 440 * np.arange(3200) / 16000)).astype(np.int16)


class FakeStt:
    """Hands out ``results`` in order, one a turn. A decode of the same audio grown longer
    within ``SAME_TURN_S`` (an eager transcript dropped because the caller went on, then
    the whole turn) is the same turn, and gets the same result."""

    busy = False  # decodes at once: never busy when the ear asks
    SAME_TURN_S = 1.5

    def __init__(self, results: list[Transcript | Exception],
                 readings: dict[str, list[str]] | None = None) -> None:
        self.results = results
        self.other_readings = readings or {}  # a text heard -> its other readings
        self.heard_again: list[str] = []  # the texts whose other readings were asked for
        self.languages: list[str] = []
        self.contexts: list[tuple[str, str]] = []  # (the text heard, the context it had)
        self.last: tuple[float, np.ndarray, Transcript | Exception] | None = None

    async def transcribe(self, pcm: np.ndarray, language: str = "",
                         context: str = "") -> Transcript:
        self.languages.append(language)
        now, last = time.monotonic(), self.last
        if last is not None and now - last[0] < self.SAME_TURN_S and \
                len(pcm) > len(last[1]) and np.array_equal(pcm[: len(last[1])], last[1]):
            result = last[2]
        else:
            result = self.results.pop(0)
        self.last = (now, pcm, result)
        self.contexts.append((getattr(result, "text", ""), context))
        if isinstance(result, Exception):
            raise result
        return dataclasses.replace(result, started=time.monotonic(),  # decodes at once
                                   audio=pcm)

    async def readings(self, transcript: Transcript, language: str = "") -> list[str]:
        self.heard_again.append(transcript.text)
        return self.other_readings.get(transcript.text, [])


class FakeResponder:
    """The agent's seam: a refund question gets the refund answer."""

    def __init__(self) -> None:
        self.retracted: list[str] = []  # sessions whose last reply was taken back
        self.ended: list[str] = []

    def retract(self, session_id: str) -> None:
        self.retracted.append(session_id)

    def end(self, session_id: str) -> None:
        self.ended.append(session_id)

    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        if "refund" in text.lower():
            return Reply("Refunds are paid within five working days.", 0.9, "refund")
        return Reply("Let me connect you with a colleague.", 0.1, "other", hitl=True)

    async def surely(self, readings: list[str], session_id: str, language: str = ""
                     ) -> tuple[str, Reply] | None:
        for text in readings:
            reply = await self.respond(text, session_id, language)
            if not reply.unsure:
                self.retracted.append(session_id)  # the unsure turn's reply replaced
                return text, reply
        return None


class FakeTts:
    def __init__(self, fail_on: str = "") -> None:
        self.fail_on = fail_on
        self.spoken: list[str] = []  # sentences of streamed rephrasings
        self.streamed: list[str] = []  # whole texts

    async def speak(self, sentences, voice: str = ""):  # type: ignore[no-untyped-def]
        async for sentence in sentences:
            self.spoken.append(sentence)
            yield TONE

    def voice_for(self, language: str) -> str:
        return language or "en-us"

    async def stream(self, text: str, voice: str = ""):  # type: ignore[no-untyped-def]
        self.streamed.append(text)
        if self.fail_on and self.fail_on in text:
            raise TtsError("tts: espeak-ng failed (1): synthetic")
        yield TONE


def _engine(stt: FakeStt, tts: FakeTts) -> VoiceEngine:
    settings = load_settings(environ={})
    return VoiceEngine(settings, stt, tts, FakeResponder(),  # type: ignore[arg-type]
                       greeting=TONE[:320], apology=TONE[:1600])


def _speech(tmp_path: Path) -> np.ndarray:
    wav = speak_wav("How do I get a refund for my order?", tmp_path / "q.wav", rate=8000)
    data, _ = read_pcm16(wav)
    return np.frombuffer(data, "<i2").astype(np.int16)


@dataclass
class FakePort:
    """A call's port of plain lists: 20 ms mu-law frames in, RTP datagrams out."""

    frames: collections.deque[np.ndarray]
    expect: int  # "said" and "error" events to wait for
    call_id: str = "c1"
    codec: str = "ulaw"
    language: str = ""
    operator: asyncio.Event = field(default_factory=asyncio.Event)
    digits: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    legs: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    events: list[CallEvent] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    handed_off: list[str] | None = None  # None: a hand-off fails the test
    sent_at: list[float] = field(default_factory=list)  # when each packet left (TimedPort)

    async def recv(self) -> np.ndarray:
        if self.frames:
            return self.frames.popleft()
        await asyncio.sleep(0.02)  # the caller is silent
        return np.zeros(160, np.int16)

    def send(self, packet: bytes) -> None:
        self.sent.append(packet)

    def publish(self, event: CallEvent) -> None:
        self.events.append(event)
        if sum(isinstance(e, Said | StageFailed) for e in self.events) >= self.expect:
            self.done.set()

    def hand_off(self, reason: str) -> None:
        if self.handed_off is None:
            raise AssertionError(f"unexpected hand-off: {reason}")
        self.handed_off.append(reason)


async def _run_call(engine: VoiceEngine, speech: np.ndarray, turns: int,
                    expect: int, handed_off: list[str] | None = None) -> list[CallEvent]:
    silence = np.zeros(8000, np.int16)
    audio = np.concatenate([silence, *([speech, silence, silence] * turns)])
    frames = collections.deque(codecs.ulaw_decode(codecs.ulaw_encode(audio[i : i + 160]))
                               for i in range(0, len(audio) - 159, 160))
    port = FakePort(frames, expect, handed_off=handed_off)
    talk = asyncio.create_task(VoiceConversation(engine).run(port))
    async with asyncio.timeout(20):
        await port.done.wait()
    await asyncio.sleep(0.3)
    talk.cancel()
    with pytest.raises(asyncio.CancelledError):
        await talk
    assert engine.responder.ended == [port.call_id]  # type: ignore[attr-defined]  # forgotten
    assert port.sent, "nothing was played"
    assert RtpPacket.parse(port.sent[0]).payload_type == 0  # mu-law, as the call's codec
    return port.events


async def test_stt_failure_becomes_an_apology_and_the_next_turn_works(tmp_path: Path) -> None:
    question = Transcript("How do I get a refund?", 0.9, 2.0, 0.3)
    stt = FakeStt([SttError("transcription failed: boom"), question])
    events = await _run_call(_engine(stt, FakeTts()), _speech(tmp_path), turns=2, expect=2)
    kinds = [e.kind for e in events if e.kind in ("error", "heard", "said")]
    assert kinds == ["error", "heard", "said"]
    assert next(e for e in events if isinstance(e, StageFailed)).code == "stt-failed"
    assert next(e for e in events if isinstance(e, Said)).intent == "refund"


async def test_speech_heard_as_no_words_is_said_in_the_log_and_the_next_turn_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    question = Transcript("How do I get a refund?", 0.9, 2.0, 0.3)
    stt = FakeStt([Transcript("", 0.0, 1.5, 0.3), question])
    with caplog.at_level(logging.INFO, "smartpbx_ari.call.conversation"):
        events = await _run_call(_engine(stt, FakeTts()), _speech(tmp_path), turns=2,
                                 expect=1)
    assert [e.kind for e in events if e.kind in ("error", "heard", "said")] == \
        ["heard", "said"]
    assert "call c1: 1500 ms of audio heard as no words" in caplog.messages


async def test_tts_failure_is_spoken_as_an_apology(tmp_path: Path) -> None:
    question = Transcript("How do I get a refund?", 0.9, 2.0, 0.3)
    stt = FakeStt([question])
    events = await _run_call(_engine(stt, FakeTts(fail_on="Refunds")), _speech(tmp_path),
                             turns=1, expect=2)
    errors = [e for e in events if isinstance(e, StageFailed)]
    assert [e.code for e in errors] == ["tts-failed"]


async def test_a_turn_the_agent_is_unsure_of_is_answered_as_another_reading(
        tmp_path: Path) -> None:
    """Heard as words no entry answers surely, the turn is heard again; the first other
    reading the agent answers surely is answered, and is what the record says was heard."""
    misheard = "How do I get a re-fin?"
    stt = FakeStt([Transcript(misheard, 0.6, 2.0, 0.3)],
                  {misheard: ["How do I get a raffle?", "How do I get a refund?"]})
    engine = _engine(stt, FakeTts())
    events = await _run_call(engine, _speech(tmp_path), turns=1, expect=1)
    assert stt.heard_again == [misheard]
    said = next(e for e in events if isinstance(e, Said))
    assert (said.text, said.hitl, said.question) == (
        "Refunds are paid within five working days.", False, "How do I get a refund?")
    assert [e.text for e in events if isinstance(e, Heard)] == ["How do I get a refund?"]


async def test_no_other_reading_answered_surely_leaves_the_unsure_reply(
        tmp_path: Path) -> None:
    misheard = "How do I get a re-fin?"
    stt = FakeStt([Transcript(misheard, 0.6, 2.0, 0.3)], {misheard: ["How do I get a raffle?"]})
    handed: list[str] = []
    port_events = await _run_call(_engine(stt, FakeTts()), _speech(tmp_path), turns=1,
                                  expect=1, handed_off=handed)
    assert stt.heard_again == [misheard]
    assert [e.text for e in port_events if isinstance(e, Heard)] == [misheard]
    assert next(e for e in port_events if isinstance(e, Said)).hitl
    assert handed


async def test_a_turn_heard_surely_is_not_heard_again(tmp_path: Path) -> None:
    """Words heard surely (confidence at stt.hear_again_below) that no entry answers
    surely stand: another reading of them could only be a mishearing that one does."""
    heard = "Can I collect my order from your warehouse?"
    stt = FakeStt([Transcript(heard, 0.9, 2.0, 0.3)],
                  {heard: ["How do I get a refund?"]})
    handed: list[str] = []
    port_events = await _run_call(_engine(stt, FakeTts()), _speech(tmp_path), turns=1,
                                  expect=1, handed_off=handed)
    assert stt.heard_again == []
    assert [e.text for e in port_events if isinstance(e, Heard)] == [heard]
    assert next(e for e in port_events if isinstance(e, Said)).hitl
    assert handed


async def test_the_second_ear_s_reading_goes_before_the_other_readings(
        tmp_path: Path) -> None:
    """Korean calls' (larger) model also hears the unsure turn of an English call, from
    the same audio; its reading is tried first."""
    misheard = "How do I get a re-fin?"
    stt = FakeStt([Transcript(misheard, 0.6, 2.0, 0.3)],
                  {misheard: ["How do I get a refund or not?"]})
    second = FakeStt([Transcript("How do I get a refund?", 0.9, 2.0, 0.3)])
    engine = _engine(stt, FakeTts())
    engine.stt_ko = second  # type: ignore[assignment]
    events = await _run_call(engine, _speech(tmp_path), turns=1, expect=1)
    said = next(e for e in events if isinstance(e, Said))
    assert (said.question, said.hitl) == ("How do I get a refund?", False)
    assert second.languages == [""] and stt.heard_again == [misheard]


def test_the_second_ear_is_korean_calls_model_for_other_calls_only() -> None:
    stt, korean = FakeStt([]), FakeStt([])
    engine = _engine(stt, FakeTts())
    engine.stt_ko = korean  # type: ignore[assignment]
    assert engine.second_ear_for("") is korean and engine.second_ear_for("en-US") is korean
    assert engine.second_ear_for("ko-KR") is None  # the Korean model is theirs already
    engine.settings = dataclasses.replace(engine.settings, stt=dataclasses.replace(
        engine.settings.stt, second_ear=False))
    assert engine.second_ear_for("en") is None
    engine.settings = load_settings(environ={})
    engine.stt_ko = stt  # type: ignore[assignment]  # one multilingual model for both
    assert engine.second_ear_for("en") is None
    engine.stt_ko = None
    assert engine.second_ear_for("en") is None


class PhrasingResponder(FakeResponder):
    """An LLM's rephrasing arrives as a stream of sentences."""

    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        async def sentences():  # type: ignore[no-untyped-def]
            yield "We refund you in five days."
            await asyncio.sleep(0.05)
            yield "It goes back to your card."

        return Reply("Refunds are paid within five working days.", 0.9, "refund",
                     speech=sentences())


async def test_a_streamed_rephrasing_is_spoken_sentence_by_sentence(tmp_path: Path) -> None:
    tts = FakeTts()
    engine = _engine(FakeStt([Transcript("How do I get a refund?", 0.9, 2.0, 0.3)]), tts)
    engine.responder = PhrasingResponder()
    events = await _run_call(engine, _speech(tmp_path), turns=1, expect=1)
    said = next(e for e in events if isinstance(e, Said))
    assert said.phrased is True
    assert said.text == "Refunds are paid within five working days."  # the record
    assert tts.spoken == ["We refund you in five days.", "It goes back to your card."]


class ClarifyingResponder(FakeResponder):
    """Asks which of two entries the first question means; answers what follows."""

    QUESTION = "Is it about refunds, or about returns? Say one or two, or press 1 or 2."

    def __init__(self) -> None:
        super().__init__()
        self.asked = False

    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        if not self.asked:
            self.asked = True
            return Reply(self.QUESTION, 0.4, "clarify",
                         choices=(Choice("r", "refunds"), Choice("t", "returns")))
        return Reply("Refunds are paid within five working days.", 0.9, "refund")


async def test_the_turn_after_a_clarifying_question_is_heard_knowing_the_question(
        tmp_path: Path) -> None:
    """The clarifying question is the STT's context for the caller's answer ("Two."), and
    only for it: not for the question before, nor after it was answered."""
    stt = FakeStt([Transcript("How do I get my money?", 0.9, 2.0, 0.3),
                   Transcript("Two.", 0.9, 2.0, 0.3),
                   Transcript("And how long does it take?", 0.9, 2.0, 0.3)])
    engine = _engine(stt, FakeTts())
    engine.responder = ClarifyingResponder()
    speech, silence = _speech(tmp_path), np.zeros(8000, np.int16)
    port = FakePort(collections.deque(), expect=1)
    talk = asyncio.create_task(VoiceConversation(engine).run(port))
    for turn in range(1, 4):  # each turn said once the reply to the last one was
        port.expect = turn
        port.done.clear()
        audio = np.concatenate([silence, speech, silence, silence])
        port.frames.extend(codecs.ulaw_decode(codecs.ulaw_encode(audio[i : i + 160]))
                           for i in range(0, len(audio) - 159, 160))
        async with asyncio.timeout(10):
            await port.done.wait()
    talk.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await talk
    said = [e.text for e in port.events if isinstance(e, Said)]
    assert said[0] == ClarifyingResponder.QUESTION and len(said) == 3
    contexts = {text: {c for t, c in stt.contexts if t == text} for text, _ in stt.contexts}
    assert contexts == {"How do I get my money?": {""},
                        "Two.": {ClarifyingResponder.QUESTION},
                        "And how long does it take?": {""}}


def test_espeak_is_installed() -> None:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    assert "eSpeak NG" in out.stdout


def test_a_call_routed_as_korean_is_greeted_and_apologised_to_in_korean() -> None:
    engine = _engine(FakeStt([]), FakeTts())
    korean = TONE[:640]
    engine.greetings = {"ko": korean}
    assert engine.greeting_for("ko") is korean
    assert engine.greeting_for("ko-KR") is korean
    assert engine.greeting_for("") is engine.greeting
    assert engine.greeting_for("ja") is engine.greeting  # no greeting of its own: default
    sorry = TONE[:480]
    engine.apologies = {"ko": sorry}
    assert engine.apology_for("ko-KR") is sorry and engine.apology_for("en") is engine.apology


@pytest.fixture(scope="module")
def korean_stt() -> Iterator[SpeechToText]:
    """The real model of Korean calls (``stt.model_ko``: whisper-base). Its fault
    deadline is the caller's ears' (CALLER_STT_S), not a live turn's: these tests check
    the route, and whisper-base decoding espeak-ng's Korean twice (primed, then plain)
    took over 2.5 s on the loaded CI box, a fault the fault tests own."""
    settings = load_settings()
    stt = SpeechToText(dataclasses.replace(settings.stt, timeout_s=CALLER_STT_S),
                       settings.cache_dir, settings.stt.model_ko, "stt.model_ko")
    yield stt
    stt.close()


async def test_a_korean_call_is_heard_by_the_multilingual_model_in_korean(
        tmp_path: Path, korean_stt: SpeechToText, monkeypatch: pytest.MonkeyPatch) -> None:
    """espeak-ng's Korean is not intelligible to any model here: what is checked is the
    route, that a call routed as Korean reaches the multilingual model told "ko"."""
    told: list[str] = []
    decode = stt_module.decode_batch
    loop, decoded = asyncio.get_running_loop(), asyncio.Event()

    def spy(model: Any, audios: list[np.ndarray], language: str, *args: Any) -> Any:
        told.append(language)
        heard = decode(model, audios, language, *args)  # in the STT worker
        loop.call_soon_threadsafe(decoded.set)
        return heard

    monkeypatch.setattr(stt_module, "decode_batch", spy)
    english = FakeStt([])
    engine = _engine(english, FakeTts())
    engine.stt_ko = korean_stt
    wav = speak_wav("환불은 어떻게 받나요? 배송은 며칠 걸려요?", tmp_path / "ko.wav", 8000,
                    voice="ko")
    speech = np.frombuffer(read_pcm16(wav)[0], "<i2").astype(np.int16)
    silence = np.zeros(8000, np.int16)
    audio = np.concatenate([silence, speech, silence, silence])
    port = FakePort(collections.deque(codecs.ulaw_decode(codecs.ulaw_encode(
        audio[i : i + 160])) for i in range(0, len(audio) - 159, 160)), expect=1,
        language="ko-KR", handed_off=[])
    talk = asyncio.create_task(VoiceConversation(engine).run(port))
    async with asyncio.timeout(20):
        await decoded.wait()
    await asyncio.sleep(0.2)  # the transcript reaches the conversation
    talk.cancel()
    with pytest.raises(asyncio.CancelledError):
        await talk
    assert korean_stt.multilingual
    assert told and set(told) == {"ko"}
    assert english.languages == []  # tiny.en never heard the Korean caller
    assert not [e for e in port.events if isinstance(e, StageFailed)]


async def test_a_korean_call_without_a_korean_model_goes_to_the_operators() -> None:
    english = FakeStt([])
    tts = FakeTts()
    engine = _engine(english, tts)
    engine.stt_ko = None  # stt.model_ko missing or failed to load (said in the log)
    port = FakePort(collections.deque(), expect=1, language="ko", handed_off=[])
    async with asyncio.timeout(10):
        await VoiceConversation(engine).run(port)
    assert port.handed_off == ["no speech model hears language 'ko'"]
    assert [e.code for e in port.events if isinstance(e, StageFailed)] == ["stt-unavailable"]
    assert tts.streamed == [HOLDING["ko"]]  # told in Korean that a person will answer
    assert english.languages == []


class EchoResponder(FakeResponder):
    """Answers what it was asked, so a test can see what a turn said."""

    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        return Reply(f"you said {text}", 0.9, "other")


async def test_a_key_pressed_is_a_turn_of_its_digit() -> None:
    """DTMF 1/2 answers a clarifying question: the digit reaches the responder as a turn,
    with no STT (the fake has nothing to transcribe)."""
    settings = load_settings(environ={})
    engine = VoiceEngine(settings, FakeStt([]), FakeTts(), EchoResponder(),  # type: ignore[arg-type]
                         greeting=TONE[:320], apology=TONE[:1600])
    port = FakePort(collections.deque(), expect=1)
    talk = asyncio.create_task(VoiceConversation(engine).run(port))
    port.digits.put_nowait("2")
    async with asyncio.timeout(10):
        await port.done.wait()
    talk.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await talk
    said = [e for e in port.events if isinstance(e, Said)]
    assert [s.text for s in said] == ["you said 2"] and said[0].question == "2"
    [heard] = [e for e in port.events if isinstance(e, Heard)]
    assert (heard.pause_ms, heard.queue_ms, heard.stt_ms) == (None, None, None)  # no decode
    assert said[0].agent_ms is not None and said[0].first_audio_ms is not None


class PacedPort(FakePort):
    async def recv(self) -> np.ndarray:
        await asyncio.sleep(0.005)
        return self.frames.popleft() if self.frames else np.zeros(160, np.int16)


class FakeLeg:
    """One party's voice alone: espeak-ng frames, then silence."""

    def __init__(self, speaker: str, frames: collections.deque[np.ndarray]) -> None:
        self.speaker, self.frames = speaker, frames

    async def recv(self) -> np.ndarray:
        await asyncio.sleep(0.005)
        return self.frames.popleft() if self.frames else np.zeros(160, np.int16)


async def test_during_a_takeover_each_leg_is_on_the_record_apart_and_the_mix_is_not(
        tmp_path: Path) -> None:
    speech = _speech(tmp_path)
    silence = np.zeros(8000, np.int16)
    audio = np.concatenate([silence, speech, silence, silence])

    def frames() -> collections.deque[np.ndarray]:
        return collections.deque(codecs.ulaw_decode(codecs.ulaw_encode(audio[i : i + 160]))
                                 for i in range(0, len(audio) - 159, 160))

    stt = FakeStt([Transcript("words", 0.9, 1.0, 0.1)] * 6)
    port = PacedPort(frames(), expect=10**6)  # the bridge's mix reaches the main ear
    port.operator.set()
    for speaker in ("caller", "operator"):
        port.legs.put_nowait(FakeLeg(speaker, frames()))
    talk = asyncio.create_task(VoiceConversation(_engine(stt, FakeTts())).run(port))
    await asyncio.sleep(5)  # the legs' speech is paced at 5 ms a frame
    talk.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await talk
    heard = [e for e in port.events if isinstance(e, Heard)]
    assert sorted(e.speaker for e in heard) == ["caller", "operator"], heard  # no "call"
    assert len(stt.results) == 4  # the mix was not transcribed at all
    assert not [e for e in port.events if isinstance(e, Said)]  # the AI stays quiet


class SlowTts(FakeTts):
    """A synthesis that takes 0.3 s before its first audio."""

    async def stream(self, text: str, voice: str = ""):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        async for pcm in super().stream(text, voice):
            yield pcm


class TimedPort(FakePort):
    def send(self, packet: bytes) -> None:
        super().send(packet)
        self.sent_at.append(time.time())


async def test_an_answer_is_on_the_record_when_its_first_audio_leaves(tmp_path: Path) -> None:
    # the record's reply time (a caller's words to the answer) is then voice-to-voice
    stt = FakeStt([Transcript("How do I get a refund?", 0.9, 2.0, 0.3)])
    speech, silence = _speech(tmp_path), np.zeros(8000, np.int16)
    audio = np.concatenate([silence, speech, silence, silence])
    port = TimedPort(collections.deque(codecs.ulaw_decode(codecs.ulaw_encode(
        audio[i : i + 160])) for i in range(0, len(audio) - 159, 160)), expect=1)
    talk = asyncio.create_task(VoiceConversation(_engine(stt, SlowTts())).run(port))
    async with asyncio.timeout(20):
        await port.done.wait()
    await asyncio.sleep(0.3)
    talk.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await talk
    heard = next(e for e in port.events if isinstance(e, Heard))
    said = next(e for e in port.events if isinstance(e, Said))
    first_audio = min(t for t in port.sent_at if t >= heard.at)
    assert said.at - heard.at >= 0.3  # after the synthesis, not when the answer was chosen
    assert abs(first_audio - said.at) < 0.05, (first_audio - said.at)
    # the turn's stages (/metrics): the silence timer waited out (VAD windows of 32 ms);
    # no queue for a decoder (the fake decodes once the loop runs it: this port's frames
    # come unpaced, so the ear reads on first); the decode the STT reported; the
    # synthesis before the first audio
    assert heard.pause_ms is not None
    assert abs(heard.pause_ms - load_settings(environ={}).turn.end_silence_ms) <= 32
    assert heard.queue_ms is not None and heard.queue_ms < 100
    assert heard.stt_ms == 300
    assert said.agent_ms is not None and said.agent_ms < 50  # the fake answers at once
    assert said.first_audio_ms is not None
    assert 300 <= said.first_audio_ms <= 300 + 50 + (said.at - heard.at) * 1000
