"""The ear, sans-IO: frames and our playback's state in, decisions out (no tasks, no I/O).

A fake VAD calls a frame speech when it is loud, so each test states exactly what the
caller did, 20 ms at a time, and asserts what the ear decided.
"""

from __future__ import annotations

import numpy as np
import pytest

from smartpbx_ari.call.ear import (
    HOLD_MAX_S,
    VOICED_DB,
    WORD_S,
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
from smartpbx_ari.media.onset import GAP_S, MIN_PREROLL_S, NoiseFloor
from smartpbx_ari.media.turn import rms
from smartpbx_ari.media.vad import VadWindow

pytestmark = pytest.mark.unit
FRAME = 320  # 20 ms at 16 kHz
LOUD, CLICK, QUIET = 3000, 2000, 0
SILENT = Playback()
TALKING = Playback(playing=True, level=1000.0)


class LoudVad:
    """Speech is a frame above 1000 rms that is not a lone click (marked by its level);
    each 20 ms frame is one window."""

    rate = 16000

    def split(self, chunk: np.ndarray) -> list[np.ndarray]:
        return [chunk]

    def score(self, windows: list[np.ndarray]) -> list[float]:
        return [1.0 if rms(w) > 1000 and abs(rms(w) - CLICK) > 1 else 0.0 for w in windows]

    def judge(self, probabilities: list[float]) -> list[VadWindow]:
        return [VadWindow(FRAME / 16000, p, p > 0.5) for p in probabilities]


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


@pytest.mark.smoke
def test_a_question_then_silence_is_transcribed_eagerly_then_ends_the_turn(ear: Ear) -> None:
    events = hear(ear, frames(QUIET, 400) + frames(LOUD, 1000))
    assert events == []
    eager_ms = TurnSettings().eager_silence_ms
    events = hear(ear, frames(QUIET, eager_ms + 20))  # (decided in 32 ms VAD windows)
    assert [type(e) for e in events] == [StartTranscript]
    events += hear(ear, frames(QUIET, 400 - eager_ms - 20))
    assert [type(e) for e in events] == [StartTranscript, TurnEnded]
    start, end = events
    assert isinstance(start, StartTranscript) and isinstance(end, TurnEnded)
    # both carry the pre-roll (from before the onset) and the whole question
    assert np.count_nonzero(start.audio) == 1000 * 16
    assert len(start.audio) >= (1000 + eager_ms) * 16 + np.argmax(start.audio != 0)
    assert np.argmax(start.audio != 0) >= 100 * 16
    assert np.count_nonzero(end.audio) == 1000 * 16
    assert len(end.audio) > len(start.audio)
    # the silence it waited out: the timer's (the end-of-turn stage on /metrics)
    assert end.pause_s == pytest.approx(TurnSettings().end_silence_ms / 1000)


def test_speech_after_a_pause_drops_the_eager_transcript(ear: Ear) -> None:
    events = hear(ear, frames(LOUD, 600) + frames(QUIET, 200) + frames(LOUD, 400)
                  + frames(QUIET, 400))
    assert [type(e) for e in events] == [StartTranscript, DropTranscript, StartTranscript,
                                         TurnEnded]
    end = events[-1]
    assert isinstance(end, TurnEnded) and np.count_nonzero(end.audio) == 1000 * 16


def test_a_blip_shorter_than_a_syllable_ends_no_turn(ear: Ear) -> None:
    assert WORD_S * 1000 > 120 > TurnSettings().start_speech_ms  # the VAD starts it
    events = hear(ear, frames(LOUD, 120) + frames(QUIET, 600))
    assert TurnEnded not in [type(e) for e in events]
    assert [type(e) for e in events][-1:] in ([], [DropTranscript])


class DoubtingVad(LoudVad):
    """Silero on a lower voice's short word over G.711: a loud frame scores 0.35; a frame
    at SURE scores 1.0."""

    def score(self, windows: list[np.ndarray]) -> list[float]:
        return [1.0 if rms(w) == SURE else 0.35 if rms(w) > 100 else 0.0 for w in windows]


SURE = 3300


def test_a_loud_word_the_vad_doubts_is_a_turn() -> None:
    """ "Two." by a lower voice over mu-law scored 0.2-0.45: energy says it is a voice."""
    ear = Ear(TurnSettings(), DoubtingVad())
    events = hear(ear, frames(QUIET, 400) + frames(LOUD, 240) + frames(QUIET, 600))
    assert [type(e) for e in events] == [StartTranscript, TurnEnded]
    end = events[-1]
    assert isinstance(end, TurnEnded) and np.count_nonzero(end.audio == LOUD) == 240 * 16


def test_doubted_audio_near_the_line_s_noise_or_over_our_answer_is_no_speech() -> None:
    noise, word = 200, 500  # the word 8 dB over the noise: under VOICED_DB
    assert 20 * np.log10(word / noise) < VOICED_DB
    ear = Ear(TurnSettings(), DoubtingVad())
    assert hear(ear, frames(noise, 1000) + frames(word, 400) + frames(noise, 600)) == []
    ear = Ear(TurnSettings(), DoubtingVad())
    events = hear(ear, frames(QUIET, 400) + frames(LOUD, 400) + frames(QUIET, 600), TALKING)
    assert {type(e) for e in events} == {HoldPlayback, ResumePlayback}  # no barge-in


def test_a_word_the_vad_heard_only_in_part_is_a_turn() -> None:
    """The VAD hears 120 ms of it (too short for an utterance), energy 200 ms: a word."""
    ear = Ear(TurnSettings(), DoubtingVad())
    events = hear(ear, frames(QUIET, 400) + frames(LOUD, 40) + frames(SURE, 120)
                  + frames(LOUD, 40) + frames(QUIET, 600))
    assert TurnSettings().min_utterance_ms > 200 > WORD_S * 1000
    end = events[-1]
    assert isinstance(end, TurnEnded)
    assert np.count_nonzero(end.audio) == 200 * 16


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


@pytest.mark.parametrize("preroll_ms", [200, 500])
def test_the_pre_roll_keeps_the_onset_the_vad_confirmed_late(preroll_ms: int) -> None:
    """A soft onset ("h", "f") the VAD does not call speech is kept as pre-roll: up to
    ``preroll_ms`` before the confirmed onset, less the start_speech_ms it took."""
    soft = 500  # audible, yet below the fake VAD's speech level
    ear = Ear(TurnSettings(preroll_ms=preroll_ms), LoudVad())
    events = hear(ear, frames(QUIET, 600) + frames(soft, 400) + frames(LOUD, 1000)
                  + frames(QUIET, 400))
    end = events[-1]
    assert isinstance(end, TurnEnded)
    kept_ms = np.count_nonzero(end.audio == soft) // 16
    assert kept_ms == min(400, preroll_ms - TurnSettings().start_speech_ms)
    assert np.count_nonzero(end.audio == LOUD) == 1000 * 16


def test_a_long_pre_roll_does_not_bring_back_the_previous_sentence() -> None:
    first, second = LOUD, 3500  # both speech to the fake VAD, told apart by level
    ear = Ear(TurnSettings(preroll_ms=1000), LoudVad())
    events = hear(ear, frames(QUIET, 400) + frames(first, 600) + frames(QUIET, 400)
                  + frames(second, 600) + frames(QUIET, 400))
    ends = [e for e in events if isinstance(e, TurnEnded)]
    assert len(ends) == 2
    assert np.count_nonzero(ends[1].audio == first) == 0
    assert np.count_nonzero(ends[1].audio == second) == 600 * 16


def test_a_long_pre_roll_reaches_over_a_soft_onset_in_line_noise_and_no_further() -> None:
    noise, soft = 300, 800  # soft: 8.5 dB over the line's noise, not speech to the VAD
    ear = Ear(TurnSettings(preroll_ms=1000), LoudVad())
    events = hear(ear, frames(noise, 2000) + frames(soft, 500) + frames(LOUD, 800)
                  + frames(noise, 400))
    end = events[-1]
    assert isinstance(end, TurnEnded)
    assert np.count_nonzero(end.audio == soft) == 500 * 16
    assert np.count_nonzero(end.audio == noise) // 16 < GAP_S * 1000 + 400  # + the tail


def test_our_echo_before_a_barge_in_is_kept_no_longer_than_the_fixed_pre_roll() -> None:
    echo = 2500  # speech to the VAD, under the echo gate (half our level); LOUD is over it
    ear = Ear(TurnSettings(preroll_ms=1000), LoudVad())
    events = hear(ear, frames(echo, 1000) + frames(LOUD, 800) + frames(QUIET, 400),
                  Playback(playing=True, level=5500.0))
    assert BargeIn in [type(e) for e in events]
    end = events[-1]
    assert isinstance(end, TurnEnded)
    assert 0 < np.count_nonzero(end.audio == echo) // 16 <= MIN_PREROLL_S * 1000


def test_the_noise_floor_drops_at_once_and_rises_slowly() -> None:
    floor = NoiseFloor(0.02)
    floor.update(1000.0)
    floor.update(100.0)
    assert floor.level == 100.0
    for _ in range(50):  # one second of speech
        floor.update(3000.0)
    assert 100.0 < floor.level < 100.0 * 10 ** (5 / 20)


def test_frames_taken_ahead_and_decided_at_once_decide_as_one_by_one() -> None:
    """A call that fell behind takes its piled-up frames, has their windows scored in one
    batch, then decides: the same events as frame by frame."""
    audio = frames(QUIET, 400) + frames(LOUD, 600) + frames(QUIET, 600) + frames(LOUD, 300)
    one_by_one = hear(Ear(TurnSettings(), LoudVad()), audio)
    ear = Ear(TurnSettings(), LoudVad())
    at_once: list[EarEvent] = []
    for start in range(0, len(audio), 7):  # seven frames at a time
        windows = [w for pcm in audio[start : start + 7] for w in ear.take(pcm, SILENT)[0]]
        at_once += ear.decide(ear.vad.score(windows), SILENT)
    assert [type(e) for e in at_once] == [type(e) for e in one_by_one] != []
    # the same pre-roll; at most the frames taken ahead of the end more
    ahead = next(e for e in at_once if isinstance(e, TurnEnded)).audio
    alone = next(e for e in one_by_one if isinstance(e, TurnEnded)).audio
    assert 0 <= len(ahead) - len(alone) < 7 * FRAME


def test_a_narrowband_vad_hears_the_line_s_own_frames_and_the_turn_is_16_khz() -> None:
    """Silero's 8 kHz mode takes a G.711 line's frames as they come; what the STT gets is
    upsampled, as from a 16 kHz VAD."""

    class Narrowband(LoudVad):
        rate = 8000

        def __init__(self) -> None:
            self.heard: list[int] = []

        def split(self, chunk: np.ndarray) -> list[np.ndarray]:
            self.heard.append(len(chunk))
            return [chunk]

    vad = Narrowband()
    ear = Ear(TurnSettings(), vad, rate=8000)
    line = [np.full(160, level, np.int16) for level in [QUIET] * 10 + [LOUD] * 30 + [QUIET] * 30]
    events = hear(ear, line)
    assert set(vad.heard) == {160}
    (end,) = [e for e in events if isinstance(e, TurnEnded)]
    assert abs(np.count_nonzero(np.abs(end.audio.astype(int) - LOUD) < 300) - 600 * 16) < 320


def test_a_vad_at_neither_the_line_s_rate_nor_16_khz_is_refused() -> None:
    class Odd(LoudVad):
        rate = 8000

    with pytest.raises(ValueError, match="8000 Hz"):
        Ear(TurnSettings(), Odd(), rate=16000)


def test_a_loud_frame_holds_our_answer_before_any_window_is_scored() -> None:
    """The hold does not wait for the VAD (batched with other calls, off the loop): a
    frame that completes no window still pauses us, and is not held twice."""

    class Unscored(LoudVad):
        def split(self, chunk: np.ndarray) -> list[np.ndarray]:
            return []

    ear = Ear(TurnSettings(), Unscored())
    windows, now = ear.take(frames(LOUD, 20)[0], TALKING)
    assert (windows, now) == ([], [HoldPlayback()])
    held = Playback(playing=True, held=True, level=TALKING.level)
    assert ear.take(frames(LOUD, 20)[0], held)[1] == []
    assert ear.take(frames(QUIET, 20)[0], TALKING)[1] == []
    loud_answer = Playback(playing=True, level=5000.0)
    echo = frames(600, 20)[0]  # above line noise, but our own voice back 18 dB down
    assert ear.take(echo, loud_answer)[1] == []
