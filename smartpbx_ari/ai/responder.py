"""The ``Responder`` seam of the voice loop: text in, a :class:`Reply` out.

:class:`smartpbx_ari.ai.agent.AIAgentService` fills it (grounded answers or a hand-over).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Reply:
    text: str
    confidence: float
    intent: str
    hitl: bool = False  # a human should take over
    sources: tuple[str, ...] = field(default=())


class Responder(Protocol):
    async def respond(self, text: str, session_id: str, language: str = "") -> Reply: ...
