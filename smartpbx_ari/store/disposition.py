"""How a call ended (its disposition) and how long its caller held, derived from its events.

Pure: :func:`derive` reads one call's events; :class:`Dispositions` follows the events of
many calls and gives each call's :class:`Outcome` at its ``CallEnded``. A call ends

- ``taken_over``: an operator's phone joined it (whatever happened after);
- ``queue``: it left the AI for the operators' queue (``reason`` says why);
- ``dead_peer``: the caller's phone stopped sending RTP without hanging up, and the
  controller hung up (``media.dead_peer_s``);
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
    DEAD_PEER,
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
    DEAD_PEER = "dead_peer"


@dataclass(frozen=True)
class Outcome:
    disposition: Disposition
    reason: str = ""  # queue: why the call went to the queue
    hold_s: float | None = None  # time on hold for an operator's answer; None: never held


def derive(events: Iterable[CallEvent]) -> Outcome:
    """The outcome of one call from its events up to its ``CallEnded``.

    Times decide, not the order of arrival: the desk closes a call's open alerts when it
    sees ``CallEnded``, and a sink after the desk may get that close before the end itself,
    so a close at or after the end's moment does not end a hold (the caller was gone).
    """
    raised: dict[str, float] = {}  # waiting alerts -> when raised
    closed: dict[str, float] = {}  # alert -> when answered, taken over or closed
    leaves: list[float] = []  # when the call left the AI (taken over, handed off)
    taken = answered = False
    queue: str | None = None
    end: float | None = None
    dead = False
    for event in events:
        match event:
            case AlertRaised(waiting=True) if event.alert_id not in raised:
                raised[event.alert_id] = event.at
            case AlertUpdated() if event.status in CLOSING and event.alert_id not in closed:
                closed[event.alert_id] = event.at
            case TakenOver():
                taken = True
                leaves.append(event.at)
            case Said(speaker="operator"):
                answered = True
            case HandedOff():
                queue = event.reason if queue is None else queue
                leaves.append(event.at)
            case CallEnded():
                end, dead = event.at, event.reason == DEAD_PEER
                break
    last = end if end is not None else max([*raised.values(), *closed.values(), *leaves],
                                           default=0.0)
    held: float | None = None
    abandoned = False
    for alert_id, start in raised.items():
        stops = [t for t in (closed.get(alert_id), *leaves)
                 if t is not None and start <= t < last]
        held = (held or 0.0) + max(0.0, min([*stops, last]) - start)
        abandoned = abandoned or not stops
    hold_s = round(held, 3) if held is not None else None
    if taken:
        return Outcome(Disposition.TAKEN_OVER, hold_s=hold_s)
    if queue is not None:
        return Outcome(Disposition.QUEUE, queue, hold_s)
    if dead:  # gone silent, on hold or not: the line died, nobody hung up
        return Outcome(Disposition.DEAD_PEER, DEAD_PEER, hold_s)
    if end is not None and abandoned:
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
