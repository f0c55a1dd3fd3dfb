"""Per-call listening, sans-IO: the caller's PCM frames and our playback's state in,
decisions out (hold, resume or stop our playback; start, drop or finish a transcript).

``Ear.hear(pcm, playback)`` scores the VAD, takes turns and decides barge-in, and returns
what to do (live, ``take`` returns a frame's VAD windows and ``decide`` takes their
probabilities, scored in one batch with the other calls'); it starts no task and touches
no player, so it is tested like ``TurnDetector``: frames in, a list of events out. The
conversation acts on them.
With a turn model, a short pause asks it (``CheckTurn``) and the conversation hands its
verdict back through ``Ear.judge``; the turn then ends at once, or at the longer cap. It is
asked ahead (``turn.model_ask_ms``), with the rest of the pause it judges as silence, so
its verdict is ready when the pause gets there; the caller going on meanwhile makes it
moot. A
caller who goes on within that cap after the model ended the turn (a pause at a comma)
resumes it (``TurnResumed``, at the first speech window): the next turn's audio holds
both parts; a blip that is not speech ends it again as it was. Once our answer has played
for ``turn.resume_into_answer_ms``, what the caller says is a turn of its own (a
barge-in), never a resumption of the turn answered; before that, the barge-in also
resumes it (a voice begun before then and confirmed by the VAD a moment after, too).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from smartpbx_ari.config import TurnSettings
from smartpbx_ari.media.onset import Frame, NoiseFloor, onset
from smartpbx_ari.media.resample import Resampler
from smartpbx_ari.media.turn import (
    BargeInDetector,
    SpeechEnded,
    SpeechStarted,
    TurnDetector,
    TurnEvent,
    UtteranceTooShort,
    rms,
)
from smartpbx_ari.media.vad import VadWindow

Pcm = npt.NDArray[np.int16]
RATE = 16000  # STT and TTS work at 16 kHz; the VAD too, or at a narrowband line's 8 kHz
FRAME_S = 0.02
# A hold is cheap and undone in HOLD_MAX_S, so it trusts the line's echo cancellation
# (residual echo ~16 dB down); stopping needs the VAD *and* 6 dB (BargeInDetector's
# echo_ratio, the ITU-T G.168 hybrid minimum), so our own echo can pause us, never cut us.
HOLD_ECHO_RATIO = 0.15
HOLD_RMS = 400.0  # a caller this loud (well above line noise) holds our playback ...
HOLD_MAX_S = 0.2  # ... for at most this long unless the VAD confirms speech
AHEAD_MAX = 250  # frames a call may take ahead of its VAD decisions (its inbound queue)
# Energy's second opinion: Silero scores a lower voice's one-word answer over G.711 low
# (in some renderings of "No.", 0.1-0.22 at 30-40 dB over the floor), so while we are
# silent a window also counts as speech if it is VOICED_DB over the line's noise floor and
# Silero's mean over it and the VOICED_SPAN - 1 windows before is VOICED_P or more; and an
# utterance the VAD heard as shorter than turn.min_utterance_ms is a turn if WORD_S of it
# is that loud (one syllable: "Right." is 0.2 s; a click 0.02 s). Fresh renderings of
# bench_replies' validation replies, a lower voice over mu-law, 10 each: 25 of 80 lost ->
# 2. Its synthetic coughs, clicks, typing, knocks and door: no turn. The STT hears no words
# in what else gets by.
VOICED_DB = 10.0
VOICED = 10 ** (VOICED_DB / 20)  # times the noise floor: loud enough to be a voice
VOICED_P = 0.12
VOICED_SPAN = 3
WORD_S = 0.15


class Vad(Protocol):
    @property
    def rate(self) -> int: ...  # the rate it hears at: 16 kHz, or the line's own
    def split(self, chunk: Pcm) -> list[Pcm]: ...  # the whole windows a frame completes
    def score(self, windows: list[Pcm]) -> list[float]: ...  # their speech probabilities
    def judge(self, probabilities: list[float]) -> list[VadWindow]: ...  # as decisions


@dataclass(frozen=True)
class Playback:
    """What we are sending the caller right now."""

    playing: bool = False
    held: bool = False
    level: float = 0.0  # rms of our last few frames sent: the echo reference


@dataclass(frozen=True)
class HoldPlayback:
    """The caller is loud over our answer: pause it while the VAD decides."""


@dataclass(frozen=True)
class ResumePlayback:
    """A cough or a click: go on talking."""


@dataclass(frozen=True)
class BargeIn:
    """The caller talks over our answer: stop it."""


@dataclass(frozen=True)
class StartTranscript:
    """Eager: the caller paused long enough that transcribing may start now."""

    audio: Pcm


@dataclass(frozen=True)
class DropTranscript:
    """The caller went on (or the utterance was too short): the eager transcript is moot."""


@dataclass(frozen=True)
class TurnEnded:
    """The caller's turn is over: answer it (with the eager transcript, if one runs)."""

    audio: Pcm
    pause_s: float = 0.0  # the silence (as the VAD heard it) waited out before it ended


@dataclass(frozen=True)
class CheckTurn:
    """A short pause: ask the turn model if the caller is done, answer with ``Ear.judge``."""

    audio: Pcm  # the utterance so far, this pause included
    pause: int  # which pause: a verdict on an older one is moot


@dataclass(frozen=True)
class TurnResumed:
    """The caller went on within the cap after the model ended the turn: the next
    ``TurnEnded`` holds that turn too, so an answer to it not yet begun is moot."""


EarEvent = (HoldPlayback | ResumePlayback | BargeIn | StartTranscript | DropTranscript
            | TurnEnded | CheckTurn | TurnResumed)


class Ear:
    def __init__(self, settings: TurnSettings, vad: Vad, rate: int = RATE,
                 judged: bool = False, busy: Callable[[], bool] | None = None) -> None:
        """``judged``: a turn model answers ``CheckTurn``; without one, the silence timer.
        ``busy``: whether the STT is decoding another utterance now; if so, the eager
        transcript and the model's first question wait for ``turn.busy_silence_ms``."""
        t = settings
        self.vad = vad
        end_ms = t.max_silence_ms if judged else t.end_silence_ms
        self.turn = TurnDetector(t.start_speech_ms / 1000, end_ms / 1000,
                                 t.min_utterance_ms / 1000, t.max_utterance_ms / 1000)
        self.barge = BargeInDetector(min_speech_s=t.barge_in_ms / 1000)
        self.eager_s = t.eager_silence_ms / 1000
        self.busy_s = t.busy_silence_ms / 1000
        self.busy = busy or (lambda: False)
        self.up = Resampler(rate, RATE) if rate != RATE else None
        if vad.rate not in (rate, RATE):
            raise ValueError(f"a VAD at {vad.rate} Hz hears neither the line ({rate} Hz) nor "
                             f"{RATE} Hz")
        self.native = vad.rate == rate  # the VAD takes the line's own frames
        self.preroll = round(t.preroll_ms / 1000 / FRAME_S)  # frames kept from before onset
        # the pre-roll, and the frames taken ahead of the decision (a backlog scored at once)
        self.recent: collections.deque[tuple[Pcm, Frame]] = collections.deque(
            maxlen=self.preroll + AHEAD_MAX)
        self.floor = NoiseFloor(FRAME_S)
        self.probabilities: collections.deque[float] = collections.deque(maxlen=VOICED_SPAN)
        self.capture: list[Pcm] | None = None
        self.silence_s = 0.0
        self.held_s = 0.0
        self.eager = False  # a StartTranscript is out for the current utterance
        self.judged = judged
        # the silences a pause asks the model at: the first, then (after an incomplete
        # verdict) once more, with more of the pause for it to judge
        self.checks = [ms / 1000 for ms in (t.model_silence_ms, t.model_recheck_ms) if ms]
        self.ahead_s = (t.model_silence_ms - t.model_ask_ms) / 1000  # asked this much early
        self.threshold = t.model_threshold
        self.pause = 0  # numbers the CheckTurn questions
        self.asks = 0  # CheckTurns out for the current pause
        self.waiting = False  # the last of them has no verdict yet
        self.due_s: float | None = None  # a complete verdict ends the turn at this pause
        self.max_pause_s = t.max_silence_ms / 1000
        self.resume_s = t.resume_into_answer_ms / 1000
        self.ended: list[Pcm] | None = None  # a judged turn and what followed, to resume
        self.ended_pause_s = 0.0
        self.answer_s = 0.0  # how long our answer to the judged turn has played
        self.voice_from: float | None = None  # when in it the caller's voice began, if on
        self.resumed = False  # TurnResumed is out; the VAD has not confirmed speech yet
        self.continued = False  # the utterance in progress continues a judged turn
        self.began = 0  # the frame the utterance in progress began at (its pre-roll's)
        # an utterance dropped as too short: (the frame it began at, the frame it ended
        # at); the next one, begun within the cap, may reach back to it (see _on_turn)
        self.dropped: tuple[int, int] | None = None
        # per window taken and not yet decided: its frame's level and number
        self.levels: collections.deque[tuple[float, int]] = collections.deque()
        self.taken = 0  # frames taken so far
        self.at = 0  # the frame whose window was decided last

    def hear(self, pcm: Pcm, playback: Playback) -> list[EarEvent]:
        """One frame of the caller's audio (at the codec's rate), its VAD windows scored
        here. The live call path scores every call's windows in one batch instead:
        ``take``, then ``decide`` with the probabilities."""
        windows, out = self.take(pcm, playback)
        if out:  # held: what the player does when the conversation acts on it
            playback = Playback(playback.playing, True, playback.level)
        return out + self.decide(self.vad.score(windows), playback)

    def take(self, pcm: Pcm, playback: Playback) -> tuple[list[Pcm], list[EarEvent]]:
        """Keep one frame; returns the VAD windows it completes, to be scored, and what to
        do at once, before they are (``HoldPlayback``: the caller is loud over us)."""
        line = pcm
        if self.up is not None:
            pcm = self.up.process(pcm)
        level = rms(pcm)
        self.recent.append((pcm, Frame(level, playback.playing)))
        if not playback.playing:
            self.floor.update(level)
        if self.capture is not None:
            self.capture.append(pcm)
        if self.ended is not None:
            self.ended.append(pcm)
        windows = self.vad.split(line if self.native else pcm)
        self.taken += 1
        self.levels.extend([(level, self.taken)] * len(windows))
        return windows, [HoldPlayback()] if self.holds(level, playback) else []

    @staticmethod
    def holds(level: float, playback: Playback) -> bool:
        """Whether a frame of the caller's at this RMS ``level`` holds our playback at
        once: we are playing and the caller is loud over it. Asked by ``take``, and as
        each frame arrives (the conversation's reader), so a hold never waits for the
        frames ahead of it to be scored."""
        return playback.playing and not playback.held and over_us(level, playback)

    def decide(self, probabilities: list[float], playback: Playback) -> list[EarEvent]:
        """The probabilities of the windows ``take`` returned (of one frame or of several
        taken meanwhile, in order), and our playback now."""
        out: list[EarEvent] = []
        for window in self.vad.judge(probabilities):
            level, self.at = self.levels.popleft()  # the frame that completed the window
            self.probabilities.append(window.probability)
            speech, playback = self._gate(window.duration_s,
                                          window.is_speech or self._voiced(level, playback),
                                          level, playback, out)
            self._track_silence(window.duration_s, speech, out)
            self._track_ended(window.duration_s, speech, out)
            for event in self.turn.process(window.duration_s, speech):
                self._on_turn(event, out)
            self._end_when_due(out)
        return out

    def _voiced(self, level: float, playback: Playback) -> bool:
        """Energy's second opinion on a window Silero doubts (see VOICED_DB)."""
        return not playback.playing and level >= self.floor.level * VOICED and \
            sum(self.probabilities) / len(self.probabilities) >= VOICED_P

    def _gate(self, seconds: float, is_speech: bool, level: float, playback: Playback,
              out: list[EarEvent]) -> tuple[bool, Playback]:
        """While we talk, only a confirmed barge-in counts as the caller's speech.

        The echo gate (the caller louder than half our own recent playback) keeps our
        voice, echoed back by the line, from interrupting us. Silero is slow on unvoiced
        onsets ("s", "t"), so a loud line first *holds* the answer at once (``take``, before
        its windows are scored) and the VAD then stops it or lets it go on. Returns the
        speech decision and the playback state after what was decided."""
        if not playback.playing:
            self.barge.reset()
            self.held_s = 0.0
            return is_speech, playback
        # our answer has begun: what the caller says now answers it, or barges in; past its
        # first moments it no longer continues the turn before it (that one was answered),
        # unless the caller's voice began within them: dated by its level over our echo
        # (as a hold is), for Silero confirms a weak onset ("for an item ...") only later
        if self.ended is not None:
            self.answer_s += seconds
            self.voice_from = (self.answer_s if self.voice_from is None else
                               self.voice_from) if over_us(level, playback) else None
            if self.answer_s > self.resume_s and (
                    self.voice_from is None or self.voice_from > self.resume_s):
                self.ended, self.resumed = None, False
        if self.barge.process(seconds, is_speech, level, playback.level):
            out.append(BargeIn())
        elif playback.held:
            self.held_s += seconds
            if self.held_s >= HOLD_MAX_S:  # a cough or a click: go on talking
                self.held_s = 0.0
                out.append(ResumePlayback())
                playback = Playback(playback.playing, False, playback.level)
        return is_speech and self.barge.triggered, playback

    def _track_silence(self, seconds: float, speech: bool, out: list[EarEvent]) -> None:
        if not self.turn.in_speech:
            return
        if speech:
            self.silence_s = 0.0
            self.asks, self.waiting, self.due_s = 0, False, None
            self._drop_eager(out)
            return
        self.silence_s += seconds
        if not self.capture:
            return
        # the first moments of a pause are asked about only on spare CPU
        early = self.silence_s >= self.busy_s or not self.busy()
        if not self.eager and self.silence_s >= self.eager_s and early:
            self.eager = True
            out.append(StartTranscript(np.concatenate(self.capture)))
        if self.judged and not self.waiting and self.due_s is None \
                and self.asks < len(self.checks) and (self.asks or early) \
                and self.silence_s >= self.checks[self.asks] - self.ahead_s:
            judged_s = self.checks[self.asks]  # the pause this question judges
            self.asks, self.waiting = self.asks + 1, True
            self.pause += 1
            out.append(CheckTurn(_padded(self.capture, judged_s - self.silence_s),
                                 self.pause))

    def judge(self, pause: int, probability: float) -> list[EarEvent]:
        """The turn model's verdict on ``CheckTurn(pause)``: above the threshold (complete)
        it ends the turn now, unless the caller spoke again meanwhile; else the pause is
        asked about once more (``turn.model_recheck_ms``), then the cap waits."""
        out: list[EarEvent] = []
        if pause != self.pause or not self.asks:
            return out
        self.waiting = False
        if probability > self.threshold:
            self.due_s = self.checks[self.asks - 1]
            self._end_when_due(out)
        return out

    def _end_when_due(self, out: list[EarEvent]) -> None:
        """A complete verdict ends the turn once the pause it judged has passed."""
        if self.due_s is None or self.silence_s < self.due_s or not self.turn.in_speech:
            return
        frames, pause_s = self.capture, self.silence_s
        for event in self.turn.end():
            self._on_turn(event, out)
        if out and isinstance(out[-1], TurnEnded):
            self.ended, self.ended_pause_s, self.answer_s = frames, pause_s, 0.0
            self.voice_from = None

    def cut(self) -> list[EarEvent]:
        """Someone joined or left the line (an operator's takeover or hand-back): the turn
        in progress ends here, and nothing heard before may be resumed, re-ended or
        reached back to by the next turn's pre-roll. Returns its ``TurnEnded``, if any."""
        self.ended, self.resumed, self.dropped = None, False, None
        self.recent.clear()
        out: list[EarEvent] = []
        for event in self.turn.end():
            self._on_turn(event, out)
        return out

    def _track_ended(self, seconds: float, speech: bool, out: list[EarEvent]) -> None:
        if self.ended is None or self.turn.in_speech:
            return
        if speech and not self.resumed:  # at once: the answer must not begin meanwhile
            self.resumed = True
            out.append(TurnResumed())
        elif not speech and self.resumed:  # not confirmed as speech: the turn stands
            out.append(TurnEnded(np.concatenate(self.ended), self.ended_pause_s + seconds))
            self.resumed = False  # and may still be resumed within the cap
        elif not speech:
            self.ended_pause_s += seconds
            if self.ended_pause_s >= self.max_pause_s:
                self.ended = None

    def _on_turn(self, event: TurnEvent, out: list[EarEvent]) -> None:
        self.asks, self.waiting, self.due_s = 0, False, None
        if isinstance(event, SpeechStarted):
            recent = list(self.recent)  # back to where energy says the utterance began
            upto = max(0, len(recent) - (self.taken - self.at))  # then what was taken ahead
            first = self.taken - len(recent) + 1  # the frame recent[0] holds
            back = upto - self.preroll
            if self.dropped is not None and \
                    (self.at - self.dropped[1]) * FRAME_S <= self.max_pause_s:
                back = min(back, self.dropped[0] - first)
            before = recent[max(0, back) : upto]
            start = onset([frame for _, frame in before], self.floor.level, FRAME_S)
            self.capture = [pcm for pcm, _ in before[start:] + recent[upto:]]
            self.began, self.dropped = first + max(0, back) + start, None
            self.continued = self.ended is not None
            if self.continued:  # the pause was inside the turn: take it up again
                self.capture = self.ended
            self.ended, self.resumed = None, False
            self.silence_s = 0.0
        elif isinstance(event, SpeechEnded) or self.continued or self._loud_enough():
            # a turn taken up again is never too short: it holds the turn it continues
            # (whose answer was made moot or stopped), however short the words that
            # continued it; nor is one loud for long enough, whatever the VAD heard
            audio = np.concatenate(self.capture) if self.capture else np.zeros(0, np.int16)
            out.append(TurnEnded(audio, self.silence_s))
            self.eager, self.capture, self.continued = False, None, False
        elif isinstance(event, UtteranceTooShort):
            # Silero may hear only a moment of a low voice's first words, and the turn
            # model end it ("Can I get a" heard as 0.19 s); energy decides if the next
            # utterance goes on from it: its onset may reach back here, over audible frames
            self._drop_eager(out)
            self.capture, self.dropped = None, (self.began, self.at)

    def _loud_enough(self) -> bool:
        """Whether WORD_S of the utterance, up to the pause that ended it, is loud enough
        to be a voice: a word Silero heard only in part ("Two." for 0.16 s) is a turn."""
        loud = self.floor.level * VOICED
        spoken = (self.capture or [])[: -round(self.silence_s / FRAME_S) or None]
        return sum(rms(pcm) >= loud for pcm in spoken) * FRAME_S >= WORD_S

    def _drop_eager(self, out: list[EarEvent]) -> None:
        if self.eager:
            out.append(DropTranscript())
            self.eager = False


def over_us(level: float, playback: Playback) -> bool:
    """A caller's frame at this RMS ``level`` is loud over our playback (and its echo)."""
    return level >= max(HOLD_RMS, playback.level * HOLD_ECHO_RATIO)


def _padded(frames: list[Pcm], silence_s: float) -> Pcm:
    """The utterance so far, and ``silence_s`` more of silence (the rest of the pause a
    verdict asked ahead judges)."""
    pad = np.zeros(max(0, round(silence_s * RATE)), np.int16)
    return np.concatenate([*frames, pad])
