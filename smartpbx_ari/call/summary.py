"""The warm hand-over's summary: what an operator reads before their phone rings, built
from a live call's events (extractive: the caller's own words and the agent's answers).

``CallNotes.observe`` follows every call event; ``summary(call_id, why)`` gives a few short
lines: who called and how the call was routed, each question with what the agent answered,
and why a person is needed now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smartpbx_ari.ai.responder import HUMAN_REQUEST
from smartpbx_ari.events import CallEnded, CallEvent, CallStarted, Heard, Said

MAX_TURNS = 6  # the latest questions shown; older ones are counted
WHY = {"low_confidence": "the agent was unsure", HUMAN_REQUEST: "the caller asked for a person",
       "dtmf_0": "the caller pressed 0", "callback": "the caller left a number to call back"}


@dataclass
class Notes:
    caller: str = ""
    exten: str = ""
    language: str = ""
    turns: list[tuple[str, str]] = field(default_factory=list)  # (question, answer)


class CallNotes:
    def __init__(self) -> None:
        self.calls: dict[str, Notes] = {}

    def observe(self, event: CallEvent) -> None:
        notes = self.calls.setdefault(event.call_id, Notes())
        match event:
            case CallStarted():
                notes.caller, notes.exten, notes.language = (event.caller, event.exten,
                                                             event.language)
            case Heard() if event.speaker == "caller":
                notes.turns.append((event.text, ""))
            case Said() if notes.turns and not notes.turns[-1][1]:
                who = "operator" if event.speaker == "operator" else "agent"
                answer = "" if event.hitl else f"{who}: {event.text}"
                notes.turns[-1] = (notes.turns[-1][0], answer)
            case CallEnded():
                self.calls.pop(event.call_id, None)

    def summary(self, call_id: str, why: str, confidence: float | None = None) -> str:
        notes = self.calls.get(call_id, Notes())
        route = f"Caller {notes.caller or 'unknown'} dialled {notes.exten or '?'}"
        lines = [route + (f" ({notes.language})" if notes.language else "") + "."]
        older = len(notes.turns) - MAX_TURNS
        if older > 0:
            lines.append(f"({older} earlier questions)")
        for question, answer in notes.turns[-MAX_TURNS:]:
            lines.append(f"Asked: \u201c{question}\u201d \u2192 " +
                         (f"answered ({answer})" if answer else "not answered"))
        reason = WHY.get(why, why)
        lines.append(f"Why a person: {reason}" +
                     (f" (confidence {confidence:.2f})." if confidence is not None else "."))
        return "\n".join(lines)

