"""The ``Responder`` seam of the voice loop: text in, a :class:`Reply` out.

:class:`smartpbx_ari.ai.agent.AIAgentService` fills it (grounded answers or a hand-over).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


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


class Responder(Protocol):
    async def respond(self, text: str, session_id: str, language: str = "") -> Reply: ...
