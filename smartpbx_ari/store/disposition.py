"""How a call ended (its disposition) and how long its caller held, derived from its events.

Pure: :func:`derive` reads one call's events; :class:`Dispositions` follows the events of
many calls and gives each call's :class:`Outcome` at its ``CallEnded``. A call ends

- ``taken_over``: an operator's phone joined it (whatever happened after);
- ``queue``: it left the AI for the operators' queue (``reason`` says why);
- ``abandoned_on_hold``: the caller was gone while an alert of theirs still waited for an
  operator's answer (raised with ``waiting=True``, not answered, taken over or closed);
- ``operator_answer``: an operator's typed answer was spoken, and the AI did the rest;
- ``ai``: the AI handled it end to end (the containment rate counts these).

A hold runs from ``AlertRaised(waiting=True)`` until its alert is answered, taken over or
closed, the call is taken over or handed off, or it ends; ``hold_s`` sums a call's holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from smartpbx_ari.events import (
    AlertRaised,
    AlertUpdated,
    CallEnded,
    CallEvent,
    CallStarted,
    HandedOff,
    Said,
    TakenOver,
)

CLOSING = frozenset({"answered", "taken_over", "closed"})  # statuses that end a hold


class Disposition(StrEnum):
    AI = "ai"
    OPERATOR_ANSWER = "operator_answer"
    QUEUE = "queue"
    TAKEN_OVER = "taken_over"
    ABANDONED_ON_HOLD = "abandoned_on_hold"


@dataclass(frozen=True)
class Outcome:
    disposition: Disposition
    reason: str = ""  # queue: why the call went to the queue
    hold_s: float | None = None  # time on hold for an operator's answer; None: never held


def derive(events: Iterable[CallEvent]) -> Outcome:
    """The outcome of one call from its events in order (those after ``CallEnded`` do not
    count: the desk closes a call's alerts once it has ended)."""
    holds: dict[str, float] = {}  # waiting alerts still open -> when raised
    held: float | None = None
    taken = answered = ended = abandoned = False
    queue: str | None = None

    def stop(alert_id: str | None, at: float) -> None:
        nonlocal held
        for key in [alert_id] if alert_id is not None else list(holds):
            start = holds.pop(key, None)
            if start is not None:
                held = (held or 0.0) + max(0.0, at - start)

    for event in events:
        match event:
            case AlertRaised(waiting=True) if event.alert_id not in holds:
                holds[event.alert_id] = event.at
                held = held or 0.0
            case AlertUpdated() if event.status in CLOSING:
                stop(event.alert_id, event.at)
            case TakenOver():
                taken = True
                stop(None, event.at)
            case Said(speaker="operator"):
                answered = True
            case HandedOff():
                queue = event.reason if queue is None else queue
                stop(None, event.at)
            case CallEnded():
                abandoned = bool(holds)
                stop(None, event.at)
                ended = True
                break
    hold_s = round(held, 3) if held is not None else None
    if taken:
        return Outcome(Disposition.TAKEN_OVER, hold_s=hold_s)
    if queue is not None:
        return Outcome(Disposition.QUEUE, queue, hold_s)
    if ended and abandoned:
        return Outcome(Disposition.ABANDONED_ON_HOLD, hold_s=hold_s)
    if answered:
        return Outcome(Disposition.OPERATOR_ANSWER, hold_s=hold_s)
    return Outcome(Disposition.AI, hold_s=hold_s)


RELEVANT = (AlertRaised, AlertUpdated, TakenOver, Said, HandedOff, CallEnded)


class Dispositions:
    """Follows the event stream; a call is followed from its ``CallStarted``."""

    def __init__(self) -> None:
        self._calls: dict[str, list[CallEvent]] = {}

    def observe(self, event: CallEvent) -> Outcome | None:
        """The call's outcome when ``event`` ends it, else None."""
        if isinstance(event, CallStarted):
            self._calls[event.call_id] = []
            return None
        events = self._calls.get(event.call_id)
        if events is None or not isinstance(event, RELEVANT):
            return None
        events.append(event)
        if not isinstance(event, CallEnded):
            return None
        del self._calls[event.call_id]
        return derive(events)

    @property
    def following(self) -> int:
        return len(self._calls)
