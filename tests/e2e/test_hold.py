"""The live hold through the real Asterisk: an unsure question puts the caller on hold with
an operator alerted (the real HITL desk); the caller hears music and updates, never a long
silence, and asking for a person on hold goes to the operators' queue at once, not when
the wait runs out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.call.hitl import HitlDesk
from smartpbx_ari.config import Settings
from smartpbx_ari.events import AlertHeard, AlertRaised, HandedOff, Said
from smartpbx_ari.sipcaller.caller import Dial, Line, SyntheticCaller
from smartpbx_ari.sipcaller.silence import longest_silence
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.pbx import LocalPbx
from tests.e2e.conftest import Controller, running_controller

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]
HELD_S = 12.0  # past the first spoken update (agent.hold_update_s = 10)
UNANSWERABLE = "What will the weather be like in Paris tomorrow?"  # out of the demo's domain


@pytest.fixture
async def controller(pbx: LocalPbx, ari: AriClient, settings: Settings, engine: RAGEngine
                     ) -> AsyncIterator[Controller]:
    """The e2e controller with the HITL desk, as ``smartpbx serve`` wires it."""
    async with running_controller(settings, ari, engine, HitlDesk(lambda event: None)) as c:
        yield c


async def _held(controller: Controller, line: Line) -> AlertRaised:
    """Ask what the knowledge base cannot answer, until the agent holds the caller with an
    operator alert. A mishearing can lift such a question just over the floor of a
    clarifying question (heard as "... in pairs tomorrow?", confidence 0.061): the agent
    then asks which of its two nearest entries the caller means. The caller says neither
    and asks again, and after a "no" the agent does not offer twice: it holds."""
    said = await line.say(UNANSWERABLE)
    while True:
        event = await controller.events.next(20)
        if isinstance(event, AlertRaised):
            return event
        if isinstance(event, Said) and event.intent == "clarify":
            await line.wait_quiet(await line.wait_voice(said, 10) or said)
            said = await line.say("No, neither of those.")
            clarified = await controller.until(Said, 20)  # "could you say it another way?"
            assert clarified.intent == "clarify" and not clarified.hitl, clarified
            # the comma may end the turn at "No," (bench_pauses.py): the rest, a turn of
            # its own after the declined offer, is held at once; nothing to ask again
            with contextlib.suppress(TimeoutError):
                return await controller.until(AlertRaised, 4.0)
            await line.wait_quiet(await line.wait_voice(said, 10) or said)
            said = await line.say(UNANSWERABLE)


async def test_a_caller_on_hold_hears_music_and_asking_for_a_person_goes_to_the_queue(
    controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        alert = await _held(controller, line)
        assert alert.waiting and alert.reason == "low_confidence"
        held_from = time.monotonic()
        await asyncio.sleep(HELD_S)
        silence = longest_silence(list(line.call.rtp.received), held_from, time.monotonic())
        assert silence.seconds <= 5.0, f"the caller on hold heard {silence} of silence"
        said_at = await line.say("I want to talk to a person please.")
        said_wall = time.time() - (time.monotonic() - said_at)
        heard = await controller.until(AlertHeard, 10)
        assert heard.alert_id == alert.alert_id and "person" in heard.text.lower()
        handed = await controller.until(HandedOff, 10)
        assert handed.reason == "caller asked for a person"
        acted_s = handed.at - said_wall
        assert acted_s < 5.0, acted_s  # at once, not when the 25 s wait runs out
