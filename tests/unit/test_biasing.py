"""The knowledge base's words for Whisper's prompt: content words, most widespread first,
within a token budget, per language, rebuilt when the approved entries change."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from smartpbx_ari.ai.biasing import KnowledgePrompt, prompt_within, vocabulary

pytestmark = pytest.mark.unit


def _words(text: str) -> int:
    """A stand-in tokenizer: one token per word and per comma."""
    return len(text.replace(",", " ,").split())


def test_vocabulary_keeps_content_words_most_widespread_first() -> None:
    words = vocabulary(["How do I get a refund?", "Can I get my money back?",
                        "Refund for a damaged parcel", "I don't want the refund"])
    assert words[0] == "refund"  # three phrasings
    assert set(words) == {"refund", "money", "damaged", "parcel"}  # frames, fillers gone


def test_vocabulary_strips_korean_particles_and_counts_the_stem() -> None:
    assert vocabulary(["환불은 어떻게 하나요?", "환불 받고 싶어요"])[0] == "환불"


def test_prompt_stays_within_the_budget() -> None:
    words = [f"word{n}" for n in range(100)]
    prompt = prompt_within(words, 20, _words)
    assert prompt.startswith("word0, word1,") and prompt.endswith(".")
    assert _words(prompt.rstrip(".")) <= 20 < _words(prompt.rstrip(".") + ", word99")
    assert prompt_within(words, 0, _words) == ""


@dataclass
class Row:
    question: str
    alternates: list[str]
    language: str = "en"


@dataclass
class FakeRetriever:
    rows: list[Row]
    lexicon: dict[str, list[str]] = field(default_factory=dict)
    revision: int = 0

    def approved(self) -> list[Row]:
        return self.rows


def test_prompt_is_per_language_and_rebuilt_when_knowledge_changes() -> None:
    retriever = FakeRetriever([Row("How do I get a refund?", ["money back please"]),
                               Row("환불은 어떻게 하나요?", [], "ko")],
                              {"refund": ["reimburse"], "환불": ["돌려받"]})
    prompt = KnowledgePrompt(retriever, 40, _words)  # type: ignore[arg-type]
    assert prompt("en-US") == "refund, money, reimburse."  # "please": a stopword
    assert prompt("ko") == "환불, 돌려받."  # Korean: the lexicon's words only
    retriever.rows.append(Row("Where is my parcel?", []))
    assert "parcel" not in prompt("en")  # same revision: the prompt built before
    retriever.revision += 1
    assert "parcel" in prompt("en")
