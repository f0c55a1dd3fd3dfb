"""Turn and barge-in state machines, driven by plain (seconds, is_speech) sequences."""

from __future__ import annotations

import numpy as np
import pytest

from smartpbx_ari.media.turn import (
    BargeInDetector,
    SpeechEnded,
    SpeechStarted,
    TurnDetector,
    TurnEvent,
    UtteranceTooShort,
    rms,
)

pytestmark = pytest.mark.unit

CHUNK = 0.02


def feed(detector: TurnDetector, pattern: str) -> list[tuple[int, TurnEvent]]:
    """'S' = a 20 ms speech chunk, '.' = a 20 ms silence chunk; events with their index."""
    return [(i, event) for i, c in enumerate(pattern)
            for event in detector.process(CHUNK, c == "S")]


def test_speech_start_needs_start_speech_s() -> None:
    d = TurnDetector()  # 0.12 s = 6 chunks
    events = feed(d, "SSSSS")
    assert events == [] and not d.in_speech
    [(index, started)] = feed(d, "S")
    assert index == 0 and isinstance(started, SpeechStarted)
    assert started.lead_s == pytest.approx(0.12)
    assert d.in_speech


def test_onset_interrupted_by_silence_starts_over() -> None:
    d = TurnDetector()
    assert feed(d, "SSSSS.SSSSS") == []
    assert not d.in_speech


def test_utterance_ends_after_end_silence() -> None:
    d = TurnDetector()
    events = feed(d, "S" * 25 + "." * 30)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    index, ended = events[1]
    assert index == 25 + 29  # the 30th silent chunk completes 0.6 s
    assert isinstance(ended, SpeechEnded)
    assert ended.duration_s == pytest.approx(0.5)
    assert ended.silence_s == pytest.approx(0.6)
    assert not ended.truncated
    assert not d.in_speech


def test_one_chunk_short_of_end_silence_stays_in_speech() -> None:
    d = TurnDetector()
    events = feed(d, "S" * 25 + "." * 29)
    assert [type(e) for _, e in events] == [SpeechStarted]
    assert d.in_speech


def test_pause_shorter_than_end_silence_keeps_one_utterance() -> None:
    d = TurnDetector()
    events = feed(d, "S" * 20 + "." * 25 + "S" * 20 + "." * 30)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded)
    assert ended.duration_s == pytest.approx(1.3)  # 0.4 speech + 0.5 pause + 0.4 speech


def test_flickering_vad_inside_speech_is_one_utterance() -> None:
    d = TurnDetector()
    events = feed(d, "S" * 8 + "S.S..S.S...S" * 5 + "." * 30)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]


def test_short_blip_is_discarded() -> None:
    d = TurnDetector()  # min utterance 0.25 s
    events = feed(d, "S" * 8 + "." * 30)
    assert [type(e) for _, e in events] == [SpeechStarted, UtteranceTooShort]
    discarded = events[1][1]
    assert isinstance(discarded, UtteranceTooShort)
    assert discarded.duration_s == pytest.approx(0.16)


def test_exactly_min_utterance_counts_despite_float_sums() -> None:
    d = TurnDetector(min_utterance_s=0.26)
    assert isinstance(feed(d, "S" * 13 + "." * 30)[-1][1], SpeechEnded)  # 13 * 0.02
    assert isinstance(feed(d, "S" * 12 + "." * 30)[-1][1], UtteranceTooShort)


def test_two_utterances_in_a_row() -> None:
    d = TurnDetector()
    events = feed(d, ("S" * 20 + "." * 30) * 2)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded] * 2


def test_monologue_is_cut_at_max_utterance() -> None:
    d = TurnDetector(max_utterance_s=1.0)
    events = feed(d, "S" * 60)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded, SpeechStarted]
    index, cut = events[1]
    assert index == 49
    assert isinstance(cut, SpeechEnded) and cut.truncated
    assert cut.duration_s == pytest.approx(1.0)
    assert d.in_speech  # the caller is still talking: a new utterance has begun


def test_uneven_chunk_sizes_are_summed() -> None:
    d = TurnDetector()
    assert d.process(0.032, True) == []
    assert d.process(0.032, True) == []
    assert d.process(0.032, True) == []
    [started] = d.process(0.032, True)  # 0.128 s >= 0.12 s
    assert isinstance(started, SpeechStarted)
    for _ in range(6):
        assert d.process(0.032, True) == []
    for _ in range(18):
        assert d.process(0.032, False) == []  # 0.576 s of silence
    [ended] = d.process(0.032, False)  # 0.608 s
    assert isinstance(ended, SpeechEnded)
    assert ended.duration_s == pytest.approx(0.32)


def test_one_large_chunk_starts_speech() -> None:
    d = TurnDetector()
    [started] = d.process(0.5, True)
    assert isinstance(started, SpeechStarted) and started.lead_s == 0.5


def test_reset_drops_the_utterance() -> None:
    d = TurnDetector()
    feed(d, "S" * 20)
    d.reset()
    assert not d.in_speech
    assert feed(d, "." * 40) == []


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="end_silence_s"):
        TurnDetector(end_silence_s=0)
    with pytest.raises(ValueError, match="chunk_seconds"):
        TurnDetector().process(-0.02, True)


# Barge-in


def barge(detector: BargeInDetector, chunks: list[tuple[bool, float, float]]) -> list[int]:
    return [i for i, (speech, caller, playback) in enumerate(chunks)
            if detector.process(CHUNK, speech, caller, playback)]


def test_barge_in_after_min_speech() -> None:
    d = BargeInDetector()  # 0.1 s = 5 chunks
    assert barge(d, [(True, 3000.0, 1000.0)] * 8) == [4]
    assert d.triggered


def test_barge_in_latches_until_reset() -> None:
    d = BargeInDetector()
    assert barge(d, [(True, 3000.0, 0.0)] * 5) == [4]
    assert barge(d, [(True, 3000.0, 0.0)] * 10) == []
    d.reset()
    assert not d.triggered
    assert barge(d, [(True, 3000.0, 0.0)] * 5) == [4]


def test_short_burst_is_not_barge_in() -> None:
    d = BargeInDetector()
    pattern = ([(True, 3000.0, 0.0)] * 4 + [(False, 3000.0, 0.0)]) * 5
    assert barge(d, pattern) == []


def test_our_own_echo_does_not_barge_in() -> None:
    # The VAD hears our voice coming back, 10 dB under what we send.
    d = BargeInDetector()
    assert barge(d, [(True, 3000.0 / 3.2, 3000.0)] * 50) == []


def test_caller_louder_than_echo_barges_in_over_playback() -> None:
    d = BargeInDetector()
    echo_then_caller = [(True, 900.0, 3000.0)] * 10 + [(True, 2500.0, 3000.0)] * 5
    assert barge(d, echo_then_caller) == [14]


def test_energy_gate_can_be_disabled() -> None:
    d = BargeInDetector(echo_ratio=None)
    assert barge(d, [(True, 10.0, 3000.0)] * 5) == [4]


def test_vad_negative_never_barges_in_however_loud() -> None:
    d = BargeInDetector()
    assert barge(d, [(False, 30000.0, 0.0)] * 50) == []


def test_rms() -> None:
    assert rms(np.zeros(0, dtype=np.int16)) == 0.0
    assert rms(np.full(160, -1000, dtype=np.int16)) == pytest.approx(1000.0)
    assert rms(np.array([32767, -32768], dtype=np.int16)) == pytest.approx(32767.5, abs=1)
