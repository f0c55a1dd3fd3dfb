"""Our ARI client against the real Asterisk: typed errors, and a WebSocket that survives
Asterisk restarting (reconnect with backoff, then a Connected event to reconcile on)."""

from __future__ import annotations

import asyncio

import pytest

from smartpbx_ari.telephony.ari import AriClient, AriError
from smartpbx_ari.telephony.ari_events import Connected, Disconnected
from smartpbx_ari.telephony.pbx import LocalPbx

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_errors_carry_status_and_asterisks_message(ari: AriClient) -> None:
    with pytest.raises(AriError) as err:
        await ari.answer("no-such-channel")
    assert err.value.status == 404
    assert "Channel not found" in err.value.message


async def test_websocket_comes_back_after_asterisk_restarts(ari: AriClient, pbx: LocalPbx
                                                             ) -> None:
    events = ari.events()
    first = await asyncio.wait_for(anext(events), 10)
    assert isinstance(first, Connected) and first.first
    await asyncio.to_thread(pbx.down)
    gone = await asyncio.wait_for(anext(events), 10)
    assert isinstance(gone, Disconnected) and not ari.connected.is_set()
    assert not await ari.reachable()
    await asyncio.to_thread(pbx.up)
    again = await asyncio.wait_for(anext(events), 30)
    assert isinstance(again, Connected) and not again.first
    assert ari.connected.is_set()
    await events.aclose()  # type: ignore[attr-defined]
