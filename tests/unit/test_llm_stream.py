"""Phraser.sentences at the token seam: sentence by sentence, each checked, grounded
fallbacks. The real model is exercised in tests/integration/test_llm.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from smartpbx_ari.ai.llm import LlmError, Phraser

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
    phraser._lock = threading.Lock()
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


async def test_a_first_sentence_not_done_in_time_is_the_stored_answer() -> None:
    # tokens came (the model works), the sentence did not end within the budget
    tokens = ["Refunds", " are", " paid", " within", " 5", " working", " days."]
    assert await _said(_phraser(tokens, delay=0.05), budget=0.12) == [ANSWER]


async def test_no_token_within_the_budget_is_a_fault_and_not_waited_for() -> None:
    started = time.monotonic()
    with pytest.raises(LlmError) as caught:
        await _said(_phraser(["Refunds are paid."], delay=2.0), budget=0.1)
    assert time.monotonic() - started < 0.5  # the sleeping worker is left behind
    assert caught.value.code == "llm-timeout" and caught.value.stage == "llm"


async def test_a_model_that_raises_is_a_fault() -> None:
    phraser = _phraser([])

    def broken(answer: str, max_tokens: int, stop: threading.Event) -> Iterator[str]:
        raise RuntimeError("llama_decode returned -3")
        yield ""

    phraser.tokens = broken  # type: ignore[method-assign]
    with pytest.raises(LlmError, match="llama_decode") as caught:
        await _said(phraser)
    assert caught.value.code == "llm-failed"
    assert await phraser.phrase(ANSWER) == ANSWER  # the text path: the stored answer


async def test_a_model_held_by_a_hung_generation_is_the_stored_answer_quietly() -> None:
    phraser = _phraser(["Refunds are paid within 5 working days."])
    phraser._lock.acquire()  # a hung generation holds the model
    try:
        assert await _said(phraser, budget=0.1) == [ANSWER]  # no fault: it was not ours
    finally:
        phraser._lock.release()


async def test_phrase_joins_the_sentences() -> None:
    tokens = ["Refunds", " are paid within 5 working days."]
    assert await _phraser(tokens).phrase(ANSWER) == "Refunds are paid within 5 working days."
