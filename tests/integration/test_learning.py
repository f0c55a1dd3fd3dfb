"""Operators teach the agent: candidates are pending until approved, approval makes them
searchable, near duplicates are merged instead of doubled."""

from __future__ import annotations

import pytest

from smartpbx_ari.ai import learning
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.store.knowledge import KnowledgeError, has_entry, pending_entries
from smartpbx_ari.store.models import KnowledgeSource

pytestmark = [pytest.mark.integration, pytest.mark.ai, pytest.mark.db]


def test_a_candidate_is_pending_until_approved(engine: RAGEngine) -> None:
    question = "Do you deliver on Sundays?"
    outcome = learning.file_candidate(engine, question, "No, we deliver Monday to Saturday.",
                                      "delivery")
    try:
        [row] = [r for r in pending_entries(engine.db) if r.id == outcome.id]
        assert row.source == KnowledgeSource.OPERATOR_CORRECTION
        assert all(h.id != outcome.id for h in engine.search_hits(question, 5))
        again = learning.file_candidate(engine, "Do you deliver on Sundays?",
                                        "No. We deliver Monday to Saturday only.")
        assert again.merged_into == outcome.id  # the same question is not filed twice
        assert learning.approve(engine, outcome.id).merged_into is None
        assert engine.search_hits(question, 1)[0].id == outcome.id
        assert "Saturday only" in engine.search_hits(question, 1)[0].answer
    finally:
        engine.delete_sync(outcome.id)


def test_approving_a_near_duplicate_corrects_the_existing_entry(engine: RAGEngine) -> None:
    before = next(r for r in engine.retriever.approved() if r.id == "en-payment-methods")
    outcome = learning.file_candidate(engine, "Which payment methods do you accept?",
                                      "We accept cards, bank transfer and PayPal.", "payment")
    try:
        approved = learning.approve(engine, outcome.id)
        assert approved.merged_into == "en-payment-methods"
        assert engine.search_hits("Which payment methods do you accept?", 1)[0].answer == (
            "We accept cards, bank transfer and PayPal.")
        assert not [r for r in pending_entries(engine.db) if r.id == outcome.id]
        assert engine.retriever.entry("en-payment-methods").alternates == before.alternates  # type: ignore[union-attr]
        # asked in other words: the caller's words become one more way to ask it
        again = learning.file_candidate(engine, "Which payment methods do you accept please?",
                                        "We accept cards and PayPal.", "payment")
        assert learning.approve(engine, again.id).merged_into == "en-payment-methods"
        merged = engine.retriever.entry("en-payment-methods")
        assert merged is not None and merged.question == before.question
        assert merged.alternates == [*(before.alternates or ()),
                                     "Which payment methods do you accept please?"]
    finally:
        engine.upsert_sync(before.as_dict())


def test_reject_and_unknown_ids(engine: RAGEngine) -> None:
    outcome = learning.file_candidate(engine, "Can I pick up my order in person?",
                                      "Not yet.")
    learning.reject(engine, outcome.id)
    assert not has_entry(engine.db, outcome.id)
    with pytest.raises(KnowledgeError, match="id: no pending candidate 'nope'"):
        learning.approve(engine, "nope")
    with pytest.raises(KnowledgeError, match="no pending candidate 'en-refund-how'"):
        learning.reject(engine, "en-refund-how")  # approved entries are not candidates
