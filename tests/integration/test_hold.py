"""The live hold at the conversation's seams: a fake STT, TTS and responder, the real
Silero VAD and turn taking on espeak-ng speech paced at 20 ms a frame, the real HITL desk.

While an operator is asked, the caller hears music with spoken updates, never a long
silence, and is still heard: an answerable question is answered, an unsure one joins the
alert, asking for a person goes to the queue at once; an operator's typed answer is spoken
and a wait that runs out says what happens next.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from smartpbx_ari.ai.responder import Reply
from smartpbx_ari.ai.stt import Transcript
from smartpbx_ari.call.conversation import VoiceConversation
from smartpbx_ari.call.engine import VoiceEngine
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.call.hold import ADDED, CONNECTING, UPDATE, load_music
from smartpbx_ari.config import AgentSettings, load_settings
from smartpbx_ari.events import AlertHeard, AlertRaised, CallEvent, Said
from smartpbx_ari.media import codecs
from smartpbx_ari.media.rtp import RtpPacket
from smartpbx_ari.sipcaller.silence import longest_silence
from tests.integration.test_conversation import TONE, FakeResponder, FakeStt, FakeTts, _speech
from tests.integration.test_conversation_turns import PacedPort

pytestmark = [pytest.mark.integration, pytest.mark.ai]


class Responder(FakeResponder):
    """A refund question is answered; asking for a person is a hand-over; else unsure."""

    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        if "person" in text:
            return Reply("Let me connect you.", 1.0, "human_request", hitl=True)
        if "refund" in text:
            return Reply("Refunds are paid within five working days.", 0.9, "refund")
        return Reply("Let me connect you with a colleague. Please hold.", 0.2, "other",
                     hitl=True)


def _engine(said: list[str], wait_s: float = 25.0) -> tuple[VoiceEngine, FakeTts]:
    base = load_settings(environ={})
    agent = dataclasses.replace(base.agent, hitl_wait_s=wait_s, hold_update_s=2.0)
    settings = dataclasses.replace(base, agent=agent)
    stt = FakeStt([Transcript(text, 0.9, 1.0, 0.1) for text in said])
    tts = FakeTts()
    engine = VoiceEngine(settings, stt, tts, Responder(),  # type: ignore[arg-type]
                         greeting=TONE[:320], apology=TONE[:1600], hold_music=load_music())
    return engine, tts


def _frames(turns: int, gap_s: float, speech: np.ndarray) -> collections.deque[np.ndarray]:
    gap = np.zeros(int(gap_s * 8000), np.int16)
    audio = np.concatenate([np.zeros(4000, np.int16), *([speech, gap] * turns)])
    return collections.deque(codecs.ulaw_decode(codecs.ulaw_encode(audio[i : i + 160]))
                             for i in range(0, len(audio) - 159, 160))


class TimedPort(PacedPort):
    """Keeps when each packet was sent: no packet at all is silence too."""

    def __init__(self, frames: collections.deque[np.ndarray]) -> None:
        super().__init__(frames, expect=10**6, handed_off=[])
        self.times: list[float] = []
        self.raised: list[float] = []  # when alerts were raised
        self.changed = asyncio.Event()  # an event or a hand-off

    def publish(self, event: CallEvent) -> None:
        super().publish(event)
        if isinstance(event, AlertRaised):
            self.raised.append(time.monotonic())
        self.changed.set()

    def hand_off(self, reason: str) -> None:
        super().hand_off(reason)
        self.changed.set()

    def send(self, packet: bytes) -> None:
        super().send(packet)
        self.times.append(time.monotonic())

    def longest_silence_s(self, since: float, until: float) -> float:
        """The longest the caller heard nothing audible between two monotonic times."""
        frames = [(t, codecs.ulaw_decode(RtpPacket.parse(packet).payload))
                  for t, packet in zip(self.times, self.sent, strict=True)]
        return longest_silence(frames, since, until).seconds


def _operator_said(port: TimedPort) -> list[Said]:
    return [e for e in port.events if isinstance(e, Said) and e.speaker == "operator"]


async def _call(engine: VoiceEngine, port: TimedPort, done: Callable[[], bool],
                seconds: float) -> HitlDesk:
    """The call until ``done()`` (at most ``seconds``), then hung up."""
    desk = HitlDesk(port.publish)
    engine.desk = desk
    talk = asyncio.create_task(VoiceConversation(engine).run(port))
    async with asyncio.timeout(seconds):
        while not done():
            await port.changed.wait()
            port.changed.clear()
    await asyncio.sleep(0.3)
    talk.cancel()
    await asyncio.gather(talk, return_exceptions=True)
    return desk


async def test_on_hold_the_caller_hears_music_and_updates_and_is_still_heard(
        tmp_path: Path) -> None:
    engine, tts = _engine(["Do you sell gift cards?", "How do I get a refund?",
                           "Do you wrap presents?", "I want to talk to a person please."])
    port = TimedPort(_frames(4, 4.5, _speech(tmp_path)))
    desk = await _call(engine, port, lambda: bool(port.handed_off), 40)
    handed_off = time.monotonic()
    assert port.handed_off == ["caller asked for a person"], port.events
    (alert,) = desk.alerts.values()
    assert alert.question == "Do you sell gift cards?" and alert.waiting is False
    # the answerable question answered, the unsure one added: both shown to the operators
    assert alert.heard == [("How do I get a refund?",
                            "Refunds are paid within five working days."),
                           ("Do you wrap presents?", ""),
                           ("I want to talk to a person please.", "")]
    assert [e.text for e in port.events if isinstance(e, AlertHeard)] == [
        t for t, _ in alert.heard]
    said = [e.text for e in port.events if isinstance(e, Said)]
    assert "Refunds are paid within five working days." in said and ADDED["en"] in said
    assert UPDATE["en"] in tts.streamed  # every 2 s here
    silence = port.longest_silence_s(port.raised[0], handed_off) if port.raised else 99.0
    assert silence <= 5.0, silence


async def test_an_operators_typed_answer_ends_the_hold_and_is_spoken(tmp_path: Path) -> None:
    engine, tts = _engine(["Do you sell gift cards?"])
    port = TimedPort(_frames(1, 0.5, _speech(tmp_path)))

    async def operator() -> None:
        while not port.raised:
            await port.changed.wait()
        await asyncio.sleep(3)  # the caller holds meanwhile
        assert engine.desk is not None
        (alert,) = engine.desk.alerts.values()
        engine.desk.answer(alert.id, "anna", "Yes, in every shop, from 10 to 100 euros.")

    typing = asyncio.create_task(operator())
    await _call(engine, port, lambda: bool(_operator_said(port)), 15)
    await typing
    assert [(s.text, s.operator) for s in _operator_said(port)] == [
        ("Yes, in every shop, from 10 to 100 euros.", "anna")]
    assert tts.streamed[-1] == "Yes, in every shop, from 10 to 100 euros."
    assert port.handed_off == []


async def test_a_wait_that_runs_out_says_what_comes_next_and_goes_to_the_queue(
        tmp_path: Path) -> None:
    engine, tts = _engine(["Do you sell gift cards?"], wait_s=3.0)
    port = TimedPort(_frames(1, 0.5, _speech(tmp_path)))
    await _call(engine, port, lambda: bool(port.handed_off), 15)
    assert port.handed_off == ["no operator answered in time"]
    assert tts.streamed[-1] == CONNECTING["en"]


def test_the_hold_settings_are_checked() -> None:
    with pytest.raises(Exception, match="agent.hold_update_s"):
        AgentSettings(hold_update_s=0.5)


async def test_an_answer_typed_during_the_holding_phrase_is_spoken_at_once(
        tmp_path: Path) -> None:
    engine, tts = _engine(["Do you sell gift cards?"])
    port = TimedPort(_frames(1, 0.5, _speech(tmp_path)))

    async def operator() -> None:  # as soon as the alert shows: the phrase still plays
        while not port.raised:
            await port.changed.wait()
        assert engine.desk is not None
        (alert,) = engine.desk.alerts.values()
        engine.desk.answer(alert.id, "anna", "Yes, from 10 to 100 euros.")

    typing = asyncio.create_task(operator())
    await _call(engine, port, lambda: bool(_operator_said(port)), 10)
    await typing
    assert tts.streamed[-1] == "Yes, from 10 to 100 euros."
    assert UPDATE["en"] not in tts.streamed  # no music or update started meanwhile
