"""Sans-IO reorder buffer for inbound RTP: packets in, packets in sequence order out.

It holds at most ``depth`` packets waiting for a missing one, so a packet may arrive up
to ``depth`` places late and still be delivered in order; after that the gap is given
up as lost and a straggler is dropped as late. Playout timing is not its job: the
caller's audio path consumes packets as they come out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .rtp import RtpPacket

# RFC 3550 A.1's bounds: a jump larger than this is a new sequence space, not loss.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
_SKIPPED_MEMORY = 256  # skipped numbers kept to tell a late packet from a duplicate


def _delta(a: int, b: int) -> int:
    """Signed distance from ``b`` to ``a`` in 16-bit sequence space."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


@dataclass
class JitterStats:
    received: int = 0
    reordered: int = 0  # arrived after a newer packet, still delivered in order
    duplicates: int = 0
    late: int = 0  # dropped: came after its gap was given up, or a lone far-off stray
    lost: int = 0  # sequence numbers skipped over
    resyncs: int = 0  # new SSRC or a jump in sequence numbers


class JitterBuffer:
    def __init__(self, depth: int = 3) -> None:
        if depth < 0:
            raise ValueError(f"depth must not be negative, got {depth}")
        self.depth = depth
        self.stats = JitterStats()
        self._pending: dict[int, RtpPacket] = {}
        self._expected: int | None = None  # None while priming with the first packets
        self._highest: int | None = None
        self._ssrc: int | None = None
        self._skipped: deque[int] = deque(maxlen=_SKIPPED_MEMORY)
        self._probe: RtpPacket | None = None

    def push(self, pkt: RtpPacket) -> list[RtpPacket]:
        self.stats.received += 1
        out = self._check_resync(pkt)
        if self._probe is pkt:
            return out
        self._accept(pkt)
        return out + self._release()

    def flush(self) -> list[RtpPacket]:
        """Deliver everything held, in order (end of call, or before a resync)."""
        out: list[RtpPacket] = []
        while self._pending:
            if self._expected is None or self._expected not in self._pending:
                self._skip_to_earliest()
            out += self._drain()
        return out

    def _check_resync(self, pkt: RtpPacket) -> list[RtpPacket]:
        if self._ssrc is not None and pkt.ssrc != self._ssrc:
            self._drop_probe()
            return self._resync()
        near = self._highest is None or (
            -MAX_MISORDER <= _delta(pkt.sequence_number, self._highest) <= MAX_DROPOUT)
        if near:
            self._drop_probe()
            return []
        return self._probe_jump(pkt)

    def _probe_jump(self, pkt: RtpPacket) -> list[RtpPacket]:
        # Far away: believe it only if the next packet follows it (RFC 3550 A.1).
        probe = self._probe
        if probe is None or _delta(pkt.sequence_number, probe.sequence_number) != 1:
            self._drop_probe()
            self._probe = pkt
            return []
        self._probe = None
        out = self._resync()
        self._accept(probe)
        return out

    def _drop_probe(self) -> None:
        if self._probe is not None:
            self.stats.late += 1
            self._probe = None

    def _resync(self) -> list[RtpPacket]:
        out = self.flush()
        self.stats.resyncs += 1
        self._expected = self._highest = None
        self._skipped.clear()
        return out

    def _accept(self, pkt: RtpPacket) -> None:
        seq = pkt.sequence_number
        self._ssrc = pkt.ssrc
        if self._is_old(seq):
            return
        if seq in self._pending:
            self.stats.duplicates += 1
            return
        if self._highest is not None and _delta(seq, self._highest) < 0:
            self.stats.reordered += 1
        else:
            self._highest = seq
        self._pending[seq] = pkt

    def _is_old(self, seq: int) -> bool:
        if self._expected is None or _delta(seq, self._expected) >= 0:
            return False
        if seq in self._skipped:
            self.stats.late += 1
        else:
            self.stats.duplicates += 1
        return True

    def _release(self) -> list[RtpPacket]:
        out = self._drain()
        while len(self._pending) > self.depth:
            self._skip_to_earliest()
            out += self._drain()
        return out

    def _drain(self) -> list[RtpPacket]:
        out: list[RtpPacket] = []
        while self._expected is not None and self._expected in self._pending:
            out.append(self._pending.pop(self._expected))
            self._expected = (self._expected + 1) & 0xFFFF
        return out

    def _skip_to_earliest(self) -> None:
        ref = self._highest if self._highest is not None else 0
        earliest = min(self._pending, key=lambda s: _delta(s, ref))
        if self._expected is not None:
            gap = _delta(earliest, self._expected)
            self._skipped.extend((self._expected + i) & 0xFFFF for i in range(gap))
            self.stats.lost += gap
        self._expected = earliest
