"""The turn model's part in the ear, frame by frame: a short pause asks it, its verdict ends
the turn at once or leaves the pause to the longer cap, and a verdict the caller has
already overtaken by speaking again is moot. A fake model answers after a set delay.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from smartpbx_ari.call.ear import (
    BargeIn,
    CheckTurn,
    DropTranscript,
    Ear,
    EarEvent,
    HoldPlayback,
    Playback,
    StartTranscript,
    TurnEnded,
    TurnResumed,
)
from smartpbx_ari.config import ConfigError, TurnSettings
from smartpbx_ari.media.turn import SpeechEnded, TurnDetector
from tests.unit.test_ear import LOUD, QUIET, SILENT, TALKING, LoudVad, frames

pytestmark = pytest.mark.unit
Model = Callable[[np.ndarray], float]
COMPLETE: Model = lambda audio: 0.9  # noqa: E731
INCOMPLETE: Model = lambda audio: 0.1  # noqa: E731
# the turn timing these cases exercise: asked early, and asked again when unsure
FAST = TurnSettings(eager_silence_ms=60, model_silence_ms=60, model_recheck_ms=180)


class Caller:
    """Feeds frames to a judged ear; each CheckTurn is answered by ``model`` after
    ``delay`` frames (the inference running while the caller's audio keeps coming)."""

    def __init__(self, model: Model, delay: int = 0, settings: TurnSettings | None = None,
                 ) -> None:
        self.ear = Ear(settings or FAST, LoudVad(), judged=True)
        self.model, self.delay = model, delay
        self.pending: list[tuple[int, CheckTurn]] = []  # (frames left, question)
        self.events: list[tuple[int, EarEvent]] = []  # (frame index, event)
        self.frame = 0

    def hear(self, audio: list[np.ndarray], playback: Playback = SILENT) -> list[EarEvent]:
        start = len(self.events)
        for pcm in audio:
            self.frame += 1
            self._record(self.ear.hear(pcm, playback))
            if any(isinstance(e, BargeIn) for _, e in self.events[start:]):
                playback = SILENT
            elif any(isinstance(e, HoldPlayback) for _, e in self.events[start:]):
                playback = Playback(True, True, playback.level)
            self._answer()
        return [e for _, e in self.events[start:]]

    def _record(self, events: list[EarEvent]) -> None:
        for event in events:
            self.events.append((self.frame, event))
            if isinstance(event, CheckTurn):
                self.pending.append((self.delay, event))

    def _answer(self) -> None:
        due = [(n, c) for n, c in self.pending if n <= 0]
        self.pending = [(n - 1, c) for n, c in self.pending if n > 0]
        for _, check in due:
            self._record(self.ear.judge(check.pause, self.model(check.audio)))

    def ended_at_ms(self) -> int:
        ends = [i for i, e in self.events if isinstance(e, TurnEnded)]
        return ends[-1] * 20


def kinds(events: list[EarEvent]) -> list[type]:
    return [type(e) for e in events]


def test_a_complete_question_ends_the_turn_as_soon_as_the_model_says_so() -> None:
    caller = Caller(COMPLETE, delay=4)  # the model answers 80 ms after it is asked
    assert caller.hear(frames(QUIET, 400) + frames(LOUD, 1000)) == []
    events = caller.hear(frames(QUIET, 600))
    assert kinds(events) == [StartTranscript, CheckTurn, TurnEnded]
    check, end = events[1], events[2]
    assert isinstance(check, CheckTurn) and isinstance(end, TurnEnded)
    assert np.count_nonzero(check.audio) == 1000 * 16  # the whole question, asked about
    assert np.count_nonzero(end.audio) == 1000 * 16
    # asked at the pause's first model_silence_ms (in 32 ms VAD windows), answered 80 ms
    # later: well before the 400 ms timer
    asked_ms, silence_ms = FAST.model_silence_ms, caller.ended_at_ms() - 1400
    assert asked_ms + 80 <= silence_ms < asked_ms + 80 + 40 < FAST.end_silence_ms
    assert end.pause_s * 1000 == pytest.approx(silence_ms, abs=20)  # what the turn waited


def test_an_incomplete_sentence_waits_for_the_cap() -> None:
    caller = Caller(INCOMPLETE)
    caller.hear(frames(LOUD, 1000))
    events = caller.hear(frames(QUIET, 1400))
    assert kinds(events) == [StartTranscript, CheckTurn, CheckTurn]  # asked twice a pause
    first, again = events[1], events[2]
    assert isinstance(first, CheckTurn) and isinstance(again, CheckTurn)
    assert len(again.audio) - len(first.audio) >= (180 - 64) * 16  # with more of the pause
    events = caller.hear(frames(QUIET, 200))
    assert kinds(events) == [TurnEnded]
    assert 1500 <= caller.ended_at_ms() - 1000 < 1540  # max_silence_ms, to a VAD window


def test_a_pause_mid_sentence_keeps_one_turn_for_the_whole_sentence() -> None:
    # "I'd like to change ..." is incomplete, "... my delivery address." is not
    caller = Caller(lambda audio: 0.9 if np.count_nonzero(audio) >= 1700 * 16 else 0.1,
                    delay=4)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 700) + frames(LOUD, 900)
                         + frames(QUIET, 600))
    assert kinds(events) == [StartTranscript, CheckTurn, CheckTurn, DropTranscript,
                             StartTranscript, CheckTurn, TurnEnded]
    end = events[-1]
    assert isinstance(end, TurnEnded) and np.count_nonzero(end.audio) == (800 + 900) * 16


def test_a_verdict_the_caller_overtook_by_speaking_again_is_moot() -> None:
    caller = Caller(COMPLETE, delay=10)  # a slow model: 200 ms
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 240) + frames(LOUD, 600))
    assert kinds(events) == [StartTranscript, CheckTurn, DropTranscript]  # not ended
    events = caller.hear(frames(QUIET, 600))
    assert kinds(events) == [StartTranscript, CheckTurn, TurnEnded]
    end = events[-1]
    assert isinstance(end, TurnEnded) and np.count_nonzero(end.audio) == (800 + 600) * 16


def test_a_stale_verdict_on_an_earlier_pause_is_ignored() -> None:
    ear = Ear(FAST, LoudVad(), judged=True)
    events: list[EarEvent] = []
    for pcm in frames(LOUD, 600) + frames(QUIET, 200) + frames(LOUD, 200) + frames(QUIET, 200):
        events += ear.hear(pcm, SILENT)
    checks = [e for e in events if isinstance(e, CheckTurn)]
    assert len(checks) == 2 and checks[0].pause != checks[1].pause
    assert ear.judge(checks[0].pause, 0.99) == []
    assert kinds(ear.judge(checks[1].pause, 0.99)) == [TurnEnded]
    assert ear.judge(checks[1].pause, 0.99) == []  # the turn is over: nothing to end


def test_the_threshold_is_the_setting_and_must_be_exceeded() -> None:
    settings = TurnSettings(model_threshold=0.7)
    at = Caller(lambda audio: 0.7, settings=settings)
    at.hear(frames(LOUD, 800) + frames(QUIET, 400))
    assert TurnEnded not in kinds([e for _, e in at.events])
    above = Caller(lambda audio: 0.71, settings=settings)
    above.hear(frames(LOUD, 800) + frames(QUIET, 400))
    assert TurnEnded in kinds([e for _, e in above.events])


def test_the_model_is_asked_at_the_configured_silences() -> None:
    caller = Caller(INCOMPLETE, settings=TurnSettings(model_ask_ms=300, model_silence_ms=300,
                                                      model_recheck_ms=600))
    caller.hear(frames(LOUD, 800))
    assert kinds(caller.hear(frames(QUIET, 280))) == [StartTranscript]
    assert kinds(caller.hear(frames(QUIET, 40))) == [CheckTurn]
    assert kinds(caller.hear(frames(QUIET, 260))) == []
    assert kinds(caller.hear(frames(QUIET, 60))) == [CheckTurn]
    assert kinds(caller.hear(frames(QUIET, 900))) == [TurnEnded]  # the cap


def test_asked_ahead_the_model_judges_the_rest_of_the_pause_as_silence() -> None:
    """Asked at model_ask_ms, the model hears the utterance and the pause up to
    model_silence_ms: what has passed of it, then silence for the rest; the recheck is
    asked as far ahead of its own silence."""
    settings = TurnSettings(model_ask_ms=100, model_silence_ms=300, model_recheck_ms=600)
    caller = Caller(INCOMPLETE, settings=settings)
    caller.hear(frames(LOUD, 800))
    assert kinds(caller.hear(frames(QUIET, 80))) == [StartTranscript]  # the VAD's 20 ms
    (first,) = caller.hear(frames(QUIET, 20))  # windows: 100 ms
    assert isinstance(first, CheckTurn)
    heard = caller.frame * 320  # every sample so far is of the utterance
    assert len(first.audio) == heard + (300 - 100) * 16
    assert np.count_nonzero(first.audio) == 800 * 16 and not first.audio[heard:].any()
    assert kinds(caller.hear(frames(QUIET, 280))) == []  # 380 ms
    assert kinds(caller.hear(frames(QUIET, 20))) == [CheckTurn]  # 400 ms: 600 - 200


def test_a_complete_verdict_asked_ahead_ends_the_turn_when_the_pause_gets_there() -> None:
    """Asked at 60 ms and answered at once, the verdict waits for model_silence_ms: the
    pause ends the turn no sooner than if the model had been asked there."""
    settings = TurnSettings(model_ask_ms=60, model_silence_ms=180)
    caller = Caller(COMPLETE, settings=settings)
    caller.hear(frames(LOUD, 800))
    assert kinds(caller.hear(frames(QUIET, 80))) == [StartTranscript, CheckTurn]
    assert kinds(caller.hear(frames(QUIET, 80))) == []  # 160 ms of silence
    events = caller.hear(frames(QUIET, 20))
    assert kinds(events) == [TurnEnded]
    assert caller.ended_at_ms() - 800 == 180
    assert isinstance(events[0], TurnEnded) and events[0].pause_s >= 0.18
    assert np.count_nonzero(events[0].audio) == 800 * 16


def test_a_verdict_asked_ahead_is_moot_once_the_caller_goes_on() -> None:
    settings = TurnSettings(model_ask_ms=60, model_silence_ms=180)
    caller = Caller(lambda audio: 0.9 if np.count_nonzero(audio) > 1000 * 16 else 0.8,
                    settings=settings)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 120) + frames(LOUD, 400))
    assert kinds(events) == [StartTranscript, CheckTurn, DropTranscript]  # said complete
    events = caller.hear(frames(QUIET, 400))
    assert kinds(events) == [StartTranscript, CheckTurn, TurnEnded]
    end = events[-1]
    assert isinstance(end, TurnEnded) and np.count_nonzero(end.audio) == (800 + 400) * 16


def test_a_verdict_asked_ahead_that_comes_late_ends_the_turn_when_it_comes() -> None:
    caller = Caller(COMPLETE, delay=10, settings=TurnSettings())  # 200 ms an answer
    caller.hear(frames(LOUD, 800))
    caller.hear(frames(QUIET, 600))
    asked = [i * 20 - 800 for i, e in caller.events if isinstance(e, CheckTurn)]
    assert len(asked) == 1 and 60 <= asked[0] < 100
    assert asked[0] + 200 <= caller.ended_at_ms() - 800 < asked[0] + 200 + 40


def test_without_a_recheck_the_model_is_asked_once_a_pause() -> None:
    caller = Caller(INCOMPLETE, settings=TurnSettings(model_recheck_ms=0))
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 1600))
    assert kinds(events) == [StartTranscript, CheckTurn, TurnEnded]


def test_the_second_ask_waits_for_the_first_verdict() -> None:
    """A model slower than the recheck point is not asked twice at once (the CPU it
    shares with the STT): the second question follows the first verdict."""
    caller = Caller(INCOMPLETE, delay=10)  # 200 ms an answer
    caller.hear(frames(LOUD, 800) + frames(QUIET, 1000))
    asked = [i * 20 - 800 for i, e in caller.events if isinstance(e, CheckTurn)]
    assert len(asked) == 2
    assert asked[0] < FAST.model_recheck_ms < asked[0] + 200 <= asked[1]


def test_a_complete_verdict_at_the_second_ask_ends_the_turn_there() -> None:
    answers = iter([0.1, 0.9])  # unsure at the pause's start, sure a little later
    caller = Caller(lambda audio: next(answers), delay=2)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 400))
    assert kinds(events) == [StartTranscript, CheckTurn, CheckTurn, TurnEnded]
    recheck_ms = FAST.model_recheck_ms
    assert recheck_ms + 40 <= caller.ended_at_ms() - 800 < recheck_ms + 40 + 40


def test_a_turn_taken_up_again_by_a_few_words_is_answered_whole() -> None:
    """Words after a judged turn, shorter than a turn of their own (min_utterance_ms),
    continue it: the turn they continue was made moot, so they are not dropped as a click."""
    caller = Caller(COMPLETE)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 100) + frames(LOUD, 160)
                         + frames(QUIET, 300))
    assert kinds(events)[:4] == [StartTranscript, CheckTurn, TurnEnded, TurnResumed]
    assert DropTranscript not in kinds(events) and kinds(events)[-1] is TurnEnded
    last = events[-1]
    assert isinstance(last, TurnEnded) and np.count_nonzero(last.audio) == (800 + 160) * 16


def test_the_caller_talking_over_us_is_still_a_barge_in_and_then_a_judged_turn() -> None:
    caller = Caller(COMPLETE)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 400), TALKING)
    assert kinds(events) == [HoldPlayback, BargeIn, StartTranscript, CheckTurn, TurnEnded]


def test_a_caller_going_on_after_the_model_ended_the_turn_resumes_it() -> None:
    caller = Caller(COMPLETE, delay=2)  # "I put the wrong address on my order, | can I ..."
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 320) + frames(LOUD, 600)
                         + frames(QUIET, 400))
    assert kinds(events) == [StartTranscript, CheckTurn, TurnEnded, TurnResumed,
                             StartTranscript, CheckTurn, TurnEnded]
    first, last = events[2], events[-1]
    assert isinstance(first, TurnEnded) and isinstance(last, TurnEnded)
    assert np.count_nonzero(last.audio) == (800 + 600) * 16  # both parts, in one turn
    assert np.array_equal(last.audio[: len(first.audio)], first.audio)  # and in order


def test_speech_over_our_answer_to_a_judged_turn_is_a_new_turn_not_a_resumption() -> None:
    """The caller asked, we began answering; a new question over the answer (a barge-in,
    within the resume cap, after the answer's first moments) is a turn of its own: it does
    not carry the first one."""
    caller = Caller(COMPLETE, delay=2)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 300))
    assert kinds(events)[-1] is TurnEnded
    first = events[-1]
    assert isinstance(first, TurnEnded)
    played_ms = FAST.resume_into_answer_ms + 100  # past the answer's first moments
    assert (300 + played_ms) / 1000 < FAST.max_silence_ms / 1000  # but within the cap
    events = caller.hear(frames(QUIET, played_ms), TALKING)  # our answer plays
    events += caller.hear(frames(LOUD, 600) + frames(QUIET, 400), TALKING)
    assert TurnResumed not in kinds(events)
    assert BargeIn in kinds(events) and kinds(events)[-1] is TurnEnded
    last = events[-1]
    assert isinstance(last, TurnEnded)
    assert np.count_nonzero(last.audio) <= 600 * 16  # the new question alone


def test_going_on_in_our_answer_s_first_moments_stops_it_and_resumes_the_turn() -> None:
    """ "Stop, | and tell me about payment": the model took "Stop," for a turn and our
    answer began as the caller went on. We yield, and the next turn is the whole sentence."""
    caller = Caller(COMPLETE, delay=2)
    first = caller.hear(frames(LOUD, 400) + frames(QUIET, 200))[-1]
    assert isinstance(first, TurnEnded)
    events = caller.hear(frames(QUIET, 100) + frames(LOUD, 200), TALKING)  # over our answer
    assert kinds(events) == [HoldPlayback, BargeIn, TurnResumed]
    events = caller.hear(frames(LOUD, 400) + frames(QUIET, 300))
    assert kinds(events)[-1] is TurnEnded
    last = events[-1]
    assert isinstance(last, TurnEnded)
    assert np.array_equal(last.audio[: len(first.audio)], first.audio)  # both parts
    assert np.count_nonzero(last.audio) >= (400 + 400) * 16


def test_a_caller_who_pauses_a_whole_second_resumes_an_answer_begun_at_once() -> None:
    """No caller cut off by a pause of up to 1 s (#12): the model ended the turn 0.2 s
    into the pause and our answer began at once; at 1 s the caller goes on, 0.8 s into
    it. We yield, and the next turn is the whole sentence."""
    caller = Caller(COMPLETE, delay=2)
    first = caller.hear(frames(LOUD, 800) + frames(QUIET, 200))[-1]
    assert isinstance(first, TurnEnded)
    events = caller.hear(frames(QUIET, 800), TALKING)  # our answer plays
    events += caller.hear(frames(LOUD, 200), TALKING)  # the caller goes on over it
    assert kinds(events) == [HoldPlayback, BargeIn, TurnResumed]
    events = caller.hear(frames(LOUD, 400) + frames(QUIET, 300))
    last = events[-1]
    assert isinstance(last, TurnEnded)
    assert np.array_equal(last.audio[: len(first.audio)], first.audio)  # both parts
    assert np.count_nonzero(last.audio) >= (800 + 600) * 16


def test_a_voice_begun_within_the_first_moments_resumes_though_the_vad_confirms_it_after(
) -> None:
    """ "How do I get a refund, | for an item ...": the caller goes on 0.9 s into our
    answer, but the VAD is slow on the onset ("f") and confirms it only past
    turn.resume_into_answer_ms. The voice began within it: we yield, and the next turn is
    the whole sentence, its weak onset too (a CI failure heard "an item ..." alone)."""
    caller = Caller(COMPLETE, delay=2)
    first = caller.hear(frames(LOUD, 800) + frames(QUIET, 200))[-1]
    assert isinstance(first, TurnEnded)
    weak = 800  # over our echo (a hold), below the VAD's speech
    events = caller.hear(frames(QUIET, 900) + frames(weak, 200) + frames(LOUD, 200), TALKING)
    assert FAST.resume_into_answer_ms < 900 + 200  # confirmed past the first moments
    assert kinds(events)[0] is HoldPlayback and kinds(events)[-2:] == [BargeIn, TurnResumed]
    events = caller.hear(frames(LOUD, 400) + frames(QUIET, 300))
    last = events[-1]
    assert isinstance(last, TurnEnded)
    assert np.array_equal(last.audio[: len(first.audio)], first.audio)  # both parts
    assert np.count_nonzero(last.audio == weak) == 200 * 16  # with the onset
    assert np.count_nonzero(last.audio == LOUD) == (800 + 600) * 16


def test_a_voice_begun_after_the_first_moments_is_a_new_turn_however_loud_before(
) -> None:
    """The same onset begun past turn.resume_into_answer_ms is a barge-in of its own."""
    caller = Caller(COMPLETE, delay=2)
    caller.hear(frames(LOUD, 800) + frames(QUIET, 200))
    events = caller.hear(frames(QUIET, FAST.resume_into_answer_ms + 40) + frames(800, 200)
                         + frames(LOUD, 200), TALKING)
    assert BargeIn in kinds(events) and TurnResumed not in kinds(events)


def test_a_blip_after_the_model_ended_the_turn_ends_it_again_as_it_was() -> None:
    caller = Caller(COMPLETE)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 300) + frames(LOUD, 40)
                         + frames(QUIET, 600))
    assert kinds(events) == [StartTranscript, CheckTurn, TurnEnded, TurnResumed, TurnEnded]
    first, again = events[2], events[-1]
    assert isinstance(first, TurnEnded) and isinstance(again, TurnEnded)
    assert np.array_equal(again.audio[: len(first.audio)], first.audio)  # nothing lost
    assert np.count_nonzero(again.audio) == (800 + 40) * 16
    # what each waited out: the pause the model was asked at (no delay); the silence
    # before the blip and the window after it
    asked_s = FAST.model_silence_ms / 1000
    assert (first.pause_s, again.pause_s) == pytest.approx((asked_s, 0.3 + 0.02))


def test_after_a_blip_the_turn_may_still_be_resumed_within_the_cap() -> None:
    caller = Caller(COMPLETE)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 300) + frames(LOUD, 40)
                         + frames(QUIET, 40) + frames(LOUD, 600) + frames(QUIET, 400))
    assert kinds(events) == [StartTranscript, CheckTurn, TurnEnded, TurnResumed, TurnEnded,
                             TurnResumed, StartTranscript, CheckTurn, TurnEnded]
    last = events[-1]
    assert isinstance(last, TurnEnded)
    assert np.count_nonzero(last.audio) == (800 + 40 + 600) * 16


def test_a_turn_ended_before_a_hand_back_is_neither_resumed_nor_re_ended() -> None:
    caller = Caller(COMPLETE)
    caller.hear(frames(LOUD, 800) + frames(QUIET, 300))  # ended by the model
    assert caller.ear.cut() == []  # the operator hung up: the AI listens again
    events = caller.hear(frames(LOUD, 40) + frames(QUIET, 600))  # a click within the cap
    assert events == []
    events = caller.hear(frames(LOUD, 600) + frames(QUIET, 400))
    assert kinds(events) == [StartTranscript, CheckTurn, TurnEnded]
    last = events[-1]
    assert isinstance(last, TurnEnded) and np.count_nonzero(last.audio) == 600 * 16


def test_a_hand_back_mid_sentence_ends_that_turn_and_the_next_reaches_no_further_back() -> None:
    caller = Caller(INCOMPLETE)
    caller.hear(frames(LOUD, 800))
    (end,) = caller.ear.cut()  # the operator hangs up while the caller talks
    assert isinstance(end, TurnEnded) and np.count_nonzero(end.audio) == 800 * 16
    events = caller.hear(frames(LOUD, 600) + frames(QUIET, 1600))
    assert kinds(events) == [StartTranscript, CheckTurn, CheckTurn, TurnEnded]
    last = events[-1]
    assert isinstance(last, TurnEnded) and np.count_nonzero(last.audio) == 600 * 16


def test_speech_after_the_cap_is_a_turn_of_its_own() -> None:
    caller = Caller(COMPLETE)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 1600) + frames(LOUD, 600)
                         + frames(QUIET, 400))
    assert TurnResumed not in kinds(events)
    last = events[-1]
    assert isinstance(last, TurnEnded) and np.count_nonzero(last.audio) == 600 * 16


def test_a_turn_the_cap_ended_is_never_resumed() -> None:
    caller = Caller(INCOMPLETE)
    events = caller.hear(frames(LOUD, 800) + frames(QUIET, 1600) + frames(LOUD, 600))
    assert kinds(events) == [StartTranscript, CheckTurn, CheckTurn, TurnEnded]


SOFT = 500  # audible over the quiet line, yet not speech to the fake VAD


def test_words_dropped_as_too_short_are_kept_when_the_caller_goes_on() -> None:
    """Silero may hear only a moment of a low voice's first words ("Can I get a": 0.19 s
    over G.711) and the model end it there: too short to be a turn, if less than WORD_S
    of it is loud either. The caller goes on, confirmed as speech more than the pre-roll
    later: the turn still begins where energy says the first words did."""
    caller = Caller(COMPLETE)
    events = caller.hear(frames(QUIET, 400) + frames(LOUD, 100) + frames(SOFT, 1200)
                         + frames(LOUD, 600) + frames(QUIET, 400))
    assert kinds(events) == [StartTranscript, CheckTurn, DropTranscript,
                             StartTranscript, CheckTurn, TurnEnded]
    end = events[-1]
    assert isinstance(end, TurnEnded)
    assert np.count_nonzero(end.audio == LOUD) == 700 * 16
    assert np.count_nonzero(end.audio == SOFT) == 1200 * 16


@pytest.mark.parametrize("between", [frames(QUIET, 600), frames(SOFT, 1600)],
                         ids=["a quiet gap", "more than the cap"])
def test_a_dropped_cough_is_not_brought_back_across_a_gap_or_the_cap(
        between: list[np.ndarray]) -> None:
    caller = Caller(COMPLETE)
    events = caller.hear(frames(QUIET, 400) + frames(LOUD, 100) + between
                         + frames(SOFT, 300) + frames(LOUD, 600) + frames(QUIET, 400))
    (end,) = [e for e in events if isinstance(e, TurnEnded)]
    assert np.count_nonzero(end.audio == LOUD) == 600 * 16


def test_without_the_model_the_silence_timer_ends_the_turn_and_nothing_is_asked() -> None:
    ear = Ear(FAST, LoudVad())  # judged=False: the model is missing
    events: list[EarEvent] = []
    for pcm in frames(LOUD, 800) + frames(QUIET, 400):
        events += ear.hear(pcm, SILENT)
    assert kinds(events) == [StartTranscript, TurnEnded]


def test_turn_detector_end_finishes_the_utterance_with_its_trailing_silence() -> None:
    detector = TurnDetector(start_speech_s=0.1, end_silence_s=1.5)
    assert detector.end() == []  # nothing in progress
    for _ in range(10):
        detector.process(0.05, True)
    for _ in range(4):
        detector.process(0.05, False)
    (event,) = detector.end()
    assert isinstance(event, SpeechEnded)
    assert event.duration_s == pytest.approx(0.5) and event.silence_s == pytest.approx(0.2)
    assert not detector.in_speech


@pytest.mark.parametrize(("field", "value"), [("model_threshold", 1.0),
                                              ("model_threshold", 0.0),
                                              ("model_silence_ms", 0),
                                              ("model_silence_ms", 2000),
                                              ("model_ask_ms", 0),
                                              ("model_ask_ms", 200),
                                              ("model_recheck_ms", 60),
                                              ("model_recheck_ms", 1600),
                                              ("unsure_silence_ms", 100),
                                              ("unsure_silence_ms", 1600),
                                              ("resume_into_answer_ms", -1),
                                              ("resume_into_answer_ms", 1600)])
def test_bad_turn_model_settings_name_the_key(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"turn.{field}"):
        TurnSettings(**{field: value})



@pytest.mark.parametrize("value", [20, 500])
def test_a_busy_silence_outside_eager_to_end_silence_names_its_key(value: int) -> None:
    with pytest.raises(ConfigError, match="turn.busy_silence_ms"):
        TurnSettings(busy_silence_ms=value)


def test_while_the_stt_is_busy_the_pause_s_first_moments_are_not_speculated_on() -> None:
    """Another call's utterance decoding: the eager transcript and the model's first
    question wait for busy_silence_ms (they would only slow that decode, or wait); once
    the STT is free they start at the next window."""
    busy = True
    caller = Caller(INCOMPLETE)
    caller.ear = Ear(FAST, LoudVad(), judged=True, busy=lambda: busy)
    caller.hear(frames(LOUD, 800))
    assert kinds(caller.hear(frames(QUIET, 140))) == []  # 60 ms passed, busy
    assert kinds(caller.hear(frames(QUIET, 20))) == [StartTranscript, CheckTurn]  # 160 ms
    caller.hear(frames(LOUD, 400))
    assert kinds(caller.hear(frames(QUIET, 100))) == []
    busy = False
    assert kinds(caller.hear(frames(QUIET, 20))) == [StartTranscript, CheckTurn]


def test_on_spare_cpu_the_pause_is_speculated_on_at_once() -> None:
    caller = Caller(INCOMPLETE)
    caller.ear = Ear(FAST, LoudVad(), judged=True, busy=lambda: False)
    caller.hear(frames(LOUD, 800))
    assert kinds(caller.hear(frames(QUIET, 80))) == [StartTranscript, CheckTurn]


def test_by_default_the_transcript_and_the_model_are_speculative_at_once() -> None:
    """The defaults: the eager transcript and the model's question at 60 ms of a pause on
    spare CPU (160 ms when the STT is busy), the question judging the pause to 180 ms."""
    for busy, ask_ms in ((False, 60), (True, 160)):
        caller = Caller(INCOMPLETE)
        caller.ear = Ear(TurnSettings(), LoudVad(), judged=True, busy=lambda b=busy: b)
        caller.hear(frames(LOUD, 800))
        assert kinds(caller.hear(frames(QUIET, ask_ms - 20))) == []
        events = caller.hear(frames(QUIET, 20))
        assert kinds(events) == [StartTranscript, CheckTurn]
        check = events[1]
        assert isinstance(check, CheckTurn)
        assert len(check.audio) == pytest.approx((800 + 180) * 16, abs=40 * 16)
