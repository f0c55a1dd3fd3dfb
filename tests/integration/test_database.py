"""The seed's database tests, on SQLite and on a real PostgreSQL: Call and its transcript
(utterances), date-range queries, factories, purge, the record's ordering; the figures,
routing rules and audit log the API reads."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from smartpbx_ari.config import load_settings
from smartpbx_ari.store import stats
from smartpbx_ari.store.audit import list_actions
from smartpbx_ari.store.calls import CallFilter, call_page, get_call, list_calls, purge
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.migrate import open_database
from smartpbx_ari.store.models import Call, HitlAlert, Knowledge, OperatorAction, Utterance
from smartpbx_ari.store.rules import add_rule, delete_rule, list_rules
from smartpbx_ari.store.window import Window
from tests.fixtures.factories import CallFactory, KnowledgeFactory, UtteranceFactory

pytestmark = [pytest.mark.integration, pytest.mark.db]


@pytest.mark.smoke
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


def test_a_page_of_calls_with_each_callers_first_question(db: Database) -> None:
    t = datetime(2026, 11, 28, 7, 31, 6, 509893, tzinfo=UTC)
    with db.session() as session:
        asked = Call(call_id="asked", caller="1", start_time=t)
        silent = Call(call_id="silent", caller="2", start_time=t - timedelta(minutes=1))
        session.add_all([asked, silent])
        session.flush()
        session.add_all([  # seq decides, not the order of insertion nor the speaker's turn
            Utterance(call_id="asked", seq=3, speaker="caller", text="And returns?",
                      start_time=t),
            Utterance(call_id="asked", seq=1, speaker="agent", text="Hello, how can I help?",
                      start_time=t),
            Utterance(call_id="asked", seq=2, speaker="caller", text="Where is my parcel?",
                      start_time=t),
            Utterance(call_id="silent", seq=1, speaker="agent", text="Hello?", start_time=t)])
    total, page, questions = call_page(db, CallFilter(), limit=1)
    assert (total, [c.call_id for c in page], questions) == (
        2, ["asked"], {"asked": "Where is my parcel?"})
    total, page, questions = call_page(db, CallFilter(), limit=1, offset=1)
    assert ([c.call_id for c in page], questions) == (["silent"], {})


def test_the_timeline_buckets_calls_containment_hold_and_latency(db: Database) -> None:
    now = datetime(2026, 11, 28, 14, 55, tzinfo=UTC)
    s = timedelta(seconds=1)
    hour = timedelta(hours=1)
    window = Window.ending_at(now, 4 * 3600, 3600)  # 11:00, 12:00, 13:00, 14:00
    with db.session() as session:
        rows = [Call(call_id="old", caller="0", start_time=window.start - s,
                     disposition="ai"),  # before the window
                Call(call_id="a1", caller="1", start_time=window.start + 5 * s,
                     disposition="ai"),
                Call(call_id="a2", caller="2", start_time=window.start + 30 * 60 * s,
                     disposition="queue", hold_s=12.5),
                Call(call_id="a3", caller="3", start_time=window.start + hour - s,
                     disposition="abandoned_on_hold", hold_s=30.0),
                Call(call_id="b1", caller="4", start_time=window.start + 2 * hour,
                     disposition="ai"),
                Call(call_id="live", caller="5", start_time=now)]  # no disposition yet
        session.add_all(rows)
        session.flush()
        for seq, (call_id, start, reply_ms) in enumerate((
                ("a1", rows[1].start_time, 400), ("a1", rows[1].start_time + 20 * s, 900),
                ("b1", rows[4].start_time, 650), ("old", window.start - s, 300))):
            session.add_all([
                Utterance(call_id=call_id, seq=2 * seq, speaker="caller", text="q",
                          start_time=start, end_time=start + 2 * s),
                Utterance(call_id=call_id, seq=2 * seq + 1, speaker="agent", text="a",
                          start_time=start + 2 * s + timedelta(milliseconds=reply_ms))])
    buckets = stats.timeline(db, window)
    assert [b["start"] for b in buckets] == [window.start + n * hour for n in range(4)]
    assert [b["calls"] for b in buckets] == [3, 0, 1, 1]
    assert [b["ended"] for b in buckets] == [3, 0, 1, 0]
    assert [b["containment_rate"] for b in buckets] == [0.333, None, 1.0, None]
    assert buckets[0]["hold_s"] == {"p50": 30.0, "p95": 30.0, "samples": 2}
    assert buckets[0]["abandoned_on_hold"] == 1
    assert buckets[1]["hold_s"] == {"p50": None, "p95": None, "samples": 0}
    # by the end of the caller's words: "old" asked before the window and ended inside it
    assert buckets[0]["latency_ms"] == {"p50": 400.0, "p95": 900.0, "samples": 3}
    assert buckets[2]["latency_ms"] == {"p50": 650.0, "p95": 650.0, "samples": 1}
    assert buckets[3]["latency_ms"]["samples"] == 0


def test_each_caller_utterance_pairs_with_the_next_reply_of_its_call(db: Database) -> None:
    t = datetime.now(UTC).replace(second=0, microsecond=0)
    s = timedelta(seconds=1)
    turns = {"a": [("caller", 0, 2), ("agent", 2.5, None),
                   ("agent", 9, None),  # a second reply: no new pair
                   ("caller", 10, 11),
                   ("caller", 12, 13),  # more of the caller's words: the latest counts
                   ("operator", 13.7, None)],
             "b": [("caller", 0, None), ("agent", 1, None)],  # no end: not measurable
             "c": [("caller", 0, 1)]}  # never answered
    with db.session() as session:
        session.add_all([Call(call_id=c, caller=c, start_time=t) for c in turns])
        session.flush()
        session.add_all([
            Utterance(call_id=c, seq=n, speaker=who, text="x", start_time=t + begin * s,
                      end_time=t + end * s if end is not None else None)
            for c, said in turns.items() for n, (who, begin, end) in enumerate(said, 1)])
    figures = stats.performance(db, t - timedelta(minutes=1))
    assert figures["latency_ms"] == {"p50": 700.0, "p95": 700.0, "p99": 700.0, "samples": 2}
    line = stats.timeline(db, Window.ending_at(t + 60 * s, 600, 10))  # by the caller's end
    assert [(b["latency_ms"]["p50"], b["latency_ms"]["samples"]) for b in line
            if b["latency_ms"]["samples"]] == [(500.0, 1), (700.0, 1)]


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


def test_the_sqlite_database_is_its_owners_only(tmp_path: Path) -> None:
    """It holds password hashes and transcripts: 0600, its journals too; the dir 0700."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # an older install's
    db = open_database(load_settings(environ={"SMARTPBX_DATA_DIR": str(data)}))
    with db.session() as session:  # a write: SQLite's -wal and -shm files appear
        session.add(Call(caller="1003", callee="1004", start_time=datetime.now(UTC),
                         status="active"))
    files = sorted(data.glob("smartpbx.db*"))
    assert len(files) >= 2 and files[0].name == "smartpbx.db"
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
        f.name: 0o600 for f in files}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
