"""Learning from operators: an operator's answer to a caller's question becomes a
``pending`` candidate (``source=operator_correction``); approval indexes it; a near
duplicate of an entry is merged into that entry, never filed twice."""

from __future__ import annotations

from dataclasses import dataclass

from smartpbx_ari.ai.lexical import Bm25Index
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.store.knowledge import (
    MAX_ALTERNATES,
    KnowledgeError,
    get_entry,
    pending_entries,
    validate_question,
)
from smartpbx_ari.store.models import Knowledge, KnowledgeSource, KnowledgeStatus

DUPLICATE = 0.75  # fused similarity (or lexical score among candidates) that means "same"


@dataclass(frozen=True)
class Outcome:
    id: str
    merged_into: str | None = None  # set when a near duplicate absorbed it


def file_candidate(engine: RAGEngine, question: str, answer: str,
                   category: str = "general", language: str = "en") -> Outcome:
    """File an operator's answer for review; a near-identical candidate is updated."""
    text = validate_question(question)
    twin = _pending_twin(engine, text)
    knowledge_id = engine.upsert_sync({
        "id": twin, "question": text, "answer": answer, "category": category,
        "language": language, "source": KnowledgeSource.OPERATOR_CORRECTION,
        "status": KnowledgeStatus.PENDING})
    return Outcome(knowledge_id, merged_into=twin)


def _pending_twin(engine: RAGEngine, question: str) -> str | None:
    index = Bm25Index()
    for row in pending_entries(engine.db):
        index.add(row.id, row.question)
    hits = index.search(question, top_k=1)
    return hits[0][0] if hits and hits[0][1] >= DUPLICATE else None


def approve(engine: RAGEngine, knowledge_id: str) -> Outcome:
    """Index a candidate; if an approved entry asks the same, correct that one instead
    (the caller's words become one more way to ask it)."""
    row = _candidate(engine, knowledge_id)
    hits = engine.search_hits(row.question, top_k=1)
    if hits and hits[0].similarity >= DUPLICATE:
        target = hits[0].id
        known = engine.retriever.entry(target)
        alternates = [*(known.alternates or ()), row.question] if known else []
        engine.upsert_sync({**_fields(row), "id": target, "question": hits[0].question,
                            "alternates": alternates[-MAX_ALTERNATES:],
                            "status": KnowledgeStatus.APPROVED})
        engine.delete_sync(knowledge_id)
        return Outcome(target, merged_into=target)
    engine.upsert_sync({**_fields(row), "id": knowledge_id,
                        "status": KnowledgeStatus.APPROVED})
    return Outcome(knowledge_id)


def reject(engine: RAGEngine, knowledge_id: str) -> None:
    _candidate(engine, knowledge_id)
    engine.delete_sync(knowledge_id)


def _candidate(engine: RAGEngine, knowledge_id: str) -> Knowledge:
    row = get_entry(engine.db, knowledge_id)
    if row is None or row.status != KnowledgeStatus.PENDING:
        raise KnowledgeError(f"id: no pending candidate {knowledge_id!r}")
    return row


def _fields(row: Knowledge) -> dict[str, object]:
    return {"question": row.question, "answer": row.answer, "category": row.category,
            "language": row.language, "source": row.source}
