"""FastAGI routing through the real Asterisk: the dialplan asks our server before
Stasis; blocked, VIP, closed and language rules each take their path, and with the AGI
server down the call still reaches the AI (every other e2e test runs that way)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from smartpbx_ari.call.routing import Rule
from smartpbx_ari.config import Settings
from smartpbx_ari.events import CallStarted
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.sipcaller.errors import SipError
from smartpbx_ari.telephony.agi import AgiServer
from smartpbx_ari.telephony.ari import AriClient
from tests.e2e.conftest import Controller

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
async def rules(settings: Settings) -> AsyncIterator[list[Rule]]:
    current: list[Rule] = []

    async def load() -> list[Rule]:
        return list(current)

    server = await AgiServer(load, settings.agi.host, settings.agi.port).start()
    yield current
    await server.close()


async def test_language_by_dialled_number_reaches_the_stasis_app_and_asterisk(
    rules: list[Rule], controller: Controller, caller: SyntheticCaller, dial: Dial,
    ari: AriClient,
) -> None:
    rules.append(Rule("language", "1000", "ko-KR"))
    async with caller.dial(dial):
        started = await controller.until(CallStarted)
        # Asterisk's own prompts (the queue's, "all lines busy") come from sounds/ko/
        assert await ari.get_variable(started.call_id, "CHANNEL(language)") == "ko"
    assert started.language == "ko-KR"


async def test_a_blocked_number_is_refused(
    rules: list[Rule], controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    rules.append(Rule("block", "caller"))
    with pytest.raises(SipError):
        async with caller.dial(dial):
            pass
    assert controller.events.queue.empty()  # never reached the AI


async def test_a_vip_goes_straight_to_the_operators(
    rules: list[Rule], controller: Controller, caller: SyntheticCaller, dial: Dial,
    ari: AriClient,
) -> None:
    rules.append(Rule("vip", "caller"))
    async with caller.dial(dial):
        await asyncio.sleep(0.5)
        [channel] = [c for c in await ari.channels() if c.name.startswith("PJSIP/caller")]
        assert channel.app_name == "Queue"
    assert controller.events.queue.empty()


async def test_outside_business_hours_the_caller_hears_a_message_and_the_call_ends(
    rules: list[Rule], controller: Controller, caller: SyntheticCaller, dial: Dial
) -> None:
    tomorrow = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[(datetime.now().weekday()
                                                                  + 1) % 7]
    rules.append(Rule("hours", "", f"{tomorrow} 09:00-18:00"))
    async with caller.dial(dial) as line:
        assert await line.wait_voice(line.answered_at, 5) is not None  # the message
        await asyncio.wait_for(line.call.ended.wait(), 15)  # then Asterisk hangs up
    assert controller.events.queue.empty()


async def test_with_the_agi_server_down_the_call_still_reaches_the_ai(
    controller: Controller, caller: SyntheticCaller, dial: Dial, settings: Settings
) -> None:
    import socket

    with socket.socket() as probe:  # nothing listens on the AGI port
        assert probe.connect_ex((settings.agi.host, settings.agi.port)) != 0
    async with caller.dial(dial) as line:
        started = await controller.until(CallStarted)
        assert await line.wait_voice(line.answered_at, 5) is not None  # the greeting
    assert started.language == ""
