"""The HITL desk: live alerts, who took them, and an operator's typed answer on its way
to a caller who is still with the AI.

Every alert is an ``AlertRaised`` call event (so the record and the operators' feed see
it); the desk follows the events it is given (``observe``: alerts raised elsewhere, e.g.
the caller pressing 0, and the call's end) and keeps the live ones.
A low-confidence turn waits here (``wait_answer``) for an operator's text; an alert whose
caller went to the queue (pressed 0, asked for a person, nobody answered in time) can
still be accepted but not answered by text. A caller who left a number in the queue
raises a ``callback`` alert (the number is its text) for an operator to take.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from smartpbx_ari.call.summary import CallNotes
from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.events import (
    AlertHeard,
    AlertRaised,
    AlertUpdated,
    CallEnded,
    CallEvent,
    HandedOff,
)

log = logging.getLogger(__name__)
MAX_ANSWER = 1000
CALLBACK = "callback"  # an alert's reason: a caller in the queue left a number (its text)
KEEP_S = 3600.0  # finished alerts stay live this long


class DeskError(UserFacingError):
    code = "hitl-conflict"

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Alert:
    id: str
    call_id: str
    reason: str
    question: str = ""
    confidence: float | None = None
    status: str = "open"  # open | accepted | answered | taken_over | closed | abandoned
    accepted_by: str = ""
    created: float = field(default_factory=time.time)
    waiting: bool = False  # the caller is on hold for a typed answer
    # what the caller said on hold meanwhile: (words, the AI's answer or "" if unsure)
    heard: list[tuple[str, str]] = field(default_factory=list)
    summary: str = ""  # the warm hand-over's: who, what was asked and answered, why

    def as_dict(self) -> dict[str, object]:
        return {"alert_id": self.id, "call_id": self.call_id, "reason": self.reason,
                "question": self.question, "confidence": self.confidence,
                "status": self.status, "accepted_by": self.accepted_by,
                "created": self.created, "waiting": self.waiting, "summary": self.summary,
                "heard": [{"text": text, "answer": answer} for text, answer in self.heard]}


class HitlDesk:
    def __init__(self, publish: Callable[[CallEvent], None]) -> None:
        self.publish = publish
        self.alerts: dict[str, Alert] = {}
        self._answers: dict[str, asyncio.Future[str]] = {}
        self.notes = CallNotes()
        # agent.llm_summary: a faithful one-line note for an alert's summary, or ""
        self.summarize: Callable[[str], Awaitable[str]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- the call side --------------------------------------------------------------
    def raise_alert(self, call_id: str, reason: str, question: str = "",
                    confidence: float | None = None, waiting: bool = False) -> Alert:
        alert = Alert(secrets.token_hex(8), call_id, reason, question, confidence,
                      waiting=waiting,
                      summary=self.notes.summary(call_id, reason, confidence))
        self.alerts[alert.id] = alert
        if waiting:  # an answer may come while the holding phrase still plays
            self._answers[alert.id] = asyncio.get_running_loop().create_future()
        self.publish(AlertRaised(call_id=call_id, at=alert.created, alert_id=alert.id,
                                 reason=reason, question=question, confidence=confidence,
                                 waiting=waiting, summary=alert.summary))
        self._improve(alert)
        return alert

    def _improve(self, alert: Alert) -> None:
        """With ``summarize``, the LLM's note goes on top of the summary when it comes."""
        if self.summarize is None:
            return
        task = asyncio.get_running_loop().create_task(self._note(alert, self.summarize))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _note(self, alert: Alert, summarize: Callable[[str], Awaitable[str]]) -> None:
        try:
            line = await summarize(alert.summary)
        except Exception as err:  # the extractive summary stands
            log.warning("alert %s: no LLM summary: %s", alert.id, err)
            return
        if line and alert.status in ("open", "accepted"):
            alert.summary = f"{line}\n{alert.summary}"
            self.publish(AlertUpdated(call_id=alert.call_id, alert_id=alert.id,
                                      status=alert.status, user=alert.accepted_by,
                                      summary=alert.summary))

    async def wait_answer(self, alert: Alert, timeout: float) -> str | None:
        """The operator's text for a waiting ``alert`` within ``timeout`` s, else None."""
        future = self._answers.get(alert.id)
        if future is None:
            return None
        try:
            return await asyncio.wait_for(future, timeout)
        except (TimeoutError, asyncio.CancelledError):
            if future.cancelled():  # the call ended or went to the queue meanwhile
                return None
            raise
        finally:
            self._answers.pop(alert.id, None)
            if alert.status in ("open", "accepted"):
                alert.waiting = False

    def withdraw(self, alert: Alert) -> None:
        """The question it was raised for was half of one (the caller went on): closed,
        and nobody waits for its answer."""
        future = self._answers.pop(alert.id, None)
        if future is not None and not future.done():
            future.cancel()
        self._update(alert, "closed", alert.accepted_by or "")

    def heard_on_hold(self, alert: Alert, text: str, answer: str) -> None:
        """The caller on hold said ``text``; ``answer``: the AI's ("": added, unsure)."""
        alert.heard.append((text, answer))
        self.publish(AlertHeard(call_id=alert.call_id, alert_id=alert.id, text=text,
                                answer=answer))

    def observe(self, event: CallEvent) -> None:
        """Follow the call events (a sink of the Stasis app)."""
        self.notes.observe(event)
        match event:
            case AlertRaised() if event.alert_id not in self.alerts:
                self.alerts[event.alert_id] = Alert(
                    event.alert_id, event.call_id, event.reason, event.question,
                    event.confidence, waiting=event.waiting, created=event.at,
                    summary=event.summary or self.notes.summary(
                        event.call_id, event.reason, event.confidence))
                self._improve(self.alerts[event.alert_id])
            case HandedOff() | CallEnded():
                held = {a.id for a in self.for_call(event.call_id) if a.waiting}
                self._stop_waiting(event.call_id)
                if isinstance(event, CallEnded):
                    for alert in self.for_call(event.call_id):
                        if alert.status in ("open", "accepted"):  # hung up on hold: abandoned
                            self._update(alert, "abandoned" if alert.id in held else "closed",
                                         alert.accepted_by or "")
                    self._prune(event.at - KEEP_S)

    def _stop_waiting(self, call_id: str) -> None:
        """The call left the AI: nobody waits for a typed answer any more."""
        for alert in self.for_call(call_id):
            alert.waiting = False
            future = self._answers.get(alert.id)
            if future is not None and not future.done():
                future.cancel()

    def _prune(self, before: float) -> None:
        """Forget finished alerts older than ``before`` (the database keeps them)."""
        for alert_id in [a.id for a in self.alerts.values()
                         if a.status in ("answered", "taken_over", "closed", "abandoned")
                         and a.created < before]:
            del self.alerts[alert_id]

    # ---- the operators' side -----------------------------------------------------------
    def open_alerts(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.status in ("open", "accepted")]

    def for_call(self, call_id: str) -> list[Alert]:
        return [a for a in self.alerts.values() if a.call_id == call_id]

    def get(self, alert_id: str) -> Alert:
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise DeskError(f"alert_id: no live alert {alert_id!r}", 404)
        return alert

    def accept(self, alert_id: str, user: str) -> Alert:
        alert = self.get(alert_id)
        if alert.status not in ("open", "accepted"):
            raise DeskError(f"alert_id: alert {alert_id} is {alert.status} already")
        if alert.accepted_by and alert.accepted_by != user:
            raise DeskError(f"alert_id: {alert.accepted_by} has taken alert {alert_id}")
        self._update(alert, "accepted", user)
        return alert

    def close(self, alert_id: str, user: str) -> Alert:
        """Done with an alert nobody waits on (a callback made, a question handled); a
        caller on hold for it is not left waiting: answer or take over instead."""
        if self.get(alert_id).waiting:
            raise DeskError(f"alert_id: the caller of alert {alert_id} is on hold for it: "
                            "answer or take over")
        alert = self.accept(alert_id, user)
        self._update(alert, "closed", user)
        return alert

    def answer(self, alert_id: str, user: str, text: str) -> Alert:
        text = " ".join(text.split())
        if not text or len(text) > MAX_ANSWER:
            raise DeskError(f"text: 1 to {MAX_ANSWER} characters", 400)
        alert = self.accept(alert_id, user)
        future = self._answers.get(alert_id)
        if future is None or future.done():
            raise DeskError(f"alert_id: the caller of alert {alert_id} is no longer waiting "
                            "for a typed answer (queue or hung up)")
        future.set_result(text)
        self._update(alert, "answered", user, text=text)
        return alert

    def take_over(self, alert_id: str, user: str) -> Alert:
        """The operator takes the call on their phone: a waiting caller stops waiting."""
        alert = self.accept(alert_id, user)
        future = self._answers.get(alert_id)
        if future is not None and not future.done():
            future.set_result("")  # no text: a human is on the line
        self._update(alert, "taken_over", user)
        return alert

    def _update(self, alert: Alert, status: str, user: str, text: str | None = None) -> None:
        alert.status, alert.accepted_by = status, user
        if status != "accepted":
            alert.waiting = False
        self.publish(AlertUpdated(call_id=alert.call_id, alert_id=alert.id, status=status,
                                  user=user, text=text))
