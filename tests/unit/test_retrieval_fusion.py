"""The fusion of the retriever's halves with fake dense indexes (the narrow seam): each
half weighed by the question's language, and a half with no weight never searched."""

from __future__ import annotations

import pytest

from smartpbx_ari.ai.retrieval import HybridRetriever
from smartpbx_ari.config import RagSettings
from smartpbx_ari.store.models import Knowledge

pytestmark = pytest.mark.unit


class FakeIndex:
    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.asked: list[str] = []

    def query(self, text: str, n: int) -> dict[str, float]:
        self.asked.append(text)
        return dict(self.scores)

    def upsert(self, rows: list[Knowledge], stale: list[str]) -> None:
        self.scores.update({row.id: 0.5 for row in rows})


def retriever(settings: RagSettings) -> tuple[HybridRetriever, FakeIndex, FakeIndex]:
    dense, multilingual = FakeIndex({"a": 0.9, "b": 0.2}), FakeIndex({"a": 0.1, "b": 0.8})
    fused = HybridRetriever(dense, settings, multilingual)  # type: ignore[arg-type]  # fakes
    fused.load([Knowledge(id="a", question="How do I pay?", answer="By card.", language="en"),
                Knowledge(id="b", question="환불은 어떻게 받나요?", answer="7일 이내입니다.",
                          language="ko")])
    return fused, dense, multilingual


def test_halves_are_weighed_by_the_question_s_language() -> None:
    fused, dense, multilingual = retriever(RagSettings())
    hits = {h.id: h.similarity for h in fused.search("How do I pay?", 2)}
    assert hits["a"] == pytest.approx(0.3 * 0.9 + 0.7 * 0.1)
    assert hits["b"] == pytest.approx(0.3 * 0.2 + 0.7 * 0.8)
    assert fused.search("환불", 1)[0].id == "b"
    assert dense.asked == ["How do I pay?"]  # Korean: dense_weight_ko 0, not searched
    assert multilingual.asked == ["How do I pay?", "환불"]


def test_the_korean_second_opinion_weighs_in_for_korean_questions_only() -> None:
    fused, _dense, _multilingual = retriever(RagSettings(multilingual_weight_ko=0.5,
                                                         korean_weight=0.5))
    korean = FakeIndex({"b": 0.6})
    fused.korean = korean  # type: ignore[assignment]  # a fake
    hits = {h.id: h.similarity for h in fused.search("환불 받고 싶어요", 2)}
    assert hits["b"] == pytest.approx(0.5 * 0.8 + 0.5 * 0.6)  # no lexical share left
    assert hits["a"] == pytest.approx(0.5 * 0.1)  # not in the Korean index: 0 there
    fused.search("How do I pay?", 2)
    assert korean.asked == ["환불 받고 싶어요"]


def test_a_half_with_no_weight_is_not_searched() -> None:
    fused, dense, multilingual = retriever(RagSettings(dense_weight=1.0, multilingual_weight=0.0))
    assert [h.id for h in fused.search("How do I pay?", 2)] == ["a", "b"]
    assert dense.asked == ["How do I pay?"] and multilingual.asked == []
    lexical_only, dense, multilingual = retriever(RagSettings(dense_weight=0.0,
                                                              multilingual_weight=0.0))
    assert lexical_only.search("How do I pay?", 1)[0].id == "a"  # the words it shares
    assert dense.asked == [] and multilingual.asked == []


def test_the_profile_is_measured_ahead_not_in_a_turn_s_search() -> None:
    """``refresh_profile`` measures it (at start, after a write); a search after that
    reads it, and a refresh with too few changes measures nothing again."""
    fused, dense, _multilingual = retriever(RagSettings(multilingual_weight=0.0))
    measured = fused.refresh_profile()
    asked = len(dense.asked)
    assert asked > 0  # the entries' own questions against the others
    fused.search("How do I pay?", 2)
    assert fused.profile() is measured and len(dense.asked) == asked + 1
    assert fused.refresh_profile() is measured and len(dense.asked) == asked + 1
    fused.index([Knowledge(id="c", question="Where are you?", answer="Here.", language="en")])
    assert fused.refresh_profile() is not measured  # one in two changed: measured again
