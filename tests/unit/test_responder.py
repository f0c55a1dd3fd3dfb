"""A Reply: the seed's dict for the REST route and the CLI, its speech joined for text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from smartpbx_ari.ai.clarify import Choice
from smartpbx_ari.ai.responder import Reply

pytestmark = pytest.mark.unit


def test_as_dict_is_the_seed_dict() -> None:
    reply = Reply("Five days.", 0.812, "refund", sources=("en-refund-how",))
    assert reply.as_dict() == {"response": "Five days.", "confidence": 0.812,
                               "intent": "refund", "hitl_triggered": False,
                               "sources": ["en-refund-how"]}
    assert Reply("Please hold.", 0.2, "other", hitl=True).as_dict()["hitl_triggered"]


async def test_written_joins_the_speech() -> None:
    async def speech() -> AsyncIterator[str]:
        for sentence in ("We refund.", "Within five days."):
            yield sentence

    plain = Reply("Refunds take five days.", 0.9, "refund")
    assert await plain.written() is plain
    written = await Reply("Refunds take five days.", 0.9, "refund", speech=speech()).written()
    assert written.text == "We refund. Within five days." and written.speech is None


def test_a_clarifying_reply_carries_its_choices() -> None:
    reply = Reply("Is it about A, or about B?", 0.4, "clarify",
                  choices=(Choice("a-id", "A"), Choice("b-id", "B")))
    assert reply.clarifying and not Reply("x", 0.9, "refund").clarifying
    shown = reply.as_dict()
    assert shown["clarifying"] is True and not shown["hitl_triggered"]
    assert shown["choices"] == [{"key": "1", "id": "a-id", "title": "A"},
                                {"key": "2", "id": "b-id", "title": "B"}]
    assert "choices" not in Reply("x", 0.9, "refund").as_dict()


def test_unsure_replies_are_clarifying_questions_and_hand_overs_for_want_of_an_answer(
        ) -> None:
    assert Reply("Do you mean A?", 0.4, "clarify", choices=(Choice("a-id", "A"),)).unsure
    assert Reply("Please hold.", 0.2, "other", hitl=True).unsure
    assert not Reply("Please hold.", 1.0, "human_request", hitl=True).unsure  # asked for one
    assert not Reply("Five days.", 0.9, "refund").unsure
    assert not Reply("Could you say that another way?", 0.4, "clarify").unsure  # a rephrase
