"""Phraser.sentences at the token seam: sentence by sentence, each checked, grounded
fallbacks. The real model is exercised in tests/integration/test_llm.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from smartpbx_ari.ai.llm import Phraser

pytestmark = pytest.mark.unit
ANSWER = "Refunds are paid within 5 working days. We pay back to your card."


def _phraser(tokens: list[str], delay: float = 0.0) -> Phraser:
    phraser = object.__new__(Phraser)

    def fake(answer: str, max_tokens: int, stop: threading.Event) -> Iterator[str]:
        for token in tokens:
            if stop.is_set():
                return
            time.sleep(delay)
            yield token

    phraser.tokens = fake  # type: ignore[method-assign]
    return phraser


async def _said(phraser: Phraser, budget: float = 5.0) -> list[str]:
    return [s async for s in phraser.sentences(ANSWER, budget)]


async def test_faithful_sentences_come_one_by_one() -> None:
    tokens = ["Refunds", " are paid", " within 5", " working days.", " We pay back",
              " to your card."]
    assert await _said(_phraser(tokens)) == ["Refunds are paid within 5 working days.",
                                             "We pay back to your card."]


async def test_an_invented_first_sentence_gives_the_stored_answer() -> None:
    tokens = ["Refunds take", " 30 days."]
    assert await _said(_phraser(tokens)) == [ANSWER]


async def test_out_of_budget_keeps_what_was_said_and_completes_it() -> None:
    # the first sentence leaves out the number; the second never arrives in time
    tokens = ["We pay back", " to your card.", " Refunds", " are", " paid", " within 5"]
    said = await _said(_phraser(tokens, delay=0.05), budget=0.2)
    assert said == ["We pay back to your card.", ANSWER]


async def test_nothing_in_time_is_the_stored_answer() -> None:
    assert await _said(_phraser(["Refunds are paid."], delay=0.3), budget=0.05) == [ANSWER]


async def test_phrase_joins_the_sentences() -> None:
    tokens = ["Refunds", " are paid within 5 working days."]
    assert await _phraser(tokens).phrase(ANSWER) == "Refunds are paid within 5 working days."
