"""Fakes for fast unit tests of the agent, at its two narrow seams (the seed's "Mocking LLM
Responses"): the LLM that rephrases a grounded answer (``AIAgentService.phraser``) and
the retriever behind the RAG engine (``rag.retriever``). Integration tests use the real
model and knowledge base (tests/integration/test_agent.py, test_llm.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from smartpbx_ari.ai.agent import AIAgentService
from smartpbx_ari.ai.confidence import KbProfile
from smartpbx_ari.ai.retrieval import Hit
from smartpbx_ari.config import AgentSettings


class MockLLM:
    """The seed's MockLLM: a canned response for the first keyword found in the prompt,
    else the prompt itself (for the phraser seam: the grounded answer, unchanged).

    ``ainvoke`` is the seed's API; ``sentences`` and ``phrase`` are the agent's
    :class:`~smartpbx_ari.ai.llm.Phraser` seam. Every prompt is kept in ``prompts``.
    """

    def __init__(self, responses: dict[str, str] | None = None) -> None:
        self.responses = responses or {}
        self.call_count = 0
        self.prompts: list[str] = []

    def _reply(self, prompt: str) -> str:
        self.call_count += 1
        self.prompts.append(prompt)
        return next((r for k, r in self.responses.items() if k in prompt), prompt)

    async def ainvoke(self, prompt: str) -> SimpleNamespace:
        return SimpleNamespace(content=self._reply(prompt))

    async def sentences(self, answer: str, budget_s: float = 1.0,
                        max_tokens: int = 48) -> AsyncIterator[str]:
        for sentence in self._reply(answer).split(". "):
            yield sentence

    async def phrase(self, answer: str, budget_s: float = 1.0, max_tokens: int = 48) -> str:
        return " ".join([s async for s in self.sentences(answer, budget_s, max_tokens)])

    def reset(self) -> None:
        self.call_count = 0
        self.prompts.clear()


@dataclass(frozen=True)
class Entry:
    """An approved knowledge entry, as ``retriever.entry`` gives it."""

    id: str
    question: str
    answer: str
    category: str
    title: str = ""
    language: str = ""


@dataclass
class FakeRetriever:
    """The seed's mock RAG engine: each query gets the scores of the first keyword it
    contains (``{keyword: [(entry id, similarity), ...]}``), else ``default``."""

    entries: dict[str, Entry]
    scores: dict[str, list[tuple[str, float]]]
    default: list[tuple[str, float]] = field(default_factory=list)
    kb: KbProfile = field(default_factory=lambda: KbProfile(0.45, 0.1, 30))
    lexicon: dict[str, list[str]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)

    def search(self, text: str, top_k: int = 5, language: str = "") -> list[Hit]:
        self.queries.append(text)
        scored = next((s for k, s in self.scores.items() if k in text), self.default)
        hits = [Hit(i, self.entries[i].question, self.entries[i].answer,
                    self.entries[i].category, s, s, s) for i, s in scored]
        return sorted(hits, key=lambda h: -h.similarity)[:top_k]

    def entry(self, knowledge_id: str) -> Entry | None:
        return self.entries.get(knowledge_id)

    def profile(self) -> KbProfile:
        return self.kb


def entries(items: Iterable[Entry]) -> dict[str, Entry]:
    return {e.id: e for e in items}


def agent_service(retriever: FakeRetriever, llm: MockLLM | None = None,
                  intents: dict[str, list[str]] | None = None) -> AIAgentService:
    """The real agent over the fakes (intents: the packaged intents.yaml by default)."""
    rag: Any = SimpleNamespace(retriever=retriever)
    phraser: Any = llm
    return AIAgentService(rag, AgentSettings(), intents=intents, phraser=phraser)
