"""The conversation with a turn model, in real time: the real Silero VAD on espeak-ng
speech paced at 20 ms a frame, a fake turn model that always says "complete" and a fake
STT that takes as long as tiny.en (0.3 s). A caller who pauses at a comma and goes on is
answered once, for the whole sentence; the half the model ended is dropped unanswered.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import numpy as np
import pytest

from smartpbx_ari.ai.stt import Transcript
from smartpbx_ari.call.conversation import VoiceConversation
from smartpbx_ari.call.engine import VoiceEngine
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.config import load_settings
from smartpbx_ari.events import AlertRaised, AlertUpdated, CallEvent, Heard, Said
from smartpbx_ari.media import codecs
from smartpbx_ari.sipcaller.caller import trim_silence
from tests.fixtures.audio import read_pcm16, speak_wav
from tests.integration.test_conversation import TONE, FakePort, FakeTts, _engine

pytestmark = [pytest.mark.integration, pytest.mark.ai]


class OneReading:
    """An STT with no other reading of what it heard (stt.readings off)."""

    async def readings(self, transcript: Transcript, language: str = "") -> list[str]:
        return []


class SlowStt(OneReading):
    """tiny.en's pace; the text says how much audio it was given."""

    busy = False  # one call: its own eager decode is no other call's
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def transcribe(self, pcm: np.ndarray, language: str = "",
                         context: str = "") -> Transcript:
        self.seconds.append(len(pcm) / 16000)
        await asyncio.sleep(0.3)
        return Transcript(f"refund {len(pcm) / 16000:.2f}", 0.9, len(pcm) / 16000, 0.3)


class AlwaysComplete:
    def __init__(self) -> None:
        self.asked = 0

    def complete(self, pcm16k: np.ndarray) -> float:
        self.asked += 1
        return 0.9


class PacedPort(FakePort):
    async def recv(self) -> np.ndarray:
        await asyncio.sleep(0.02)  # the line's pace: the model answers while audio comes
        return self.frames.popleft() if self.frames else np.zeros(160, np.int16)


def _words(tmp_path: Path, text: str) -> np.ndarray:
    data, _ = read_pcm16(speak_wav(text, tmp_path / f"{len(text)}.wav", rate=8000))
    return trim_silence(np.frombuffer(data, "<i2").astype(np.int16))  # espeak adds 0.3 s


def _frames(*parts: np.ndarray) -> collections.deque[np.ndarray]:
    """The caller's audio, as the call's 20 ms mu-law frames."""
    audio = np.concatenate(parts)
    return collections.deque(codecs.ulaw_decode(codecs.ulaw_encode(audio[i : i + 160]))
                             for i in range(0, len(audio) - 159, 160))


async def _converse(engine: VoiceEngine, port: FakePort, settle_s: float) -> None:
    """The call until the port has its events, and ``settle_s`` more for anything else."""
    talk = asyncio.create_task(VoiceConversation(engine).run(port))
    async with asyncio.timeout(20):
        await port.done.wait()
    await asyncio.sleep(settle_s)
    talk.cancel()
    with pytest.raises(asyncio.CancelledError):
        await talk


async def test_a_pause_at_a_comma_is_resumed_into_one_answer(tmp_path: Path) -> None:
    # The neural voice pauses 220-450 ms at a comma. Resumed at the first speech window, the
    # half sentence's answer has not begun if the pause ends before its transcript is ready
    # (turn.eager_silence_ms + the STT); past that, the caller barges in and the whole
    # sentence is answered.
    gap_ms = 250
    stt, model = SlowStt(), AlwaysComplete()
    engine = _engine(stt, FakeTts())  # type: ignore[arg-type]
    engine.turn_model = model  # type: ignore[assignment]
    first, second = _words(tmp_path, "I put the wrong address on my order"), \
        _words(tmp_path, "can I fix it")
    gap, silence = np.zeros(gap_ms * 8, np.int16), np.zeros(12000, np.int16)
    port = PacedPort(_frames(np.zeros(4000, np.int16), first, gap, second, silence),
                     expect=1)
    await _converse(engine, port, 1.5)  # anything more to say would be said by now
    heard = [e for e in port.events if isinstance(e, Heard)]
    said = [e for e in port.events if isinstance(e, Said)]
    assert model.asked >= 2  # the model ended the turn at the comma, then at the end
    assert len(stt.seconds) >= 2  # the first half was transcribed, then dropped
    whole = (len(first) + len(gap) + len(second)) / 8000
    assert len(heard) == len(said) == 1, port.events
    assert float(heard[0].text.split()[1]) >= whole, (heard[0].text, whole)


class HalfThenWholeStt(OneReading):
    """Quick (its answer to the half begins before the caller goes on): a half sentence
    is heard as "Stop.", which no entry answers; the whole, as a refund question."""

    busy = False

    def __init__(self, whole_s: float) -> None:
        self.whole_s = whole_s

    async def transcribe(self, pcm: np.ndarray, language: str = "",
                         context: str = "") -> Transcript:
        await asyncio.sleep(0.05)
        text = "Stop, and tell me about a refund." if len(pcm) / 16000 >= self.whole_s \
            else "Stop."
        return Transcript(text, 0.9, len(pcm) / 16000, 0.05)


class LongHoldingPhrase(FakeTts):
    async def stream(self, text: str, voice: str = ""):  # type: ignore[no-untyped-def]
        self.streamed.append(text)
        for _ in range(15):  # 3 s
            yield TONE


def _half_then_whole(tmp_path: Path, gap_s: float) -> tuple[HalfThenWholeStt, PacedPort]:
    """ "Stop", a pause, "and tell me about a refund": heard as "Stop." and as the whole."""
    first, second = _words(tmp_path, "Stop"), _words(tmp_path, "and tell me about a refund")
    gap, silence = np.zeros(int(gap_s * 8000), np.int16), np.zeros(16000, np.int16)
    whole = (len(first) + len(gap) + len(second)) / 8000
    return HalfThenWholeStt(whole - 0.1), PacedPort(
        _frames(np.zeros(4000, np.int16), first, gap, second, silence), expect=2)


@pytest.mark.parametrize("operators", ["none", "a desk"])
async def test_a_half_sentence_handed_over_is_withdrawn_when_the_caller_goes_on(
        tmp_path: Path, operators: str) -> None:
    # "Stop," taken for the end of a turn: no entry answers it, so the holding phrase
    # begins (and with a desk, an alert) once the pause reaches turn.unsure_silence_ms
    # (here 0: at once); the caller goes on in its first moments. The half is not handed
    # over nor held: its alert is withdrawn, and the whole sentence is heard and
    # answered, on the same call.
    stt, port = _half_then_whole(tmp_path, 0.45)
    model = AlwaysComplete()
    engine = _engine(stt, LongHoldingPhrase())  # type: ignore[arg-type]
    engine.settings = load_settings(environ={"SMARTPBX_TURN__UNSURE_SILENCE_MS": "0"})
    engine.turn_model = model  # type: ignore[assignment]
    port.handed_off = []
    if operators == "a desk":
        engine.desk = HitlDesk(port.events.append)
    await _converse(engine, port, 1.0)
    said = [e for e in port.events if isinstance(e, Said)]
    assert [e.text for e in port.events if isinstance(e, Heard)] == \
        ["Stop.", "Stop, and tell me about a refund."], port.events
    assert [(s.hitl, s.intent) for s in said] == [(True, "other"), (False, "refund")], said
    assert port.handed_off == []
    if engine.desk is not None:
        (raised,) = [e for e in port.events if isinstance(e, AlertRaised)]
        assert [(e.alert_id, e.status) for e in port.events if isinstance(e, AlertUpdated)] \
            == [(raised.alert_id, "closed")]
        assert engine.desk.open_alerts() == []


async def test_an_unsure_reply_waits_for_the_caller_to_go_on(tmp_path: Path) -> None:
    # The same half sentence, with the default wait: its reply (a hand-over) is not said
    # while the pause is shorter than turn.unsure_silence_ms, so the caller who goes on
    # after 0.45 s hears nothing before the answer to the whole sentence; the hand-over
    # chosen for the half is taken back, and no alert was raised.
    stt, port = _half_then_whole(tmp_path, 0.45)
    port.expect, port.handed_off = 1, []
    engine = _engine(stt, LongHoldingPhrase())  # type: ignore[arg-type]
    engine.turn_model = AlwaysComplete()  # type: ignore[assignment]
    engine.desk = HitlDesk(port.events.append)
    await _converse(engine, port, 1.5)
    assert [e.text for e in port.events if isinstance(e, Heard)] == \
        ["Stop, and tell me about a refund."], port.events
    said = [e for e in port.events if isinstance(e, Said)]
    assert [(s.hitl, s.intent) for s in said] == [(False, "refund")], said
    assert not [e for e in port.events if isinstance(e, AlertRaised)]
    assert engine.responder.retracted == [port.call_id]  # type: ignore[attr-defined]
    assert port.handed_off == []


async def test_an_unsure_reply_to_a_finished_question_is_said_when_the_pause_is_long(
        tmp_path: Path) -> None:
    # A caller who does not go on gets the unsure reply (the hand-over) once the pause
    # reaches turn.unsure_silence_ms: not before, and well before the cap.
    stt, port = _half_then_whole(tmp_path, 3.0)  # "Stop." and then nothing for 3 s
    port.expect, port.handed_off = 1, []
    engine = _engine(stt, LongHoldingPhrase())  # type: ignore[arg-type]
    engine.turn_model = AlwaysComplete()  # type: ignore[assignment]
    await _converse(engine, port, 0.0)
    (heard,) = [e for e in port.events if isinstance(e, Heard)]
    (said,) = [e for e in port.events if isinstance(e, Said)]
    assert (heard.text, said.hitl) == ("Stop.", True), port.events
    silence_ms = heard.pause_ms + (said.at - heard.end) * 1000  # when it was said
    turn = engine.settings.turn
    assert turn.unsure_silence_ms - 40 <= silence_ms < turn.max_silence_ms, (heard, said)


class HandedBackPort(PacedPort):
    """An operator has the call until the first sentence is on the record, or until a set
    frame; then they hang up and the AI answers again."""

    def __init__(self, frames: collections.deque[np.ndarray], at_frame: int | None) -> None:
        super().__init__(frames, expect=1)
        self.at_frame, self.heard = at_frame, 0
        self.operator.set()

    async def recv(self) -> np.ndarray:
        self.heard += 1
        if self.heard == self.at_frame:
            self.operator.clear()
        return await super().recv()

    def publish(self, event: CallEvent) -> None:
        super().publish(event)
        if self.at_frame is None and isinstance(event, Heard) and event.speaker == "call":
            self.operator.clear()


@pytest.mark.parametrize("hand_back", ["after the record", "mid-sentence"])
async def test_what_was_said_during_a_takeover_is_not_answered_after_the_hand_back(
        tmp_path: Path, hand_back: str) -> None:
    # The bridge mixes the operator and the caller. Once the operator hangs up, the caller's
    # next words (within the turn model's cap) are a turn of their own: the takeover's turn
    # is neither resumed into them nor, if the hand-back cut it, answered.
    stt, model = SlowStt(), AlwaysComplete()
    engine = _engine(stt, FakeTts())  # type: ignore[arg-type]
    engine.turn_model = model  # type: ignore[assignment]
    taken, back = _words(tmp_path, "Hello this is Anna from the shop"), \
        _words(tmp_path, "how do I get a refund")
    lead, gap = np.zeros(4000, np.int16), np.zeros(900 * 8, np.int16)
    middle = (len(lead) + len(taken) // 2) // 160
    port = HandedBackPort(_frames(lead, taken, gap, back, np.zeros(12000, np.int16)),
                          middle if hand_back == "mid-sentence" else None)
    await _converse(engine, port, 1.5)
    heard = [e for e in port.events if isinstance(e, Heard)]
    said = [e for e in port.events if isinstance(e, Said)]
    assert heard[0].speaker == "call", port.events  # on the record, not answered
    assert len(said) == 1, port.events
    answered = float(said[0].question.split()[1])  # seconds of audio the answer heard
    assert answered < (len(back) + len(gap)) / 8000, (answered, len(back) / 8000)


class HeadThenWholeStt(OneReading):
    """Quick (an answer to the head would begin well inside the pause): audio short of
    ``whole_s`` is heard as ``head``, the rest as ``whole``."""

    busy = False

    def __init__(self, whole_s: float, head: str, whole: str) -> None:
        self.whole_s, self.head, self.whole = whole_s, head, whole

    async def transcribe(self, pcm: np.ndarray, language: str = "",
                         context: str = "") -> Transcript:
        await asyncio.sleep(0.05)
        text = self.whole if len(pcm) / 16000 >= self.whole_s else self.head
        return Transcript(text, 0.9, len(pcm) / 16000, 0.05)


@pytest.mark.parametrize("pause_s", [0.9, None])
async def test_a_head_that_stops_on_an_article_waits_for_the_rest(
        tmp_path: Path, pause_s: float | None) -> None:
    # The model ends the turn 180 ms into the pause, and the head's transcript is ready
    # 50 ms later; it stops on "the", so it is not answered while the caller may go on:
    # after a 0.9 s pause, only the whole sentence is heard and answered. A caller who
    # does not go on is answered as heard once the pause reaches the cap (1.5 s).
    head, rest = _words(tmp_path, "How do I get a refund for the"), _words(tmp_path, "shoes")
    parts = [np.zeros(4000, np.int16), head]
    if pause_s is not None:
        parts += [np.zeros(int(pause_s * 8000), np.int16), rest]
    whole = (len(head) + len(rest)) / 8000 + 0.5  # the head with a pause and the rest
    stt = HeadThenWholeStt(whole, "How do I get a refund for the",
                           "How do I get a refund for the shoes?")
    model = AlwaysComplete()
    engine = _engine(stt, FakeTts())  # type: ignore[arg-type]
    engine.turn_model = model  # type: ignore[assignment]
    port = PacedPort(_frames(*parts, np.zeros(24000, np.int16)), expect=1)
    await _converse(engine, port, 1.0)
    heard = [e for e in port.events if isinstance(e, Heard)]
    said = [e for e in port.events if isinstance(e, Said)]
    assert len(heard) == len(said) == 1, port.events
    if pause_s is not None:
        assert heard[0].text == "How do I get a refund for the shoes?", port.events
        assert model.asked >= 2 and heard[0].wait_ms < 1000, heard[0]
    else:  # answered as heard, once the cap has passed
        assert heard[0].text == "How do I get a refund for the", port.events
        cap_ms = engine.settings.turn.max_silence_ms
        assert heard[0].pause_ms + heard[0].wait_ms >= cap_ms - 40, heard[0]


class SlowFirstAudio(FakeTts):
    """Its first audio comes 0.5 s after it is asked (a sentence not in the cache)."""

    async def stream(self, text: str, voice: str = ""):  # type: ignore[no-untyped-def]
        self.streamed.append(text)
        await asyncio.sleep(0.5)
        yield TONE


async def test_going_on_before_the_reply_is_heard_takes_the_reply_back(
        tmp_path: Path) -> None:
    # "Refund," ended the turn at once, and its reply was chosen, but its first audio had
    # not left when the caller went on: the half is neither on the record nor said, the
    # reply chosen for it is taken back, and the whole sentence is answered once.
    head, rest = _words(tmp_path, "Refund"), _words(tmp_path, "for the shoes please")
    gap = np.zeros(int(0.45 * 8000), np.int16)
    whole = (len(head) + len(gap) + len(rest)) / 8000
    stt = HeadThenWholeStt(whole - 0.1, "Refund.", "Refund, for the shoes please.")
    model, tts = AlwaysComplete(), SlowFirstAudio()
    engine = _engine(stt, tts)  # type: ignore[arg-type]
    engine.turn_model = model  # type: ignore[assignment]
    port = PacedPort(_frames(np.zeros(4000, np.int16), head, gap, rest,
                             np.zeros(16000, np.int16)), expect=1)
    await _converse(engine, port, 1.0)
    assert [e.text for e in port.events if isinstance(e, Heard)] == \
        ["Refund, for the shoes please."], port.events
    said = [e for e in port.events if isinstance(e, Said)]
    assert len(said) == 1 and said[0].question == "Refund, for the shoes please.", said
    assert engine.responder.retracted == [port.call_id]  # type: ignore[attr-defined]
