"""Recordings and dispositions in the database (SQLite and PostgreSQL): the recorder stores
each call's disposition and hold time, the figures count them, and the purge (store and
``smartpbx db purge``) deletes a call's recording with it."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from smartpbx_ari.cli import main
from smartpbx_ari.config import load_settings
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
from smartpbx_ari.store import stats
from smartpbx_ari.store.calls import purge
from smartpbx_ari.store.db import Database, database_url
from smartpbx_ari.store.models import Call
from smartpbx_ari.store.recorder import CallRecorder
from smartpbx_ari.store.recordings import recording_path, recordings_dir, save_recording

pytestmark = [pytest.mark.integration, pytest.mark.db]


def _calls(t0: float) -> list[CallEvent]:
    def hold(cid: str, at: float) -> AlertRaised:
        return AlertRaised(call_id=cid, at=at, alert_id=f"{cid}-a", reason="low_confidence",
                           question="Do you sell gift cards?", waiting=True)

    return [
        CallStarted(call_id="c-ai", at=t0, caller="2001"),
        Heard(call_id="c-ai", at=t0 + 2, text="How do I get a refund?"),
        Said(call_id="c-ai", at=t0 + 3, text="Refunds go to your card."),
        CallEnded(call_id="c-ai", at=t0 + 9, reason="caller hung up"),
        CallStarted(call_id="c-typed", at=t0, caller="2002"),
        hold("c-typed", t0 + 3),
        AlertUpdated(call_id="c-typed", at=t0 + 7, alert_id="c-typed-a", status="answered",
                     user="otto", text="Yes, in every store."),
        Said(call_id="c-typed", at=t0 + 7.1, text="Yes, in every store.", speaker="operator"),
        CallEnded(call_id="c-typed", at=t0 + 12, reason="caller hung up"),
        CallStarted(call_id="c-queue", at=t0, caller="2003"),
        hold("c-queue", t0 + 3),
        HandedOff(call_id="c-queue", at=t0 + 28, reason="no operator answered in time"),
        CallEnded(call_id="c-queue", at=t0 + 28.1, reason="no operator answered in time"),
        CallStarted(call_id="c-gone", at=t0, caller="2004"),
        hold("c-gone", t0 + 3),
        CallEnded(call_id="c-gone", at=t0 + 5, reason="caller hung up"),
        AlertUpdated(call_id="c-gone", at=t0 + 5, alert_id="c-gone-a", status="closed"),
        CallStarted(call_id="c-live", at=t0, caller="2005"),
    ]


def test_the_recorder_stores_each_calls_disposition_and_the_figures_count_them(
        db: Database) -> None:
    t0 = time.time() - 60
    recorder = CallRecorder(db).start()
    try:
        for event in _calls(t0):
            recorder.record(event)
        assert recorder.flush(10)
    finally:
        recorder.stop()
    with db.session() as session:
        rows = {c.call_id: (c.disposition, c.disposition_reason, c.hold_s)
                for c in session.scalars(select(Call))}
    assert rows == {
        "c-ai": ("ai", "", None),
        "c-typed": ("operator_answer", "", 4.0),
        "c-queue": ("queue", "no operator answered in time", 25.0),
        "c-gone": ("abandoned_on_hold", "", 2.0),
        "c-live": (None, "", None),  # not ended: no disposition yet
    }
    figures = stats.performance(db, datetime.now(UTC) - timedelta(hours=1))
    assert figures["dispositions"] == {"ai": 1, "operator_answer": 1, "queue": 1,
                                       "taken_over": 0, "abandoned_on_hold": 1,
                                       "dead_peer": 0}
    assert figures["containment_rate"] == 0.25  # of the 4 ended calls, the AI alone: 1
    assert figures["hold_s"] == {"p50": 4.0, "p95": 25.0, "samples": 3}
    assert (figures["abandoned_on_hold"], figures["abandoned_on_hold_rate"]) == (1, 0.333)


def test_purge_deletes_old_calls_recordings_and_keeps_the_others(
        db: Database, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        session.add_all([Call(call_id="c-old", caller="1", start_time=now - timedelta(days=40)),
                         Call(call_id="c-new", caller="2", start_time=now - timedelta(days=5))])
    kept = tmp_path / "recordings"
    old = save_recording(kept, "c-old", b"RIFF-old")
    new = save_recording(kept, "c-new", b"RIFF-new")
    stray = save_recording(kept, "c-never-recorded", b"RIFF-stray")  # its record was lost
    long_ago = (now - timedelta(days=41)).timestamp()
    os.utime(stray, (long_ago, long_ago))
    assert purge(db, days=30, recordings=kept) == 1
    assert not old.exists() and new.read_bytes() == b"RIFF-new"
    assert list(kept.iterdir()) == [new]  # no stray nor partial file left either


def test_db_purge_command_deletes_a_call_with_its_recording(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SMARTPBX_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SMARTPBX_DATABASE_URL", raising=False)
    assert main(["db", "upgrade"]) == 0
    settings = load_settings()
    db = Database(database_url(settings))
    with db.session() as session:
        session.add(Call(call_id="1764000000.7", caller="1",
                         start_time=datetime.now(UTC) - timedelta(days=100)))
    audio = save_recording(recordings_dir(settings), "1764000000.7", b"RIFF....WAVE")
    assert audio == recording_path(tmp_path / "recordings", "1764000000.7")
    assert main(["db", "purge"]) == 0  # store.retention_days: 90
    assert "purged 1 call(s) older than 90 day(s)" in capsys.readouterr().out
    assert not audio.exists()
    with db.session() as session:
        assert session.get(Call, "1764000000.7") is None


@pytest.mark.parametrize("bad", ["../secrets", "a/b", "", ".hidden", "x" * 65])
def test_a_recording_path_is_only_ever_a_call_id_in_the_recordings_dir(
        tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="call_id"):
        recording_path(tmp_path, bad)
