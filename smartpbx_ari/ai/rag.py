"""RAGEngine: the knowledge base, its SQL rows and the retriever's indexes kept in step.

The rows (``store/knowledge.py``) are the source of truth; the hybrid retriever
(``ai/retrieval.py``) indexes the approved ones. One async API, the seed's ``search``,
``upsert`` and ``delete``, runs the blocking cores in a thread; sync callers (the CLI,
learning, import, the bench) call the cores from their own thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from smartpbx_ari.ai.language import (
    LANGUAGES,
    base_language,
    is_language_tag,
    written_language,
)
from smartpbx_ari.ai.retrieval import Hit, HybridRetriever
from smartpbx_ari.config import Settings
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.knowledge import (
    KnowledgeError,
    approved_entries,
    delete_entry,
    save_entry,
    validate_question,
)
from smartpbx_ari.store.migrate import open_database
from smartpbx_ari.store.models import KnowledgeStatus


class RAGEngine:
    def __init__(self, db: Database, retriever: HybridRetriever) -> None:
        self.db, self.retriever = db, retriever
        retriever.load(approved_entries(db))
        retriever.fill_empty()

    @classmethod
    def open(cls, settings: Settings, db: Database | None = None) -> RAGEngine:
        """Blocking: loads the embedding models and the indexes (run it in a thread)."""
        retriever = HybridRetriever.open(settings)
        return cls(db or open_database(settings), retriever)

    def __len__(self) -> int:
        """Approved (searchable) entries."""
        return len(self.retriever)

    # ---- the seed's async API -----------------------------------------------------
    async def search(self, query: str, top_k: int = 5,
                     threshold: float | None = None) -> list[dict[str, Any]]:
        hits = await asyncio.to_thread(self.search_hits, query, top_k, threshold)
        return [h.as_dict() for h in hits]

    async def upsert(self, qa: dict[str, Any]) -> str:
        return await asyncio.to_thread(self.upsert_sync, qa)

    async def delete(self, knowledge_id: str) -> bool:
        return await asyncio.to_thread(self.delete_sync, knowledge_id)

    # ---- blocking cores -----------------------------------------------------------
    def search_hits(self, query: str, top_k: int = 5, threshold: float | None = None,
                    language: str = "") -> list[Hit]:
        """Best entries first; ``language`` (a call's, e.g. "ko") keeps only its entries."""
        return self.retriever.search(validate_question(query, "query"), top_k, threshold,
                                     language)

    def upsert_sync(self, qa: dict[str, Any], refresh: bool = True) -> str:
        return self.bulk_upsert([qa], refresh)[0]

    def bulk_upsert(self, items: list[dict[str, Any]], refresh: bool = True) -> list[str]:
        """Store many entries, then index the approved ones in one embedding batch (and,
        with ``refresh``, measure the KB's profile again if they changed it enough; an
        import refreshes it once, at its end)."""
        rows = [save_entry(self.db, with_language(qa)) for qa in items]
        approved = [r for r in rows if r.status == KnowledgeStatus.APPROVED]
        if approved:
            self.retriever.index(approved)
            if refresh:
                self.retriever.refresh_profile()
        return [r.id for r in rows]

    def delete_sync(self, knowledge_id: str) -> bool:
        row = delete_entry(self.db, knowledge_id)
        indexed = self.retriever.remove(knowledge_id, row)
        self.retriever.refresh_profile()
        return indexed or row is not None

    def reindex(self, batch: int = 500) -> int:
        """Rebuild every index from SQL (the source of truth)."""
        return self.retriever.rebuild(approved_entries(self.db), batch)


def with_language(qa: dict[str, Any]) -> dict[str, Any]:
    """An entry given without a language is in its question's script's: a Korean FAQ
    imported as a plain CSV is Korean, so a call routed as Korean finds it. One given
    with a language must be one calls are answered in (``ko``, ``en-US``), and is kept by
    its base language (``en``), as calls look for it."""
    given = str(qa.get("language") or "").strip()
    if not given:
        return {**qa, "language": written_language(str(qa.get("question", "")))}
    if not is_language_tag(given) or base_language(given) not in LANGUAGES:
        raise KnowledgeError(f"language: {given[:20]!r} is not one of {', '.join(LANGUAGES)}")
    return {**qa, "language": base_language(given)}
