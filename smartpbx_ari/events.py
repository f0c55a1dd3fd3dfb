"""Typed call events (one frozen dataclass per kind) and an in-process bus.

Producers build the event of their kind; consumers ``match`` on the class. ``kind`` is a
``StrEnum`` so a log line, a test or a serialized record can name it. Each subscriber has
a bounded queue; a slow subscriber loses its *oldest* events (counted) rather than
slowing a call down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class EventKind(StrEnum):
    STARTED = "started"
    ANSWERED = "answered"
    HEARD = "heard"
    SAID = "said"
    BARGE_IN = "barge_in"
    DTMF = "dtmf"
    ERROR = "error"
    HITL_ALERT = "hitl_alert"
    ALERT_UPDATE = "alert_update"
    ALERT_HEARD = "alert_heard"
    TAKEN_OVER = "taken_over"
    HANDED_BACK = "handed_back"
    TAKEOVER_FAILED = "takeover_failed"
    LISTENING = "listening"
    LISTEN_ENDED = "listen_ended"
    QUEUE = "queue"
    HANDED_OFF = "handed_off"
    ENDED = "ended"


@dataclass(frozen=True, kw_only=True)
class CallEvent:
    call_id: str
    at: float = field(default_factory=time.time)
    kind: ClassVar[EventKind]

    def payload(self) -> dict[str, Any]:
        """The event's own fields (not ``call_id``, ``at``), for logs and the wire."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("call_id", "at")}

    def line(self) -> str:
        details = " ".join(f"{k}={v!r}" for k, v in self.payload().items())
        return f"call={self.call_id} event={self.kind} {details}".rstrip()


@dataclass(frozen=True, kw_only=True)
class CallStarted(CallEvent):
    kind = EventKind.STARTED
    caller: str = ""
    exten: str = ""
    language: str = ""


@dataclass(frozen=True, kw_only=True)
class CallAnswered(CallEvent):
    kind = EventKind.ANSWERED


@dataclass(frozen=True, kw_only=True)
class Heard(CallEvent):
    """What the caller said, transcribed (``speaker`` "call" while an operator has it)."""

    kind = EventKind.HEARD
    text: str
    confidence: float | None = None
    speaker: str = "caller"
    stt_ms: int | None = None  # decoding time
    wait_ms: int | None = None  # end of the turn to the transcript
    start: float | None = None  # wall clock of the utterance
    end: float | None = None
    # the turn's stages (None: not measured, e.g. a key pressed): the caller's pause the
    # ear waited out (speech end -> turn ended), and turn ended -> decoding began
    pause_ms: int | None = None
    queue_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class Said(CallEvent):
    """What the agent (or an operator's typed answer) said to the caller."""

    kind = EventKind.SAID
    text: str
    intent: str = ""
    confidence: float | None = None
    hitl: bool = False
    phrased: bool = False  # spoken as an LLM's rephrasing of ``text``
    question: str = ""
    speaker: str = "agent"  # or "operator"
    operator: str = ""
    # the turn's stages (None: not measured): question -> reply chosen, and reply chosen
    # -> its first audio out (set only when published as that audio leaves; an unsure
    # reply's wait for the pause to reach turn.unsure_silence_ms is in it)
    agent_ms: int | None = None
    first_audio_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class BargedIn(CallEvent):
    kind = EventKind.BARGE_IN


@dataclass(frozen=True, kw_only=True)
class DtmfReceived(CallEvent):
    kind = EventKind.DTMF
    digit: str


@dataclass(frozen=True, kw_only=True)
class StageFailed(CallEvent):
    """A stage (STT, TTS) failed; the call goes on (an apology was spoken)."""

    kind = EventKind.ERROR
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class AlertRaised(CallEvent):
    kind = EventKind.HITL_ALERT
    alert_id: str
    reason: str  # low_confidence | human_request | dtmf_0 | callback
    question: str = ""
    confidence: float | None = None
    waiting: bool = False  # the caller holds for a typed answer
    summary: str = ""  # the warm hand-over's (call/summary.py)


@dataclass(frozen=True, kw_only=True)
class AlertUpdated(CallEvent):
    kind = EventKind.ALERT_UPDATE
    alert_id: str
    status: str  # accepted | answered | taken_over | closed
    user: str = ""
    text: str | None = None  # an operator's typed answer
    summary: str | None = None  # a better summary (agent.llm_summary), status unchanged


@dataclass(frozen=True, kw_only=True)
class AlertHeard(CallEvent):
    """A caller on hold said more: the operators see it in the alert as it comes."""

    kind = EventKind.ALERT_HEARD
    alert_id: str
    text: str
    answer: str = ""  # what the AI answered; "": unsure, added to the alert


@dataclass(frozen=True, kw_only=True)
class OperatorLeg(CallEvent):
    """An operator's phone and the call: joined, left, or could not be reached."""

    endpoint: str


@dataclass(frozen=True, kw_only=True)
class TakenOver(OperatorLeg):
    kind = EventKind.TAKEN_OVER


@dataclass(frozen=True, kw_only=True)
class HandedBack(OperatorLeg):
    kind = EventKind.HANDED_BACK


@dataclass(frozen=True, kw_only=True)
class TakeoverFailed(OperatorLeg):
    kind = EventKind.TAKEOVER_FAILED


@dataclass(frozen=True, kw_only=True)
class ListeningIn(OperatorLeg):
    """An operator's phone hears the call silently (caller and AI); a takeover may follow."""

    kind = EventKind.LISTENING


@dataclass(frozen=True, kw_only=True)
class ListenEnded(OperatorLeg):
    kind = EventKind.LISTEN_ENDED


@dataclass(frozen=True, kw_only=True)
class QueueChanged(CallEvent):
    """An Asterisk queue event of a call (or of the operators' queue)."""

    kind = EventKind.QUEUE
    event: str
    queue: str = ""
    position: str = ""


@dataclass(frozen=True, kw_only=True)
class HandedOff(CallEvent):
    """The call left the AI for the dialplan (the operators' queue)."""

    kind = EventKind.HANDED_OFF
    reason: str


DEAD_PEER = "no RTP from the caller"  # CallEnded.reason: the phone went silent, no BYE


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    kind = EventKind.ENDED
    reason: str
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0


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
