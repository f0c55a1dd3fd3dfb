"""A caller whose phone stopped sending RTP without hanging up (crashed, lost its network,
a NAT binding closed): ``media.dead_peer_s`` without a packet from it and the call ends.

The packets counted are Asterisk's, on the caller's own channel (ARI ``rtp_statistics``,
``rxcount``): the External Media leg cannot tell, as the bridge's mixer sends it 50
packets a second whether the caller's phone sends or not. A silent caller is alive (a
phone sends RTP while its user says nothing: this counts packets, not audio); a phone
that holds the call (re-INVITE sendonly or inactive) may stop sending, so a held call is
never dead. :class:`PeerClock` decides (no I/O, no clock of its own); :func:`watch_peer`
polls Asterisk for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from smartpbx_ari.telephony.ari import AriClient, AriError

log = logging.getLogger(__name__)
POLLS_PER_PERIOD = 10  # the verdict comes at most dead_peer_s / 10 late ...
POLL_MIN_S, POLL_MAX_S = 0.25, 2.0  # ... polled between these


@dataclass
class PeerClock:
    """How long the peer has sent nothing, from samples of its packet count."""

    dead_s: float
    count: int | None = None
    since: float = 0.0  # when the count last moved (or the peer was last held)

    def sample(self, now: float, count: int | None, held: bool) -> bool:
        """True when the peer is dead: its count has not moved for ``dead_s``. ``count``
        None: unknown this time (Asterisk did not say), which proves nothing either way."""
        if held or count is None or count != self.count:
            self.since = now
            if count is not None:
                self.count = count
            return False
        return now - self.since >= self.dead_s

    def silent_s(self, now: float) -> float:
        return now - self.since


def poll_period(dead_s: float) -> float:
    return min(POLL_MAX_S, max(POLL_MIN_S, dead_s / POLLS_PER_PERIOD))


async def watch_peer(ari: AriClient, channel_id: str, dead_s: float,
                     held: Callable[[], bool]) -> float | None:
    """Poll until the caller's channel received no RTP for ``dead_s``: then how long it
    was silent; None: it cannot be watched (no such channel, or no RTP on it)."""
    clock, period = PeerClock(dead_s), poll_period(dead_s)
    clock.sample(time.monotonic(), None, held=True)
    while True:
        await asyncio.sleep(period)
        try:
            count: int | None = await ari.rtp_received(channel_id)
        except AriError as err:
            if err.status == 404:  # gone (its hang-up ends the call) or not an RTP channel
                return None
            count = None
        except (aiohttp.ClientError, OSError, TimeoutError) as err:  # the PBX watcher's
            log.debug("call=%s: RTP count unknown: %s", channel_id, err)
            count = None
        now = time.monotonic()
        if clock.sample(now, count, held()):
            return clock.silent_s(now)
