"""The seed's database tests, on SQLite and on a real PostgreSQL: Call and its transcript
(utterances), date-range queries, factories, purge, the record's ordering; the figures,
routing rules and audit log the API reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from smartpbx_ari.store import stats
from smartpbx_ari.store.audit import list_actions
from smartpbx_ari.store.calls import CallFilter, get_call, list_calls, purge
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Call, HitlAlert, Knowledge, OperatorAction, Utterance
from smartpbx_ari.store.rules import add_rule, delete_rule, list_rules
from tests.fixtures.factories import CallFactory, KnowledgeFactory, UtteranceFactory

pytestmark = [pytest.mark.integration, pytest.mark.db]


def test_create_call(db: Database) -> None:
    with db.session() as session:
        session.add(Call(caller="1003", callee="1004", start_time=datetime.now(UTC),
                         status="active", call_type="sip_call"))
    with db.session() as session:
        saved = session.scalars(select(Call).filter_by(caller="1003")).first()
        assert saved is not None
        assert (saved.callee, saved.status) == ("1004", "active")


def test_call_with_transcript(db: Database) -> None:
    start = datetime.now(UTC)
    with db.session() as session:
        call = Call(caller="1003", callee="1004", start_time=start, status="completed")
        session.add(call)
        session.flush()
        session.add_all([
            Utterance(call_id=call.call_id, seq=2, speaker="agent", text="네, 안녕하세요",
                      start_time=start),
            Utterance(call_id=call.call_id, seq=1, speaker="caller", text="안녕하세요",
                      start_time=start, confidence=0.95)])
        call_id = call.call_id
    with db.session() as session:
        saved = session.get(Call, call_id)
        assert saved is not None and saved.transcript is not None
        assert saved.transcript.quality_score == pytest.approx(0.95)
        assert saved.transcript.content == "caller: 안녕하세요\nagent: 네, 안녕하세요"
        assert saved.transcript.word_count == 3


def test_query_calls_by_date_range(db: Database) -> None:
    with db.session() as session:
        for i in range(3):
            session.add(Call(caller=f"100{i}", callee="1004", status="completed",
                             start_time=datetime(2026, 1, 30, 10, i, 0, tzinfo=UTC)))
    since = datetime(2026, 1, 30, 10, 1, 0, tzinfo=UTC)
    until = datetime(2026, 1, 30, 10, 2, 0, tzinfo=UTC)
    total, page = list_calls(db, CallFilter(since=since, until=until))
    assert total == 2
    assert [c.caller for c in page] == ["1002", "1001"]  # newest first


def test_with_factories(db: Database) -> None:
    calls = CallFactory.build_batch(10)
    with db.session() as session:
        session.add_all(calls)
        session.flush()
        session.add_all(UtteranceFactory.build_batch(3, call_id=calls[0].call_id))
        session.add_all(KnowledgeFactory.build_batch(5))
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 10
        assert session.scalar(select(func.count()).select_from(Knowledge)) == 5
    found = get_call(db, calls[0].call_id)
    assert found is not None and len(found[1]) == 3
    assert get_call(db, "1' OR '1'='1") is None  # a parameter, never SQL


def test_filters_and_pages(db: Database) -> None:
    with db.session() as session:
        session.add_all(CallFactory.build_batch(7, status="completed", caller="555"))
        session.add_all(CallFactory.build_batch(4, status="handed_off"))
    total, page = list_calls(db, CallFilter(status="completed", caller="555"), limit=5,
                             offset=5)
    assert (total, len(page)) == (7, 2)
    assert list_calls(db, CallFilter(status="handed_off"))[0] == 4


def test_purge_deletes_old_calls_with_their_transcript_and_keeps_the_audit(
        db: Database) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        old = Call(caller="1", start_time=now - timedelta(days=40))
        new = Call(caller="2", start_time=now - timedelta(days=5))
        session.add_all([old, new])
        session.flush()
        session.add(Utterance(call_id=old.call_id, seq=1, speaker="caller", text="old",
                              start_time=old.start_time))
        session.add(OperatorAction(user="ops", action="answer", call_id=old.call_id))
    assert purge(db, days=30) == 1
    with db.session() as session:
        assert [c.caller for c in session.scalars(select(Call))] == ["2"]
        assert session.scalar(select(func.count()).select_from(Utterance)) == 0
        assert session.scalar(select(func.count()).select_from(OperatorAction)) == 1
    assert purge(db, days=30) == 0


def test_performance_counts_rates_and_reply_latency(db: Database) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        done = Call(caller="1", status="completed", start_time=now)
        handed = Call(caller="2", status="handed_off", start_time=now)
        session.add_all([done, handed, Call(caller="3", start_time=now - timedelta(days=2))])
        session.flush()
        session.add_all([
            Utterance(call_id=done.call_id, seq=1, speaker="caller", text="hi",
                      start_time=now, end_time=now + timedelta(seconds=1)),
            Utterance(call_id=done.call_id, seq=2, speaker="agent", text="hello",
                      start_time=now + timedelta(seconds=1.8)),
            HitlAlert(key="k1", call_id=handed.call_id, reason="low_confidence")])
    figures = stats.performance(db, now - timedelta(hours=1))
    assert {k: figures[k] for k in ("calls", "active", "ai_resolved_rate", "hitl_rate",
                                    "handed_off")} == {
        "calls": 2, "active": 0, "ai_resolved_rate": 0.5, "hitl_rate": 0.5, "handed_off": 1}
    assert figures["latency_ms"] == {"p50": 800.0, "p95": 800.0, "p99": 800.0, "samples": 1}
    assert stats.performance(db, now + timedelta(hours=1))["ai_resolved_rate"] is None


def test_rules_listed_by_priority_and_deleted(db: Database) -> None:
    late = add_rule(db, "block", "1666", priority=200)
    early = add_rule(db, "vip", "1777", priority=10, note="the boss")
    assert [(r.id, r.note) for r in list_rules(db)] == [(early, "the boss"), (late, "")]
    assert delete_rule(db, late) and not delete_rule(db, late)
    assert [r.id for r in list_rules(db)] == [early]


def test_audit_log_newest_first(db: Database) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        session.add_all([OperatorAction(user="ada", action=f"a{n}", at=now + timedelta(n))
                         for n in range(3)])
    assert [a.action for a in list_actions(db, limit=2)] == ["a2", "a1"]
    assert [a.action for a in list_actions(db, limit=2, offset=2)] == ["a0"]
