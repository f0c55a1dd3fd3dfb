"""Typed call events and an in-process bus.

Each subscriber has a bounded queue; a slow subscriber loses its *oldest* events (counted)
rather than slowing a call down.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallEvent:
    call_id: str
    kind: str  # started | answered | heard | said | barge_in | dtmf | error | ended | handed_off
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def line(self) -> str:
        details = " ".join(f"{k}={v!r}" for k, v in self.data.items())
        return f"call={self.call_id} event={self.kind} {details}".rstrip()


class Subscription:
    def __init__(self, bus: EventBus, size: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[CallEvent] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, event: CallEvent) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def next(self, timeout: float) -> CallEvent:
        return await asyncio.wait_for(self.queue.get(), timeout)

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []

    def subscribe(self, size: int = 1000) -> Subscription:
        sub = Subscription(self, size)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, event: CallEvent) -> None:
        for sub in list(self._subs):
            sub.offer(event)
