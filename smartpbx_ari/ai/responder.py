"""The ``Responder`` seam of the voice loop, and a plain FAQ answerer that fills it
until the knowledge base (hybrid RAG + LLM) does.

The FAQ answerer scores an utterance against each entry with IDF-weighted word overlap
(cosine); below ``min_confidence`` it does not guess.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

import yaml

from smartpbx_ari.errors import UserFacingError

_WORD = re.compile(r"[\w']+")
_STOP = frozenset("a an the is are am i you we my me your our to of in on for and or can "
                  "do does how what when which who it this that be with at please would like "
                  "want know".split())
HUMAN_WORDS = frozenset("human person operator agent representative someone somebody "
                        "colleague staff".split())


class FaqError(UserFacingError):
    code = "faq-invalid"


@dataclass(frozen=True)
class Reply:
    text: str
    confidence: float
    intent: str
    hitl: bool = False  # a human should take over
    sources: tuple[str, ...] = field(default=())


class Responder(Protocol):
    async def respond(self, text: str, session_id: str, language: str = "") -> Reply: ...


@dataclass(frozen=True)
class FaqEntry:
    intent: str
    question: str
    answer: str
    keywords: tuple[str, ...]


def stem(word: str) -> str:
    """A crude English suffix stripper: enough for "arrived" to meet "arrive"."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def words(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


def load_faq(path: str = "") -> list[FaqEntry]:
    text = (Path(path).read_text("utf-8") if path
            else resources.files("smartpbx_ari.data").joinpath("faq.yaml").read_text("utf-8"))
    rows = yaml.safe_load(text) or []
    entries = []
    for n, row in enumerate(rows, 1):
        missing = [k for k in ("intent", "question", "answer") if not row.get(k)]
        if missing:
            raise FaqError(f"agent.faq entry {n}: missing {', '.join(missing)}")
        entries.append(FaqEntry(str(row["intent"]), str(row["question"]), str(row["answer"]),
                                tuple(stem(str(k).lower()) for k in row.get("keywords") or ())))
    if not entries:
        raise FaqError("agent.faq: no entries")
    return entries


class FaqResponder:
    def __init__(self, entries: list[FaqEntry], min_confidence: float = 0.6) -> None:
        self.entries = entries
        self.min_confidence = min_confidence
        self._bags = [Counter(words(e.question) + list(e.keywords)) for e in entries]
        df = Counter(w for bag in self._bags for w in bag)
        self._idf = {w: math.log(1 + len(entries) / c) for w, c in df.items()}

    def score(self, text: str) -> list[float]:
        query = set(words(text))
        scores = []
        for bag in self._bags:
            hit = sum(self._idf[w] for w in query if w in bag)
            norm = math.sqrt(sum(self._idf.get(w, 1.0) for w in query) or 1.0)
            scores.append(min(1.0, hit / norm / math.sqrt(len(bag)) * 2.0))
        return scores

    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        if HUMAN_WORDS & set(words(text)):
            return Reply("Of course. Let me put you through to a colleague.", 1.0,
                         "human_request", hitl=True)
        scores = self.score(text)
        best = max(range(len(scores)), key=scores.__getitem__)
        entry, confidence = self.entries[best], scores[best]
        if confidence < self.min_confidence:
            return Reply("I'm not sure about that one. You can ask about deliveries, refunds, "
                         "exchanges or payment, or press zero for a person.",
                         confidence, "other", hitl=False)
        return Reply(entry.answer, confidence, entry.intent, sources=(entry.intent,))
