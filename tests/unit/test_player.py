"""Packetizer numbering (pure) and the paced player's real-time schedule."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartpbx_ari.media.codecs import codec
from smartpbx_ari.media.player import FrameSchedule, PacedPlayer, RtpPacketizer, split_frames
from smartpbx_ari.media.rtp import PT_PCMU, RtpPacket

pytestmark = pytest.mark.unit

FRAME = bytes(160)


def ulaw_packetizer(seq: int = 100, ts: int = 1000) -> RtpPacketizer:
    return RtpPacketizer(PT_PCMU, 0x1234, 160, 160, first_sequence=seq, first_timestamp=ts)


class FakeClock:
    """Moves only when a packet is sent, so the player never has to wait."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_player() -> tuple[PacedPlayer, list[RtpPacket], FakeClock]:
    clock, sent = FakeClock(), []

    def send(data: bytes) -> None:
        sent.append(RtpPacket.parse(data))
        clock.now += 0.02

    return PacedPlayer(send, ulaw_packetizer(), clock=clock), sent, clock


# Packetizer (sans-IO)


def test_packets_number_and_stamp_consecutively() -> None:
    p = ulaw_packetizer()
    p.start_talkspurt()
    packets = [RtpPacket.parse(p.packetize(FRAME)) for _ in range(3)]
    assert [x.sequence_number for x in packets] == [100, 101, 102]
    assert [x.timestamp for x in packets] == [1000, 1160, 1320]
    assert [x.marker for x in packets] == [True, False, False]
    assert {(x.payload_type, x.ssrc, x.payload) for x in packets} == {(PT_PCMU, 0x1234, FRAME)}


def test_skip_moves_the_timestamp_only() -> None:
    p = ulaw_packetizer()
    p.packetize(FRAME)
    p.skip(50)
    packet = RtpPacket.parse(p.packetize(FRAME))
    assert (packet.sequence_number, packet.timestamp) == (101, 1000 + 51 * 160)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(1, 5))
def test_numbers_wrap(seq: int, ts: int, n: int) -> None:
    p = ulaw_packetizer(seq, ts)
    packets = [RtpPacket.parse(p.packetize(FRAME)) for _ in range(n)]
    assert [x.sequence_number for x in packets] == [(seq + i) & 0xFFFF for i in range(n)]
    assert [x.timestamp for x in packets] == [(ts + 160 * i) & 0xFFFFFFFF for i in range(n)]


def test_event_packets_keep_their_timestamp_and_own_payload_type() -> None:
    p = ulaw_packetizer()
    start = p.timestamp
    packets = [RtpPacket.parse(p.packetize_event(101, b"\x05\x0a\x00\xa0", start,
                                                 marker=i == 0)) for i in range(2)]
    assert [(x.payload_type, x.timestamp, x.marker) for x in packets] == [
        (101, 1000, True), (101, 1000, False)]
    assert [x.sequence_number for x in packets] == [100, 101]
    assert p.timestamp == 1000  # the sender moves time on with skip()


def test_schedule_is_drift_free_and_catches_up_without_a_burst() -> None:
    schedule = FrameSchedule(0.02, max_lag_frames=3)
    schedule.start(10.0)
    for _ in range(5):
        schedule.advance()
    assert schedule.sent == 5 and schedule.due() == pytest.approx(10.1)
    assert schedule.catch_up(10.1 + 0.05) == 0  # 2.5 frames late: within the slack
    assert schedule.catch_up(10.1 + 0.1) == 5  # 5 frames late: skip them
    assert schedule.due() == pytest.approx(10.2) and schedule.sent == 5
    with pytest.raises(ValueError, match="positive"):
        FrameSchedule(0.0)


def test_for_codec_takes_fixed_starting_numbers() -> None:
    p = RtpPacketizer.for_codec(codec("g722"), 7, first_sequence=5, first_timestamp=9)
    packet = RtpPacket.parse(p.packetize(bytes(160)))
    assert (packet.payload_type, packet.sequence_number, packet.timestamp) == (9, 5, 9)
    assert p.timestamp == 9 + 160


def test_random_start_and_frame_size_check() -> None:
    starts = {RtpPacketizer(0, 1, 160, 160).sequence_number for _ in range(20)}
    assert len(starts) > 1  # RFC 3550: random initial numbers
    with pytest.raises(ValueError, match="expected 160"):
        ulaw_packetizer().packetize(bytes(159))


def test_split_frames_pads_with_silence() -> None:
    frames = split_frames(b"\x01" * 330, 160, codec("ulaw").silence_byte)
    assert [len(f) for f in frames] == [160, 160, 160]
    assert frames[2] == b"\x01" * 10 + b"\xff" * 150
    assert split_frames(b"", 160, 0xFF) == []


# Player, with a clock that only moves when a packet goes out


async def test_continuity_across_two_plays_and_marker_per_play() -> None:
    player, sent, _ = fake_player()
    assert await player.play([FRAME] * 3) == 3
    assert await player.play([FRAME] * 2) == 2
    assert [x.sequence_number for x in sent] == [100, 101, 102, 103, 104]
    assert [x.timestamp for x in sent] == [1000 + 160 * i for i in range(5)]
    assert [x.marker for x in sent] == [True, False, False, True, False]
    assert player.frames_sent == 5


async def test_timestamp_follows_wall_time_across_a_pause() -> None:
    player, sent, clock = fake_player()
    await player.play([FRAME] * 3)
    clock.now += 1.0  # a second of silence between two answers
    await player.play([FRAME])
    assert sent[3].timestamp - sent[2].timestamp == 160 * (1 + 50)
    assert sent[3].sequence_number == sent[2].sequence_number + 1


async def test_falling_behind_resyncs_instead_of_bursting() -> None:
    clock, sent = FakeClock(), []
    stall = {3: 0.2}  # the loop stalls 200 ms after the 4th frame

    def send(data: bytes) -> None:
        sent.append(RtpPacket.parse(data))
        clock.now += 0.02 + stall.get(len(sent) - 1, 0.0)

    player = PacedPlayer(send, ulaw_packetizer(), clock=clock)
    await player.play([FRAME] * 6)
    assert player.late_resyncs == 1
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(sent)]
    assert gaps == [160, 160, 160, 160 * 11, 160]  # the stall's 10 frames are skipped


async def test_play_while_playing_is_refused() -> None:
    player = PacedPlayer(lambda _: None, ulaw_packetizer())
    task = asyncio.create_task(player.play([FRAME] * 100))
    await asyncio.sleep(0)
    assert player.playing
    with pytest.raises(RuntimeError, match="already playing"):
        await player.play([FRAME])
    player.stop()
    await task
    assert not player.playing


# Player against the real clock: these check a schedule, so they take real time.


@pytest.mark.slow
async def test_pacing_250_frames_real_clock() -> None:
    stamps: list[float] = []
    player = PacedPlayer(lambda _: stamps.append(time.monotonic()), ulaw_packetizer())
    start = time.monotonic()
    assert await player.play([FRAME] * 250) == 250
    elapsed = time.monotonic() - start
    mean_interval = (stamps[-1] - stamps[0]) / 249
    assert abs(mean_interval - 0.020) <= 0.001
    assert abs(elapsed - 5.0) <= 0.040
    assert player.late_resyncs == 0


async def test_stop_returns_within_30ms() -> None:
    player = PacedPlayer(lambda _: None, ulaw_packetizer())
    task = asyncio.create_task(player.play([FRAME] * 500))
    await asyncio.sleep(0.2)
    stopped_at = time.monotonic()
    player.stop()
    sent = await task
    assert time.monotonic() - stopped_at <= 0.030
    assert 5 <= sent <= 15  # about 0.2 s worth, nowhere near 500
    assert not player.playing


async def test_stop_interrupts_a_source_that_is_waiting() -> None:
    closed = asyncio.Event()

    async def slow_tts() -> AsyncIterator[bytes]:
        try:
            yield FRAME
            await asyncio.Event().wait()  # synthesis stuck
            yield FRAME
        finally:
            closed.set()

    player = PacedPlayer(lambda _: None, ulaw_packetizer())
    task = asyncio.create_task(player.play(slow_tts()))
    await asyncio.sleep(0.05)
    stopped_at = time.monotonic()
    player.stop()
    assert await task == 1
    assert time.monotonic() - stopped_at <= 0.030
    assert closed.is_set()  # the producer was closed, its cleanup ran


async def test_async_source_is_played_in_full() -> None:
    async def tts() -> AsyncIterator[bytes]:
        for i in range(4):
            yield bytes([i]) * 160

    player, sent, _ = fake_player()
    assert await player.play(tts()) == 4
    assert [x.payload[0] for x in sent] == [0, 1, 2, 3]


def test_stop_when_idle_is_harmless() -> None:
    player = PacedPlayer(lambda _: None, ulaw_packetizer())
    player.stop()
    assert not player.playing


async def test_hold_pauses_and_resume_goes_on_without_a_burst() -> None:
    sent: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    player = PacedPlayer(lambda p: sent.append((loop.time(), p)),
                         RtpPacketizer(0, 1, 160, 160, first_sequence=0, first_timestamp=0))
    play = asyncio.create_task(player.play([bytes(160)] * 20))
    await asyncio.sleep(0.1)
    player.hold()
    assert player.held
    await asyncio.sleep(0.02)
    paused_at = len(sent)
    await asyncio.sleep(0.2)
    assert len(sent) == paused_at  # nothing leaves while held
    player.resume()
    assert await asyncio.wait_for(play, 2) == 20
    gaps = [b - a for (a, _), (b, _) in zip(sent[paused_at:], sent[paused_at + 1 :], strict=False)]
    assert max(gaps) < 0.035  # paced on, no burst of the held-back frames
    stamps = [RtpPacket.parse(p).timestamp for _, p in sent]
    assert stamps[paused_at] - stamps[paused_at - 1] >= 160 * 10  # the pause is in the timeline


async def test_a_hold_stops_the_frame_waiting_for_its_slot() -> None:
    """Held between two slots: the next frame does not leave (a barge-in is 20 ms
    sooner), for several holds at different points of the 20 ms."""
    for offset in (0.003, 0.009, 0.015):
        sent: list[bytes] = []
        player = PacedPlayer(sent.append, RtpPacketizer(0, 1, 160, 160))
        play = asyncio.create_task(player.play([bytes(160)] * 50))
        await asyncio.sleep(0.1 + offset)
        player.hold()
        at_hold = len(sent)
        await asyncio.sleep(0.06)
        assert len(sent) == at_hold, offset
        player.stop()
        await asyncio.wait_for(play, 0.5)


async def test_stop_while_held_returns_at_once() -> None:
    player = PacedPlayer(lambda p: None, RtpPacketizer(0, 1, 160, 160))
    play = asyncio.create_task(player.play([bytes(160)] * 100))
    await asyncio.sleep(0.05)
    player.hold()
    await asyncio.sleep(0.05)
    player.stop()
    sent = await asyncio.wait_for(play, 0.1)
    assert sent < 10
    assert not player.held and not player.playing
