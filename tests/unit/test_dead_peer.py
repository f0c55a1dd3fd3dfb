"""The dead-peer clock (telephony/dead_peer.py): packets, not audio, keep a call alive;
a call the caller's phone holds is never dead; an unknown count proves nothing."""

from __future__ import annotations

import pytest

from smartpbx_ari.telephony.ari_events import ChannelHold, ChannelUnhold, parse_event
from smartpbx_ari.telephony.dead_peer import PeerClock, poll_period

pytestmark = pytest.mark.unit


def test_a_count_that_stops_moving_for_dead_s_is_a_dead_peer() -> None:
    clock = PeerClock(3.0)
    assert not clock.sample(0.0, 100, held=False)
    assert not clock.sample(1.0, 150, held=False)  # 50 packets a second: alive
    assert not clock.sample(2.0, 150, held=False)
    assert not clock.sample(3.9, 150, held=False)  # silent 2.9 s since it last moved
    assert clock.sample(4.0, 150, held=False)
    assert clock.silent_s(4.0) == 3.0


def test_any_packet_restarts_the_clock() -> None:
    clock = PeerClock(3.0)
    clock.sample(0.0, 10, held=False)
    assert not clock.sample(2.9, 10, held=False)
    assert not clock.sample(3.0, 11, held=False)  # one packet (a comfort noise, a key)
    assert not clock.sample(5.9, 11, held=False)
    assert clock.sample(6.0, 11, held=False)


def test_a_held_call_is_never_dead_and_its_clock_starts_at_the_unhold() -> None:
    clock = PeerClock(3.0)
    clock.sample(0.0, 10, held=False)
    for t in (3.0, 10.0, 60.0):
        assert not clock.sample(t, 10, held=True)  # a phone on hold may send nothing
    assert not clock.sample(62.9, 10, held=False)
    assert clock.sample(63.0, 10, held=False)


def test_an_unknown_count_proves_nothing() -> None:
    clock = PeerClock(3.0)
    clock.sample(0.0, 10, held=False)
    assert not clock.sample(5.0, None, held=False)  # ARI did not answer: not dead
    assert not clock.sample(7.9, 10, held=False)
    assert clock.sample(8.0, 10, held=False)


def test_the_poll_is_a_tenth_of_the_period_within_bounds() -> None:
    assert poll_period(30.0) == 2.0
    assert poll_period(5.0) == 0.5
    assert poll_period(1.0) == 0.25


def test_hold_and_unhold_events_are_typed() -> None:
    channel = {"id": "c1", "name": "PJSIP/caller-1", "state": "Up"}
    held = parse_event({"type": "ChannelHold", "application": "smartpbx", "channel": channel})
    unheld = parse_event({"type": "ChannelUnhold", "application": "smartpbx",
                          "channel": channel})
    assert isinstance(held, ChannelHold) and held.channel.id == "c1"
    assert isinstance(unheld, ChannelUnhold)
