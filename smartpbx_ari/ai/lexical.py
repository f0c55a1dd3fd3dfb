"""BM25 over character n-grams: the lexical half of the hybrid retrieval (sans-IO).

Character n-grams (2-4 characters, inside word boundaries) need no tokenizer, so Korean
works as well as English even when the embedding model barely separates Korean. Scores
are normalized by the score of an average-length entry holding every n-gram of the
question once, and clipped to 1.0.

Storage is an inverted index: a column-major sparse matrix of term frequencies (one
column per n-gram, one row per entry), so a query touches only the postings of its own
n-grams, in numpy. Entries added since the last compaction live in a small "recent"
segment scored in Python; removed entries are masked. Compaction (adding the recent
segment to the matrix and dropping removed rows) runs at the next query once enough
changes are pending, at once while the index is small. Until then an n-gram's document
frequency still counts removed rows - a small, temporary idf bias.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import ChainMap, Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from smartpbx_ari.ai.language import is_hangul

_WORD = re.compile(r"\w+")
NGRAMS = (2, 3, 4)
# Question frames that carry no topic: without them "회원 탈퇴는 어떻게 하나요?" no
# longer looks like "배송 조회는 어떻게 하나요?".
STOPWORDS = frozenset("""
어떻게 하나요 있나요 되나요 해요 있어요 주세요 알려주세요 싶어요 할 수 수 뭐 어디 언제
얼마나 제 저 이 그 좀 되나 하면 돼요 가요 와요 인가요 건가요 나요
a an the is are am be do does did i you we my me your our to of in on for and or can
could would will how what when which who where it this that with at please there any
""".split())
# Korean particles (josa) glued to the end of a word: "환불은", "택배로" search as
# "환불", "택배". Longest first; a stem keeps at least two syllables.
# A morphological analyser did not pay (Kiwi, PyPI kiwipiepy 0.24, 100 MB, 1.4 s to load):
# its content morphemes, word stems, or the surface cut before particles and endings,
# instead of this list or beside it, gave bench_rag --domains software 0.848-0.886 right
# (this list 0.876; +1 of 105 at best) while the demo held-out Korean recall@1 fell to
# 0.94-0.98 (1.0): the character n-grams already match a word's stem.
PARTICLES = sorted("은 는 이 가 을 를 에 에서 에게 으로 로 도 만 까지 부터 의 와 과 랑 이랑 "
                   "한테 께서 이나 나 요".split(), key=len, reverse=True)
PENDING_LIMIT = 256  # changes kept out of the matrix before a compaction
SMALL = 5000  # below this many entries, compact at every change


def ngrams(text: str) -> Counter[str]:
    """Character n-grams of each word, with word-boundary markers."""
    grams: Counter[str] = Counter()
    normal = unicodedata.normalize("NFKC", text).lower()
    for word in _WORD.findall(normal):
        if word in STOPWORDS:
            continue
        word = strip_particle(word)
        padded = f" {word} "
        for n in NGRAMS:
            grams.update(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
    return grams


def strip_particle(word: str) -> str:
    if not is_hangul(word[-1:]):
        return word
    for particle in PARTICLES:
        if word.endswith(particle) and len(word) - len(particle) >= 2:
            return word[: -len(particle)]
    return word


@dataclass(frozen=True)
class LexicalScores:
    """Normalized scores (0..1) of every entry that shares an n-gram with a query."""

    ids: list[str]
    scores: NDArray[np.float64]
    rows: Mapping[str, int]

    def top(self, k: int) -> list[tuple[str, float]]:
        k = min(k, len(self.ids))
        if k <= 0:
            return []
        best = np.argpartition(-self.scores, k - 1)[:k]
        best = best[np.argsort(-self.scores[best], kind="stable")]
        return [(self.ids[i], float(self.scores[i])) for i in best if self.scores[i] > 0]

    def get(self, doc_id: str) -> float:
        row = self.rows.get(doc_id)
        return 0.0 if row is None else float(self.scores[row])


class Bm25Index:
    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._ids: list[str] = []  # matrix row -> entry id
        self._rows: dict[str, int] = {}  # entry id -> live matrix row
        self._tf = sparse.csc_array((0, 0), dtype=np.float32)
        self._weights = self._tf
        self._lengths = np.zeros(0, dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._df = np.zeros(0, dtype=np.int64)  # per column, rows of the matrix
        self._recent: dict[str, Counter[str]] = {}
        self._recent_df: Counter[str] = Counter()
        self._total_len = 0
        self._removed = 0

    def __len__(self) -> int:
        return len(self._rows) + len(self._recent)

    def add(self, doc_id: str, text: str) -> None:
        grams = ngrams(text)
        with self._lock:
            self._remove(doc_id)
            self._recent[doc_id] = grams
            self._recent_df.update(grams.keys())
            self._total_len += sum(grams.values())

    def remove(self, doc_id: str) -> None:
        with self._lock:
            self._remove(doc_id)

    def _remove(self, doc_id: str) -> None:
        grams = self._recent.pop(doc_id, None)
        if grams is not None:
            self._recent_df.subtract(grams.keys())
            self._total_len -= sum(grams.values())
            return
        row = self._rows.pop(doc_id, None)
        if row is not None:
            self._alive[row] = False
            self._total_len -= int(self._lengths[row])
            self._removed += 1

    # ---- compaction ---------------------------------------------------------------
    def _pending(self) -> int:
        return len(self._recent) + self._removed

    def _compact(self) -> None:
        keep = np.flatnonzero(self._alive)
        ids = [self._ids[i] for i in keep]
        tf = sparse.csr_array(self._tf)[keep] if self._removed else sparse.csr_array(self._tf)
        cols, vals, indptr = [], [], [0]
        for doc_id, grams in self._recent.items():
            for gram, count in grams.items():
                cols.append(self._vocab.setdefault(gram, len(self._vocab)))
                vals.append(count)
            indptr.append(len(cols))
            ids.append(doc_id)
        width = len(self._vocab)
        old = sparse.csr_array((tf.data, tf.indices, tf.indptr), shape=(tf.shape[0], width))
        new = sparse.csr_array((np.asarray(vals, np.float32), np.asarray(cols, np.int32),
                                np.asarray(indptr, np.int64)), shape=(len(indptr) - 1, width))
        self._tf = sparse.csc_array(sparse.vstack([old, new], format="csr"))
        self._tf.sort_indices()
        self._ids = ids
        self._rows = {doc_id: row for row, doc_id in enumerate(ids)}
        self._lengths = np.asarray(self._tf.sum(axis=1), dtype=np.float32).ravel()
        self._alive = np.ones(len(ids), dtype=bool)
        self._df = np.diff(self._tf.indptr).astype(np.int64)
        self._weights = self._saturate(self._tf)
        self._recent, self._recent_df, self._removed = {}, Counter(), 0

    def _saturate(self, tf: sparse.csc_array) -> sparse.csc_array:
        """BM25's term-frequency saturation per posting, at today's average length."""
        avg = float(self._lengths.mean()) if len(self._lengths) else 1.0
        rows = tf.indices
        norm = self.k1 * (1 - self.b + self.b * self._lengths[rows] / avg)
        data = (tf.data * (self.k1 + 1) / (tf.data + norm)).astype(np.float32)
        return sparse.csc_array((data, tf.indices, tf.indptr), shape=tf.shape)

    # ---- scoring ------------------------------------------------------------------
    def _idf(self, gram: str, n: int) -> float:
        col = self._vocab.get(gram)
        df = (int(self._df[col]) if col is not None else 0) + self._recent_df.get(gram, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def query(self, text: str) -> LexicalScores:
        """Normalized scores of the entries sharing n-grams with ``text``."""
        query = ngrams(text)
        with self._lock:
            pending = self._pending()
            if pending and (pending >= PENDING_LIMIT or len(self) < SMALL):
                self._compact()
            n = len(self)
            if not query or not n:
                return LexicalScores([], np.zeros(0), {})
            avg = self._total_len / n
            weights = {g: self._idf(g, n) * qtf for g, qtf in query.items()}
            ceiling = sum(w * (self.k1 + 1) / (1 + self.k1) for w in weights.values()) or 1.0
            scores = self._matrix_scores(weights)
            ids = self._ids
            rows: Mapping[str, int] = self._rows
            if self._recent:
                ids = ids + list(self._recent)
                base = len(self._ids)
                rows = ChainMap(self._rows, {d: base + i for i, d in enumerate(self._recent)})
                recent = [self._doc_score(weights, grams, avg) for grams in self._recent.values()]
                scores = np.concatenate([scores, np.asarray(recent, dtype=np.float64)])
        return LexicalScores(ids, np.minimum(1.0, scores / ceiling), rows)

    def _matrix_scores(self, weights: dict[str, float]) -> NDArray[np.float64]:
        rows_n = len(self._ids)
        cols = [(self._vocab[g], w) for g, w in weights.items() if g in self._vocab]
        if not rows_n or not cols:
            return np.zeros(rows_n)
        picked = self._weights[:, [c for c, _ in cols]]
        scores = np.asarray(picked @ np.array([w for _, w in cols]), dtype=np.float64)
        scores[~self._alive] = 0.0
        return scores

    def _doc_score(self, weights: dict[str, float], doc: Counter[str], avg: float) -> float:
        norm = self.k1 * (1 - self.b + self.b * sum(doc.values()) / avg)
        score = 0.0
        for gram, weight in weights.items():
            tf = doc.get(gram, 0)
            if tf:
                score += weight * tf * (self.k1 + 1) / (tf + norm)
        return score

    # ---- conveniences -------------------------------------------------------------
    def score(self, text: str, doc_id: str) -> float:
        """Normalized score (0..1) of one entry for ``text``; 0 for an unknown id."""
        return self.query(text).get(doc_id)

    def search(self, text: str, top_k: int = 10) -> list[tuple[str, float]]:
        """(doc_id, normalized score 0..1) best first."""
        return self.query(text).top(top_k)
