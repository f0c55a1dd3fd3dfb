"""The ``Responder`` seam of the voice loop: text in, a :class:`Reply` out.

:class:`smartpbx_ari.ai.agent.AIAgentService` fills it (grounded answers or a hand-over);
the REST route and ``smartpbx ask`` show a reply as the seed's dict (:meth:`Reply.as_dict`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from smartpbx_ari.ai.clarify import Choice
from smartpbx_ari.errors import StageError

HUMAN_REQUEST = "human_request"  # the intent (and alert reason) of a caller asking for a person


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
    # a clarifying question: the entries it offers, in the order "1" and "2" pick them
    choices: tuple[Choice, ...] = ()

    @property
    def clarifying(self) -> bool:
        return bool(self.choices)

    @property
    def unsure(self) -> bool:
        """Not an answer the agent is sure of: a clarifying question, or a hand-over for
        want of one (not the caller asking for a person)."""
        return self.clarifying or (self.hitl and not self.for_a_person)

    @property
    def for_a_person(self) -> bool:
        """The caller asked for a person."""
        return self.intent == HUMAN_REQUEST

    def as_dict(self) -> dict[str, Any]:
        """The seed's dict (``process_query``): the REST route's and ``smartpbx ask``'s;
        a clarifying question also carries its choices."""
        out = {"response": self.text, "confidence": self.confidence, "intent": self.intent,
               "hitl_triggered": self.hitl, "sources": list(self.sources)}
        if self.choices:
            out["clarifying"] = True
            out["choices"] = [{"key": str(n), "id": c.id, "title": c.title}
                              for n, c in enumerate(self.choices, 1)]
        return out

    async def written(self) -> Reply:
        """For a text channel: ``speech`` read to its end, joined into ``text`` (the
        stored ``text`` itself if the LLM failed before it said anything)."""
        if self.speech is None:
            return self
        try:
            return replace(self, text=" ".join([s async for s in self.speech]), speech=None)
        except StageError:
            return replace(self, speech=None)


class Responder(Protocol):
    async def respond(self, text: str, session_id: str, language: str = "") -> Reply: ...

    # the session's last reply, taken back: the caller went on before it was said, and
    # their whole turn comes next (an offer it answered is still open for it)
    def retract(self, session_id: str) -> None: ...

    # the first of other readings of the session's last turn (one it was unsure of) that
    # it answers surely, answered in that turn's place; None: none is (the call heard the
    # turn again, ``SpeechToText.readings``)
    async def surely(self, readings: list[str], session_id: str, language: str = ""
                     ) -> tuple[str, Reply] | None: ...

    # the session is over (its call ended): what it remembers is dropped
    def end(self, session_id: str) -> None: ...
