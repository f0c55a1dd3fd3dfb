"""The ``Responder`` seam of the voice loop: text in, a :class:`Reply` out.

:class:`smartpbx_ari.ai.agent.AIAgentService` fills it (grounded answers or a hand-over);
the REST route and ``smartpbx ask`` show a reply as the seed's dict (:meth:`Reply.as_dict`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol


@dataclass(frozen=True)
class Reply:
    text: str
    confidence: float
    intent: str
    hitl: bool = False  # a human should take over
    sources: tuple[str, ...] = field(default=())
    # what to say, sentence by sentence as it is written (an LLM's rephrasing of
    # ``text``); None: say ``text``
    speech: AsyncIterator[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The seed's dict (``process_query``): the REST route's and ``smartpbx ask``'s."""
        return {"response": self.text, "confidence": self.confidence, "intent": self.intent,
                "hitl_triggered": self.hitl, "sources": list(self.sources)}

    async def written(self) -> Reply:
        """For a text channel: ``speech`` read to its end, joined into ``text``."""
        if self.speech is None:
            return self
        return replace(self, text=" ".join([s async for s in self.speech]), speech=None)


class Responder(Protocol):
    async def respond(self, text: str, session_id: str, language: str = "") -> Reply: ...
