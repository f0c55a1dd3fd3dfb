"""The VAD's speech decision, window by window: hysteresis on Silero's probabilities.

Silero's probability for a band-limited (G.711) voice dips between syllables; one
threshold both to start and to stay in speech gaps the utterance there. Fed plain
probability sequences, no model.
"""

from __future__ import annotations

import pytest

from smartpbx_ari.config import ConfigError, TurnSettings
from smartpbx_ari.media.vad import Hysteresis

pytestmark = pytest.mark.unit


def decide(probabilities: list[float], threshold: float = 0.5,
           hysteresis: float = 0.15) -> str:
    gate = Hysteresis(threshold, hysteresis)
    return "".join("S" if gate(p) else "." for p in probabilities)


def test_speech_starts_at_the_threshold_and_not_below() -> None:
    assert decide([0.1, 0.4, 0.49, 0.5, 0.9]) == "...SS"


def test_once_in_speech_a_dip_above_the_lower_threshold_stays_speech() -> None:
    assert decide([0.9, 0.4, 0.36, 0.35, 0.8]) == "SSSSS"


def test_speech_ends_below_the_lower_threshold_and_must_reach_the_upper_to_start_again() -> None:
    assert decide([0.9, 0.34, 0.45, 0.49, 0.5]) == "S...S"


def test_no_hysteresis_is_one_threshold() -> None:
    assert decide([0.9, 0.49, 0.5, 0.3], hysteresis=0.0) == "S.S."


@pytest.mark.parametrize(("threshold", "hysteresis", "field"),
                         [(0.0, 0.1, "threshold"), (1.0, 0.1, "threshold"),
                          (0.5, 0.5, "hysteresis"), (0.5, -0.1, "hysteresis")])
def test_bad_thresholds_are_refused_by_name(threshold: float, hysteresis: float,
                                            field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Hysteresis(threshold, hysteresis)


def test_settings_name_the_bad_key() -> None:
    with pytest.raises(ConfigError, match="turn.vad_hysteresis"):
        TurnSettings(vad_threshold=0.4, vad_hysteresis=0.4)
    with pytest.raises(ConfigError, match="turn.preroll_ms"):
        TurnSettings(preroll_ms=-1)
