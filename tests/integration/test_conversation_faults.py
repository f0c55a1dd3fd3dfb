"""Model faults in the voice loop, at its narrow seams (fake STT, TTS and call port; the
real agent over a fake retriever; the real Silero VAD and turn taking): a stage that
raises or hangs gives the caller the apology and the operators an alert naming the
stage, and the next turn is answered; a model that keeps failing sends the call to the
operators. Through the real Asterisk and models: tests/e2e/test_model_faults.py."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from smartpbx_ari.ai.agent import HOLDING, AIAgentService
from smartpbx_ari.ai.llm import LlmError
from smartpbx_ari.ai.responder import Reply
from smartpbx_ari.ai.retrieval import Hit
from smartpbx_ari.ai.stt import SttError, Transcript
from smartpbx_ari.call.conversation import VoiceConversation
from smartpbx_ari.call.engine import VoiceEngine
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.config import AgentSettings, load_settings
from smartpbx_ari.events import AlertRaised, CallEvent, Said, StageFailed
from smartpbx_ari.media import codecs
from tests.fakes import Entry, FakeRetriever, entries
from tests.integration.test_conversation import (
    TONE,
    FakePort,
    FakeResponder,
    FakeStt,
    FakeTts,
    _speech,
)

pytestmark = [pytest.mark.integration, pytest.mark.ai]
REFUND = Transcript("How do I get a refund?", 0.9, 2.0, 0.3)
APOLOGY = TONE[:1600]


def _frames(speech: np.ndarray, turns: int) -> collections.deque[np.ndarray]:
    silence = np.zeros(8000, np.int16)
    audio = np.concatenate([silence, *([speech, silence, silence] * turns)])
    return collections.deque(codecs.ulaw_decode(codecs.ulaw_encode(audio[i : i + 160]))
                             for i in range(0, len(audio) - 159, 160))


async def _call(responder: Any, stt: FakeStt, tts: FakeTts, speech: np.ndarray, turns: int,
                expect: int, handed_off: list[str] | None = None) -> list[CallEvent]:
    """A call of ``turns`` questions until ``expect`` said/error events; its events."""
    port = FakePort(_frames(speech, turns), expect, handed_off=handed_off)
    desk = HitlDesk(port.events.append)
    engine = VoiceEngine(load_settings(environ={}), stt, tts, responder,  # type: ignore[arg-type]
                         greeting=TONE[:320], apology=APOLOGY, desk=desk)
    talk = asyncio.create_task(VoiceConversation(engine).run(port))
    async with asyncio.timeout(20):
        await port.done.wait()
    await asyncio.sleep(0.3)
    talk.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await talk
    return port.events


def _kinds(events: list[CallEvent]) -> list[str]:
    return [e.kind for e in events if e.kind in ("error", "hitl_alert", "heard", "said")]


async def test_a_failed_transcription_is_an_apology_an_alert_and_the_next_turn_works(
        tmp_path: Path) -> None:
    stt = FakeStt([SttError("stt: no result within 2 s (its thread abandoned)",
                            timed_out=True), REFUND])
    events = await _call(FakeResponder(), stt, FakeTts(), _speech(tmp_path), turns=2,
                         expect=2)
    assert _kinds(events) == ["error", "hitl_alert", "heard", "said"]
    failed = next(e for e in events if isinstance(e, StageFailed))
    alert = next(e for e in events if isinstance(e, AlertRaised))
    assert failed.code == "stt-timeout"
    assert (alert.reason, alert.question, alert.waiting) == ("stt_failed", "", False)
    assert next(e for e in events if isinstance(e, Said)).intent == "refund"


class HangingRetriever(FakeRetriever):
    """Its first search hangs (until released), as a wedged index would."""

    def __init__(self) -> None:
        super().__init__(entries([Entry("r1", "How do I get a refund?",
                                        "Refunds are paid within five working days.",
                                        "refund")]),
                         {"refund": [("r1", 0.95)]})
        self.release = threading.Event()
        self.searches = 0

    def search(self, text: str, top_k: int = 5, language: str = "") -> list[Hit]:
        self.searches += 1
        if self.searches == 1:
            self.release.wait(30)
        return super().search(text, top_k, language)


@pytest.fixture
def hanging() -> Iterator[HangingRetriever]:
    retriever = HangingRetriever()
    yield retriever
    retriever.release.set()


async def test_a_hung_search_is_abandoned_at_its_deadline_and_the_next_turn_is_answered(
        tmp_path: Path, hanging: HangingRetriever) -> None:
    rag: Any = SimpleNamespace(retriever=hanging)
    agent = AIAgentService(rag, AgentSettings(search_timeout_s=0.3))
    stt = FakeStt([REFUND, REFUND])
    events = await _call(agent, stt, FakeTts(), _speech(tmp_path), turns=2, expect=2)
    assert _kinds(events) == ["heard", "error", "hitl_alert", "heard", "said"]
    failed = next(e for e in events if isinstance(e, StageFailed))
    alert = next(e for e in events if isinstance(e, AlertRaised))
    assert failed.code == "search-timeout"
    assert (alert.reason, alert.question) == ("search_failed", "How do I get a refund?")
    # the first search still hangs in its thread: the second turn got a new one
    said = next(e for e in events if isinstance(e, Said))
    assert (said.intent, said.text) == ("refund", "Refunds are paid within five working days.")
    assert failed.at - next(e for e in events if e.kind == "heard").at < 0.6


class BrokenResponder(FakeResponder):
    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        raise KeyError("a bug, not a stage")


async def test_a_model_that_keeps_failing_sends_the_call_to_the_operators(
        tmp_path: Path) -> None:
    handed: list[str] = []
    tts = FakeTts()
    stt = FakeStt([SttError("transcription failed: boom"),
                   SttError("transcription failed: boom")])
    events = await _call(FakeResponder(), stt, tts, _speech(tmp_path), turns=2, expect=2,
                         handed_off=handed)
    assert handed == ["stt failed 2 turns in a row"]
    assert tts.streamed == [HOLDING["en"]]  # said once, on the second fault
    assert [e.reason for e in events if isinstance(e, AlertRaised)] == ["stt_failed"] * 2


async def test_an_unexpected_error_of_the_agent_is_a_fault_too(tmp_path: Path) -> None:
    events = await _call(BrokenResponder(), FakeStt([REFUND]), FakeTts(), _speech(tmp_path),
                         turns=1, expect=1)
    failed = next(e for e in events if isinstance(e, StageFailed))
    assert failed.code == "agent-failed"
    assert [e.reason for e in events if isinstance(e, AlertRaised)] == ["agent_failed"]


class FailingPhraser(FakeResponder):
    """The LLM's rephrasing fails before it says anything."""

    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        async def sentences() -> AsyncIterator[str]:
            raise LlmError("llm: no token within 0.8 s (its generation abandoned)",
                           timed_out=True)
            yield ""

        return Reply("Refunds are paid within five working days.", 0.9, "refund",
                     sources=("r1",), speech=sentences())


async def test_a_failed_rephrasing_speaks_the_stored_answer_and_alerts(
        tmp_path: Path) -> None:
    tts = FakeTts()
    events = await _call(FailingPhraser(), FakeStt([REFUND]), tts, _speech(tmp_path),
                         turns=1, expect=2)
    assert tts.spoken == ["Refunds are paid within five working days."]
    assert next(e for e in events if isinstance(e, StageFailed)).code == "llm-timeout"
    alert = next(e for e in events if isinstance(e, AlertRaised))
    assert (alert.reason, alert.question) == ("llm_failed", "How do I get a refund?")
    assert next(e for e in events if isinstance(e, Said)).text.startswith("Refunds")
