"""The call record as it happens: events in, rows out, in order; idempotent; held in
memory while PostgreSQL is stopped (a real stop and start) and written when it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from smartpbx_ari.events import (
    AlertRaised,
    CallEnded,
    CallEvent,
    CallStarted,
    HandedOff,
    Heard,
    Said,
)
from smartpbx_ari.store import migrate
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Call, HitlAlert, Utterance
from smartpbx_ari.store.recorder import CallRecorder
from tests.fixtures.postgres import LocalPostgres, pg_bin

pytestmark = [pytest.mark.integration, pytest.mark.db]


def _call_events(call_id: str, t0: float) -> list[CallEvent]:
    return [
        CallStarted(call_id=call_id, at=t0, caller="1001", exten="1000"),
        Heard(call_id=call_id, at=t0 + 2.9, text="How do I get a refund?", confidence=0.91,
              start=t0 + 1.0, end=t0 + 2.5),
        Said(call_id=call_id, at=t0 + 3.0, text="Refunds take five days.", confidence=0.8,
             intent="refund"),
        Heard(call_id=call_id, at=t0 + 6.4, text="What is the weather?", confidence=0.88,
              start=t0 + 5.0, end=t0 + 6.0),
        Said(call_id=call_id, at=t0 + 6.5, text="Let me find a colleague.", confidence=0.2,
             intent="other", hitl=True, question="What is the weather?"),
        AlertRaised(call_id=call_id, at=t0 + 6.5, alert_id=f"{call_id}-a1",
                    reason="low_confidence", question="What is the weather?", confidence=0.2,
                    waiting=True),
        HandedOff(call_id=call_id, at=t0 + 8.0, reason="caller asked for a person"),
        CallEnded(call_id=call_id, at=t0 + 8.1, reason="caller asked for a person"),
    ]


@pytest.fixture
def recorder(db: Database) -> Iterator[CallRecorder]:
    rec = CallRecorder(db).start()
    yield rec
    rec.stop()


def test_a_call_becomes_rows_in_order(db: Database, recorder: CallRecorder) -> None:
    t0 = time.time()
    for event in _call_events("call-1", t0):
        recorder.record(event)
    assert recorder.flush(10)
    with db.session() as session:
        call = session.get(Call, "call-1")
        assert call is not None
        assert (call.caller, call.callee, call.status) == ("1001", "1000", "handed_off")
        assert call.duration == pytest.approx(8.1, abs=0.01)
        said = [(u.seq, u.speaker, u.text) for u in call.utterances]
        assert said == [(1, "caller", "How do I get a refund?"),
                        (2, "agent", "Refunds take five days."),
                        (3, "caller", "What is the weather?"),
                        (4, "agent", "Let me find a colleague.")]
        first = call.utterances[0]
        assert first.confidence == pytest.approx(0.91)
        assert (first.end_time - first.start_time).total_seconds() == pytest.approx(1.5)
        alert = session.scalars(select(HitlAlert)).one()
        assert (alert.key, alert.reason, alert.question, alert.status) == (
            "call-1-a1", "low_confidence", "What is the weather?", "open")


def test_writing_a_record_twice_never_doubles_it(db: Database) -> None:
    recorder = CallRecorder(db)
    records = [r for e in _call_events("call-2", time.time()) for r in recorder._records(e)]
    for _ in range(2):  # a batch retried after an ambiguous failure
        with db.session() as session:
            for record in records:
                recorder._write(session, record)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Utterance)) == 4
        assert session.scalar(select(func.count()).select_from(HitlAlert)) == 1


def test_records_wait_while_postgres_is_stopped_and_are_written_after() -> None:
    bindir = pg_bin()
    assert bindir is not None, "PostgreSQL is not installed: apt-get install postgresql"
    server = LocalPostgres(bindir)
    try:
        server.start()
        db = Database(server.create_database("record"))
        migrate.upgrade(db)
        recorder = CallRecorder(db).start()
        events = _call_events("call-3", time.time())
        for event in events[:3]:
            recorder.record(event)
        assert recorder.flush(10)  # the first turn is committed as it happens
        server.stop()  # mid-call
        for event in events[3:]:
            recorder.record(event)
        assert not recorder.flush(1.5)  # held, not lost
        assert recorder.pending == 5  # 2 utterances, an alert, the hand-off, the end
        server.start()
        assert recorder.flush(30)
        recorder.stop()
        with db.session() as session:
            call = session.get(Call, "call-3")
            assert call is not None and call.status == "handed_off"
            assert len(call.utterances) == 4
        db.engine.dispose()
    finally:
        server.remove()


def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    db = Database("postgresql+psycopg://nobody:x@127.0.0.1:1/none")
    recorder = CallRecorder(db, buffer_limit=100)  # not started: nothing drains it
    for n in range(150):
        recorder.record(Heard(call_id="call-4", text=f"turn {n}"))
    assert (recorder.pending, recorder.dropped) == (100, 50)
