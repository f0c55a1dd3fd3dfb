"""Graceful overload through the real Asterisk: beyond ``media.max_calls`` a caller hears
"all our lines are busy" and goes to the operators' queue at once, while the call in
progress is answered as before."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.config import Settings
from smartpbx_ari.events import CallStarted, HandedOff, Said
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.telephony.ari import AriClient
from smartpbx_ari.telephony.pbx import LocalPbx
from smartpbx_ari.telephony.stasis import ALL_BUSY
from tests.e2e.conftest import Controller, running_controller

pytestmark = [pytest.mark.e2e, pytest.mark.ai, pytest.mark.slow]


@pytest.fixture
async def controller(pbx: LocalPbx, ari: AriClient, settings: Settings, engine: RAGEngine
                     ) -> AsyncIterator[Controller]:
    """The e2e controller taking one call at a time."""
    one = dataclasses.replace(settings, media=dataclasses.replace(settings.media, max_calls=1))
    async with running_controller(one, ari, engine) as running:
        yield running


async def test_a_call_beyond_capacity_hears_all_lines_busy_and_goes_to_the_queue(
    controller: Controller, caller: SyntheticCaller, dial: Dial, ari: AriClient
) -> None:
    async with caller.dial(dial) as first:
        started = await controller.until(CallStarted)
        await first.wait_quiet(await first.wait_voice(first.answered_at, 10) or 0)
        async with caller.dial(dial) as second:
            busy = await controller.until(CallStarted)
            assert busy.call_id != started.call_id
            handed = await controller.until(HandedOff, 10)
            assert (handed.call_id, handed.reason) == (busy.call_id, ALL_BUSY)
            acted_s = time.monotonic() - second.answered_at
            assert acted_s < 3.0, acted_s
            heard_at = await second.wait_voice(second.answered_at, 5)
            assert heard_at is not None, "the busy caller heard nothing"
            told = await second.transcribe(heard_at, await second.wait_quiet(heard_at))
            assert "busy" in told.lower(), told
            await asyncio.sleep(1.0)
            assert (await ari.channel(busy.call_id)).app_name == "Queue"
            # the call in progress is answered as before
            said_at = await first.say("How do I get a refund?")
            said = await controller.until(Said)
            assert (said.call_id, said.intent) == (started.call_id, "refund")
            assert await first.wait_voice(said_at, 10) is not None
