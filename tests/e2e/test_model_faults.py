"""Model faults and a dead line through the real Asterisk, the real models and the
synthetic caller. The faults come from the test-only ``[faults]`` settings (fail points
in the models' own workers, ``ai/faults.py``), nothing in the running controller is
patched: a hung STT or LLM or a raising search gives the caller audio within 3 s of the
end of its turn and the operators an alert naming the stage, and the next turn is
answered. A caller's phone that stops sending RTP (no BYE) is hung up after
``media.dead_peer_s`` and recorded as ``dead_peer``; a silent caller (RTP still flowing)
is not. Each fault test prints the end of turn -> first audio and -> alert times."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from smartpbx_ari.ai import faults
from smartpbx_ari.ai.llm import Phraser
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.config import FaultSettings, Settings
from smartpbx_ari.events import DEAD_PEER, AlertRaised, CallEnded, CallStarted, Said, StageFailed
from smartpbx_ari.sipcaller.caller import Dial, Line, SyntheticCaller
from smartpbx_ari.store.calls import get_call
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.pbx import LocalPbx
from tests.e2e.conftest import Controller, running_controller

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]
# a hung model's thread comes back after this (so the run can exit): the caller must hear
# us and the operators be alerted before it does, or no deadline cut in. The issue's
# target (within 3 s of the end of the turn) is measured by scripts/bench_faults.py and
# printed here; a timed assertion would be a benchmark that fails on a busy machine.
HANG_S = 6.0
DEAD_PEER_S = 3.0


@pytest.fixture(autouse=True)
def disarmed() -> Iterator[None]:
    yield
    faults.install(FaultSettings())  # the session's other tests get working models


@pytest.fixture
def desk() -> HitlDesk:
    return HitlDesk(lambda event: None)


def _faulty(settings: Settings, **stages: str) -> Settings:
    return dataclasses.replace(settings, faults=FaultSettings(**stages, times=1,
                                                              hang_s=HANG_S))


async def _greeted(line: Line) -> None:
    await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)


async def _faulted_turn(controller: Controller, line: Line, question: str, code: str
                        ) -> tuple[float, float, str]:
    """Ask ``question`` as a stage fails (``code``): (end of turn -> first audio, -> the
    alert naming the stage, what the caller heard)."""
    spoken = await line.say(question)
    wall = time.time() - (time.monotonic() - spoken)
    first = await line.wait_voice(spoken, 10)
    assert first is not None, "the caller heard nothing after the fault"
    failed = await controller.until(StageFailed, 10)
    assert failed.code == code, failed
    alert = await controller.until(AlertRaised, 2)
    assert alert.reason == f"{code.split('-')[0]}_failed", alert
    heard = await line.transcribe(first, await line.wait_quiet(first))
    return first - spoken, alert.at - wall, heard


async def _next_turn_is_answered(controller: Controller, line: Line) -> str:
    question = "Which payment methods do you accept?"
    spoken = await line.say(question)
    wall = time.time() - (time.monotonic() - spoken)
    start, heard = await line.listen(spoken, 10)
    assert start is not None
    said = await controller.until(Said, 10)
    # the faulted turn's reply is recorded as it ends, before this question was spoken;
    # the question's own is the first after it (its transcript need not be word-perfect)
    while said.at < wall:
        said = await controller.until(Said, 10)
    assert said.intent == "payment", said
    return heard


def _report(stage: str, audio_s: float, alert_s: float) -> None:
    print(f"\nfault {stage}: end of turn -> first audio {audio_s * 1000:.0f} ms, "
          f"-> operator alert {alert_s * 1000:.0f} ms")


@pytest.fixture
def quiet_caller(settings: Settings) -> SyntheticCaller:
    """A caller with its own STT, used only after the fault (the fail point is global)."""
    return SyntheticCaller(settings)


async def test_a_hung_stt_is_the_apology_and_an_alert_within_3_s_and_the_next_turn_works(
        pbx: LocalPbx, ari: AriClient, settings: Settings, engine: RAGEngine,
        desk: HitlDesk, quiet_caller: SyntheticCaller, dial: Dial) -> None:
    faulty = _faulty(settings, stt="hang")
    async with running_controller(faulty, ari, engine, desk) as controller, \
            quiet_caller.dial(dial) as line:
        await _greeted(line)
        audio_s, alert_s, heard = await _faulted_turn(
            controller, line, "How do I get a refund?", "stt-timeout")
        _report("stt=hang", audio_s, alert_s)
        assert audio_s < HANG_S and alert_s < HANG_S
        assert "again" in heard.lower(), heard  # "... Could you say that again?"
        assert "card" in (await _next_turn_is_answered(controller, line)).lower()


async def test_a_raising_search_is_the_apology_and_an_alert_and_the_next_turn_works(
        pbx: LocalPbx, ari: AriClient, settings: Settings, engine: RAGEngine,
        desk: HitlDesk, quiet_caller: SyntheticCaller, dial: Dial) -> None:
    faulty = _faulty(settings, search="raise")
    async with running_controller(faulty, ari, engine, desk) as controller, \
            quiet_caller.dial(dial) as line:
        await _greeted(line)
        audio_s, alert_s, heard = await _faulted_turn(
            controller, line, "How do I get a refund?", "search-failed")
        _report("search=raise", audio_s, alert_s)
        assert audio_s < HANG_S and alert_s < HANG_S
        assert "again" in heard.lower(), heard
        assert "card" in (await _next_turn_is_answered(controller, line)).lower()


async def test_a_hung_llm_speaks_the_stored_answer_alerts_within_3_s_and_goes_on(
        pbx: LocalPbx, ari: AriClient, settings: Settings, engine: RAGEngine,
        desk: HitlDesk, quiet_caller: SyntheticCaller, dial: Dial) -> None:
    faulty = _faulty(settings, llm="hang")
    phraser = await asyncio.to_thread(Phraser, "", settings.cache_dir)
    async with running_controller(faulty, ari, engine, desk, phraser) as controller, \
            quiet_caller.dial(dial) as line:
        await _greeted(line)
        audio_s, alert_s, heard = await _faulted_turn(
            controller, line, "How do I get a refund?", "llm-timeout")
        _report("llm=hang", audio_s, alert_s)
        assert audio_s < HANG_S and alert_s < HANG_S
        assert "original payment method" in heard.lower(), heard  # the stored answer
        # the hung generation still holds the model: the stored answer, at once
        assert "card" in (await _next_turn_is_answered(controller, line)).lower()


@pytest.fixture
async def recorder(engine: RAGEngine) -> AsyncIterator[CallRecorder]:
    recorder = CallRecorder(engine.db).start()
    yield recorder
    await asyncio.to_thread(recorder.stop)


async def test_a_phone_that_stops_sending_rtp_is_hung_up_after_dead_peer_s_and_recorded(
        pbx: LocalPbx, ari: AriClient, settings: Settings, engine: RAGEngine,
        recorder: CallRecorder, quiet_caller: SyntheticCaller, dial: Dial) -> None:
    short = dataclasses.replace(settings, media=dataclasses.replace(
        settings.media, dead_peer_s=DEAD_PEER_S))
    async with running_controller(short, ari, engine, sinks=[recorder.record]) as controller, \
            quiet_caller.dial(dial) as line:
        started = await controller.until(CallStarted)
        await _greeted(line)
        await asyncio.sleep(DEAD_PEER_S + 2)  # a silent caller: its phone still sends RTP
        assert controller.app.has_call(started.call_id)
        await line.call.rtp.go_silent()  # the phone dies: no RTP, no BYE
        silent_at = time.monotonic()
        ended = await controller.until(CallEnded, DEAD_PEER_S + 5)
        after_s = time.monotonic() - silent_at
        print(f"\ndead peer: ended {after_s:.2f} s after the last RTP packet "
              f"(media.dead_peer_s = {DEAD_PEER_S})")
        assert ended.reason == DEAD_PEER
        assert DEAD_PEER_S <= after_s <= DEAD_PEER_S + 1.5
        async with asyncio.timeout(3):  # hung up through ARI: the phone got a BYE
            await line.call.ended.wait()
    assert await asyncio.to_thread(recorder.flush)
    stored = await asyncio.to_thread(get_call, engine.db, started.call_id)
    assert stored is not None
    call, _ = stored
    assert (call.disposition, call.end_reason) == ("dead_peer", DEAD_PEER)
    assert await ari.channels() == []
