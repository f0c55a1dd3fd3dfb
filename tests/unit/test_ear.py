"""The ear, sans-IO: frames and our playback's state in, decisions out (no tasks, no I/O).

A fake VAD calls a frame speech when it is loud, so each test states exactly what the
caller did, 20 ms at a time, and asserts what the ear decided.
"""

from __future__ import annotations

import numpy as np
import pytest

from smartpbx_ari.call.ear import (
    HOLD_MAX_S,
    BargeIn,
    DropTranscript,
    Ear,
    EarEvent,
    HoldPlayback,
    Playback,
    ResumePlayback,
    StartTranscript,
    TurnEnded,
)
from smartpbx_ari.config import TurnSettings
from smartpbx_ari.media.turn import rms
from smartpbx_ari.media.vad import VadWindow

pytestmark = pytest.mark.unit
FRAME = 320  # 20 ms at 16 kHz
LOUD, CLICK, QUIET = 3000, 2000, 0
SILENT = Playback()
TALKING = Playback(playing=True, level=1000.0)


class LoudVad:
    """Speech is a frame above 1000 rms that is not a lone click (marked by its level)."""

    def process(self, chunk: np.ndarray) -> list[VadWindow]:
        level = rms(chunk)
        speech = level > 1000 and abs(level - CLICK) > 1
        return [VadWindow(len(chunk) / 16000, 1.0 if speech else 0.0, speech)]


def frames(level: int, ms: int) -> list[np.ndarray]:
    return [np.full(FRAME, level, np.int16) for _ in range(ms // 20)]


def hear(ear: Ear, audio: list[np.ndarray], playback: Playback = SILENT) -> list[EarEvent]:
    """Feed frames; the playback follows what the ear decided, as the player does."""
    out: list[EarEvent] = []
    for frame in audio:
        events = ear.hear(frame, playback)
        for event in events:
            if isinstance(event, HoldPlayback | ResumePlayback):
                playback = Playback(playback.playing, isinstance(event, HoldPlayback),
                                    playback.level)
            elif isinstance(event, BargeIn):
                playback = SILENT
        out += events
    return out


@pytest.fixture
def ear() -> Ear:
    return Ear(TurnSettings(), LoudVad())


def test_a_question_then_silence_is_transcribed_eagerly_then_ends_the_turn(ear: Ear) -> None:
    events = hear(ear, frames(QUIET, 400) + frames(LOUD, 1000))
    assert events == []
    events = hear(ear, frames(QUIET, 160))
    assert [type(e) for e in events] == [StartTranscript]
    events += hear(ear, frames(QUIET, 240))
    assert [type(e) for e in events] == [StartTranscript, TurnEnded]
    start, end = events
    assert isinstance(start, StartTranscript) and isinstance(end, TurnEnded)
    # both carry the pre-roll (300 ms before the onset) and the whole question
    assert len(start.audio) >= (300 + 1000) * 16
    assert np.count_nonzero(end.audio) == 1000 * 16
    assert len(end.audio) > len(start.audio)


def test_speech_after_a_pause_drops_the_eager_transcript(ear: Ear) -> None:
    events = hear(ear, frames(LOUD, 600) + frames(QUIET, 200) + frames(LOUD, 400)
                  + frames(QUIET, 400))
    assert [type(e) for e in events] == [StartTranscript, DropTranscript, StartTranscript,
                                         TurnEnded]
    end = events[-1]
    assert isinstance(end, TurnEnded) and np.count_nonzero(end.audio) == 1000 * 16


def test_a_blip_too_short_for_an_utterance_ends_no_turn(ear: Ear) -> None:
    events = hear(ear, frames(LOUD, 160) + frames(QUIET, 600))
    assert TurnEnded not in [type(e) for e in events]
    assert [type(e) for e in events][-1:] in ([], [DropTranscript])


def test_the_caller_talking_over_us_holds_the_answer_at_once_then_stops_it(ear: Ear) -> None:
    events = hear(ear, frames(LOUD, 20), TALKING)
    assert [type(e) for e in events] == [HoldPlayback]  # loud: paused within one frame
    events += hear(ear, frames(LOUD, 20), Playback(True, True, TALKING.level))
    assert [type(e) for e in events] == [HoldPlayback, BargeIn]  # 30 ms of speech: stop


def test_the_interruption_is_the_next_turn(ear: Ear) -> None:
    events = hear(ear, frames(LOUD, 800) + frames(QUIET, 400), TALKING)
    assert [type(e) for e in events] == [HoldPlayback, BargeIn, StartTranscript, TurnEnded]


def test_a_click_over_our_answer_pauses_it_briefly_then_it_goes_on(ear: Ear) -> None:
    events = hear(ear, frames(CLICK, 20) + frames(QUIET, 300), TALKING)
    assert [type(e) for e in events] == [HoldPlayback, ResumePlayback]
    assert ear.held_s == 0.0 and HOLD_MAX_S <= 0.3


def test_our_own_echo_neither_pauses_nor_interrupts_us(ear: Ear) -> None:
    loud_answer = Playback(playing=True, level=20000.0)
    echo = 2500  # speech to the VAD, but well below our own level
    assert hear(ear, frames(echo, 1000) + frames(QUIET, 400), loud_answer) == []


def test_narrowband_frames_are_heard_at_16_khz() -> None:
    ear = Ear(TurnSettings(), LoudVad(), rate=8000)
    events = hear(ear, [np.full(160, LOUD, np.int16) for _ in range(50)]
                  + [np.zeros(160, np.int16) for _ in range(20)])
    end = events[-1]
    assert isinstance(end, TurnEnded)
    assert 0.9 * 16000 <= np.count_nonzero(end.audio) <= 1.1 * 16000  # 1 s, upsampled
