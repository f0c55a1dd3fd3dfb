"""Clock-free turn taking: end-of-utterance and barge-in decided from fed durations.

Like Home Assistant's ``VoiceCommandSegmenter``, nothing here reads a clock: the caller
feeds ``(chunk_seconds, is_speech)`` per VAD window, so tests replay plain sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Durations are sums of float chunk lengths (30 * 0.02 != 0.6 exactly); without the slack
# a threshold could fire one chunk late.
_EPS = 1e-9


@dataclass(frozen=True)
class SpeechStarted:
    lead_s: float  # speech already heard before the start was confirmed: keep it as pre-roll


@dataclass(frozen=True)
class SpeechEnded:
    duration_s: float  # from first speech to last speech, trailing silence excluded
    silence_s: float  # trailing silence heard after it, to trim from the captured audio
    truncated: bool = False  # cut at max_utterance_s while the caller was still talking


@dataclass(frozen=True)
class UtteranceTooShort:
    duration_s: float  # a cough or click: discard the audio, no turn


TurnEvent = SpeechStarted | SpeechEnded | UtteranceTooShort


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


class TurnDetector:
    """Splits the caller's audio into utterances.

    Speech must last ``start_speech_s`` (consecutive) to start an utterance, and
    ``end_silence_s`` of silence ends it, so shorter pauses stay inside one utterance.
    """

    def __init__(
        self, start_speech_s: float = 0.12, end_silence_s: float = 0.6,
        min_utterance_s: float = 0.25, max_utterance_s: float = 30.0,
    ) -> None:
        _check_positive(start_speech_s=start_speech_s, end_silence_s=end_silence_s,
                        min_utterance_s=min_utterance_s, max_utterance_s=max_utterance_s)
        self.start_speech_s = start_speech_s
        self.end_silence_s = end_silence_s
        self.min_utterance_s = min_utterance_s
        self.max_utterance_s = max_utterance_s
        self.reset()

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reset(self) -> None:
        """Back to waiting for speech; an utterance in progress is dropped silently."""
        self._in_speech = False
        self._onset_s = 0.0
        self._utterance_s = 0.0  # since the first speech chunk, trailing silence included
        self._silence_s = 0.0

    def process(self, chunk_seconds: float, is_speech: bool) -> list[TurnEvent]:
        if chunk_seconds < 0:
            raise ValueError(f"chunk_seconds must not be negative, got {chunk_seconds}")
        if not self._in_speech:
            return self._idle(chunk_seconds, is_speech)
        return self._speaking(chunk_seconds, is_speech)

    def end(self) -> list[TurnEvent]:
        """End the utterance in progress now (a turn model judged it complete)."""
        return [self._finish(truncated=False)] if self._in_speech else []

    def _idle(self, chunk_seconds: float, is_speech: bool) -> list[TurnEvent]:
        self._onset_s = self._onset_s + chunk_seconds if is_speech else 0.0
        if self._onset_s + _EPS < self.start_speech_s:
            return []
        self._in_speech = True
        self._utterance_s, self._silence_s = self._onset_s, 0.0
        events: list[TurnEvent] = [SpeechStarted(lead_s=self._onset_s)]
        return events + self._check_max()

    def _speaking(self, chunk_seconds: float, is_speech: bool) -> list[TurnEvent]:
        self._utterance_s += chunk_seconds
        self._silence_s = 0.0 if is_speech else self._silence_s + chunk_seconds
        if self._silence_s + _EPS >= self.end_silence_s:
            return [self._finish(truncated=False)]
        return self._check_max()

    def _check_max(self) -> list[TurnEvent]:
        # A monologue is cut into pieces so STT and the agent never wait unboundedly.
        if self._utterance_s + _EPS >= self.max_utterance_s:
            return [self._finish(truncated=True)]
        return []

    def _finish(self, truncated: bool) -> TurnEvent:
        duration, silence = self._utterance_s - self._silence_s, self._silence_s
        self.reset()
        if duration + _EPS < self.min_utterance_s and not truncated:
            return UtteranceTooShort(duration_s=duration)
        return SpeechEnded(duration_s=duration, silence_s=silence, truncated=truncated)


def rms(pcm: npt.NDArray[np.int16]) -> float:
    """Root-mean-square level of int16 audio (0 for an empty chunk)."""
    if pcm.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))


class BargeInDetector:
    """Decides when the caller talks over our playback.

    Only VAD-positive audio louder than ``echo_ratio`` times our own playback level
    counts: the line echoes our voice back, and a hybrid's echo return loss is at least
    6 dB (ITU-T G.168), so the default 0.5 keeps our own echo from interrupting us.
    ``echo_ratio=None`` turns the energy gate off. Qualifying audio must be consecutive
    for ``min_speech_s``; the detector then latches until ``reset()``.
    """

    def __init__(self, min_speech_s: float = 0.1, echo_ratio: float | None = 0.5) -> None:
        _check_positive(min_speech_s=min_speech_s)
        if echo_ratio is not None and echo_ratio < 0:
            raise ValueError(f"echo_ratio must not be negative, got {echo_ratio}")
        self.min_speech_s = min_speech_s
        self.echo_ratio = echo_ratio
        self.reset()

    @property
    def triggered(self) -> bool:
        return self._triggered

    def reset(self) -> None:
        """Call when a new playback starts."""
        self._speech_s = 0.0
        self._triggered = False

    def process(self, chunk_seconds: float, is_speech: bool,
                caller_rms: float, playback_rms: float) -> bool:
        """True exactly once: on the chunk where the barge-in is confirmed."""
        if self._triggered:
            return False
        if is_speech and self._above_echo(caller_rms, playback_rms):
            self._speech_s += chunk_seconds
        else:
            self._speech_s = 0.0
        self._triggered = self._speech_s + _EPS >= self.min_speech_s
        return self._triggered

    def _above_echo(self, caller_rms: float, playback_rms: float) -> bool:
        return self.echo_ratio is None or caller_rms > playback_rms * self.echo_ratio
