"""Live events to the operators' WebSockets: the seed's ConnectionManager and a feed that
numbers every message, keeps the last ones for replay after a reconnect, and turns call
events into console messages (call_started, transcript, hitl_alert, alert_update,
alert_heard, call_ended, queue, presence)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from smartpbx_ari.events import (
    AlertHeard,
    AlertRaised,
    AlertUpdated,
    CallEnded,
    CallEvent,
    CallStarted,
    HandedOff,
    Heard,
    OperatorLeg,
    QueueChanged,
    Said,
    Subscription,
)

log = logging.getLogger(__name__)
REPLAY = 2000  # messages kept for reconnecting operators


class Relay(Protocol):
    async def start(self, deliver: Callable[[dict[str, Any]], Awaitable[object]]) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, message: dict[str, Any]) -> None: ...


class Socket(Protocol):
    async def send_json(self, data: Any) -> None: ...


class ConnectionManager:
    def __init__(self) -> None:
        self.connections: dict[str, set[Socket]] = collections.defaultdict(set)

    async def connect(self, operator_id: str, websocket: Socket) -> None:
        self.connections[operator_id].add(websocket)

    def disconnect(self, operator_id: str, websocket: Socket) -> None:
        sockets = self.connections.get(operator_id)
        if sockets is not None:
            sockets.discard(websocket)
            if not sockets:
                del self.connections[operator_id]

    async def send_json(self, operator_id: str, message: dict[str, Any]) -> None:
        for websocket in list(self.connections.get(operator_id, ())):
            await self._send(operator_id, websocket, message)

    async def broadcast(self, message: dict[str, Any]) -> None:
        await asyncio.gather(*(self._send(op, ws, message)
                               for op, sockets in list(self.connections.items())
                               for ws in list(sockets)))

    async def _send(self, operator_id: str, websocket: Socket, message: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(websocket.send_json(message), 5.0)
        except Exception as err:  # a dead or stuck socket: drop it, never block the rest
            log.info("ws: dropping a connection of %s (%s)", operator_id, type(err).__name__)
            self.disconnect(operator_id, websocket)

    @property
    def count(self) -> int:
        return sum(len(s) for s in self.connections.values())


def message_for(event: CallEvent) -> dict[str, Any] | None:
    """The console's message for a call event (None: the console does not show it)."""
    base = {"call_id": event.call_id, "at": event.at}
    match event:
        case CallStarted():
            return {"type": "call_started", **base, "caller": event.caller,
                    "exten": event.exten, "language": event.language}
        case Heard():
            return {"type": "transcript", **base, "speaker": event.speaker,
                    "text": event.text, "confidence": event.confidence}
        case Said():
            return {"type": "transcript", **base, "speaker": event.speaker,
                    "text": event.text, "confidence": event.confidence,
                    "intent": event.intent}
        case CallEnded() | HandedOff():
            return {"type": "call_ended", **base, "reason": event.reason,
                    "status": event.kind.value}
        case AlertRaised():
            return {"type": "hitl_alert", **base, "alert_id": event.alert_id,
                    "reason": event.reason, "question": event.question,
                    "confidence": event.confidence, "waiting": event.waiting,
                    "summary": event.summary}
        case AlertUpdated():
            update = {"type": "alert_update", **base, "alert_id": event.alert_id,
                      "status": event.status, "user": event.user}
            return update if event.summary is None else {**update, "summary": event.summary}
        case AlertHeard():
            return {"type": "alert_heard", **base, "alert_id": event.alert_id,
                    "text": event.text, "answer": event.answer}
        case OperatorLeg():
            return {"type": event.kind.value, **base, "endpoint": event.endpoint}
        case QueueChanged():
            return {"type": "queue", **base, "event": event.event, "queue": event.queue}
    return None


class AlertMirror:
    """Other processes' live alerts, as their relayed feed messages tell (the process that
    raised an alert holds it; this is what a web node lists)."""

    def __init__(self) -> None:
        self.alerts: dict[str, dict[str, Any]] = {}

    def follow(self, message: dict[str, Any]) -> None:
        kind, alert_id = message.get("type"), message.get("alert_id")
        if kind == "hitl_alert" and isinstance(alert_id, str):
            self.alerts[alert_id] = {
                "alert_id": alert_id, "call_id": message.get("call_id", ""),
                "reason": message.get("reason", ""), "question": message.get("question", ""),
                "confidence": message.get("confidence"), "status": "open", "accepted_by": "",
                "created": message.get("at"), "waiting": bool(message.get("waiting")),
                "summary": message.get("summary", ""), "heard": []}
        elif kind == "alert_heard" and alert_id in self.alerts:
            self.alerts[alert_id]["heard"].append({"text": message.get("text", ""),
                                                   "answer": message.get("answer", "")})
        elif kind == "alert_update" and alert_id in self.alerts:
            alert, status = self.alerts[alert_id], message.get("status")
            if "summary" in message:  # a better summary (agent.llm_summary)
                alert["summary"] = message["summary"]
            if status == "accepted":
                alert.update(status="accepted", accepted_by=message.get("user"))
            elif status != "open":  # answered, taken over, closed: no longer live
                del self.alerts[alert_id]
        elif kind == "call_ended":
            for key in [k for k, a in self.alerts.items()
                        if a["call_id"] == message.get("call_id")]:
                if message.get("status") == "ended":
                    del self.alerts[key]
                else:  # handed to the queue: still open, nobody waits for a typed answer
                    self.alerts[key]["waiting"] = False

    def open_alerts(self) -> list[dict[str, Any]]:
        return list(self.alerts.values())


class EventFeed:
    def __init__(self, manager: ConnectionManager) -> None:
        self.manager = manager
        self.buffer: collections.deque[dict[str, Any]] = collections.deque(maxlen=REPLAY)
        self.last_id = 0
        self._source: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self.on_event: Callable[[CallEvent], None] = lambda e: None
        self.relay: Relay | None = None  # other processes' feeds (PostgreSQL NOTIFY)
        # actions asked of, or answered by, another process (web/actions.py): not events
        self.requests: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.others = AlertMirror()  # other processes' live alerts
        # an alert's summary, for alerts raised without one (the caller pressed 0)
        self.summary_of: Callable[[str], str] = lambda alert_id: ""

    def follow(self, subscription: Subscription) -> None:
        """Read call events from the Stasis app's bus (before ``start``)."""
        self._source = subscription

    async def start(self) -> None:
        if self._source is not None:
            self._task = asyncio.create_task(self._pump(self._source), name="ws-feed")
        if self.relay is not None:
            await self.relay.start(self._relayed)

    async def _relayed(self, message: dict[str, Any]) -> None:
        if message.get("type") in ("action", "action_reply"):
            if self.requests is not None:
                await self.requests(message)
            return
        message.pop("id", None)
        self.others.follow(message)
        await self.push(message, relay=False)

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _pump(self, source: Subscription) -> None:
        while True:
            event = await source.queue.get()
            self.on_event(event)
            message = message_for(event)
            if message is not None and message["type"] == "hitl_alert" \
                    and not message["summary"]:
                message["summary"] = self.summary_of(message["alert_id"])
            if message is not None:
                await self.push(message)

    async def push(self, message: dict[str, Any], relay: bool = True) -> dict[str, Any]:
        self.last_id += 1
        numbered = {"id": self.last_id, **message}
        self.buffer.append(numbered)
        await self.manager.broadcast(numbered)
        if relay and self.relay is not None:
            await self.relay.publish(message)
        return numbered

    def since(self, last_seen: int) -> list[dict[str, Any]]:
        """Messages after ``last_seen`` still in the buffer (a reconnect's replay)."""
        return [m for m in self.buffer if m["id"] > last_seen]
