"""Reorder buffer: order restored within depth, duplicates and stragglers dropped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartpbx_ari.media.jitter import JitterBuffer, JitterStats
from smartpbx_ari.media.rtp import RtpPacket

pytestmark = pytest.mark.unit


def pkt(seq: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(sequence_number=seq & 0xFFFF, timestamp=seq * 160, ssrc=ssrc,
                     payload=bytes([seq & 0xFF]))


def run(buf: JitterBuffer, seqs: list[int], flush: bool = True) -> list[int]:
    out = [p.sequence_number for s in seqs for p in buf.push(pkt(s))]
    if flush:
        out += [p.sequence_number for p in buf.flush()]
    return out


def seqs_from(start: int, n: int) -> list[int]:
    return [(start + i) & 0xFFFF for i in range(n)]


@st.composite
def displaced(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """A sequence where no packet arrives more than ``depth`` places late."""
    depth = draw(st.integers(0, 6))
    n = draw(st.integers(1, 80))
    start = draw(st.integers(0, 0xFFFF))
    delays = draw(st.lists(st.integers(0, depth), min_size=n, max_size=n))
    order = sorted(range(n), key=lambda i: (i + delays[i], i))
    return depth, start, [(start + i) & 0xFFFF for i in order]


@given(displaced())
def test_reordering_within_depth_gives_sorted_output(case: tuple[int, int, list[int]]) -> None:
    depth, start, arrivals = case
    buf = JitterBuffer(depth)
    assert run(buf, arrivals) == seqs_from(start, len(arrivals))
    assert buf.stats.lost == buf.stats.late == buf.stats.duplicates == 0


@given(displaced(), st.data())
def test_duplicates_are_dropped_and_counted(case: tuple[int, int, list[int]],
                                            data: st.DataObject) -> None:
    depth, start, arrivals = case
    repeats = data.draw(st.lists(st.integers(0, len(arrivals) - 1), max_size=10))
    with_dups = list(arrivals)
    for r in sorted(repeats, reverse=True):
        with_dups.insert(r + 1, arrivals[r])  # resent right after the original
    buf = JitterBuffer(depth)  # a resend never takes a place in the buffer
    assert run(buf, with_dups) == seqs_from(start, len(arrivals))
    assert buf.stats.duplicates == len(repeats)
    assert buf.stats.received == len(with_dups)


@given(st.lists(st.integers(0, 100), max_size=60), st.integers(0, 5))
def test_output_is_always_increasing_and_unique(seqs: list[int], depth: int) -> None:
    buf = JitterBuffer(depth)
    out = run(buf, seqs)
    assert out == sorted(set(out))
    s = buf.stats
    assert len(out) + s.duplicates + s.late == s.received


def test_in_order_stream_is_released_after_priming() -> None:
    buf = JitterBuffer(depth=3)
    assert run(buf, [10, 11, 12], flush=False) == []
    assert run(buf, [13], flush=False) == [10, 11, 12, 13]
    assert run(buf, [14], flush=False) == [14]  # then no added delay


def test_swap_is_reordered() -> None:
    buf = JitterBuffer(depth=3)
    assert run(buf, [0, 1, 2, 3, 5, 4, 6], flush=False) == [0, 1, 2, 3, 4, 5, 6]
    assert buf.stats == JitterStats(received=7, reordered=1)


def test_gap_given_up_after_depth_packets_then_straggler_is_late() -> None:
    buf = JitterBuffer(depth=2)
    assert run(buf, [0, 1, 2], flush=False) == [0, 1, 2]
    assert run(buf, [4, 5], flush=False) == []  # waiting for 3
    assert run(buf, [6], flush=False) == [4, 5, 6]  # gave 3 up
    assert run(buf, [3], flush=False) == []
    assert buf.stats.lost == 1
    assert buf.stats.late == 1
    assert buf.stats.duplicates == 0


def test_duplicate_of_delivered_packet() -> None:
    buf = JitterBuffer(depth=0)
    assert run(buf, [7, 8, 8, 7, 9], flush=False) == [7, 8, 9]
    assert buf.stats.duplicates == 2 and buf.stats.late == 0


def test_wrap_around() -> None:
    buf = JitterBuffer(depth=2)
    arrivals = [65533, 65534, 0, 65535, 1, 2]
    assert run(buf, arrivals) == [65533, 65534, 65535, 0, 1, 2]
    assert buf.stats.reordered == 1


def test_flush_releases_held_packets_across_gaps() -> None:
    buf = JitterBuffer(depth=5)
    assert run(buf, [1, 2, 4, 7], flush=False) == []
    assert [p.sequence_number for p in buf.flush()] == [1, 2, 4, 7]
    assert buf.stats.lost == 3
    assert run(buf, [8], flush=False) == [8]  # numbering carries on after a flush


def test_new_ssrc_resyncs() -> None:
    buf = JitterBuffer(depth=1)
    assert run(buf, [100, 101, 102], flush=False) == [100, 101, 102]
    out = [p.sequence_number for s in (5000, 5001) for p in buf.push(pkt(s, ssrc=2))]
    assert out == [5000, 5001]
    assert buf.stats.resyncs == 1 and buf.stats.late == 0


def test_sequence_jump_needs_two_packets() -> None:
    buf = JitterBuffer(depth=0)
    assert run(buf, [10, 11, 20000], flush=False) == [10, 11]
    assert run(buf, [12], flush=False) == [12]  # the stray is dropped, stream goes on
    assert buf.stats.late == 1
    assert run(buf, [30000, 30001, 30002], flush=False) == [30000, 30001, 30002]
    assert buf.stats.resyncs == 1


def test_negative_depth_rejected() -> None:
    with pytest.raises(ValueError, match="depth"):
        JitterBuffer(-1)
