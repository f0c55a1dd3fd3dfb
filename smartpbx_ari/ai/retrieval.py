"""HybridRetriever: the approved entries' indexes and their fusion into ranked hits.

Up to four indexes, all rebuildable from the SQL rows (``store/knowledge.py``): a dense
one (Chroma, sentence-transformers), a multilingual dense one (``rag.multilingual_model``:
multilingual-e5-small, ``ai/e5.py``, or USE multilingual), a second opinion for Korean
(``rag.korean_model``: its Korean entries only, asked Korean questions only) and an
in-memory BM25 over character n-grams (lexical). Each phrasing of an entry is indexed
apart: the question under the entry's id, each alternate (another way callers ask it)
under ``<id>#alt<n>``, each with the answer (a caller often asks with its words; and
equal lengths keep BM25 fair to short phrasings); an entry scores as its best phrasing.
Fusion: candidates are the union of the indexes' top hits; each gets ``similarity =
w * dense + m * multilingual + k * korean + (1 - w - m - k) * lexical`` with ``dense``
the cosine (clipped to 0..1) and ``lexical`` the normalized BM25 of the query expanded by
the domain lexicon. ``w`` and ``m`` are ``rag.dense_weight`` and
``rag.multilingual_weight``, or their ``_ko`` twins for Korean, which all-MiniLM-L6-v2
barely separates: there the multilingual and lexical halves carry it, with ``k``
(``rag.korean_weight``; 0 for other questions): e5-small squeezes Korean similarities
into a narrow band, where a model of another family (USE) reorders the near misses
(bench_rag --domains, software right 0.876 -> 0.905, directly 0.124 -> 0.219). An index
with no weight is not queried. The weights come from ``scripts/bench_rag.py --domains`` on
the design domains. No reranker follows: none measured paid (``scripts/bench_rerank.py``).
Blocking (models, Chroma): run it in a thread. Within a search the lexical and the
multilingual queries run in threads of their own while the dense one (or the Korean
second opinion) runs.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import yaml

from smartpbx_ari.ai import faults
from smartpbx_ari.ai.confidence import KbProfile, measure_profile
from smartpbx_ari.ai.dense import VectorIndex, best_per_entry, entry_id, open_collection
from smartpbx_ari.ai.e5 import E5Embedder
from smartpbx_ari.ai.embeddings import Embedder, MultilingualEmbedder
from smartpbx_ari.ai.language import base_language, is_korean
from smartpbx_ari.ai.lexical import Bm25Index
from smartpbx_ari.config import RagSettings, Settings
from smartpbx_ari.data import read_text
from smartpbx_ari.store.knowledge import ALT, KnowledgeError, all_alternates
from smartpbx_ari.store.models import Knowledge

log = logging.getLogger(__name__)
_POOL = ThreadPoolExecutor(2, thread_name_prefix="rag")  # the lexical and multilingual halves
CANDIDATES = 4  # each index contributes top_k * CANDIDATES hits to the fusion
NONE = 1e-6  # a weight at most this: its index is not queried
PROFILE_DRIFT = 0.1  # the KB profile is measured anew once entries changed by this share


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


def phrasings(row: Knowledge) -> list[tuple[str, str]]:
    """(index id, text) of each phrasing of an entry, with the answer (its words are
    searchable too: a caller often asks with them). Each answer sentence as a phrasing of
    its own measured worse (bench_rag --domains, right: bank 0.939 -> 0.869-0.919,
    software 0.876 -> 0.819-0.857, in the e5 index alone or in every index)."""
    return [(row.id, f"{row.question} {row.answer}"),
            *((f"{row.id}{ALT}{n}", f"{text} {row.answer}")
              for n, text in enumerate(all_alternates(row), 1))]


def korean_phrasings(row: Knowledge) -> list[tuple[str, str]]:
    """The phrasings of a Korean entry (with the answer: measured better than the
    questions alone); none of another language's (the Korean second opinion)."""
    return phrasings(row) if base_language(row.language) == "ko" else []


def _embedder(model: str, settings: Settings) -> Any:
    """A multilingual model by its ``rag.multilingual_model`` / ``rag.korean_model`` name."""
    if model.startswith("e5-small"):
        return E5Embedder(settings.cache_dir, int8=model == "e5-small")
    return MultilingualEmbedder()


def questions(row: Knowledge) -> list[tuple[str, str]]:
    """(index id, text) of each phrasing, the question alone (the multilingual index)."""
    return [(row.id, row.question), *((f"{row.id}{ALT}{n}", text)
                                      for n, text in enumerate(all_alternates(row), 1))]


class HybridRetriever:
    """The indexes of the approved entries (kept in step by the caller) and fusion."""

    def __init__(self, dense: VectorIndex, settings: RagSettings,
                 multilingual: VectorIndex | None = None,
                 korean: VectorIndex | None = None) -> None:
        self.dense, self.settings = dense, settings
        self.multilingual = multilingual  # Korean questions' second dense half
        self.korean = korean  # and their second opinion, over the Korean entries
        self.lexical = Bm25Index()
        self.lexicon = load_lexicon(settings.lexicon)
        self._rows: dict[str, Knowledge] = {}
        self._phrasings = 0  # indexed phrasings of the approved entries
        self.revision = 0  # moves on at every change of the approved entries
        self._profile: KbProfile | None = None
        self._changed = 0  # entries added, replaced or removed since the profile
        self._measuring = threading.Lock()

    @classmethod
    def open(cls, settings: Settings) -> HybridRetriever:
        """Blocking: loads the embedding models and opens the Chroma collections."""
        multilingual = korean = None
        model = settings.rag.multilingual_model
        if model:  # e5: the question with its answer; USE: the question alone
            e5 = model.startswith("e5-small")
            multilingual = VectorIndex(
                _embedder(model, settings),
                open_collection(settings, f"-{model}" if e5 else "-multilingual"),
                phrasings if e5 else questions)
        if settings.rag.korean_model and settings.rag.korean_weight > NONE:
            korean = VectorIndex(_embedder(settings.rag.korean_model, settings),
                                 open_collection(settings, f"-ko-{settings.rag.korean_model}"),
                                 korean_phrasings)
        dense = VectorIndex(Embedder(settings.rag.embedding_model, settings.cache_dir),
                            open_collection(settings), phrasings)
        return cls(dense, settings.rag, multilingual, korean)

    def vector_indexes(self) -> list[VectorIndex]:
        return [i for i in (self.dense, self.multilingual, self.korean) if i is not None]

    def approved(self) -> list[Knowledge]:
        return list(self._rows.values())

    def entry(self, knowledge_id: str) -> Knowledge | None:
        """An approved (searchable) entry."""
        return self._rows.get(knowledge_id)

    def __len__(self) -> int:
        """Approved (searchable) entries."""
        return len(self._rows)

    def search(self, text: str, top_k: int = 5, threshold: float | None = None,
               language: str = "") -> list[Hit]:
        """Best entries first for a validated question; ``language`` (a call's, e.g.
        "ko") keeps only its entries."""
        faults.point("search")
        if not self._rows:
            return []
        language = base_language(language)
        # enough phrasings that about top_k * CANDIDATES entries come back from each index
        # (twice that when entries of other languages are left out afterwards)
        want = -(-max(1, top_k) * CANDIDATES * (2 if language else 1) * self._phrasings
                 // len(self._rows))
        expanded = expand_query(text, self.lexicon)
        w, m, k = self.weights(text)
        # the indexes with a share, at once: all release the GIL (onnxruntime, numpy)
        pending = _POOL.submit(self.lexical.query, expanded) if 1 - w - m - k > NONE else None
        other = _POOL.submit(self.multilingual.query, text, want) if (
            m > NONE and self.multilingual) else None
        dense = self.dense.query(text, want) if w > NONE else {}
        korean = self.korean.query(text, want) if k > NONE and self.korean else {}
        scores = pending.result() if pending else None
        lexical = best_per_entry(scores.top(want)) if scores else {}
        multilingual = other.result() if other else {}
        hits = []
        for doc_id in set(dense) | set(lexical) | set(multilingual) | set(korean):
            row = self._rows.get(doc_id)
            if row is None:
                continue  # in Chroma but not approved in SQL: drift, see check_drift()
            if language and row.language != language:
                continue
            d = dense.get(doc_id, 0.0)
            lx = lexical.get(doc_id)
            if lx is None and scores is not None:
                lx = max(scores.get(index_id) for index_id, _text in phrasings(row))
            u = multilingual.get(doc_id, 0.0)
            lx = lx or 0.0
            hits.append(Hit(doc_id, row.question, row.answer, row.category,
                            w * d + m * u + k * korean.get(doc_id, 0.0) + (1 - w - m - k) * lx,
                            d, lx))
        hits.sort(key=lambda h: h.similarity, reverse=True)
        if threshold is not None:
            hits = [h for h in hits if h.similarity >= threshold]
        return hits[:top_k]

    def profile(self) -> KbProfile:
        """The KB's impostor level (``ai/confidence.py``), as :meth:`refresh_profile` last
        measured it (blocking: measured now if never)."""
        profile = self._profile
        return profile if profile is not None else self.refresh_profile()

    def refresh_profile(self) -> KbProfile:
        """Blocking (:data:`~smartpbx_ari.ai.confidence.PROFILE_SAMPLE` searches): the
        profile measured from the approved entries if never, or if they changed by a
        tenth since. The writers call it after a change, and ``serve`` before it takes
        calls, so a caller's turn does not pay for it within its search deadline."""
        with self._measuring:  # (two writers at once measure it once)
            profile = self._profile
            if profile is None or self._changed > PROFILE_DRIFT * max(1, profile.entries):
                self._changed = 0
                profile = self._profile = measure_profile(
                    sorted(self._rows), lambda i: self._rows[i].question, self._best_other)
            return profile

    def _best_other(self, question: str, knowledge_id: str) -> float:
        hits = self.search(question, top_k=2)
        return next((h.similarity for h in hits if h.id != knowledge_id), 0.0)

    def weights(self, text: str) -> tuple[float, float, float]:
        """(dense, multilingual, korean) weights of a question; the lexical half has the
        rest. Korean leans on the lexical and multilingual halves and the Korean second
        opinion: all-MiniLM barely separates it."""
        korean = is_korean(text)
        w = self.settings.dense_weight_ko if korean else self.settings.dense_weight
        m = self.settings.multilingual_weight_ko if korean else self.settings.multilingual_weight
        k = self.settings.korean_weight if korean and self.korean else 0.0
        return w, m if self.multilingual else 0.0, k

    def load(self, rows: list[Knowledge]) -> None:
        """The lexical index and the entries from the approved rows (the dense indexes
        persist in Chroma)."""
        self.lexical = Bm25Index()
        self._rows, self._phrasings, self._profile = {}, 0, None
        self.revision += 1
        for row in rows:
            self._index_lexical(row)

    def index(self, rows: list[Knowledge]) -> None:
        """Add or replace approved entries in every index."""
        for index in self.vector_indexes():
            stale = []  # phrasings an entry no longer has in this index
            for row in rows:
                old = self._rows.get(row.id)
                if old is not None:
                    kept = {i for i, _text in index.texts(row)}
                    stale += [i for i, _text in index.texts(old) if i not in kept]
            index.upsert(rows, stale)
        for row in rows:
            self._index_lexical(row)

    def remove(self, knowledge_id: str, stored: Knowledge | None = None) -> bool:
        """Take an entry out of every index, with each phrasing its row (``stored``) had;
        True if it was indexed."""
        ids = {knowledge_id}
        if stored is not None:
            ids.update(i for i, _text in phrasings(stored))
        indexed = self._unindex_lexical(knowledge_id)
        if indexed is not None:
            ids.update(i for i, _text in phrasings(indexed))
        for index in self.vector_indexes():
            index.delete(sorted(ids))
        return indexed is not None

    def _index_lexical(self, row: Knowledge) -> None:
        self._changed += 1
        self._unindex_lexical(row.id)
        self.revision += 1
        self._rows[row.id] = row
        for index_id, text in phrasings(row):
            self.lexical.add(index_id, text)
        self._phrasings += 1 + len(all_alternates(row))

    def _unindex_lexical(self, knowledge_id: str) -> Knowledge | None:
        old = self._rows.pop(knowledge_id, None)
        if old is not None:
            self.revision += 1
            self._changed += 1
            for index_id, _text in phrasings(old):
                self.lexical.remove(index_id)
            self._phrasings -= 1 + len(all_alternates(old))
        return old

    def check_drift(self) -> tuple[set[str], set[str]]:
        """Entries (missing a phrasing in an index, with index rows SQL does not have)."""
        missing: set[str] = set()
        stale: set[str] = set()
        for index in self.vector_indexes():
            expected = {i for row in self._rows.values() for i, _text in index.texts(row)}
            indexed = index.ids()
            missing |= {entry_id(i) for i in expected - indexed}
            stale |= {entry_id(i) for i in indexed - expected}
        return missing, stale

    def fill_empty(self, batch: int = 500) -> None:
        """A vector index holding nothing while entries exist (a model newly chosen) gets
        every approved entry."""
        for index in self.vector_indexes():
            if index.collection.count():
                continue  # (checked first: an entry's phrasings are not built at each start)
            rows = [row for row in self._rows.values() if index.texts(row)]
            if rows:
                log.info("retrieval: indexing %d entries into the empty collection %s",
                         len(rows), index.collection.name)
                for start in range(0, len(rows), batch):
                    index.upsert(rows[start : start + batch], [])

    def rebuild(self, rows: list[Knowledge], batch: int = 500) -> int:
        """Every index anew from the approved rows (SQL, the source of truth)."""
        for index in self.vector_indexes():
            index.clear()
        self.load(rows)
        rows = list(self._rows.values())
        for start in range(0, len(rows), batch):
            for index in self.vector_indexes():
                index.upsert(rows[start : start + batch], [])
        return len(rows)
