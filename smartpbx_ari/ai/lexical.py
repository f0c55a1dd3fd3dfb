"""BM25 over character n-grams: the lexical half of the hybrid retrieval (sans-IO).

Character n-grams (2-4 characters, inside word boundaries) need no tokenizer, so Korean
works as well as English even when the embedding model barely separates Korean. Scores
are normalized by the score of an average-length entry holding every n-gram of the
question once, and clipped to 1.0.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

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


def ngrams(text: str) -> Counter[str]:
    """Character n-grams of each word, with word-boundary markers."""
    grams: Counter[str] = Counter()
    normal = unicodedata.normalize("NFKC", text).lower()
    for word in _WORD.findall(normal):
        if word in STOPWORDS:
            continue
        padded = f" {word} "
        for n in NGRAMS:
            grams.update(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
    return grams


@dataclass
class Bm25Index:
    k1: float = 1.2
    b: float = 0.75
    _docs: dict[str, Counter[str]] = field(default_factory=dict)
    _df: Counter[str] = field(default_factory=Counter)
    _total_len: int = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, doc_id: str, text: str) -> None:
        self.remove(doc_id)
        grams = ngrams(text)
        self._docs[doc_id] = grams
        self._df.update(grams.keys())
        self._total_len += sum(grams.values())

    def remove(self, doc_id: str) -> None:
        grams = self._docs.pop(doc_id, None)
        if grams is None:
            return
        self._df.subtract(grams.keys())
        self._df += Counter()  # drop zero counts
        self._total_len -= sum(grams.values())

    def _idf(self, gram: str) -> float:
        n, df = len(self._docs), self._df.get(gram, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _score(self, query: Counter[str], doc: Counter[str]) -> float:
        avg = self._total_len / len(self._docs) if self._docs else 1.0
        norm = self.k1 * (1 - self.b + self.b * sum(doc.values()) / avg)
        score = 0.0
        for gram, qtf in query.items():
            tf = doc.get(gram, 0)
            if tf:
                score += self._idf(gram) * qtf * tf * (self.k1 + 1) / (tf + norm)
        return score

    def _ceiling(self, query: Counter[str]) -> float:
        # every n-gram of the question once, in an entry of average length
        return sum(self._idf(g) * qtf * (self.k1 + 1) / (1 + self.k1)
                   for g, qtf in query.items()) or 1.0

    def score(self, text: str, doc_id: str) -> float:
        """Normalized score (0..1) of one entry for ``text``; 0 for an unknown id."""
        query, doc = ngrams(text), self._docs.get(doc_id)
        if not query or doc is None:
            return 0.0
        return min(1.0, self._score(query, doc) / self._ceiling(query))

    def search(self, text: str, top_k: int = 10) -> list[tuple[str, float]]:
        """(doc_id, normalized score 0..1) best first."""
        query = ngrams(text)
        if not query or not self._docs:
            return []
        ceiling = self._ceiling(query)
        scored = [(doc_id, min(1.0, self._score(query, doc) / ceiling))
                  for doc_id, doc in self._docs.items()]
        scored.sort(key=lambda item: item[1], reverse=True)
        return [s for s in scored[:top_k] if s[1] > 0]
