"""AIAgentService (the seed's dialog manager): intent, grounded answer, confidence, HITL.

The agent never invents: an answer is a stored, approved knowledge entry, or a holding
phrase with a hand-over to a person (HITL). Words in the caller's question cannot change
that, because nothing the caller says is ever executed or turned into instructions.
Confidence is the fused retrieval similarity mapped linearly so that the similarity that
separates in-domain from out-of-domain questions on the paraphrase bench (0.43) lands on
the hand-over threshold (``agent.min_confidence``, 0.6).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field, replace

import yaml

from smartpbx_ari.ai.language import base_language, written_language
from smartpbx_ari.ai.lexical import Bm25Index
from smartpbx_ari.ai.llm import Phraser
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.ai.responder import Reply
from smartpbx_ari.ai.retrieval import Hit, expand_query
from smartpbx_ari.config import AgentSettings
from smartpbx_ari.data import read_text
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.knowledge import approved_entries, validate_question

SEPARATING_SIMILARITY = 0.43  # from scripts/bench_rag.py, on the dev set
SLOPE = 1.6  # similarity 0.68 and above -> confidence 1.0
INTENT_MIN = 0.35  # lexical intent score below this is "other"
MEMORY_TURNS = 6
FOLLOW_UP_WORDS = 5  # only a short utterance is read as a follow-up of the last question
CATEGORY_INTENTS = {
    "delivery": "delivery_tracking", "배송": "delivery_tracking", "refund": "refund",
    "환불": "refund", "exchange": "exchange", "교환": "exchange",
    "product_inquiry": "product_inquiry", "상품문의": "product_inquiry",
    "payment": "payment", "결제": "payment",
}
HOLDING = {"en": "Let me connect you with a colleague who can help. Please hold.",
           "ko": "상담원을 연결해 드리겠습니다. 잠시만 기다려 주세요."}


def spoken_phrases(db: Database) -> dict[str, list[str]]:
    """Blocking: what the agent says without an LLM, by language (the holding phrases
    and every approved answer): what the speech cache keeps ready."""
    said: dict[str, list[str]] = {lang: [text] for lang, text in HOLDING.items()}
    for entry in approved_entries(db):
        said.setdefault(base_language(entry.language) or "en", []).append(entry.answer)
    return said


def calibrate(similarity: float) -> float:
    return max(0.0, min(1.0, 0.6 + (similarity - SEPARATING_SIMILARITY) * SLOPE))


def load_intents(path: str = "") -> dict[str, list[str]]:
    data = yaml.safe_load(read_text(path, "intents.yaml")) or {}
    return {str(k): [str(e) for e in v] for k, v in data.items()}


class IntentClassifier:
    """Lexical match (char n-grams, domain lexicon) against each intent's examples."""

    def __init__(self, intents: dict[str, list[str]], lexicon: dict[str, list[str]]) -> None:
        self.lexicon = lexicon
        self.index = Bm25Index()
        for intent, examples in intents.items():
            for n, example in enumerate(examples):
                self.index.add(f"{intent}#{n}", example)

    def classify(self, text: str) -> tuple[str, float]:
        hits = self.index.search(expand_query(text, self.lexicon), top_k=1)
        if not hits or hits[0][1] < INTENT_MIN:
            return "other", hits[0][1] if hits else 0.0
        return hits[0][0].split("#")[0], hits[0][1]


@dataclass(frozen=True)
class Turn:
    question: str
    response: str
    sources: tuple[str, ...]


@dataclass
class Session:
    turns: collections.deque[Turn] = field(
        default_factory=lambda: collections.deque(maxlen=MEMORY_TURNS))


class AIAgentService:
    """The :class:`~smartpbx_ari.ai.responder.Responder` of calls, the REST route and the CLI."""

    def __init__(self, rag: RAGEngine, settings: AgentSettings,
                 intents: dict[str, list[str]] | None = None,
                 phraser: Phraser | None = None) -> None:
        self.rag, self.settings, self.phraser = rag, settings, phraser
        self.retriever = rag.retriever
        self.intents = IntentClassifier(intents or load_intents(settings.intents),
                                        self.retriever.lexicon)
        self.sessions: dict[str, Session] = {}

    async def respond(self, text: str, session_id: str, language: str = "") -> Reply:
        """One turn (:meth:`answer` in a thread); with a phraser, a grounded answer also
        comes as ``speech``, the LLM's rephrasing sentence by sentence."""
        reply = await asyncio.to_thread(self.answer, text, session_id, language)
        if self.phraser is None or not reply.sources:
            return reply
        return replace(reply, speech=self.phraser.sentences(
            reply.text, self.settings.llm_budget_ms / 1000))

    def answer(self, query: str, session_id: str, language: str = "") -> Reply:
        """Blocking: one turn. ``language``: the call's (routing), which also keeps the
        knowledge to that language; without it the question's script decides the
        holding phrase."""
        text = validate_question(query, "query")
        only = base_language(language)
        if only not in HOLDING:
            only = ""
        spoken = only or written_language(text)
        intent, _ = self.intents.classify(text)
        reply = self._answer(text, spoken, intent, session_id, only)
        self.sessions.setdefault(session_id, Session()).turns.append(
            Turn(text, reply.text, reply.sources))
        return reply

    def _answer(self, text: str, language: str, intent: str, session_id: str,
                only: str) -> Reply:
        if intent == "human_request":
            return self._hand_over(language, intent, 1.0)
        hits = self.retriever.search(text, top_k=3, language=only)
        if not hits or calibrate(hits[0].similarity) < self.settings.min_confidence:
            hits = self._with_context(text, session_id, only) or hits
        confidence = calibrate(hits[0].similarity) if hits else 0.0
        if confidence < self.settings.min_confidence:
            return self._hand_over(language, intent, confidence)
        top = hits[0]
        return Reply(top.answer, round(confidence, 3),
                     CATEGORY_INTENTS.get(top.category, intent), sources=(top.id,))

    def _with_context(self, text: str, session_id: str, only: str) -> list[Hit]:
        """A follow-up ("how many days do I have?") is read with the last question."""
        session = self.sessions.get(session_id)
        if session is None or not session.turns or len(text.split()) > FOLLOW_UP_WORDS:
            return []
        last = session.turns[-1]
        hits = self.retriever.search(f"{last.question} {text}", top_k=3, language=only)
        return [h for h in hits if calibrate(h.similarity) >= self.settings.min_confidence]

    @staticmethod
    def _hand_over(language: str, intent: str, confidence: float) -> Reply:
        return Reply(HOLDING[language], round(confidence, 3), intent, hitl=True)
