"""BM25 over character n-grams: Korean and English, add/remove, normalized scores."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartpbx_ari.ai.lexical import Bm25Index, ngrams

pytestmark = pytest.mark.unit


def _index() -> Bm25Index:
    index = Bm25Index()
    index.add("track", "배송 조회는 어떻게 하나요?")
    index.add("time", "배송은 보통 며칠 걸리나요?")
    index.add("refund", "환불은 어떻게 받나요?")
    index.add("en", "How can I track my parcel?")
    return index


def test_ngrams_stay_inside_words_and_fold_case() -> None:
    grams = ngrams("Ab CD")
    assert " ab" in grams and "cd " in grams
    assert "b c" not in grams  # never across a word boundary
    assert ngrams("ＡＢ") == ngrams("ab")  # NFKC: full-width letters are the same letters


def test_korean_partial_words_match() -> None:
    hits = _index().search("배송 조회 방법", top_k=2)
    assert hits[0][0] == "track"
    assert hits[0][1] > hits[1][1] > 0


def test_english_and_exact_question_scores_near_one() -> None:
    index = _index()
    assert index.search("track parcel")[0][0] == "en"
    exact = index.score("How can I track my parcel?", "en")
    assert exact > 0.75  # below 1 only by BM25's length normalization (a long entry)
    assert index.score("How can I track my parcel?", "refund") < exact / 3
    assert index.score("anything", "no-such-id") == 0.0


def test_remove_and_replace() -> None:
    index = _index()
    index.remove("refund")
    assert "refund" not in [d for d, _ in index.search("환불")]
    index.add("track", "completely different text")
    assert len(index) == 3
    assert index.search("배송 조회")[0][0] != "track"


@given(st.text(max_size=40))
def test_scores_are_normalized(text: str) -> None:
    for _, score in _index().search(text):
        assert 0.0 < score <= 1.0


def test_question_frames_do_not_make_unrelated_questions_alike() -> None:
    index = Bm25Index()
    index.add("track", "배송 조회는 어떻게 하나요?")
    # only the frame is shared (and a particle): next to nothing is left
    assert index.score("회원 탈퇴는 어떻게 하나요?", "track") < 0.05
    assert index.search("배송 조회")[0][0] == "track"


def test_korean_particles_do_not_hide_the_word() -> None:
    assert ngrams("환불은") == ngrams("환불")
    assert ngrams("택배로") == ngrams("택배")
    assert ngrams("사이") == ngrams("사이")  # a stem keeps two syllables


TEXTS = ["How can I track my parcel?", "배송 조회는 어떻게 하나요?", "refund for a broken lamp",
         "환불은 어떻게 받나요?", "pay by card in instalments", "track the lamp order"]


def test_matrix_and_recent_segments_score_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    import smartpbx_ari.ai.lexical as lexical

    monkeypatch.setattr(lexical, "SMALL", 0)  # keep recent entries out of the matrix
    index = Bm25Index()
    for n, text in enumerate(TEXTS):
        index.add(f"d{n}", text)
    recent = index.search("track my lamp order", top_k=6)
    index._compact()
    matrix = index.search("track my lamp order", top_k=6)
    assert [d for d, _ in recent] == [d for d, _ in matrix]
    assert [s for _, s in recent] == pytest.approx([s for _, s in matrix])


def test_removed_rows_are_masked_until_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    import smartpbx_ari.ai.lexical as lexical

    monkeypatch.setattr(lexical, "SMALL", 0)
    monkeypatch.setattr(lexical, "PENDING_LIMIT", 3)
    index = Bm25Index()
    for n, text in enumerate(TEXTS):
        index.add(f"d{n}", text)
    assert index.search("track")[0][0] in {"d0", "d5"}  # 6 pending changes: compacted
    assert not index._recent
    index.remove("d0")
    index.remove("d5")
    assert index._removed == 2  # below the limit: masked, not yet compacted
    assert index.score("track parcel", "d0") == 0.0
    assert "d0" not in [d for d, _ in index.search("track parcel")]
    index.add("d0", "track a parcel")  # back, in the recent segment
    assert index.search("track parcel")[0][0] == "d0"
    assert len(index) == 5
