"""RAGEngine: hybrid retrieval over the knowledge base (the seed's search/upsert/delete).

SQL rows are the source of truth; Chroma (dense, sentence-transformers) and an in-memory
BM25 over character n-grams (lexical) are indexes, rebuildable from SQL (``reindex``).

Each phrasing of an entry is indexed apart: the question under the entry's id, each
alternate (another way callers ask it) under ``<id>#alt<n>``, each with the answer (a
caller often asks with its words; and equal lengths keep BM25 fair to short phrasings);
an entry scores as its best phrasing. Fusion: candidates are the union of both indexes'
top hits; each gets ``similarity = w * dense + (1 - w) * lexical`` with ``dense`` the
cosine (clipped to 0..1) and ``lexical`` the normalized BM25 of the query expanded by the
domain lexicon. ``w`` is ``rag.dense_weight`` (0.6), or ``rag.dense_weight_ko`` (0.2) for
Korean, which all-MiniLM-L6-v2 barely separates: there the lexical half carries it.
Weights and the 0.43 similarity that separates in-domain from out-of-domain questions
(``agent.SEPARATING_SIMILARITY``) come from ``scripts/bench_rag.py`` on the dev set.
Blocking work (models, SQLite, Chroma) runs in a thread; the async methods never block.
Within a search the lexical query runs in a second thread while the dense one runs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sqlalchemy import select

from smartpbx_ari.ai.embeddings import Embedder, MultilingualEmbedder
from smartpbx_ari.ai.lexical import Bm25Index
from smartpbx_ari.config import RagSettings, Settings
from smartpbx_ari.data import read_text
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.migrate import open_database
from smartpbx_ari.store.models import Knowledge, KnowledgeSource, KnowledgeStatus

MAX_QUESTION = 1000
MAX_ALTERNATES = 50
ALT = "#alt"  # a phrasing's index id: <entry id>#alt<n>
_POOL = ThreadPoolExecutor(2, thread_name_prefix="rag")  # the lexical and multilingual halves
CANDIDATES = 4  # each index contributes top_k * CANDIDATES hits to the fusion
_HANGUL = re.compile("[\uac00-\ud7a3]")


class KnowledgeError(UserFacingError):
    code = "knowledge-invalid"


@dataclass(frozen=True)
class Hit:
    id: str
    question: str
    answer: str
    category: str
    similarity: float
    dense: float
    lexical: float

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "answer": self.answer,
                "category": self.category, "similarity": round(self.similarity, 4)}


def open_collection(settings: Settings, suffix: str = "") -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma = ChromaSettings(anonymized_telemetry=False)
    if settings.rag.chroma_url:
        host, _, port = settings.rag.chroma_url.split("://")[-1].partition(":")
        client: Any = chromadb.HttpClient(host=host, port=int(port or 8000), settings=chroma)
    else:
        path = Path(settings.data_dir) / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(path), settings=chroma)
    return client.get_or_create_collection(settings.rag.collection + suffix,
                                           embedding_function=None,
                                           metadata={"hnsw:space": "cosine"})


def load_lexicon(path: str = "") -> dict[str, list[str]]:
    data = yaml.safe_load(read_text(path, "lexicon.yaml")) or {}
    if not isinstance(data, dict):
        raise KnowledgeError("rag.lexicon: expected a mapping of word -> [synonyms]")
    return {str(k): [str(v) for v in vs or ()] for k, vs in data.items()}


def expand_query(text: str, lexicon: dict[str, list[str]]) -> str:
    """Add the knowledge base's word for each synonym the caller used."""
    lower = text.lower()
    extra = [word for word, synonyms in lexicon.items()
             if word not in lower and any(s in lower for s in synonyms)]
    return " ".join([text, *extra])


def index_text(row: Knowledge) -> str:
    # The answer's words are searchable too: a caller often asks with them.
    return f"{row.question} {row.answer}"


def phrasings(row: Knowledge) -> list[tuple[str, str]]:
    """(index id, text) of each phrasing of an entry."""
    return [(row.id, index_text(row)), *((f"{row.id}{ALT}{n}", f"{text} {row.answer}")
                                         for n, text in enumerate(row.alternates or (), 1))]


def entry_id(index_id: str) -> str:
    return index_id.split(ALT, 1)[0]


def best_per_entry(scored: Iterable[tuple[str, float]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for index_id, score in scored:
        key = entry_id(index_id)
        best[key] = max(score, best.get(key, score))
    return best


def questions(row: Knowledge) -> list[tuple[str, str]]:
    """(index id, text) of each phrasing, the question alone (the multilingual index)."""
    return [(row.id, row.question), *((f"{row.id}{ALT}{n}", text)
                                      for n, text in enumerate(row.alternates or (), 1))]


class VectorIndex:
    """One embedding model and its Chroma collection; phrasing ids, entry scores."""

    def __init__(self, embedder: Any, collection: Any,
                 texts: Callable[[Knowledge], list[tuple[str, str]]]) -> None:
        self.embedder, self.collection, self.texts = embedder, collection, texts
        self._count: int | None = None  # counting costs ~8 ms at 100k: kept between writes

    def query(self, text: str, n: int) -> dict[str, float]:
        """Entry id -> cosine of its best phrasing (clipped to 0..1), of the n nearest."""
        if self._count is None:
            self._count = int(self.collection.count())
        if min(n, self._count) == 0:
            return {}
        result = self.collection.query(query_embeddings=self.embedder.encode([text]),
                                       n_results=min(n, self._count), include=["distances"])
        ids, distances = result["ids"][0], result["distances"][0]
        return best_per_entry((i, float(np.clip(1.0 - dist, 0.0, 1.0)))
                              for i, dist in zip(ids, distances, strict=True))

    def upsert(self, rows: list[Knowledge], stale: list[str]) -> None:
        items = [(i, text, row.category) for row in rows for i, text in self.texts(row)]
        if stale:
            self.collection.delete(ids=stale)
        self.collection.upsert(ids=[i for i, _, _ in items],
                               embeddings=self.embedder.encode([t for _, t, _ in items]),
                               metadatas=[{"category": c} for _, _, c in items])
        self._count = None

    def delete(self, ids: list[str]) -> None:
        self.collection.delete(ids=ids)
        self._count = None

    def ids(self) -> set[str]:
        return set(self.collection.get(include=[])["ids"])

    def clear(self) -> None:
        stale = list(self.ids())
        if stale:
            self.delete(stale)


def validate_alternates(value: Any, question: str) -> list[str]:
    """Other ways to ask: a list (or a ``|``-separated string, as in CSV) of questions."""
    if value is None or value == "":
        return []
    items = value.split("|") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise KnowledgeError("alternates: expected a list of questions")
    out: list[str] = []
    for n, item in enumerate(items):
        text = validate_question(str(item), f"alternates[{n}]")
        if text != question and text not in out:
            out.append(text)
    if len(out) > MAX_ALTERNATES:
        raise KnowledgeError(f"alternates: {len(out)} questions, at most {MAX_ALTERNATES}")
    return out


def validate_question(question: str, field: str = "question") -> str:
    text = " ".join(question.split())
    if not text:
        raise KnowledgeError(f"{field}: must not be empty")
    if len(text) > MAX_QUESTION:
        raise KnowledgeError(f"{field}: {len(text)} characters, at most {MAX_QUESTION}")
    return text


class RAGEngine:
    def __init__(self, db: Database, embedder: Embedder, collection: Any,
                 settings: RagSettings, multilingual: VectorIndex | None = None) -> None:
        self.db, self.settings = db, settings
        self.dense = VectorIndex(embedder, collection, phrasings)
        self.multilingual = multilingual  # Korean questions' second dense half
        self.lexical = Bm25Index()
        self.lexicon = load_lexicon(settings.lexicon)
        self._rows: dict[str, Knowledge] = {}
        self._phrasings = 0  # indexed phrasings of the approved entries
        self._load_lexical()

    @property
    def collection(self) -> Any:
        return self.dense.collection

    @property
    def embedder(self) -> Embedder:
        return self.dense.embedder  # type: ignore[no-any-return]

    def _vector_indexes(self) -> list[VectorIndex]:
        return [self.dense] + ([self.multilingual] if self.multilingual else [])

    def approved(self) -> list[Knowledge]:
        return list(self._rows.values())

    def entry(self, knowledge_id: str) -> Knowledge | None:
        """An approved (searchable) entry."""
        return self._rows.get(knowledge_id)

    def __len__(self) -> int:
        """Approved (searchable) entries."""
        return len(self._rows)

    @classmethod
    def open(cls, settings: Settings, db: Database | None = None) -> RAGEngine:
        """Blocking: loads the embedding models and the indexes (run it in a thread)."""
        multilingual = None
        if settings.rag.multilingual_model:
            multilingual = VectorIndex(MultilingualEmbedder(),
                                       open_collection(settings, "-multilingual"), questions)
        return cls(db or open_database(settings),
                   Embedder(settings.rag.embedding_model, settings.cache_dir),
                   open_collection(settings), settings.rag, multilingual)

    def _load_lexical(self) -> None:
        with self.db.session() as session:
            rows = session.scalars(select(Knowledge).where(
                Knowledge.status == KnowledgeStatus.APPROVED)).all()
        self.lexical = Bm25Index()
        self._rows, self._phrasings = {}, 0
        for row in rows:
            self._index_lexical(row)

    def _index_lexical(self, row: Knowledge) -> None:
        self._unindex_lexical(row.id)
        self._rows[row.id] = row
        for index_id, text in phrasings(row):
            self.lexical.add(index_id, text)
        self._phrasings += 1 + len(row.alternates or ())

    def _unindex_lexical(self, knowledge_id: str) -> Knowledge | None:
        old = self._rows.pop(knowledge_id, None)
        if old is not None:
            for index_id, _text in phrasings(old):
                self.lexical.remove(index_id)
            self._phrasings -= 1 + len(old.alternates or ())
        return old

    # ---- the seed's async API -----------------------------------------------------
    async def search(self, query: str, top_k: int = 5,
                     threshold: float | None = None) -> list[dict[str, Any]]:
        hits = await asyncio.to_thread(self.search_hits, query, top_k, threshold)
        return [h.as_dict() for h in hits]

    async def upsert(self, qa: dict[str, Any]) -> str:
        return await asyncio.to_thread(self.upsert_sync, qa)

    async def delete(self, knowledge_id: str) -> bool:
        return await asyncio.to_thread(self.delete_sync, knowledge_id)

    # ---- blocking implementations -------------------------------------------------
    def search_hits(self, query: str, top_k: int = 5, threshold: float | None = None,
                    language: str = "") -> list[Hit]:
        """Best entries first; ``language`` (a call's, e.g. "ko") keeps only its entries."""
        text = validate_question(query, "query")
        if not self._rows:
            return []
        language = language.split("-")[0].lower()
        # enough phrasings that about top_k * CANDIDATES entries come back from each index
        # (twice that when entries of other languages are left out afterwards)
        want = -(-max(1, top_k) * CANDIDATES * (2 if language else 1) * self._phrasings
                 // len(self._rows))
        expanded = expand_query(text, self.lexicon)
        w, m = self.weights(text)
        # the indexes at once: all release the GIL (torch, numpy)
        pending = _POOL.submit(self.lexical.query, expanded)
        other = _POOL.submit(self.multilingual.query, text, want) if (
            m and self.multilingual) else None
        dense = self.dense.query(text, want)
        scores = pending.result()
        lexical = best_per_entry(scores.top(want))
        multilingual = other.result() if other else {}
        hits = []
        for doc_id in set(dense) | set(lexical) | set(multilingual):
            row = self._rows.get(doc_id)
            if row is None:
                continue  # in Chroma but not approved in SQL: drift, see check_drift()
            if language and row.language != language:
                continue
            d = dense.get(doc_id, 0.0)
            lx = lexical.get(doc_id)
            if lx is None:
                lx = max(scores.get(index_id) for index_id, _text in phrasings(row))
            u = multilingual.get(doc_id, 0.0)
            hits.append(Hit(doc_id, row.question, row.answer, row.category,
                            w * d + m * u + (1 - w - m) * lx, d, lx))
        hits.sort(key=lambda h: h.similarity, reverse=True)
        if threshold is not None:
            hits = [h for h in hits if h.similarity >= threshold]
        return hits[:top_k]

    def weights(self, text: str) -> tuple[float, float]:
        """(dense, multilingual) weights of a question; the lexical half has the rest.
        Korean leans on the lexical and multilingual halves: all-MiniLM barely separates it."""
        if _HANGUL.search(text):
            m = self.settings.multilingual_weight_ko if self.multilingual else 0.0
            return self.settings.dense_weight_ko, m
        return self.settings.dense_weight, 0.0

    def bulk_upsert(self, items: list[dict[str, Any]]) -> list[str]:
        """Store many entries, then index the approved ones in one embedding batch."""
        rows = [self._store(qa) for qa in items]
        approved = [r for r in rows if r.status == KnowledgeStatus.APPROVED]
        if approved:
            self._index(approved)
        return [r.id for r in rows]

    def upsert_sync(self, qa: dict[str, Any]) -> str:
        row = self._store(qa)
        if row.status == KnowledgeStatus.APPROVED:
            self._index([row])
        return row.id

    def _store(self, qa: dict[str, Any]) -> Knowledge:
        question = validate_question(str(qa.get("question", "")))
        alternates = validate_alternates(qa.get("alternates"), question)
        if ALT in str(qa.get("id") or ""):
            raise KnowledgeError(f"id: must not contain {ALT!r}")
        answer = " ".join(str(qa.get("answer", "")).split())
        if not answer:
            raise KnowledgeError("answer: must not be empty")
        with self.db.session() as session:
            row = session.get(Knowledge, qa["id"]) if qa.get("id") else None
            row = row or Knowledge(id=qa.get("id") or None)
            row.question, row.alternates, row.answer = question, alternates, answer
            row.category = str(qa.get("category") or "general")
            row.language = str(qa.get("language") or "en")
            row.source = KnowledgeSource(qa.get("source") or KnowledgeSource.MANUAL)
            row.status = KnowledgeStatus(qa.get("status") or KnowledgeStatus.APPROVED)
            session.add(row)
            session.flush()
            session.expunge(row)
        return row

    def _index(self, rows: list[Knowledge]) -> None:
        stale = []  # alternates an entry no longer has
        for row in rows:
            old = self._rows.get(row.id)
            if old is not None:
                stale += [i for i, _text in phrasings(old)[len(phrasings(row)):]]
        for index in self._vector_indexes():
            index.upsert(rows, stale)
        for row in rows:
            self._index_lexical(row)

    def has(self, knowledge_id: str) -> bool:
        with self.db.session() as session:
            return session.get(Knowledge, knowledge_id) is not None

    def find_id(self, question: str) -> str | None:
        """The id of the entry with exactly this question (whitespace-normalized)."""
        text = " ".join(question.split())
        with self.db.session() as session:
            return session.scalars(select(Knowledge.id).where(Knowledge.question == text)
                                   ).first()

    def delete_sync(self, knowledge_id: str) -> bool:
        with self.db.session() as session:
            row = session.get(Knowledge, knowledge_id)
            ids = {knowledge_id}
            if row is not None:
                ids.update(i for i, _text in phrasings(row))
                session.delete(row)
        indexed = self._unindex_lexical(knowledge_id)
        if indexed is not None:
            ids.update(i for i, _text in phrasings(indexed))
        for index in self._vector_indexes():
            index.delete(sorted(ids))
        return indexed is not None or row is not None

    def check_drift(self) -> tuple[set[str], set[str]]:
        """Entries (missing a phrasing in an index, with index rows SQL does not have)."""
        expected = {i for row in self._rows.values() for i, _text in phrasings(row)}
        missing: set[str] = set()
        stale: set[str] = set()
        for index in self._vector_indexes():
            indexed = index.ids()
            missing |= {entry_id(i) for i in expected - indexed}
            stale |= {entry_id(i) for i in indexed - expected}
        return missing, stale

    def reindex(self, batch: int = 500) -> int:
        """Rebuild every index from SQL (the source of truth)."""
        for index in self._vector_indexes():
            index.clear()
        self._load_lexical()
        rows = list(self._rows.values())
        for start in range(0, len(rows), batch):
            for index in self._vector_indexes():
                index.upsert(rows[start : start + batch], [])
        return len(rows)
