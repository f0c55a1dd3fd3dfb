"""A dense index: one embedding model and its Chroma collection, queried by cosine.

Each phrasing of an entry is a row of its own, ``<entry id>`` or ``<entry id>#alt<n>``;
an entry scores as its best phrasing. Blocking: run it in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from smartpbx_ari.config import Settings
from smartpbx_ari.store.knowledge import ALT
from smartpbx_ari.store.models import Knowledge


def open_collection(settings: Settings, suffix: str = "") -> Any:
    # chromadb is imported only when a collection is opened: it is heavy (seconds)
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


def entry_id(index_id: str) -> str:
    return index_id.split(ALT, 1)[0]


def best_per_entry(scored: Iterable[tuple[str, float]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for index_id, score in scored:
        key = entry_id(index_id)
        best[key] = max(score, best.get(key, score))
    return best


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
        if items:  # (an index of some languages only may have none of these rows)
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
