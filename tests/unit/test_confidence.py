"""Confidence that travels: a KB's impostor profile and the logistic of relative signals."""

from __future__ import annotations

import pytest

from smartpbx_ari.ai.confidence import (
    MIN_SPREAD,
    PROFILE_SAMPLE,
    KbProfile,
    confidence,
    measure_profile,
)

pytestmark = pytest.mark.unit


def test_the_profile_is_the_mean_and_spread_of_the_best_other_entry() -> None:
    scores = {"a": 0.4, "b": 0.6, "c": 0.5}
    asked: list[tuple[str, str]] = []

    def others(question: str, knowledge_id: str) -> float:
        asked.append((question, knowledge_id))
        return scores[knowledge_id]

    profile = measure_profile(["a", "b", "c"], lambda i: f"q-{i}", others)
    assert profile.impostor == pytest.approx(0.5)
    assert profile.spread == pytest.approx(0.0816, abs=1e-3)
    assert profile.entries == 3
    assert sorted(asked) == [("q-a", "a"), ("q-b", "b"), ("q-c", "c")]


def test_a_large_kb_is_sampled_the_same_way_each_time() -> None:
    ids = [f"e{n}" for n in range(1000)]
    seen: list[str] = []
    first = measure_profile(ids, str, lambda q, i: seen.append(i) or 0.5)
    again: list[str] = []
    measure_profile(ids, str, lambda q, i: again.append(i) or 0.5)
    assert len(seen) == PROFILE_SAMPLE and seen == again
    assert first.entries == 1000 and first.spread == MIN_SPREAD  # all equal: the floor


def test_a_kb_of_one_entry_has_the_neutral_profile() -> None:
    profile = measure_profile(["only"], str, lambda q, i: pytest.fail("nothing to ask"))
    assert (profile.impostor, profile.spread) == (KbProfile.neutral().impostor,
                                                  KbProfile.neutral().spread)
    assert profile.entries == 1


def test_confidence_rises_with_the_best_score_and_the_margin() -> None:
    kb = KbProfile(0.45, 0.1, 30)
    assert confidence(0.5, 0.3, kb) < confidence(0.6, 0.4, kb)
    assert confidence(0.6, 0.58, kb) < confidence(0.6, 0.4, kb)
    assert 0.0 < confidence(0.0, 0.0, kb) < confidence(1.0, 0.0, kb) < 1.0


def test_the_same_similarity_means_more_on_a_kb_whose_impostors_score_low() -> None:
    korean_like, english_like = KbProfile(0.30, 0.1, 30), KbProfile(0.50, 0.1, 30)
    assert confidence(0.48, 0.4, korean_like) > 0.6 > confidence(0.48, 0.4, english_like)
