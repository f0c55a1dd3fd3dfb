"""E2E: our controller (in this process) + the real Asterisk + real models + a real SIP UA."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest

from smartpbx_ari.ai.agent import AIAgentService
from smartpbx_ari.ai.llm import Phraser
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.ai.stt import SpeechToText
from smartpbx_ari.call.conversation import VoiceConversation
from smartpbx_ari.call.engine import VoiceEngine
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.config import Settings
from smartpbx_ari.credentials import Credentials
from smartpbx_ari.events import CallEvent, CallStarted, Said, Subscription
from smartpbx_ari.sipcaller.caller import Dial, Line, SyntheticCaller, caller_ears
from smartpbx_ari.sipcaller.phone import SipPhone
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.pbx import LocalPbx
from smartpbx_ari.telephony.stasis import StasisApp

E = TypeVar("E", bound=CallEvent)


@dataclass
class Controller:
    app: StasisApp
    events: Subscription
    engine: VoiceEngine

    async def until(self, kind: type[E], timeout: float = 20.0) -> E:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.next(timeout)
                if isinstance(event, kind):
                    return event

    async def ai_answers(self, line: Line, question: str) -> None:
        """The caller asks; the AI, not an operator gone, answers what it heard, and the
        caller hears it. What it heard is checked as far as is sure: the question's first
        words (how tiny.en hears the rest live is bench_voice.py --question's to measure)."""
        said_at = await line.say(question)
        said = await self.until(Said)
        assert said.speaker == "agent" and not said.operator, said
        opening = " ".join(question.lower().split()[:3])
        assert said.question.lower().startswith(opening), said
        assert await line.wait_voice(said_at, 10) is not None


@contextlib.asynccontextmanager
async def running_controller(settings: Settings, ari: AriClient, engine: RAGEngine,
                             desk: HitlDesk | None = None, phraser: Phraser | None = None,
                             sinks: Sequence[Callable[[CallEvent], None]] = (),
                             ) -> AsyncIterator[Controller]:
    """Our controller in this process; with ``desk``, wired as ``smartpbx serve`` does
    (``phraser``: the LLM rephrases answers; ``sinks``: e.g. the call recorder's)."""
    agent = AIAgentService(engine, settings.agent, phraser=phraser)
    voice = await VoiceEngine.load(settings, agent, desk)
    app = StasisApp(settings, ari, conversation=lambda: VoiceConversation(voice),
                    sinks=[*sinks, *([desk.observe] if desk else [])])
    if desk is not None:
        desk.publish = app.publish
    events = app.events.subscribe()
    runner = asyncio.create_task(app.run())
    await asyncio.wait_for(ari.connected.wait(), 10)
    try:
        yield Controller(app, events, voice)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        voice.stt.close()


@pytest.fixture(autouse=True)
def controller_log(caplog: pytest.LogCaptureFixture) -> None:
    """What the controller said in its log (heard, said, turns) is shown with a failure:
    a loaded box's mishearing is read there, not guessed at."""
    caplog.set_level(logging.INFO, logger="smartpbx_ari")


@pytest.fixture
async def controller(pbx: LocalPbx, ari: AriClient, settings: Settings, engine: RAGEngine
                     ) -> AsyncIterator[Controller]:
    async with running_controller(settings, ari, engine) as running:
        yield running


@contextlib.asynccontextmanager
async def greeted_with_phone(controller: Controller, caller: SyntheticCaller, dial: Dial,
                             settings: Settings, credentials: Credentials,
                             endpoint: str = "2001",
                             ) -> AsyncIterator[tuple[CallStarted, Line, SipPhone]]:
    """An operator phone registered, and a call to the AI past its greeting."""
    server = (settings.pbx.host, settings.pbx.sip_port)
    async with SipPhone.register(server, endpoint, credentials.operator_password) as phone, \
            caller.dial(dial) as line:
        started = await controller.until(CallStarted)
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        yield started, line, phone


@pytest.fixture(scope="session")
def caller_stt(settings: Settings) -> Iterator[SpeechToText]:
    """The callers' own ears, loaded once: not the controller's, whose deadline is for
    callers' turns (a test hearing hold music through it would be a false fault)."""
    stt = caller_ears(settings)
    yield stt
    stt.close()


@pytest.fixture
def caller(settings: Settings, controller: Controller, caller_stt: SpeechToText
           ) -> SyntheticCaller:
    return SyntheticCaller(settings, stt=caller_stt)


@pytest.fixture
def dial(pbx: LocalPbx, settings: Settings, credentials: Credentials) -> Dial:
    return Dial("1000", (settings.pbx.host, settings.pbx.sip_port), "caller",
                credentials.caller_password)
