"""The call record, written as it happens: a Call row at StasisStart, each utterance when
it is transcribed (caller) or spoken (agent), HITL alerts, the end with its disposition
(store/disposition.py, derived from the call's events).

``record()`` is called on the event loop and only appends to a queue; one writer thread
commits the queue in order, a small batch per transaction. While the database is down
the records wait in memory (bounded by ``store.buffer_limit``; past it the oldest are
dropped and counted) and are written when it is back. Writes are idempotent (an
utterance is keyed by call and sequence number), so a batch retried after an ambiguous
failure is never doubled.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from smartpbx_ari.events import (
    AlertRaised,
    AlertUpdated,
    CallEnded,
    CallEvent,
    CallStarted,
    HandedOff,
    Heard,
    Said,
)
from smartpbx_ari.store.db import Database, safe_url
from smartpbx_ari.store.disposition import Dispositions
from smartpbx_ari.store.models import (
    AlertStatus,
    Call,
    CallStatus,
    HitlAlert,
    OperatorAction,
    OperatorPresence,
    Utterance,
)

log = logging.getLogger(__name__)
BATCH = 64
RETRY_MAX_S = 5.0


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class Record:
    kind: str  # call | utterance | end | alert | alert_update | cdr | presence | audit
    call_id: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)


class CallRecorder:
    def __init__(self, db: Database, buffer_limit: int = 100_000) -> None:
        self.db = db
        self.limit = buffer_limit
        self.dropped = 0
        self.written = 0
        self._queue: collections.deque[Record] = collections.deque()
        self._seq: dict[str, int] = {}
        self.outcomes = Dispositions()
        self._cond = threading.Condition()
        self._stopping = False
        self._down_since: float | None = None
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="call-recorder", daemon=True)

    # ---- the event loop's side ----------------------------------------------------
    def record(self, event: CallEvent) -> None:
        """Turn a call event into records; never blocks."""
        for record in self._records(event):
            self._put(record)

    def presence(self, endpoint: str, state: str, detail: str) -> None:
        """An operator endpoint's reachability (from AMI)."""
        self._put(Record("presence", "", time.time(),
                         {"endpoint": endpoint, "state": state, "detail": detail}))

    def cdr(self, fields: dict[str, str]) -> None:
        """Asterisk's call-detail record, stored next to the call (by its UniqueID)."""
        call_id = fields.get("UniqueID", "")
        if call_id:
            self._put(Record("cdr", call_id, time.time(), {"cdr": fields}))

    def audit(self, user: str, action: str, call_id: str = "", alert_key: str = "",
              **detail: object) -> None:
        """One line of the operators' audit log: who did what, when."""
        self._put(Record("audit", call_id, time.time(), {
            "user": user, "action": action, "alert_key": alert_key or None,
            "detail": detail or None}))

    def _put(self, record: Record) -> None:
        with self._cond:
            if len(self._queue) >= self.limit:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(record)
            self._cond.notify()

    def _records(self, event: CallEvent) -> list[Record]:
        cid, at = event.call_id, event.at
        outcome = self.outcomes.observe(event)
        match event:
            case CallStarted():
                self._seq[cid] = 0
                return [Record("call", cid, at, {"caller": event.caller, "callee": event.exten,
                                                 "language": event.language})]
            case Heard():
                start = event.start if event.start is not None else at
                end = event.end if event.end is not None else at
                return [self._utterance(cid, at, event.speaker, event.text,
                                        event.confidence, start, end)]
            case Said():
                return [self._utterance(cid, at, event.speaker, event.text,
                                        event.confidence, at, None)]
            case AlertRaised():
                return [Record("alert", cid, at, {
                    "key": event.alert_id, "reason": event.reason,
                    "question": event.question, "confidence": event.confidence})]
            case AlertUpdated():
                return [Record("alert_update", cid, at, {
                    "key": event.alert_id, "status": event.status, "user": event.user,
                    "answer": event.text})]
            case HandedOff():
                return [Record("end", cid, at, {"status": CallStatus.HANDED_OFF,
                                                "reason": event.reason})]
            case CallEnded():
                self._seq.pop(cid, None)
                last: dict[str, Any] = {"status": CallStatus.COMPLETED, "reason": event.reason}
                if outcome is not None:
                    last["outcome"] = {"disposition": str(outcome.disposition),
                                      "reason": outcome.reason, "hold_s": outcome.hold_s}
                return [Record("end", cid, at, last)]
        return []

    def _utterance(self, cid: str, at: float, speaker: str, text: str,
                   confidence: float | None, start: float, end: float | None) -> Record:
        seq = self._seq.get(cid, 0) + 1
        self._seq[cid] = seq
        return Record("utterance", cid, at, {"seq": seq, "speaker": speaker, "text": text,
                                             "start": start, "end": end,
                                             "confidence": confidence})

    # ---- lifecycle ----------------------------------------------------------------
    def start(self) -> CallRecorder:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to ``timeout``), then stop the writer."""
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    @property
    def pending(self) -> int:
        return len(self._queue)

    # ---- the writer thread ----------------------------------------------------------
    def _run(self) -> None:
        delay = 0.2
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
                self._busy = True
            try:
                with self.db.session() as session:
                    for record in batch:
                        self._write(session, record)
            except SQLAlchemyError as err:
                self._down(err)
                with self._cond:
                    self._busy = False
                    self._cond.wait(delay)
                    if self._stopping:
                        return
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            delay = 0.2
            self._up()
            written = {id(r) for r in batch}  # some may have been dropped meanwhile
            with self._cond:
                while self._queue and id(self._queue[0]) in written:
                    self._queue.popleft()
                self.written += len(batch)
                self._busy = False
                self._cond.notify_all()

    def _down(self, err: Exception) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("database %s unavailable (%s); holding %d record(s) until it is back",
                        safe_url(self.db.url), type(err).__name__, len(self._queue))

    def _up(self) -> None:
        if self._down_since is not None:
            log.info("database back after %.1f s; writing %d held record(s)",
                     time.monotonic() - self._down_since, len(self._queue))
            self._down_since = None

    @staticmethod
    def _write(session: Session, record: Record) -> None:
        d = record.data
        if record.kind == "presence":
            row = session.get(OperatorPresence, d["endpoint"]) or OperatorPresence(
                endpoint=d["endpoint"])
            row.state, row.detail, row.updated_at = d["state"], d["detail"][:128], _at(record.at)
            session.add(row)
            return
        if record.kind == "audit":
            key = (d["user"], d["action"], _at(record.at))
            if session.scalar(select(OperatorAction.id).where(
                    OperatorAction.user == key[0], OperatorAction.action == key[1],
                    OperatorAction.at == key[2])) is None:
                session.add(OperatorAction(user=d["user"], action=d["action"], at=key[2],
                                           call_id=record.call_id or None,
                                           alert_key=d["alert_key"], detail=d["detail"]))
            return
        if record.kind == "alert_update":
            alert = session.scalar(select(HitlAlert).where(HitlAlert.key == d["key"]))
            if alert is not None:
                alert.status, alert.accepted_by = d["status"], d["user"] or alert.accepted_by
                alert.answer = d["answer"] or alert.answer
                if d["status"] in (AlertStatus.ANSWERED, AlertStatus.TAKEN_OVER,
                                   AlertStatus.CLOSED, AlertStatus.ABANDONED):
                    alert.resolved_at = _at(record.at)
            return
        call = session.get(Call, record.call_id)
        if record.kind == "cdr":
            if call is not None:  # not one of ours (an operator's own call): not kept
                call.cdr = d["cdr"]
            return
        if record.kind == "call":
            if call is None:
                session.add(Call(call_id=record.call_id, caller=d["caller"], callee=d["callee"],
                                 language=d["language"], start_time=_at(record.at),
                                 status=CallStatus.ACTIVE))
            return
        if call is None:  # the call's own record was dropped from a full buffer
            call = Call(call_id=record.call_id, caller="", start_time=_at(record.at))
            session.add(call)
            session.flush()
        if record.kind == "utterance":
            exists = session.scalar(select(Utterance.id).where(
                Utterance.call_id == record.call_id, Utterance.seq == d["seq"]))
            if exists is None:
                session.add(Utterance(
                    call_id=record.call_id, seq=d["seq"], speaker=d["speaker"], text=d["text"],
                    start_time=_at(d["start"]), confidence=d["confidence"],
                    end_time=_at(d["end"]) if d["end"] is not None else None))
        elif record.kind == "alert":
            if session.scalar(select(HitlAlert.id).where(HitlAlert.key == d["key"])):
                return
            session.add(HitlAlert(key=d["key"], call_id=record.call_id, reason=d["reason"],
                                  question=d["question"], confidence=d["confidence"],
                                  status=AlertStatus.OPEN, created_at=_at(record.at)))
            session.flush()  # an update of it may follow in the same batch
        elif record.kind == "end":
            if d["status"] == CallStatus.HANDED_OFF or call.status == CallStatus.ACTIVE:
                call.status = d["status"]
                call.end_reason = str(d["reason"])[:64]
            if call.end_time is None or d["status"] == CallStatus.COMPLETED:
                call.end_time = _at(record.at)
                start = call.start_time if call.start_time.tzinfo else call.start_time.replace(
                    tzinfo=UTC)
                call.duration = round((call.end_time - start).total_seconds(), 3)
            if "outcome" in d:
                outcome = d["outcome"]
                call.disposition = outcome["disposition"]
                call.disposition_reason = str(outcome["reason"])[:64]
                call.hold_s = outcome["hold_s"]

